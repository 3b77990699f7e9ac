"""Simulate a run's best checkpoint with hard fills over a period, beside the two baselines, with a lag check.

    python experiments/evaluate.py --run runs/NAME                      # the run's test split
    python experiments/evaluate.py --run runs/NAME --data-dir NEWER --start 2025-07-01 --end 2026-03-18

Prints the report (`format_report`), a per-symbol table (PnL = realised + unrealised - allocated
interest, trades, fill rates, fees), both baselines and a lag check (the same policy deciding with
one more bar of delay; a large drop flags a lookahead smell). Writes into the run folder (or --out):
equity.png (equity, drawdown, leverage), evaluate_daily.csv, evaluate_symbols.csv,
evaluate_summary.json and evaluate_report.txt.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.baselines import run_baselines
from ndjax.runs.folder import (RunError, lag_check, load_market, load_run, per_symbol, row_at_or_after, row_at_or_before,
                        run_arrays, simulate_run)
from ndjax.report.plots import plot_equity
from ndjax.sim import (COMPARISON_HEADER, drawdown, format_comparison, format_comparison_line, format_report,
                       summary)

SUMMARY_KEYS = ("final_equity", "net_pnl", "sortino", "sharpe", "max_drawdown", "max_leverage",
                "total_leverage_cost", "total_fees", "turnover", "buy_fill_rate", "sell_fill_rate", "margin_calls",
                "forced_notional")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder written by experiments/train.py")
    p.add_argument("--data-dir", help="folder of daily CSVs (default: the run's data, or its synthetic market)")
    p.add_argument("--start", help="first date of the period; the book starts flat at this row's close "
                                   "(default: the run's test split)")
    p.add_argument("--end", help="last date of the period (default: the test split's end, or the data's end "
                                 "with --data-dir/--start)")
    p.add_argument("--initial-cash", type=float, help="starting cash (default: the run's initial_cash)")
    p.add_argument("--out", help="folder for the outputs (default: the run folder)")
    p.add_argument("--no-rows", action="store_true", help="report only the summary blocks")
    p.add_argument("--compare-probe", action="store_true",
                   help="also run probe mode (after a losing trade, buys capped at --probe-notional of equity)")
    p.add_argument("--probe-notional", type=float, default=0.05)
    p.add_argument("--realistic", action="store_true",
                   help="also run with broker realism: gap fills at the open, a volume participation cap, "
                        "debit interest")
    p.add_argument("--participation", type=float, default=0.01, help="participation cap for --realistic")
    p.add_argument("--lag-sortino-gap", type=float, default=1.0, help="flag when lag 2 loses more Sortino")
    p.add_argument("--lag-return-gap", type=float, default=0.5, help="flag when lag 2 loses more than this x |return|")
    return p.parse_args(argv)


def symbol_table(rows: list[dict]) -> str:
    out = [f"{'Symbol':<12}{'Class':<7}{'PnL':>12}{'Realised':>12}{'Unreal.':>12}{'Interest':>11}{'Fees':>11}"
           f"{'Trades':>7}{'BuyFill':>8}{'SellFill':>9}"]
    for r in rows:
        out.append(f"{r['symbol']:<12}{r['asset_class']:<7}{r['pnl']:>12.5f}{r['realised']:>12.5f}"
                   f"{r['unrealised']:>12.5f}{r['interest']:>11.6f}{r['fees']:>11.6f}{r['trades']:>7d}"
                   f"{r['buy_fill_rate'] * 100:>7.1f}%{r['sell_fill_rate'] * 100:>8.1f}%")
    return "\n".join(out)


def evaluate(args: argparse.Namespace) -> dict:
    run = load_run(args.run)
    split = run.meta.get("split", {}).get("test")
    market = load_market(run, args.data_dir)
    arrays = run_arrays(run, market)
    dates = market.dates
    start_day = args.start or (split[0] if split else None)
    if start_day is None:
        raise RunError(f"{run.path / 'config.json'}: no test split stored; pass --start")
    end_day = args.end or (split[1] if split and not (args.data_dir or args.start) else None)
    start = row_at_or_after(dates, start_day)
    stop = (row_at_or_before(dates, end_day) + 1) if end_day else market.n_days
    if start >= market.n_days or stop - start < 3:
        raise RunError(f"period {start_day} .. {end_day or dates[-1]}: fewer than 3 rows in the data "
                       f"({dates[0]} .. {dates[-1]})")
    P = run.periods_per_year
    cash = float(run.config.initial_cash if args.initial_cash is None else args.initial_cash)
    actions, infos = simulate_run(run, arrays, start, stop, initial_cash=cash)
    _, infos2 = simulate_run(run, arrays, start, stop, lag=2, initial_cash=cash)
    bars = jax.tree_util.tree_map(lambda x: x[start:stop], arrays.bars())
    base = run_baselines(run.market_params("hard"), bars, jnp.asarray(cash, bars.close.dtype))
    period = dates[start + 1: stop]
    stats = {"policy": summary(infos, P), "policy_lag2": summary(infos2, P),
             "buy_and_hold": summary(base["buy_and_hold"], P), "cash": summary(base["cash"], P)}
    symbols = per_symbol(infos, actions, np.asarray(arrays.close[start:stop]), run.is_crypto,
                         float(run.hparams.maker_fee), run.symbols, float(run.hparams.liquidation_slippage))
    flagged, reasons = lag_check(stats["policy"], stats["policy_lag2"], sortino_gap=args.lag_sortino_gap,
                                 return_gap=args.lag_return_gap)

    ck = run.checkpoint_meta
    score = ck.get("score")
    sections = [f"Policy (checkpoint {run.checkpoint_path.name}, step {ck.get('step')}, validation score "
                f"{score:.3f})" if isinstance(score, (int, float)) else f"Policy ({run.checkpoint_path.name})",
                f"Period {period[0]} .. {period[-1]} ({len(period)} bars), hard fills, starting flat with {cash:g} "
                f"at the close of {dates[start]}", "",
                format_report(period, infos, P, rows=not args.no_rows), "", "-" * 72, "Per symbol", "",
                symbol_table(symbols)]
    for name, label in (("buy_and_hold", "Equal-weight buy and hold (1x)"), ("cash", "All cash")):
        sections += ["", "-" * 72, label, format_report(period, base[name], P, rows=False)]
    sections += ["", "-" * 72, "Lag check: the same policy deciding with one more bar of delay (lag 2 starts "
                 "trading one bar later)", "", COMPARISON_HEADER, format_comparison_line("lag 1", stats["policy"]),
                 format_comparison_line("lag 2", stats["policy_lag2"]), ""]
    sections += ([f"LOOKAHEAD SMELL: {r}" for r in reasons] if flagged else
                 ["lag check: OK (no large drop with one more bar of delay)"])
    variants = {}
    if args.compare_probe:
        variants["probe"] = ("probe mode (buys capped at %g of equity after losing trades)" % args.probe_notional,
                             dict(probe=True, probe_notional=args.probe_notional))
    if args.realistic:
        variants["realistic"] = (f"realistic (gap fills at the open, participation cap {args.participation:g} of "
                                 "volume, debit interest)",
                                 dict(gap_fill=True, participation_cap=args.participation, interest="debit"))
    for name, (label, overrides) in variants.items():
        _, v_infos = simulate_run(run, arrays, start, stop, initial_cash=cash, **overrides)
        stats[name] = summary(v_infos, P)
        change = (float(stats[name]["net_pnl"]) - float(stats["policy"]["net_pnl"])) * 100
        sections += ["", "-" * 72, f"Policy, {label}", "", COMPARISON_HEADER,
                     format_comparison_line("normal", stats["policy"]),
                     format_comparison_line(name, stats[name]),
                     f"{name} changes the net PnL by {change:+.2f} percentage points"]
    sections += ["", "-" * 72, format_comparison(stats)]
    report = "\n".join(sections)

    out = Path(args.out or run.path)
    out.mkdir(parents=True, exist_ok=True)
    eq = np.asarray(infos.equity, np.float64)
    with open(out / "evaluate_daily.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["date", "equity", "cash", "return", "leverage", "leverage_cost", "fees", "traded_notional",
                    "margin_call", "forced_notional"])
        for i, d in enumerate(period):
            w.writerow([str(d), repr(float(eq[i])), repr(float(infos.cash[i])), repr(float(infos.returns[i])),
                        repr(float(infos.leverage[i])), repr(float(infos.leverage_cost[i])),
                        repr(float(infos.fees[i])), repr(float(infos.traded_notional[i])),
                        int(infos.margin_call[i]), repr(float(infos.forced_notional[i]))])
    with open(out / "evaluate_symbols.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(symbols[0]))
        w.writeheader()
        w.writerows(symbols)
    result = {"period": [str(period[0]), str(period[-1])], "start_row": start, "stop_row": stop,
              "checkpoint": str(run.checkpoint_path),
              "summary": {k: {m: float(v[m]) for m in SUMMARY_KEYS} for k, v in stats.items()},
              "lag_check": {"flagged": flagged, "reasons": reasons}, "symbols": symbols}
    (out / "evaluate_summary.json").write_text(json.dumps(result, indent=2))
    (out / "evaluate_report.txt").write_text(report + "\n")
    plot_equity(out / "equity.png", period, {"policy": eq, "buy and hold": np.asarray(base["buy_and_hold"].equity),
                                       "cash": np.asarray(base["cash"].equity)},
          np.asarray(drawdown(infos.equity, infos.prev_equity[0])), np.asarray(infos.leverage),
          np.asarray(infos.margin_call))
    print(report)
    print(f"\nwrote {out}/equity.png, evaluate_daily.csv, evaluate_symbols.csv, evaluate_summary.json, "
          f"evaluate_report.txt", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> dict:
    try:
        return evaluate(parse_args(argv))
    except (RunError, ValueError) as e:
        raise SystemExit(f"evaluate: {e}") from None


if __name__ == "__main__":
    main()
