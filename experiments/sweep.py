"""Hyperparameter sweep: K training runs as one vmapped program, sharded over every device, and a leaderboard.

Every run shares the static config (model, window, batch, steps) and the data; runs differ in seed and in
the numeric `HParams`. Each hyperparameter option takes a comma list (grid values, or choices for a random
search) or `lo:hi` (a range, random search only; learning rate and fill temperature log-uniform).

    python experiments/sweep.py                                     # grid: 4 learning rates x 2 seeds = 8 runs
    python experiments/sweep.py --lr 1e-3,3e-3 --maker-fee 0,0.0008 --stock-leverage 1,2 --seeds 0
    python experiments/sweep.py --search random --n 16 --lr 1e-4:3e-2 --return-weight 0:0.2 --max-parallel 8
    python experiments/sweep.py --data-dir ../shared/data/daily --train-end 2024-06-30 --val-end 2025-06-30

The K runs go through the devices in chunks of `--max-parallel` (default: all K at once; one compiled
program, the last chunk padded). Writes `--out` (default `runs/sweep-<timestamp>`): leaderboard.csv (best
first, metrics of each run's best validation evaluation, hard fills) and config.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import jax
import numpy as np

from ndjax.cli import add_data_args, add_model_args, load_market, prepare, split_rows, train_config
from ndjax.train.sweep import (
    HPARAM_NAMES,
    format_leaderboard,
    grid,
    leaderboard,
    n_shards,
    random_search,
    round_up,
    sweep,
    to_host,
    with_seeds,
    write_leaderboard,
)
from ndjax.train.trainer import HParams, context_split, make_train

# option -> (HParams field, default)
HP_OPTIONS = {
    "lr": ("learning_rate", "3e-4,1e-3,3e-3,1e-2"),
    "return_weight": ("return_weight", "0.08"),
    "maker_fee": ("maker_fee", "0.0008"),
    "stock_leverage": ("stock_max_leverage", "2.0"),
    "crypto_leverage": ("crypto_max_leverage", "1.0"),
    "leverage_rate": ("leverage_fee_rate", "0.065"),
    "fill_temperature": ("fill_temperature", "5e-3"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p, synthetic_days=700)
    p.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic market")
    add_model_args(p, d_model=16, window=48, batch=8, steps=100, eval_every=20)
    s = p.add_argument_group("search (traced HParams: comma list, or lo:hi for --search random)")
    s.add_argument("--search", choices=["grid", "random"], default="grid")
    s.add_argument("--n", type=int, default=8, help="configurations of a random search")
    s.add_argument("--search-seed", type=int, default=0)
    for opt, (field, default) in HP_OPTIONS.items():
        s.add_argument("--" + opt.replace("_", "-"), default=default, help=f"HParams.{field} (default {default})")
    s.add_argument("--seeds", default="0,1", help="training seeds; every configuration runs with every seed")
    r = p.add_argument_group("run")
    r.add_argument("--max-parallel", type=int, help="runs per compiled call (default: all K)")
    r.add_argument("--out", help="output folder (default runs/sweep-<timestamp>)")
    r.add_argument("--top", type=int, default=20, help="rows of the printed table")
    return p.parse_args(argv)


def _values(text: str) -> list[float] | tuple[float, float]:
    if ":" in text:
        lo, hi = text.split(":")
        return float(lo), float(hi)
    return [float(v) for v in text.split(",") if v.strip()]


def build_hparams(args: argparse.Namespace) -> HParams:
    specs = {field: _values(getattr(args, opt)) for opt, (field, _) in HP_OPTIONS.items()}
    if args.search == "grid":
        bad = [f for f, v in specs.items() if isinstance(v, tuple)]
        if bad:
            raise SystemExit(f"--search grid takes comma lists, got a lo:hi range for {bad}")
        return grid(**specs)
    fixed = {f: v[0] for f, v in specs.items() if isinstance(v, list) and len(v) == 1}
    varied = {f: v for f, v in specs.items() if f not in fixed}
    return random_search(jax.random.PRNGKey(args.search_seed), args.n, HParams(**fixed), **varied)


def load_arrays(args: argparse.Namespace):
    market = load_market(args, args.data_seed)
    a, b = split_rows(market, args.train_end, args.val_end, need_test=False)
    return market, prepare(market, a)[1], a, b


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out or f"runs/sweep-{time.strftime('%Y%m%d-%H%M%S')}")
    writer = jax.process_index() == 0  # multi-host: every process computes, process 0 writes
    if writer:
        out.mkdir(parents=True, exist_ok=True)
    market, arrays, a, b = load_arrays(args)
    cfg = train_config(args, market.periods_per_year)
    pc = cfg.policy
    trainer = make_train(cfg, arrays.rows(0, a), context_split(arrays, a, b, pc.lookback))
    seeds_in = [int(s) for s in args.seeds.split(",") if s.strip()]
    keys, hps, seeds = with_seeds(build_hparams(args), seeds_in)
    K = int(keys.shape[0])
    d = n_shards()
    chunk = round_up(min(args.max_parallel or K, K), d)
    print(f"ndjax sweep: {K} runs ({K // len(seeds_in)} configs x {len(seeds_in)} seeds), {len(market.symbols)} "
          f"assets, train rows [0, {a}), validation [{a}, {b}); {d} device(s) ({jax.devices()[0].platform}), "
          f"{-(-K // chunk)} call(s) of {chunk} runs; {cfg.steps} updates each; output {out}", file=sys.stderr)

    t0 = time.perf_counter()
    best = [-np.inf]

    def progress(done: int, total: int, metrics: dict) -> None:
        score = to_host(metrics["val"]["score"])
        best[0] = max(best[0], float(np.nanmax(np.where(np.isnan(score), -np.inf, score))))
        width = 24
        bar = "#" * int(width * done / total) + "." * (width - int(width * done / total))
        sys.stderr.write(f"\r[{bar}] {done}/{total} runs  best val score {best[0]:+.3f}  "
                         f"{time.perf_counter() - t0:.0f}s (first call compiles)")
        sys.stderr.flush()

    state, metrics = sweep(trainer, keys, hps, max_parallel=args.max_parallel, progress=progress)
    jax.block_until_ready(state)
    t_sweep = time.perf_counter() - t0
    sys.stderr.write("\n")

    rows = leaderboard(hps, seeds, metrics)
    if not writer:
        return rows
    path = write_leaderboard(rows, out / "leaderboard.csv")
    (out / "config.json").write_text(json.dumps({
        "args": vars(args), "config": asdict(cfg), "K": K, "devices": d, "hparam_fields": list(HPARAM_NAMES),
        "data": args.data_dir or f"synthetic(seed={args.data_seed}, days={args.synthetic_days}, signal={args.signal})",
    }, indent=1, default=str))
    print(f"Validation (hard fills) at each run's best evaluation, best first; {K} runs in {t_sweep:.1f} s "
          f"(compile included), total {time.perf_counter() - t_start:.1f} s")
    print(format_leaderboard(rows, top=args.top))
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
