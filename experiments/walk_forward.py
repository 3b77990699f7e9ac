"""Walk-forward on real data: rolling folds, each trained on what came before its test period.

    python experiments/walk_forward.py --data-dir ../shared/data/daily
    python experiments/walk_forward.py --data-dir D --tests 2022-01-01,2023-01-01,2024-01-01,2025-01-01 --val-days 180

Default folds test 2022, 2023, 2024 and 2025 to the data's end, trained from --start. Each fold is the main job
(its configuration, `JobSpec` defaults, with --steps etc. overridable) on the market cut at the fold's end.
Prints a per-fold table against buy and hold (1x) and cash, an aggregate, the drawdown check (no fold may
draw down more than max(1.5 x buy and hold's drawdown, 25 %)), and writes walk_forward.csv and
walk_forward.png (every fold's equity) into --out.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from ndjax.cli import add_fields, from_fields, parse_symbols
from ndjax.data.source import MarketSource
from ndjax.policy import PolicyConfig
from ndjax.runs.folds import drawdown_target, fold_universe, make_folds, run_fold
from ndjax.runs.job import JobSpec
from ndjax.train.config import HParams, TrainConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder of daily CSVs")
    p.add_argument("--symbols", help="comma list, or 'all' (default: every file)")
    p.add_argument("--start", default="2020-01-01", help="first date of every fold's training data")
    p.add_argument("--tests", default="2022-01-01,2023-01-01,2024-01-01,2025-01-01",
                   help="first day of each fold's test; each test ends the day before the next "
                        "(the last: the data's end)")
    p.add_argument("--val-days", type=int, default=180, help="calendar days of validation before each test")
    add_fields(p.add_argument_group("policy"), PolicyConfig, skip={"n_features"})
    add_fields(p.add_argument_group("training"), TrainConfig, skip={"policy", "periods_per_year"})
    add_fields(p.add_argument_group("hyperparameters"), HParams)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/walk_forward")
    p.add_argument("--overwrite", action="store_true", help="retrain folds whose folders hold an earlier run")
    return p.parse_args(argv)


def plot(path: Path, curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.5), squeeze=False)
    for ax, (name, dates, policy, hold) in zip(axes[0], curves):
        x = dates.astype("datetime64[D]").astype(object)
        ax.plot(x, policy, label="policy")
        ax.plot(x, hold, label="buy and hold (1x)", alpha=0.8)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelrotation=45)
    axes[0][0].set_ylabel("equity (start = 1)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    out = Path(args.out)
    chosen = parse_symbols(args.symbols)
    symbols = None if chosen in (None, "all") else tuple(chosen)
    spec = JobSpec(source=MarketSource(data_dir=args.data_dir, symbols=symbols, start=args.start),
                   train=from_fields(TrainConfig, args, policy=from_fields(PolicyConfig, args)),
                   hparams=from_fields(HParams, args), seed=args.seed)
    t0 = time.perf_counter()
    try:
        market = spec.source.load()
        folds = make_folds(market.dates, args.tests.split(","), args.val_days)
    except ValueError as e:
        raise SystemExit(f"walk_forward: {e}") from None
    rows, curves = [], []
    for fold in folds:
        universe = fold_universe(spec, fold)
        later = sorted(set(market.symbols) - set(universe))
        print(f"fold {fold.name}: train .. {fold.train_end}, validation .. {fold.val_end}, test {fold.test_start} .. "
              f"{fold.test_end}; {len(universe)} symbols" + (f" (not yet listed: {', '.join(later)})" if later else ""),
              file=sys.stderr, flush=True)
        result = run_fold(spec, fold, out / fold.name.replace(" ", ""), rows=False, progress=False,
                          overwrite=args.overwrite)
        row = {"fold": fold.name, "test_start": fold.test_start, "test_end": fold.test_end,
               "train_seconds": round(result.train_seconds, 1)}
        for name in ("policy", "buy_and_hold", "cash"):
            st = result.stats[name]
            row.update({f"{name}_{k}": float(getattr(st, k)) for k in ("total_return", "sortino", "max_drawdown",
                                                                          "mean_leverage", "max_leverage",
                                                                          "margin_calls")})
        row["dd_limit"], row["dd_ok"] = drawdown_target(row["policy_max_drawdown"], row["buy_and_hold_max_drawdown"])
        rows.append(row)
        curves.append((fold.name, np.asarray(result.dates), np.asarray(result.paths["policy"].equity),
                       np.asarray(result.paths["buy_and_hold"].equity)))
    print(f"\n{'fold':<26}{'policy ret':>11}{'Sortino':>8}{'MaxDD':>7}{'lev m/x':>11}{'calls':>6} | "
          f"{'B&H ret':>8}{'Sortino':>8}{'MaxDD':>7} | {'DD limit':>8}  check")
    for r in rows:
        print(f"{r['fold']:<26}{r['policy_total_return'] * 100:>10.1f}%{r['policy_sortino']:>8.2f}"
              f"{r['policy_max_drawdown'] * 100:>6.1f}%{r['policy_mean_leverage']:>6.2f}"
              f"/{r['policy_max_leverage']:<4.2f}"
              f"{r['policy_margin_calls']:>6.0f} | {r['buy_and_hold_total_return'] * 100:>7.1f}%"
              f"{r['buy_and_hold_sortino']:>8.2f}{r['buy_and_hold_max_drawdown'] * 100:>6.1f}% | "
              f"{r['dd_limit'] * 100:>7.1f}%  {'OK' if r['dd_ok'] else 'EXCEEDED'}")
    compound = lambda key: float(np.prod([1 + r[key] for r in rows]) - 1)  # noqa: E731
    print(f"{'all folds (compounded)':<26}{compound('policy_total_return') * 100:>10.1f}%"
          f"{np.mean([r['policy_sortino'] for r in rows]):>8.2f}{'':>24} | "
          f"{compound('buy_and_hold_total_return') * 100:>7.1f}%"
          f"{np.mean([r['buy_and_hold_sortino'] for r in rows]):>8.2f}"
          f"{'':>7} |           {sum(r['dd_ok'] for r in rows)}/{len(rows)} folds within the drawdown limit")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "walk_forward.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(out / "walk_forward.png", curves)
    print(f"\n{len(rows)} folds in {time.perf_counter() - t0:.0f} s; wrote {out}/walk_forward.csv, walk_forward.png")
    return rows


if __name__ == "__main__":
    main()
