"""Next trading day's limit orders from a run's best checkpoint and the latest bar.

    python experiments/plan.py --run runs/NAME --equity 25000                      # all cash
    python experiments/plan.py --run runs/NAME --data-dir D --positions book.csv --out plans/

The policy decides the bar after the last row of the data from that row's features and the book; orders are
sized exactly as the transition sizes them (`ndjax.dynamics.size_orders`, docs/semantics.md step 2: every buy
takes its share of one pool of excess equity X = max(E - IM, 0); a stock buy of value v uses (1/Ls + f) v of
it, a crypto buy (1/Lc + f) v). Symbols whose market is closed on the next day or that have no bar within
--max-stale-days are skipped. Writes plan.csv and plan.json into --out (default: the run folder).

Positions file (--positions): CSV with header `symbol,quantity`, one row per holding, and an optional row
`CASH,<balance>` (negative = margin debt); or JSON `{"cash": 1234.5, "positions": {"SYM": qty}}` (positions
may also be a list of {"symbol", "quantity"}). Without a cash entry, cash = --equity minus the holdings' value
at the last closes. Without --positions the book is all cash --equity.
"""

from __future__ import annotations

import argparse
import sys

from ndjax.cli import add_run_flags, parse_symbols
from ndjax.errors import NdjaxError, one_line
from ndjax.report.tables import format_plan
from ndjax.runs.folder import load_run
from ndjax.runs.plan import plan_next_day


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_flags(p)
    p.add_argument("--equity", type=float, help="account equity (all cash unless --positions)")
    p.add_argument("--positions", help="CSV or JSON of symbol,quantity (+ CASH); see above")
    p.add_argument("--as-of", help="plan from the last row on or before this date (default: the last row)")
    p.add_argument("--max-stale-days", type=float, default=5.0, help="skip symbols without a bar this recent")
    p.add_argument("--whole-shares", action="store_true", help="round stock quantities down to whole shares")
    p.add_argument("--out", help="folder for plan.csv and plan.json (default: the run folder)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        run = load_run(args.run)
        result = plan_next_day(run, args.out or run.path, data_dir=args.data_dir, symbols=parse_symbols(args.symbols),
                               equity=args.equity,
                               positions=args.positions, as_of=args.as_of, max_stale_days=args.max_stale_days,
                               whole_shares=args.whole_shares, repair=args.repair)
    except NdjaxError as e:
        raise SystemExit(one_line("plan", e)) from None
    print(format_plan(result))
    print(f"\nwrote {args.out or run.path}/plan.csv, plan.json", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
