"""Walk-forward on real data: one test per calendar year, each fold trained on every bar before its validation.

    python experiments/walk_forward.py                                   # ../shared/data/long, tests 2005 .. end
    python experiments/walk_forward.py --data-dir ../shared/data/daily --first-test 2022
    python experiments/walk_forward.py --only 2008,2018,2022 --steps 200    # a cheap screen on three folds

Default folds: a test per calendar year from --first-test to the data's end (the last fold runs to the end),
validation the --val-days calendar days before each test, training every row from --start (default: the data's
first day) to the validation (an expanding window). Each fold is the main job (`JobSpec` defaults but 300 steps
and the regime design: `--features regime_vol --pooled --book-vol-target 0.15 --band 0.25 --risk-aversion 3
--drift-sd 0.3 --anchor-decay 10`; flags overridable) on the market cut at the fold's test end, over the symbols
listed before its test. Beside the policy, every fold runs buy and hold (1x), `trend` and `inverse_vol`
(`ndjax/classical.py`) and cash through the same transition on the same bars. `--risk-aversion-grid` chooses
gamma inside each fold by nested validation; `--ensemble K` trains K seeds per fold and tests the mean of their
target weights (`ndjax/ensemble.py`).

Writes into --out: walk_forward.json (`{"folds": [{name, test_start, test_end, stats: {strategy: PathStats}}],
"concatenated": {strategy: PathStats}}`, the concatenated figures from the chained out-of-sample daily returns),
walk_forward.csv (a row per fold and strategy, then the concatenated rows) and walk_forward.png (chained equity on
a log scale, drawdowns, the policy's gross exposure). Prints the table and the issue's targets, met or missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ndjax.cli import add_fields, from_fields, grid_values, parse_symbols
from ndjax.data.source import MarketSource
from ndjax.errors import ConfigError, NdjaxError, one_line
from ndjax.metrics import drawdown, summary
from ndjax.policy import PolicyConfig
from ndjax.report.writers import write_json, write_rows
from ndjax.runs.chain import chain_paths, rows_per_year
from ndjax.runs.folds import (Fold, choose_by_validation, drawdown_target, evaluate_ensemble, fold_universe,
                              make_folds, run_fold, validation_sortino, yearly_tests)
from ndjax.runs.job import JobResult, JobSpec
from ndjax.train.checkpoints import saved_steps
from ndjax.train.config import HParams, TrainConfig
from ndjax.train.loop import CHECKPOINT_DIR

STRATEGIES = ("policy", "buy_and_hold", "trend", "inverse_vol", "cash")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data/long", help="folder of daily CSVs")
    p.add_argument("--symbols", help="comma list, or 'all' (default: every file)")
    p.add_argument("--start", help="first date of every fold's training data (default: the data's first day)")
    p.add_argument("--first-test", type=int, default=2005,
                   help="year of the first yearly test fold (later if the data start too late to train for it)")
    p.add_argument("--tests", help="explicit first days of the test folds instead of yearly ones; each test ends "
                                   "the day before the next (the last: the data's end)")
    p.add_argument("--only", help="comma list of test years to run (a cheap screen on a subset of the folds)")
    p.add_argument("--val-days", type=int, default=180, help="calendar days of validation before each test")
    add_fields(p.add_argument_group("policy"), PolicyConfig)
    add_fields(p.add_argument_group("training"), TrainConfig, skip={"policy", "periods_per_year"})
    add_fields(p.add_argument_group("hyperparameters"), HParams)
    # 300 steps: 22 yearly folds inside the 30-minute budget on 2 cores (the main job trains 400); the regime
    # design of the docstring, measured in benchmarks/RESULTS.md
    p.set_defaults(steps=300, features="regime_vol", pooled=True, book_vol_target=0.15, band=0.25, risk_aversion=3.0,
                   drift_sd=0.3, anchor_decay=10.0)
    p.add_argument("--risk-aversion-grid", help="comma list of risk aversions: each fold trains one run per value "
                                                "and keeps the one with the best validation Sortino (nested "
                                                "validation; the test is never looked at). Costs one run per value")
    p.add_argument("--ensemble", type=int, default=1,
                   help="seeds per fold: each fold trains runs with seeds --seed .. --seed + K - 1 (into FOLD/seed-S) "
                        "and tests the mean of their target weights (ndjax/ensemble.py). Costs one run per seed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/walk_forward")
    p.add_argument("--overwrite", action="store_true", help="retrain folds whose folders hold an earlier run")
    p.add_argument("--resume", action="store_true",
                   help="continue folds whose folders hold checkpoints (a finished fold is only re-tested): "
                        "completes a stopped walk-forward")
    return p.parse_args(argv)


def plot(path: Path, dates: np.ndarray, chained: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = dates.astype("datetime64[D]").astype(object)
    fig, (eq, dd, lev) = plt.subplots(3, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1.5, 1]})
    for name, info in chained.items():
        eq.plot(x, info.equity, label=name, lw=1.6 if name == "policy" else 1.0)
        dd.plot(x, -np.asarray(drawdown(info.equity, info.prev_equity[0])), lw=1.6 if name == "policy" else 0.8)
    eq.set_yscale("log")
    eq.set_ylabel("equity (start = 1, log)")
    eq.legend(fontsize=8, ncol=5)
    dd.set_ylabel("drawdown")
    lev.plot(x, chained["policy"].leverage, color="C0", lw=0.8)
    lev.set_ylabel("policy gross")
    for ax in (eq, dd, lev):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def check_targets(folds: list[dict], concat: dict) -> list[tuple[str, str, bool]]:
    """The issue's targets: (what, the measured figure against its limit, met)."""
    out = []
    bad = [f["name"] for f in folds if not drawdown_target(f["stats"]["policy"]["max_drawdown"],
                                                           f["stats"]["buy_and_hold"]["max_drawdown"])[1]]
    out.append(("every fold's drawdown <= max(B&H's, 20 %)", f"{len(folds) - len(bad)}/{len(folds)} folds"
                + (f" (missed: {', '.join(bad)})" if bad else ""), not bad))
    p, h = concat["policy"], concat["buy_and_hold"]
    out.append(("concatenated max drawdown <= 0.6 x B&H's", f"{p['max_drawdown']:.1%} vs {0.6 * h['max_drawdown']:.1%}",
                p["max_drawdown"] <= 0.6 * h["max_drawdown"]))
    best = max(("buy_and_hold", "trend", "inverse_vol"), key=lambda k: concat[k]["sortino"])
    out.append(("concatenated Sortino >= best of B&H, trend, inverse_vol",
                f"{p['sortino']:.2f} vs {concat[best]['sortino']:.2f} ({best})",
                p["sortino"] >= concat[best]["sortino"]))
    out.append(("mean gross exposure >= 0.5x", f"{p['mean_leverage']:.2f}x", p["mean_leverage"] >= 0.5))
    out.append(("zero margin calls", f"{p['margin_calls']:.0f}", p["margin_calls"] == 0))
    return out


def print_report(folds: list[dict], concat: dict) -> None:
    short = {"policy": "policy", "buy_and_hold": "B&H", "trend": "trend", "inverse_vol": "inv-vol"}
    head = f"{'fold':<25}" + "".join(f"| {short[k] + ' ret':>11}{'Sortino':>8}{'MaxDD':>7} " for k in short)
    print(f"\n{head}| {'lev m/x':>9} {'calls':>5} | DD check")
    for f in folds + [{"name": "concatenated", "stats": concat}]:
        s = f["stats"]
        line = f"{f['name']:<25}" + "".join(f"| {s[k]['total_return'] * 100:>10.1f}%{s[k]['sortino']:>8.2f}"
                                           f"{s[k]['max_drawdown'] * 100:>6.1f}% " for k in short)
        limit, ok = drawdown_target(s["policy"]["max_drawdown"], s["buy_and_hold"]["max_drawdown"])
        print(line + f"| {s['policy']['mean_leverage']:>4.2f}/{s['policy']['max_leverage']:<4.2f} "
              f"{s['policy']['margin_calls']:>5.0f} | {'OK' if ok else 'MISSED'} ({limit:.0%})")
    print("\ntargets:")
    for what, figure, ok in check_targets(folds, concat):
        print(f"  {'MET   ' if ok else 'MISSED'} {what}: {figure}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        return walk_forward(args)
    except NdjaxError as e:
        raise SystemExit(one_line("walk_forward", e)) from None


def fold_job(args: argparse.Namespace, spec: JobSpec, fold: Fold, fold_dir: Path) -> JobResult:
    """Train and test one fold into `fold_dir`, resuming it under `--resume` when it holds checkpoints."""
    resume = args.resume and bool(saved_steps(fold_dir / CHECKPOINT_DIR))
    return run_fold(spec, fold, fold_dir, rows=False, progress=False, overwrite=args.overwrite and not resume,
                    resume=resume)


def walk_forward(args: argparse.Namespace) -> dict:
    """Every fold of `args`, the chained statistics, and the files; returns the JSON document."""
    out = Path(args.out)
    chosen = parse_symbols(args.symbols)
    symbols = None if chosen in (None, "all") else tuple(chosen)
    spec = JobSpec(source=MarketSource(data_dir=args.data_dir, symbols=symbols, start=args.start),
                   train=from_fields(TrainConfig, args, policy=from_fields(PolicyConfig, args)),
                   hparams=from_fields(HParams, args), seed=args.seed)
    grid = grid_values(args.risk_aversion_grid, "risk_aversion_grid") if args.risk_aversion_grid else []
    if isinstance(grid, tuple):
        raise ConfigError(f"--risk-aversion-grid: expected a comma list of values, got the range "
                          f"{args.risk_aversion_grid!r}")
    if args.ensemble < 1 or (args.ensemble > 1 and grid):
        raise ConfigError(f"--ensemble: a whole number of seeds >= 1, without --risk-aversion-grid; got "
                          f"{args.ensemble}" + (" with a grid" if grid else ""))
    t0 = time.perf_counter()
    market = spec.source.load()
    tests = args.tests.split(",") if args.tests else yearly_tests(market.dates, args.first_test, args.val_days)
    folds = make_folds(market.dates, tests, args.val_days)
    if args.only:
        folds = [f for f in folds if f.test_start[:4] in args.only.split(",")]
    report, pieces, dates = [], {k: [] for k in STRATEGIES}, []
    for fold in folds:
        universe = fold_universe(spec, fold)
        later = sorted(set(market.symbols) - set(universe))
        print(f"fold {fold.name}: train .. {fold.train_end}, validation .. {fold.val_end}, test {fold.test_start} .. "
              f"{fold.test_end}; {len(universe)} symbols" + (f" (not yet listed: {', '.join(later)})" if later else ""),
              file=sys.stderr, flush=True)
        fold_dir = out / fold.name.replace(" ", "")
        if grid:
            runs = {g: fold_job(args, replace(spec, hparams=spec.hparams.replace(risk_aversion=g)), fold,
                                fold_dir / f"gamma-{g:g}") for g in grid}
            scores = {g: validation_sortino(r.checkpoint_meta) for g, r in runs.items()}
            chosen = choose_by_validation(scores)
            nested = {"risk_aversion": chosen, "validation_sortino": scores}
            print(f"  nested validation: gamma {chosen:g} (validation Sortino "
                  + ", ".join(f"{g:g}: {v:.2f}" for g, v in scores.items()) + ")", file=sys.stderr, flush=True)
        elif args.ensemble > 1:
            seeds = range(args.seed, args.seed + args.ensemble)
            runs = {s: fold_job(args, replace(spec, seed=s), fold, fold_dir / f"seed-{s}") for s in seeds}
            chosen, nested = None, {"ensemble_seeds": list(seeds),
                                    "validation_sortino": {s: validation_sortino(r.checkpoint_meta)
                                                           for s, r in runs.items()}}
        else:
            runs, chosen, nested = {None: fold_job(args, spec, fold, fold_dir)}, None, {}
        if args.ensemble > 1:
            stats, paths, test_dates = evaluate_ensemble(spec, fold, [r.run_dir for r in runs.values()])
        else:
            stats, paths, test_dates = runs[chosen].stats, runs[chosen].paths, runs[chosen].dates
        report.append({"name": fold.name, "test_start": fold.test_start, "test_end": fold.test_end,
                       "train_seconds": round(sum(r.train_seconds for r in runs.values()), 1),
                       **nested, "stats": {k: stats[k].as_dict() for k in STRATEGIES}})  # the fold report's
        for k in STRATEGIES:  # policy, buy_and_hold, cash, trend, inverse_vol (runs.evaluate.held_out)
            pieces[k].append((universe, paths[k]))
        dates.append(np.asarray(test_dates))
        write_json(out / "walk_forward_partial.json",  # the folds so far, should the run be stopped before the end
                   {"folds": report, "seconds": round(time.perf_counter() - t0, 1)})
    chained = {k: chain_paths(pieces[k])[1] for k in STRATEGIES}
    all_dates = np.concatenate(dates)
    concat = {k: summary(chained[k], rows_per_year(all_dates)).as_dict() for k in STRATEGIES}
    print_report(report, concat)
    doc = {"folds": report, "concatenated": concat,
           "targets": [{"target": w, "measured": f, "met": bool(ok)} for w, f, ok in check_targets(report, concat)]}
    write_json(out / "walk_forward.json", doc)
    whole = {"name": "concatenated", "test_start": folds[0].test_start, "test_end": folds[-1].test_end, "stats": concat}
    rows = [{"fold": f["name"], "test_start": f["test_start"], "test_end": f["test_end"], "strategy": k,
             **f["stats"][k]} for f in [*report, whole] for k in STRATEGIES]
    write_rows(out / "walk_forward.csv", rows)
    plot(out / "walk_forward.png", all_dates, chained)
    print(f"\n{len(report)} folds in {time.perf_counter() - t0:.0f} s; wrote {out}/walk_forward.json, "
          "walk_forward.csv, walk_forward.png")
    return doc


if __name__ == "__main__":
    main()
