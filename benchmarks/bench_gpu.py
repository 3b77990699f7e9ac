"""Throughput on an accelerator: one script, a few minutes, asset-steps/s for the workloads that matter at scale.

  (1) hard forward, summary-only (`simulate_stats`)      B x N x T = 65536 x 16 x 256
  (2) hard forward, full `StepInfo` record (`simulate`)   same shape
  (3) forward+backward of the training objective (`simulated_objective`, mean_variance, ste fills) w.r.t. the
      actions, same shape
  (4) a vmapped sweep: K = 64 market configurations (maker fee x leverage cap) x 4096 x 16 x 256, summary-only

Inputs are generated on the device (seeded random walks and random limits), so host transfer is not timed.
Each cell: compile (ahead of time, timed apart), one warm call, then the median of up to `--repeats` calls.

    python benchmarks/bench_gpu.py            # the shapes above, on jax's default device
    python benchmarks/bench_gpu.py --tiny     # 64 x 4 x 16, K = 4: a smoke run that works on a CPU

Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from ndjax import dynamics as dyn  # noqa: E402
from ndjax.loss import simulated_objective  # noqa: E402
from ndjax.sim import simulate, simulate_stats  # noqa: E402

FULL = dict(B=65536, N=16, T=256, K=64, sweep_B=4096)
TINY = dict(B=64, N=4, T=16, K=4, sweep_B=16)


@functools.partial(jax.jit, static_argnames=("T",))
def make_inputs(key: jax.Array, close0: jax.Array, T: int = 256):
    """Random-walk bars and random limits `(T, B, N)` from `key`, starting at `close0 (B, N)`."""
    ks = jax.random.split(key, 6)
    B, N = close0.shape
    logp = jnp.log(close0) + jnp.cumsum(0.02 * jax.random.normal(ks[0], (T, B, N)), axis=0)
    close = jnp.exp(logp)
    prev = jnp.concatenate([close0[None], close[:-1]])
    span = jnp.abs(0.01 * jax.random.normal(ks[1], (T, B, N)))
    bars = dyn.Bar(high=jnp.maximum(prev, close) * (1 + span), low=jnp.minimum(prev, close) * (1 - span),
                   close=close, tradable=jax.random.uniform(ks[2], (T, B, N)) < 0.95,
                   days_elapsed=jnp.where(jnp.arange(T) % 5 == 4, 3.0, 1.0)[:, None] * jnp.ones((1, B)))
    u = jax.random.uniform(ks[3], (4, T, B, N))
    actions = dyn.Action(buy_price=prev * (1 - 0.03 * u[0]), sell_price=prev * (1 + 0.03 * u[1]),
                         buy_frac=u[2] * (u[3] < 0.5), sell_frac=jax.random.uniform(ks[4], (T, B, N)) * (u[3] > 0.7))
    return actions, bars



def _timed(compiled, args, repeats: int) -> tuple[float, int]:
    jax.block_until_ready(compiled(*args))
    times = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 2 or time.perf_counter() - start < 20):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def run(shape: dict, repeats: int) -> list[dict]:
    """Compile and time the four cells; returns one row per cell."""
    B, N, T, K, SB = shape["B"], shape["N"], shape["T"], shape["K"], shape["sweep_B"]
    is_crypto = jnp.arange(N) >= N - N // 4
    close0 = 100 * jnp.exp(0.5 * jax.random.normal(jax.random.PRNGKey(0), (B, N)))
    actions, bars = make_inputs(jax.random.PRNGKey(1), close0, T=T)
    state0 = dyn.init_state(jnp.full((B,), 10_000.0), close0)
    hard = dyn.MarketParams(is_crypto=is_crypto)
    ste = dyn.MarketParams(is_crypto=is_crypto, fill="ste", fill_temperature=5e-3)

    def grad_fn(p, s, a, b):
        return jax.value_and_grad(lambda a_: jnp.sum(simulated_objective(p, s, a_, b, name="mean_variance",
                                                                         risk_aversion=10.0)[0]))(a)

    fee = jnp.linspace(0.0, 0.003, K)
    lev = jnp.tile(jnp.array([1.0, 1.5, 2.0, 2.0]), K // 4 + 1)[:K]
    sub = jax.tree_util.tree_map(lambda x: x[:, :SB], (actions, bars))
    state_sb = dyn.init_state(jnp.full((SB,), 10_000.0), close0[:SB])

    def sweep_fn(fees, levs, s, a, b):
        def one(f, m):
            return simulate_stats(hard.replace(maker_fee=f, stock_max_leverage=m), s, a, b).total_return

        return jax.vmap(one)(fees, levs)

    cells = [
        ("hard forward, summary-only (simulate_stats)", jax.jit(simulate_stats), (hard, state0, actions, bars),
         B * N * T, 1),
        ("hard forward, full StepInfo (simulate)", simulate, (hard, state0, actions, bars), B * N * T, 1),
        ("fwd+bwd training objective (mean_variance, ste)", jax.jit(grad_fn), (ste, state0, actions, bars),
         B * N * T, 1),
        (f"vmapped sweep K={K} x {SB} x {N} x {T}, summary-only", jax.jit(sweep_fn), (fee, lev, state_sb, *sub),
         K * SB * N * T, K),
    ]
    rows = []
    for name, fn, args, steps, configs in cells:
        t0 = time.perf_counter()
        compiled = fn.lower(*args).compile()
        compile_s = time.perf_counter() - t0
        seconds, n = _timed(compiled, args, repeats)
        rows.append(dict(cell=name, seconds=seconds, n=n, compile_s=compile_s, steps_s=steps / seconds,
                         configs_s=configs / seconds if configs > 1 else None))
        print(f"  {name:<58} {seconds * 1e3:10.2f} ms (n={n}, compile {compile_s:.1f} s)  "
              f"{steps / seconds / 1e6:10.1f} M asset-steps/s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (a CPU smoke run)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    shape = TINY if args.tiny else FULL
    dev = jax.devices()[0]
    print(f"jax {jax.__version__} | device: {dev.platform} {getattr(dev, 'device_kind', '')} | "
          f"{jax.device_count()} device(s) | shapes {shape}", flush=True)
    t0 = time.perf_counter()
    rows = run(shape, args.repeats)
    print("\n| cell | median ms | n | compile s | asset-steps/s | configs/s |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        cs = "" if r["configs_s"] is None else f"{r['configs_s']:.1f}"
        print(f"| {r['cell']} | {r['seconds'] * 1e3:.2f} | {r['n']} | {r['compile_s']:.1f} | {r['steps_s']:.3g} "
              f"| {cs} |")
    kind = getattr(dev, "device_kind", dev.platform)
    print(f"device: {dev.platform} ({kind}); total {time.perf_counter() - t0:.1f} s")
    return rows


if __name__ == "__main__":
    main()
