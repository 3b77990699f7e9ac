"""Planted-edge recovery: does the main job's training find the signal a synthetic market holds, and only that?

For every case (planted signal x market seed x book), the main job trains on the synthetic market (its own
configuration, `runs.job.JobSpec` defaults) and is scored on the held-out test rows with hard fills beside the
oracle (it knows the process: `ndjax/oracle.py`), buy and hold at 1x, and cash. The captured share is policy
Sortino / oracle Sortino; the return ratio is policy return / oracle return.

    python benchmarks/bench_learning.py                                   # 5 signals x 5 seeds x 2 books
    python benchmarks/bench_learning.py --signals=-0.3,0.3 --seeds 0,1 --books mixed --jobs 2
    python benchmarks/bench_learning.py --risk-aversion 5 --feature-noise 0         # another design point
    python benchmarks/bench_learning.py --drift-free --synthetic-days 1600

Every flag of the market, policy, training and hyperparameter groups is a field of `MarketSource`,
`PolicyConfig`, `TrainConfig` or `HParams` (`ndjax.cli`, the flags of `experiments/train.py`); the market's seed,
signal and book are each case's.

Prints a table per case and a summary per (book, signal) with the issue's targets, and writes learning.csv,
learning_summary.csv and learning.png into --out. Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BOOKS = {"stocks": (6, 0), "mixed": (4, 2)}
PATHS = ("policy", "oracle", "buy_and_hold", "cash")
FIELDS = ("total_return", "sortino", "max_drawdown", "mean_leverage", "max_leverage", "buy_fill_rate",
          "sell_fill_rate", "margin_calls")


CASE_FIELDS = {"synthetic_seed", "signal", "n_stocks", "n_crypto"}
"""`MarketSource` fields each case sets (its seed, planted signal and book), so they are not flags."""
DATA_FIELDS = {"data_dir", "symbols", "start", "end", "repair", "max_move"}
"""`MarketSource` fields of a CSV folder: the benchmark's markets are synthetic."""


def run_case(case: tuple[str, float, int, str, object]) -> dict:
    """Train and score one case (`base`: the `JobSpec` of the flags); returns one CSV row."""
    import dataclasses

    from ndjax.runs.evaluate import captured_share
    from ndjax.runs.job import train_job

    book, signal, seed, out, base = case
    n_stocks, n_crypto = BOOKS[book]
    spec = dataclasses.replace(base, source=dataclasses.replace(
        base.source, synthetic_seed=seed, signal=signal, n_stocks=n_stocks, n_crypto=n_crypto))
    t0 = time.perf_counter()
    result = train_job(spec, Path(out) / f"{book}_s{signal:+.1f}_seed{seed}", rows=False, progress=False,
                       overwrite=True)
    row = {"book": book, "signal": signal, "seed": seed, "seconds": round(time.perf_counter() - t0, 1)}
    for path in PATHS:
        stats = result.stats[path].as_dict()
        row.update({f"{path}_{k}": stats[k] for k in FIELDS})
    row["captured_share"] = captured_share(result.stats)
    oracle = row["oracle_total_return"]
    row["return_ratio"] = row["policy_total_return"] / oracle if oracle > 0 else None
    return row


def summarise(rows: list[dict]) -> list[dict]:
    """Per (book, signal): mean and min captured share, return ratios, leverage, and the issue's target checks."""
    out = []
    for book in BOOKS:
        for signal in sorted({r["signal"] for r in rows}):
            group = [r for r in rows if r["book"] == book and r["signal"] == signal]
            if not group:
                continue
            share = [r["captured_share"] for r in group if r["captured_share"] is not None]
            ratio = [r["return_ratio"] for r in group if r["return_ratio"] is not None]
            s = {"book": book, "signal": signal, "cases": len(group), "scored": len(share),
                 "share_mean": float(np.mean(share)) if share else None,
                 "share_min": float(np.min(share)) if share else None,
                 "return_ratio_min": float(np.min(ratio)) if ratio else None,
                 "policy_max_leverage": float(max(r["policy_max_leverage"] for r in group)),
                 "policy_sortino_mean": float(np.mean([r["policy_sortino"] for r in group])),
                 "hold_sortino_mean": float(np.mean([r["buy_and_hold_sortino"] for r in group]))}
            if abs(signal) >= 0.3:
                s["target"] = "share >= 0.6 each, mean >= 0.7, return >= 0.3 x oracle"
                s["met"] = bool(share and min(share) >= 0.6 and np.mean(share) >= 0.7 and ratio and min(ratio) >= 0.3)
            elif abs(signal) >= 0.1:
                s["target"] = "mean share >= 0.4"
                s["met"] = bool(share and np.mean(share) >= 0.4)
            else:
                s["target"] = "max leverage <= 1.0x; Sortino not above buy and hold beyond noise"
                gap = s["policy_sortino_mean"] - s["hold_sortino_mean"]
                s["met"] = s["policy_max_leverage"] <= 1.0 + 1e-6 and gap <= 1.0
            if 0 < abs(signal) and len(share) * 2 <= len(group):
                s["target"] += " (unmeasured: the oracle's Sortino is <= 0 in most cases)"
                s["met"] = None
            out.append(s)
    return out


VERDICT = {True: "MET", False: "missed", None: "-"}


def fmt(x, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def print_tables(rows: list[dict], summary: list[dict]) -> None:
    head = (f"{'book':<7}{'signal':>7}{'seed':>5} | {'policy ret':>10}{'Sortino':>8}{'MaxDD':>7}{'lev m/x':>10}"
            f"{'fills b/s':>11}{'calls':>6} | {'oracle ret':>10}{'Sortino':>8} | {'B&H ret':>8}{'Sortino':>8}"
            f" | {'share':>6}{'ret/or':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['book']:<7}{r['signal']:>7.1f}{r['seed']:>5} | {r['policy_total_return'] * 100:>9.1f}%"
              f"{r['policy_sortino']:>8.2f}{r['policy_max_drawdown'] * 100:>6.1f}%"
              f"{r['policy_mean_leverage']:>5.2f}/{r['policy_max_leverage']:<4.2f}"
              f"{r['policy_buy_fill_rate'] * 100:>5.0f}/{r['policy_sell_fill_rate'] * 100:<5.0f}"
              f"{r['policy_margin_calls']:>6.0f} | {r['oracle_total_return'] * 100:>9.1f}%{r['oracle_sortino']:>8.2f}"
              f" | {r['buy_and_hold_total_return'] * 100:>7.1f}%{r['buy_and_hold_sortino']:>8.2f}"
              f" | {fmt(r['captured_share']):>6}{fmt(r['return_ratio']):>7}")
    print("\nSummary per book and signal (targets of the learning issue):")
    print(f"{'book':<7}{'signal':>7}{'cases':>6}{'scored':>7}{'share mean':>11}{'min':>7}{'ret/or min':>11}"
          f"{'max lev':>9}{'Sortino pol':>12}{'B&H':>7}  target")
    for s in summary:
        print(f"{s['book']:<7}{s['signal']:>7.1f}{s['cases']:>6}{s['scored']:>7}{fmt(s['share_mean']):>11}{fmt(s['share_min']):>7}"
              f"{fmt(s['return_ratio_min']):>11}{s['policy_max_leverage']:>8.2f}x{s['policy_sortino_mean']:>12.2f}"
              f"{s['hold_sortino_mean']:>7.2f}  {VERDICT[s['met']]}: {s['target']}")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, book in zip(axes, BOOKS):
        group = [r for r in rows if r["book"] == book and r["captured_share"] is not None and r["signal"] != 0]
        x = np.array([r["signal"] for r in group])
        y = np.array([r["captured_share"] for r in group])
        ax.scatter(x + np.random.default_rng(0).uniform(-0.01, 0.01, x.size), y, alpha=0.7)
        for sig in sorted(set(x)):
            ax.plot([sig - 0.03, sig + 0.03], [y[x == sig].mean()] * 2, color="k")
        ax.axhline(0.7, color="tab:green", ls="--", lw=1, label="mean target at |signal| 0.3")
        ax.axhline(0.4, color="tab:orange", ls=":", lw=1, label="mean target at |signal| 0.1")
        ax.set_title(f"{book} book (signal 0 has no share: the oracle holds cash)")
        ax.set_xlabel("planted signal")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("captured share (policy / oracle Sortino)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--signals", default="-0.3,-0.1,0,0.1,0.3")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--books", default="stocks,mixed")
    p.add_argument("--jobs", type=int, default=1, help="cases trained at once (one CPU thread each)")
    p.add_argument("--out", default="benchmarks/out/learning")
    from ndjax.cli import add_fields, from_fields
    from ndjax.data.source import MarketSource
    from ndjax.policy import PolicyConfig
    from ndjax.runs.job import JobSpec
    from ndjax.train.config import HParams, TrainConfig

    add_fields(p.add_argument_group("market"), MarketSource, skip=CASE_FIELDS | DATA_FIELDS)
    add_fields(p.add_argument_group("policy"), PolicyConfig)
    add_fields(p.add_argument_group("training"), TrainConfig, skip={"policy", "periods_per_year"})
    add_fields(p.add_argument_group("hyperparameters (traced)"), HParams)
    args = p.parse_args(argv)
    base = JobSpec(source=from_fields(MarketSource, args),
                   train=from_fields(TrainConfig, args, policy=from_fields(PolicyConfig, args)),
                   hparams=from_fields(HParams, args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cases = [(book, float(s), int(seed), str(out), base) for book in args.books.split(",")
             for s in args.signals.split(",") for seed in args.seeds.split(",")]
    print(f"{len(cases)} cases; python {platform.python_version()}, {os.cpu_count()} CPUs, {args.jobs} job(s)",
          file=sys.stderr)
    t0 = time.perf_counter()
    if args.jobs > 1:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
        import multiprocessing as mp

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            rows = list(pool.map(run_case, cases))
    else:
        rows = []
        for case in cases:
            rows.append(run_case(case))
            print(f"  {case[0]} signal {case[1]:+.1f} seed {case[2]}: share {fmt(rows[-1]['captured_share'])} "
                  f"({rows[-1]['seconds']:.0f} s)", file=sys.stderr, flush=True)
    summary = summarise(rows)
    print_tables(rows, summary)
    for name, table in (("learning.csv", rows), ("learning_summary.csv", summary)):
        with open(out / name, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    plot(rows, out / "learning.png")
    print(f"\n{len(cases)} cases in {time.perf_counter() - t0:.0f} s; wrote {out}/learning.csv, "
          "learning_summary.csv, learning.png")
    return rows


if __name__ == "__main__":
    main()
