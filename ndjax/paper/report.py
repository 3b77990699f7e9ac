"""The paper-trading report, from the ledger alone: the daily table, the summary, `equity.png`, the fees as
estimated beside as posted, how often probe mode bound, the models that traded and every promotion, rejection,
halt and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ndjax.metrics import DailyPath, PathStats
from ndjax.paper.controls import probe_cuts
from ndjax.paper.ledger import Ledger, LedgerError
from ndjax.paper.postings import FEE_KINDS, fee_table, stored
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


def fee_lines(ledger: Ledger) -> list[str]:
    """The fees section: per day with fills, the schedule's estimate beside the broker's postings, the postings
    that matched no fill, and interest as estimated beside as posted; a simulated ledger's fees are exact."""
    head = ["", "-" * 72, "Fees: the broker's schedule (estimated at the fill) beside its postings", ""]
    if ledger.identity.broker == "sim":
        return head + ["Exact: the simulated broker charges the transition's maker fee on every fill (and interest by "
                       "its rule); it posts no account activities, so there is nothing to reconcile."]
    table = fee_table(ledger)
    lines = [f"{'date':<11}{'estimated':>12}{'posted':>12}  fees"]
    for r in table:
        posted = f"{r['posted']:>12.2f}" if r["posted"] is not None else f"{'-':>12}"
        lines.append(f"{r['date']:<11}{r['estimated']:>12.2f}{posted}  {r['fees']}")
    total = sum(r["posted"] if r["posted"] is not None else r["estimated"] for r in table)
    lines.append(f"{'total':<11}{sum(r['estimated'] for r in table):>12.2f}{total:>12.2f}  (posted where posted, "
                 "else estimated)")
    unmatched = [r for r in stored(ledger) if r["kind"] in FEE_KINDS and r["day"] is None]
    lines += [f"UNMATCHED {r['kind']} {r['id']} of {r['date']}: {r['amount']:.2f} for {r['symbol'] or r['detail']} "
              "(kept in the ledger, applied to no day)" for r in unmatched]
    interest = stored(ledger, "INT")
    estimated, posted = sum(d["leverage_cost"] for d in ledger.days()), sum(r["amount"] for r in interest)
    lines.append(f"interest: estimated {estimated:.2f} by the transition's rule; posted {posted:.2f} in "
                 f"{len(interest)} INT posting(s) (the broker posts interest for a period)")
    return head + lines


def probe_lines(ledger: Ledger, limits: tuple[float | None, float | None] | None) -> list[str]:
    """The probe section: the caps (`limits`: fraction of equity, absolute; None: probe mode off) and how often
    they bound (the ledger's "probe" events)."""
    head = ["", "Probe mode: " + ("off" if limits is None else "a probing symbol's position held to min("
                                  + ", ".join(x for x in (None if limits[0] is None else f"{limits[0]:g} of equity",
                                                          None if limits[1] is None else f"{limits[1]:,.2f}") if x)
                                  + ")")]
    events = ledger.events("probe")
    if limits is None and not events:
        return head
    cuts = probe_cuts([e["detail"] for e in events])
    return head + [f"bound on {len(events)} of {len(ledger.days())} days ({len(cuts)} buys), cutting "
                   f"{sum(c for _, c in cuts):,.2f} of buy outlay before the ramp"]


def write_paper_report(ledger: Ledger, out: str | Path, periods_per_year: int, *, rows: bool = True,
                       probe: tuple[float | None, float | None] | None = None) -> tuple[str, PathStats]:
    """`paper_report.txt`, `paper_daily.csv`, `paper_summary.json` and `equity.png` into `out`; `probe`: probe
    mode's caps (fraction of equity, absolute) if it is on."""
    dates, info = ledger_path(ledger)
    days = ledger.days()
    title = [f"Paper trading, {ledger.identity.broker} broker, ledger {ledger.path}",
             (f"{days[0]['date']} .. {days[-1]['date']}: {len(days)} days, starting equity "
              f"{ledger.identity.initial_equity:,.2f}")]
    estimated = sum(1 for d in days if d["fees_estimated"])
    if estimated:
        title.append(f"Fees on {estimated} of the days are ESTIMATES from the broker's fee schedule, its postings not "
                     "(yet) read")
    models = ["", "-" * 72, "Models", "",
              f"{'id':>3} {'date':<11}{'decision':<10}{'champion':>10}{'challenger':>11}  run"]

    def fmt(v: float | None) -> str:
        return f"{v:>10.3f}" if v is not None else f"{'':>10}"

    for m in ledger.models():
        models.append(f"{m['id']:>3} {m['date']:<11}{m['decision']:<10}{fmt(m['champion_score'])} "
                      f"{fmt(m['challenger_score'])}  {m['run']} (step {m['checkpoint_step']}, {m['content_hash']})")
    events = ["", "Events", ""] + ([f"{e['date']}  {e['kind']:<8} {e['detail']}" for e in ledger.events()]
                                   or ["(none)"])
    extra = {"days": days, "models": ledger.models(), "events": ledger.events(), "fees": fee_table(ledger),
             "postings": stored(ledger)}
    text, stats = write_period_report(out, "paper", title, dates, {"paper": info}, periods_per_year, rows=rows,
                                      extra_sections=fee_lines(ledger) + probe_lines(ledger, probe) + models + events,
                                      summary_extra=extra)
    return text, stats["paper"]
