"""Next trading day's limit orders from a run's best checkpoint and the latest bar.

    python experiments/plan.py --run runs/NAME --equity 25000                      # all cash
    python experiments/plan.py --run runs/NAME --data-dir D --positions book.csv --out plans/

The policy decides the bar after the last row of the data from that row's features and the book;
orders are sized exactly as the transition sizes them (`ndjax.dynamics.size_orders`, docs/semantics.md
step 2: every buy takes its share of one pool of excess equity X = max(E - IM, 0); a stock buy of value v
uses (1/Ls + f) v of it, a crypto buy (1/Lc + f) v).
Symbols whose market is closed on the next day (stocks when the next row is no NYSE session) or that
have no bar within --max-stale-days are skipped. Writes plan.csv and plan.json into --out (default:
the run folder).

Positions file (--positions): CSV with header `symbol,quantity`, one row per holding, and an optional
row `CASH,<balance>` (negative = margin debt); or JSON `{"cash": 1234.5, "positions": {"SYM": qty}}`
(positions may also be a list of {"symbol", "quantity"}). Without a cash entry, cash = --equity minus
the holdings' value at the last closes. Without --positions the book is all cash --equity.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from ndjax.runs.folder import RunError, load_market, load_run, plan_orders, read_positions, row_at_or_before, run_arrays

ORDER_COLUMNS = ("symbol", "asset_class", "side", "limit_price", "quantity", "notional", "fee", "mark",
                 "limit_vs_mark", "fraction")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder written by experiments/train.py")
    p.add_argument("--data-dir", help="folder of daily CSVs (default: the run's data, or its synthetic market)")
    p.add_argument("--equity", type=float, help="account equity (all cash unless --positions)")
    p.add_argument("--positions", help="CSV or JSON of symbol,quantity (+ CASH); see above")
    p.add_argument("--as-of", help="plan from the last row on or before this date (default: the last row)")
    p.add_argument("--max-stale-days", type=float, default=5.0, help="skip symbols without a bar this recent")
    p.add_argument("--whole-shares", action="store_true", help="round stock quantities down to whole shares")
    p.add_argument("--out", help="folder for plan.csv and plan.json (default: the run folder)")
    return p.parse_args(argv)


def format_plan(plan: dict) -> str:
    lines = [f"Plan for {plan['next_day']} from the close of {plan['as_of']}: equity {plan['equity']:,.2f} "
             f"(cash {plan['cash']:,.2f}, stocks {plan['stock_value']:,.2f}, crypto {plan['crypto_value']:,.2f})",
             f"Initial requirement {plan['initial_requirement']:,.2f}, maintenance {plan['maintenance_requirement']:,.2f}; "
             f"excess equity {plan['excess']:,.2f}: buying power {plan['buying_power_stock']:,.2f} in stocks or "
             f"{plan['buying_power_crypto']:,.2f} in crypto (one pool)", ""]
    lines.append(f"{'Symbol':<12}{'Class':<8}{'Side':<6}{'Limit':>14}{'Quantity':>16}{'Notional':>14}"
                 f"{'vs close':>10}")
    for o in plan["orders"]:
        lines.append(f"{o['symbol']:<12}{o['asset_class']:<8}{o['side']:<6}{o['limit_price']:>14.4f}"
                     f"{o['quantity']:>16.6f}{o['notional']:>14.2f}{o['limit_vs_mark'] * 100:>9.2f}%")
    if not plan["orders"]:
        lines.append("(no orders)")
    for s in plan["skipped"]:
        lines.append(f"{s['symbol']:<12}{s['asset_class']:<8}skip  {s['reason']}")
    buys = [o for o in plan["orders"] if o["side"] == "buy"]
    rate = {"stock": 1 / plan["stock_max_leverage"], "crypto": 1 / plan["crypto_max_leverage"]}
    used = sum((rate[o["asset_class"]] + plan["maker_fee"]) * o["notional"] for o in buys)
    lines.append(f"buys use {used:,.2f} of the {plan['excess']:,.2f} excess equity (requirement + fee of each buy)")
    return "\n".join(lines)


def plan(args: argparse.Namespace) -> dict:
    run = load_run(args.run)
    market = load_market(run, args.data_dir)
    arrays = run_arrays(run, market)
    row = row_at_or_before(market.dates, args.as_of) if args.as_of else market.n_days - 1
    if row < 0:
        raise RunError(f"--as-of {args.as_of}: before the first row {market.dates[0]}")
    quantities, cash = {}, None
    if args.positions:
        quantities, cash = read_positions(args.positions, run.symbols)
    if cash is None:
        if args.equity is None:
            raise RunError("give --equity (or a CASH entry in --positions)")
        marks = np.asarray(arrays.close[row], np.float64)
        held = sum(q * marks[run.symbols.index(s)] for s, q in quantities.items())
        cash = float(args.equity) - float(held)
    result = plan_orders(run, market, arrays, cash=cash, quantities=quantities, row=row,
                         max_stale_days=args.max_stale_days, share_unit=1.0 if args.whole_shares else 1e-6)
    out = Path(args.out or run.path)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "plan.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=ORDER_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(result["orders"])
    (out / "plan.json").write_text(json.dumps(result, indent=2))
    print(format_plan(result))
    print(f"\nwrote {out}/plan.csv, plan.json", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> dict:
    try:
        return plan(parse_args(argv))
    except (RunError, ValueError) as e:
        raise SystemExit(f"plan: {e}") from None


if __name__ == "__main__":
    main()
