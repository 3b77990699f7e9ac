"""The paper-trading report, from the ledger alone: the daily table, the summary, `equity.png`, the models that
traded and every promotion, rejection, halt and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ndjax.metrics import DailyPath, PathStats
from ndjax.paper.ledger import Ledger, LedgerError
from ndjax.report.writers import write_period_report


def ledger_path(ledger: Ledger) -> tuple[np.ndarray, DailyPath]:
    """The ledger's days after the first as a `DailyPath` `(T,)` / `(T, N)`, and their dates `(T,)`."""
    days = ledger.days()
    if len(days) < 2:
        raise LedgerError(f"{ledger.path}: {len(days)} recorded day(s); a report needs two")
    symbols = ledger.identity.symbols
    index = {s: i for i, s in enumerate(symbols)}
    dates = [d["date"] for d in days]
    row = {d: i - 1 for i, d in enumerate(dates)}  # an order decided on day d is filled on row(d) + 1 - 1
    T, N = len(days) - 1, len(symbols)

    def col(k: str) -> np.ndarray:
        return np.array([d[k] for d in days], np.float64)

    equity, gross = col("equity"), col("gross")
    placed = {side: np.zeros((T, N)) for side in ("buy", "sell")}
    filled = {side: np.zeros((T, N)) for side in ("buy", "sell")}
    for o in ledger.order_rows():
        t = row[o["date"]] + 1
        if 0 <= t < T:
            placed[o["side"]][t, index[o["symbol"]]] = o["quantity"]
            filled[o["side"]][t, index[o["symbol"]]] = o["filled_qty"]
    traded = np.zeros(T)
    for x in ledger.fills():
        traded[row[x["date"]]] += x["quantity"] * x["price"]
    prev = equity[:-1]
    returns = np.where(prev > 0, equity[1:] / np.where(prev > 0, prev, 1) - 1, 0)
    positive = equity[1:] > 0
    path = DailyPath.from_host(
        equity=equity[1:], prev_equity=prev, cash=col("cash")[1:], returns=returns,
        leverage=np.where(positive, gross[1:] / np.where(positive, equity[1:], 1), 0.0),
        leverage_cost=col("leverage_cost")[1:], fees=col("fees")[1:], traded_notional=traded,
        margin_call=col("margin_call")[1:], forced_notional=col("forced_notional")[1:],
        buy_fill=(filled["buy"] > 0).astype(float), sell_fill=(filled["sell"] > 0).astype(float),
        buy_order_qty=placed["buy"], sell_order_qty=placed["sell"], buy_qty=filled["buy"], sell_qty=filled["sell"])
    return np.asarray(dates[1:], dtype="datetime64[D]"), path


def write_paper_report(ledger: Ledger, out: str | Path, periods_per_year: int, *,
                       rows: bool = True) -> tuple[str, PathStats]:
    """`paper_report.txt`, `paper_daily.csv`, `paper_summary.json` and `equity.png` into `out`."""
    dates, info = ledger_path(ledger)
    days = ledger.days()
    title = [f"Paper trading, {ledger.identity.broker} broker, ledger {ledger.path}",
             (f"{days[0]['date']} .. {days[-1]['date']}: {len(days)} days, starting equity "
              f"{ledger.identity.initial_equity:,.2f}")]
    estimated = sum(1 for d in days if d["fees_estimated"])
    if estimated:
        title.append(f"Fees on {estimated} of the days are ESTIMATES from the broker's fee schedule, not read from its "
                     "statements")
    models = ["", "-" * 72, "Models", "",
              f"{'id':>3} {'date':<11}{'decision':<10}{'champion':>10}{'challenger':>11}  run"]

    def fmt(v: float | None) -> str:
        return f"{v:>10.3f}" if v is not None else f"{'':>10}"

    for m in ledger.models():
        models.append(f"{m['id']:>3} {m['date']:<11}{m['decision']:<10}{fmt(m['champion_score'])} "
                      f"{fmt(m['challenger_score'])}  {m['run']} (step {m['checkpoint_step']}, {m['content_hash']})")
    events = ["", "Events", ""] + ([f"{e['date']}  {e['kind']:<8} {e['detail']}" for e in ledger.events()]
                                   or ["(none)"])
    extra = {"days": days, "models": ledger.models(), "events": ledger.events()}
    text, stats = write_period_report(out, "paper", title, dates, {"paper": info}, periods_per_year, rows=rows,
                                      extra_sections=models + events, summary_extra=extra)
    return text, stats["paper"]
