"""Text tables: the daily report with its summary block, the comparison of named paths, per-symbol attribution
and the sweep leaderboard. Pure formatting of numbers computed elsewhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ndjax.dynamics import StepInfo
from ndjax.errors import ConfigError
from ndjax.metrics import DailyPath, PathStats, summary


def _table(columns: Sequence[tuple[str, int]], rows: Sequence[Sequence[str]], left: int = 1,
           notes: Sequence[str] | None = None) -> list[str]:
    """Lines of a text table: `columns` (name, least width), `rows` of formatted cells; each column is as wide as
    its widest cell plus one space (so values never run together), the first `left` left-aligned, the rest
    right-aligned; `notes[i]` (optional) follows row i."""
    widths = [max([least, len(name) + (i >= left)] + [len(r[i]) + 1 for r in rows])
              for i, (name, least) in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line([name for name, _ in columns])]
    out += [line(r) + (notes[i] if notes else "") for i, r in enumerate(rows)]
    return out


def format_summary(stats: PathStats) -> str:
    """The summary block of the report for one path."""
    f = {k: float(v) for k, v in stats.as_dict().items()}
    return "\n".join([
        f"Final Equity      : {f['final_equity']:.4f}",
        f"Net PnL           : {f['total_return'] * 100:+.2f}%",
        f"Sortino           : {f['sortino']:.3f}",
        f"Sharpe            : {f['sharpe']:.3f}",
        f"Max Drawdown      : {f['max_drawdown'] * 100:.2f}%",
        f"Max Leverage      : {f['max_leverage']:.2f}x",
        f"Total Lev. Costs  : {f['total_leverage_cost']:.6f}",
        f"Total Fees        : {f['total_fees']:.6f}",
        f"Turnover          : {f['turnover']:.2f}x",
        f"Buy Fill Rate     : {f['buy_fill_rate'] * 100:.1f}%",
        f"Sell Fill Rate    : {f['sell_fill_rate'] * 100:.1f}%",
        f"Margin Calls      : {f['margin_calls']:.0f}",
        f"Forced Sales      : {f['forced_notional']:.6f}",
    ])


def format_report(dates: Sequence[Any], infos: DailyPath | StepInfo, periods_per_year: float = 252, *,
                  rows: bool = True) -> str:
    """The daily report of one path: a `Date Equity Cash Return Leverage LevCost` row per bar, then the summary.

    `dates (T,)` one per step; `infos` unbatched (per-portfolio fields `(T,)`).
    """
    equity = np.asarray(infos.equity)
    if equity.ndim != 1:
        raise ConfigError(f"format_report: expects one path, got equity of shape {equity.shape}")
    if len(dates) != equity.shape[0]:
        raise ConfigError(f"format_report: {len(dates)} dates for {equity.shape[0]} steps")
    out = []
    if rows:
        cash, ret = np.asarray(infos.cash), np.asarray(infos.returns)
        lev, cost, call = np.asarray(infos.leverage), np.asarray(infos.leverage_cost), np.asarray(infos.margin_call)
        cells = [[str(d)[:10], f"{equity[i]:.4f}", f"{cash[i]:.4f}", f"{ret[i]:.4f}", f"{lev[i]:.2f}x",
                  f"{cost[i]:.6f}"] for i, d in enumerate(dates)]
        out += _table([("Date", 18), ("Equity", 12), ("Cash", 13), ("Return", 11), ("Leverage", 11), ("LevCost", 11)],
                      cells, notes=["  margin call" if c > 0 else "" for c in call])
        out.append("")
    out.append(format_summary(summary(infos, periods_per_year)))
    return "\n".join(out)


COMPARISON_COLUMNS = (("", 16), ("Return", 10), ("Sortino", 10), ("Sharpe", 9), ("MaxDD", 9), ("MaxLev", 8),
                      ("Fees", 11), ("LevCost", 11), ("Turn", 9), ("Calls", 7))


def _comparison_cells(name: str, stats: PathStats) -> list[str]:
    s = {k: float(v) for k, v in stats.as_dict().items()}
    return [name, f"{s['total_return'] * 100:.2f}%", f"{s['sortino']:.2f}", f"{s['sharpe']:.2f}",
            f"{s['max_drawdown'] * 100:.2f}%", f"{s['max_leverage']:.2f}x", f"{s['total_fees']:.5f}",
            f"{s['total_leverage_cost']:.5f}", f"{s['turnover']:.2f}x", f"{s['margin_calls']:.0f}"]


def format_comparison(stats: Mapping[str, PathStats]) -> str:
    """A table with one row per named path (policy, baselines, variants), columns sized to their values."""
    return "\n".join(_table(COMPARISON_COLUMNS, [_comparison_cells(k, v) for k, v in stats.items()]))


def format_symbols(rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-symbol attribution table (`runs.evaluate.per_symbol` rows)."""
    cells = [[r["symbol"], r["asset_class"], f"{r['pnl']:.5f}", f"{r['realised']:.5f}", f"{r['unrealised']:.5f}",
              f"{r['interest']:.6f}", f"{r['fees']:.6f}", f"{r['trades']:d}", f"{r['forced_sales']:d}",
              f"{r['buy_fill_rate'] * 100:.1f}%", f"{r['sell_fill_rate'] * 100:.1f}%"] for r in rows]
    return "\n".join(_table([("Symbol", 12), ("Class", 7), ("PnL", 12), ("Realised", 12), ("Unreal.", 12),
                             ("Interest", 11), ("Fees", 11), ("Trades", 7), ("Forced", 7), ("BuyFill", 8),
                             ("SellFill", 9)], cells, left=2))


def format_leaderboard(rows: Sequence[Mapping[str, Any]], varied: Sequence[str], top: int | None = None) -> str:
    """A sweep leaderboard (`train.sweep.leaderboard` rows) with the `varied` hyperparameter columns."""
    head = f"{'rank':>4} {'run':>4} {'seed':>5} " + "".join(f"{n[:14]:>15}" for n in varied)
    head += f"{'score':>9}{'Sortino':>9}{'Return':>9}{'MaxDD':>8}{'MeanLev':>8}{'step':>6}"
    lines = [head, "-" * len(head)]
    for r in list(rows)[:top]:
        line = f"{r['rank']:>4} {r['run']:>4} {r['seed']:>5} " + "".join(f"{r[n]:>15.4g}" for n in varied)
        line += (f"{r['score']:>9.3f}{r['sortino']:>9.2f}{r['total_return'] * 100:>8.2f}%"
                 f"{r['max_drawdown'] * 100:>7.2f}%{r['mean_leverage']:>7.2f}x{r['best_step']:>6}")
        lines.append(line)
    return "\n".join(lines)


def format_plan(plan: Mapping[str, Any]) -> str:
    """The next-day plan (`runs.plan.plan_orders`) as text: the book, its requirements and buying power, the orders."""
    lines = [f"Plan for {plan['next_day']} from the close of {plan['as_of']}: equity {plan['equity']:,.2f} "
             f"(cash {plan['cash']:,.2f}, stocks {plan['stock_value']:,.2f}, crypto {plan['crypto_value']:,.2f})",
             f"Initial requirement {plan['initial_requirement']:,.2f}, "
             f"maintenance {plan['maintenance_requirement']:,.2f}; "
             f"excess equity {plan['excess']:,.2f}: buying power {plan['buying_power_stock']:,.2f} in stocks or "
             f"{plan['buying_power_crypto']:,.2f} in crypto (one pool)", ""]
    cells = [[o["symbol"], o["asset_class"], o["side"], f"{o['limit_price']:.4f}", f"{o['quantity']:.6f}",
              f"{o['notional']:.2f}", f"{o['limit_vs_mark'] * 100:.2f}%"] for o in plan["orders"]]
    lines += _table([("Symbol", 12), ("Class", 8), ("Side", 6), ("Limit", 14), ("Quantity", 16), ("Notional", 14),
                     ("vs close", 10)], cells, left=3)
    if not plan["orders"]:
        lines.append("(no orders)")
    for s in plan["skipped"]:
        lines.append(f"{s['symbol']:<12}{s['asset_class']:<8}skip  {s['reason']}")
    buys = [o for o in plan["orders"] if o["side"] == "buy"]
    rate = {"stock": 1 / plan["stock_max_leverage"], "crypto": 1 / plan["crypto_max_leverage"]}
    used = sum((rate[o["asset_class"]] + plan["maker_fee"]) * o["notional"] for o in buys)
    lines.append(f"buys use {used:,.2f} of the {plan['excess']:,.2f} excess equity (requirement + fee of each buy)")
    return "\n".join(lines)


def evaluation_sections(*, step: int, score: float, dates: Sequence[Any], start_date: Any, cash: float,
                        symbols: Sequence[Mapping[str, Any]], policy: PathStats, lag2: PathStats, lag_flagged: bool,
                        lag_reasons: Sequence[str], variants: Mapping[str, tuple[str, PathStats]],
                        bindings: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[list[str], list[str]]:
    """The title lines and the sections of an evaluation report (`runs.evaluate.Evaluation`'s figures): the
    per-symbol table, the lag check (policy `PathStats` at lag 1 and 2, and its verdict) and each variant (its label
    and stats beside the policy's, and how often its cap bound, from
    `bindings`). `dates (T,)` the bars simulated, the book flat at the close of `start_date`."""
    title = [f"Policy (checkpoint of step {step}, validation score {score:.3f})",
             f"Period {dates[0]} .. {dates[-1]} ({len(dates)} bars), hard fills, starting flat with {cash:g} "
             f"at the close of {start_date}"]
    sections = ["", "-" * 72, "Per symbol", "", format_symbols(symbols), "", "-" * 72,
                "Lag check: the same policy deciding with one more bar of delay (lag 2 starts trading one bar later)",
                "", format_comparison({"lag 1": policy, "lag 2": lag2}), ""]
    sections += [f"LOOKAHEAD SMELL: {r}" for r in lag_reasons] if lag_flagged else [
        "lag check: OK (no large drop with one more bar of delay)"]
    for name, (label, stats) in variants.items():
        change = (float(stats.total_return) - float(policy.total_return)) * 100
        sections += ["", "-" * 72, f"Policy, {label}", "", format_comparison({"normal": policy, name: stats}),
                     f"{name} changes the net PnL by {change:+.2f} percentage points"]
        bound = (bindings or {}).get(name)
        if bound is not None:
            before, after = bound["traded_notional"]
            sections.append(f"{name} mode bound on {bound['steps']} of {len(dates)} days ({bound['asset_steps']} "
                            f"symbol-days), cutting {bound['outlay_cut']:.4g} of buy outlay; traded notional "
                            f"{before:.4g} -> {after:.4g}")
            sections += [f"note: {bound['note']}"] if bound.get("note") else []
    return title, sections
