"""Hyperparameter sweep: K training runs as one vmapped program, sharded over every device, and a leaderboard.

Every run shares the static config (model, window, batch, steps) and the data; runs differ in seed and in the
traced `HParams`. Each `HParams` flag takes a comma list (grid values, or choices for a random search) or
`lo:hi` (a range, random search only; learning rate and fill temperature log-uniform).

    python experiments/sweep.py                                     # grid: 4 learning rates x 2 seeds = 8 runs
    python experiments/sweep.py --learning-rate 1e-3,3e-3 --maker-fee 0,0.0008 --stock-max-leverage 1,2 --seeds 0
    python experiments/sweep.py --search random --n 16 --learning-rate 1e-4:3e-2 --return-weight 0:0.2 --max-parallel 8
    python experiments/sweep.py --data-dir ../shared/data/daily --train-end 2024-06-30 --val-end 2025-06-30

Writes `--out` (default `runs/sweep-<timestamp>`): leaderboard.csv (best first, metrics of each run's best
validation evaluation, hard fills), sweep.json, one run folder per run (`run-000`, ...: config.json and a
checkpoint of the run's best parameters, which `load_run` reads) and `best`, a link to the best run:

    python experiments/evaluate.py --run runs/sweep-X/best     # or --run runs/sweep-X; plan.py and paper.py too
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from ndjax.cli import add_fields, add_grid_fields, from_fields, grid_values
from ndjax.data.source import MarketSource
from ndjax.errors import ConfigError, NdjaxError, one_line
from ndjax.policy import PolicyConfig
from ndjax.report.tables import format_leaderboard
from ndjax.report.writers import write_json, write_rows
from ndjax.runs.job import JobSpec, prepare_run
from ndjax.runs.sweeps import save_sweep_runs
from ndjax.train.config import HParams, TrainConfig
from ndjax.train.sharding import n_shards, round_up, to_host
from ndjax.train.sweep import (
    HPARAM_NAMES,
    grid,
    leaderboard,
    random_search,
    sweep,
    varied_hparams,
    with_seeds,
)

SMALL = dict(synthetic_days=700, d_model=16, window=48, batch_size=8, steps=100, eval_every=20)
"""This script's defaults where they differ from the dataclasses': a sweep runs many small models."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fields(p.add_argument_group("market"), MarketSource)
    p.add_argument("--train-end", help="last training date (default: 60 %% of the rows)")
    p.add_argument("--val-end", help="last validation date (default: 80 %% of the rows)")
    add_fields(p.add_argument_group("policy"), PolicyConfig)
    add_fields(p.add_argument_group("training"), TrainConfig, skip={"policy", "periods_per_year"})
    s = p.add_argument_group("search (traced HParams: comma list, or lo:hi for --search random)")
    add_grid_fields(s, HParams)
    s.add_argument("--search", choices=["grid", "random"], default="grid")
    s.add_argument("--n", type=int, default=8, help="runs of a random search: --n configurations, each with the one "
                   "seed of --seeds (default 0); more seeds multiply the runs")
    s.add_argument("--search-seed", type=int, default=0)
    s.add_argument("--seeds", help="training seeds; every configuration runs with every seed (default: 0,1 for a "
                   "grid, 0 for a random search)")
    r = p.add_argument_group("run")
    r.add_argument("--max-parallel", type=int, help="runs per compiled call (default: all K)")
    r.add_argument("--out", help="output folder (default runs/sweep-<timestamp>)")
    r.add_argument("--top", type=int, default=20, help="rows of the printed table")
    p.set_defaults(learning_rate="3e-4,1e-3,3e-3,1e-2", **SMALL)
    return p.parse_args(argv)


def build_hparams(args: argparse.Namespace) -> HParams:
    specs = {name: grid_values(getattr(args, name), name) for name in HPARAM_NAMES}
    if args.search == "grid":
        ranges = [name for name, v in specs.items() if isinstance(v, tuple)]
        if ranges:
            raise ConfigError(f"--search grid takes comma lists, got a lo:hi range for {ranges}")
        return grid(**specs)
    fixed = {name: v[0] for name, v in specs.items() if isinstance(v, list) and len(v) == 1}
    varied = {name: v for name, v in specs.items() if name not in fixed}
    return random_search(jax.random.PRNGKey(args.search_seed), args.n, HParams(**fixed), **varied)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out or f"runs/sweep-{time.strftime('%Y%m%d-%H%M%S')}")
    writer = jax.process_index() == 0  # multi-host: every process computes, process 0 writes
    try:
        source = from_fields(MarketSource, args)
        hps = build_hparams(args)
        train = from_fields(TrainConfig, args, policy=from_fields(PolicyConfig, args))
        prepared = prepare_run(JobSpec(source=source, train_end=args.train_end, val_end=args.val_end, train=train),
                               need_test=False)
    except NdjaxError as e:
        raise SystemExit(one_line("sweep", e)) from None
    market, cfg, trainer = prepared.market, prepared.config.train, prepared.trainer
    a, b = prepared.train_rows, prepared.val_rows
    seeds_in = [int(s) for s in (args.seeds or ("0" if args.search == "random" else "0,1")).split(",") if s.strip()]
    keys, hps, seeds = with_seeds(hps, seeds_in)
    K, d = int(keys.shape[0]), n_shards()
    chunk = round_up(min(args.max_parallel or K, K), d)
    print(f"ndjax sweep: {K} runs ({K // len(seeds_in)} configs x {len(seeds_in)} seeds), {market.n_assets} assets, "
          f"train rows [0, {a}), validation [{a}, {b}); {d} device(s) ({jax.devices()[0].platform}), "
          f"{-(-K // chunk)} call(s) of {chunk} runs; {cfg.steps} updates each; output {out}", file=sys.stderr)

    t0 = time.perf_counter()
    bar = tqdm(total=K, unit="run", desc="sweep (the first call compiles)")
    best = [-np.inf]

    def progress(done: int, total: int, metrics: dict) -> None:
        score = to_host(metrics["val"]["score"])
        best[0] = max(best[0], float(np.nanmax(np.where(np.isnan(score), -np.inf, score))))
        bar.update(done - bar.n)
        bar.set_postfix(best_val_score=f"{best[0]:+.3f}")

    with bar:
        state, metrics = sweep(trainer, keys, hps, max_parallel=args.max_parallel, progress=progress)
        jax.block_until_ready(state)
    t_sweep = time.perf_counter() - t0
    rows = leaderboard(hps, seeds, metrics)
    if not writer:
        return rows
    write_rows(out / "leaderboard.csv", rows)
    write_json(out / "sweep.json", {"source": source.to_dict(), "train": dataclasses.asdict(cfg), "K": K,
                                    "devices": d, "hparam_fields": list(HPARAM_NAMES), "seeds": seeds_in})
    save_sweep_runs(out, prepared.config, state, hps, seeds, metrics)
    print(f"Validation (hard fills) at each run's best evaluation, best first; {K} runs in {t_sweep:.1f} s "
          f"(compile included), total {time.perf_counter() - t_start:.1f} s")
    print(format_leaderboard(rows, varied_hparams(rows), top=args.top))
    print(f"wrote {out / 'leaderboard.csv'}")
    return rows


if __name__ == "__main__":
    main()
