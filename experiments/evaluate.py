"""Evaluate a trained run on held-out days: the report, a per-symbol table, both baselines and a lag check.

    python experiments/evaluate.py --run runs/NAME                          # the run's test split
    python experiments/evaluate.py --run runs/NAME --compare-probe --realistic
    python experiments/evaluate.py --run runs/NAME --data-dir NEWER --start 2026-04-01

The book starts flat at the close of the first row of the period; hard fills. Writes equity.png,
evaluate_daily.csv, evaluate_symbols.csv, evaluate_summary.json and evaluate_report.txt into --out
(default: the run folder). See `ndjax.runs.evaluate.evaluate_run`.
"""

from __future__ import annotations

import argparse
import sys

from ndjax.cli import add_run_flags, parse_symbols
from ndjax.errors import NdjaxError, one_line
from ndjax.probe import PROBE_FRACTION, PROBE_MAX_OUTLAY
from ndjax.probe import parse_max_outlay as _outlay
from ndjax.runs.evaluate import evaluate_run
from ndjax.runs.folder import load_run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_flags(p)
    p.add_argument("--start", help="first date; the book starts flat at this row's close (default: the test split)")
    p.add_argument("--end", help="last date (default: the test split's end, or the data's end with --data-dir/--start)")
    p.add_argument("--initial-cash", type=float, help="starting cash (default: the run's initial_cash)")
    p.add_argument("--out", help="folder for the outputs (default: the run folder)")
    p.add_argument("--no-rows", action="store_true", help="report only the summary blocks")
    p.add_argument("--compare-probe", action="store_true",
                   help="also run probe mode (after a losing trade, a symbol's position held to "
                        "min(--probe-notional of equity, --probe-max-outlay))")
    p.add_argument("--probe-notional", type=float, default=PROBE_FRACTION, help="default %(default)s")
    p.add_argument("--probe-max-outlay", type=_outlay, default=PROBE_MAX_OUTLAY,
                   help="in the account's currency; 'none': no absolute cap (default %(default)s)")
    p.add_argument("--realistic", action="store_true",
                   help="also run with gap fills at the open, a volume participation cap and debit interest")
    p.add_argument("--participation", type=float, default=0.01, help="participation cap for --realistic")
    p.add_argument("--lag-sortino-gap", type=float, default=1.0, help="flag when lag 2 loses more Sortino")
    p.add_argument("--lag-return-gap", type=float, default=0.5, help="flag when lag 2 loses more than this x |return|")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    variants = {}
    if args.compare_probe:
        variants["probe"] = {"probe_notional": args.probe_notional, "probe_max_outlay": args.probe_max_outlay}
    if args.realistic:
        variants["realistic"] = {"participation": args.participation}
    try:
        run = load_run(args.run)
        result = evaluate_run(run, args.out or run.path, data_dir=args.data_dir, symbols=parse_symbols(args.symbols),
                              start=args.start, end=args.end,
                              initial_cash=args.initial_cash, variants=variants, rows=not args.no_rows,
                              sortino_gap=args.lag_sortino_gap, return_gap=args.lag_return_gap,
                              repair=args.repair)
    except NdjaxError as e:
        raise SystemExit(one_line("evaluate", e)) from None
    print(result["text"])
    print(f"\nwrote {args.out or run.path}/equity.png, evaluate_daily.csv, evaluate_symbols.csv, "
          "evaluate_summary.json, evaluate_report.txt", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
