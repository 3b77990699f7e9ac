"""Benchmark: K sequential training runs versus one vmapped (sharded) run of K configurations.

For K in 1, 8, 64 (`--quick`: 1, 8): the same small training run (synthetic market, mlp policy) with K
different seeds and learning rates, either as K calls of one compiled `jax.jit(trainer.train)` or as one
call of `ndjax.sweep.sweep_fn(trainer)` (`vmap` of the run, K split over all devices). Compile time is
measured separately (ahead-of-time `.lower().compile()`); run times are the best of `--repeat` timings.
Prints a table; asserts nothing about speed.

    python benchmarks/bench_sweep.py            # K = 1, 8, 64
    python benchmarks/bench_sweep.py --quick    # K = 1, 8
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.data.arrays import context_split, prepare
from ndjax.data.synthetic import synthetic_market
from ndjax.policy import PolicyConfig
from ndjax.train.config import TrainConfig
from ndjax.train.sharding import n_shards
from ndjax.train.sweep import grid, shard_sweep, sweep_fn, unstack_hparams, with_seeds
from ndjax.train.trainer import make_train


def build(args: argparse.Namespace):
    m = synthetic_market(0, n_stocks=4, n_crypto=2, n_days=args.days, signal_strength=0.3)
    a, b = int(m.n_days * 0.6), int(m.n_days * 0.8)
    arr = prepare(m, a)[1]
    pc = PolicyConfig(model="mlp", d_model=args.d_model, hidden=2 * args.d_model,
                      n_heads=2, lookback=args.lookback)
    cfg = TrainConfig(policy=pc, window=args.window, batch_size=args.batch, steps=args.steps,
                      eval_every=args.steps // 2, warmup_steps=2)
    return cfg, make_train(cfg, arr.rows(0, a), context_split(arr, a, b, pc.context))


def timed(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="K = 1, 8 only")
    p.add_argument("--ks", default=None, help="comma list of K (default 1,8,64)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lookback", type=int, default=8)
    p.add_argument("--d-model", type=int, default=16)
    p.add_argument("--days", type=int, default=300)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    ks = [int(k) for k in (args.ks or ("1,8" if args.quick else "1,8,64")).split(",")]

    cfg, trainer = build(args)
    print(f"ndjax sweep benchmark: jax {jax.__version__}, {jax.device_count()} {jax.devices()[0].platform} device(s), "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}")
    print(f"one run: mlp d_model={args.d_model}, window={cfg.window}, batch={cfg.batch_size}, steps={cfg.steps}, "
          f"{cfg.n_evals} hard-fill validations; best of {args.repeat} timings")
    print("NOTE: on a shared 2-core machine (other benchmarks may run concurrently) timings are noisy; "
          "compare ratios, not absolute numbers.\n")

    single = jax.jit(trainer.train)
    keys, hps, _ = with_seeds(grid(learning_rate=[1e-3]), [0])
    t = time.perf_counter()
    one = single.lower(keys[0], unstack_hparams(hps)[0]).compile()
    seq_compile = time.perf_counter() - t

    head = (f"{'K':>4} {'seq compile':>12} {'seq run':>10} {'vmap compile':>13} {'vmap run':>10} "
            f"{'seq/vmap':>9} {'ms/run seq':>11} {'ms/run vmap':>12}")
    print(head)
    print("-" * len(head))
    for k in ks:
        _, hps, _ = with_seeds(grid(learning_rate=np.geomspace(3e-4, 3e-2, k).tolist()), [0])
        keys = jnp.stack([jax.random.PRNGKey(i) for i in range(k)])  # distinct seeds too
        singles = [jax.tree_util.tree_map(jnp.float32, h) for h in unstack_hparams(hps)]

        def sequential():
            return [one(keys[i], singles[i]) for i in range(k)]

        ks_, hs_, _ = shard_sweep(keys, hps)
        t = time.perf_counter()
        vm = sweep_fn(trainer).lower(ks_, hs_).compile()
        vm_compile = time.perf_counter() - t
        t_seq = timed(sequential, args.repeat)
        t_vm = timed(lambda: vm(ks_, hs_), args.repeat)
        print(f"{k:>4} {seq_compile:>11.2f}s {t_seq:>9.3f}s {vm_compile:>12.2f}s {t_vm:>9.3f}s "
              f"{t_seq / t_vm:>8.2f}x {1e3 * t_seq / k:>11.1f} {1e3 * t_vm / k:>12.1f}", flush=True)
    print(f"\nseq: {max(ks)} calls of one compiled run (compiled once, {seq_compile:.1f} s); vmap: one call of "
          f"vmap(train) over K, sharded over {n_shards()} device(s), compiled once per K. "
          f"load average now {os.getloadavg()[0]:.2f}.")


if __name__ == "__main__":
    main()
