"""Fees from the account: a real broker's postings (FILL, CFEE, FEE, INT account activities) kept in the ledger and
put in place of the fees the cycle estimated from the broker's schedule.

After each cycle the broker's postings since the oldest day still waiting for one are read and stored by their
activity id (read twice, stored once). Each fee posting is matched to the ledger day whose fill it charged: a
CFEE or FEE names a symbol and a day, not an order, so it goes to the ledger day of the fills of that symbol
executed on that day (the FILL postings name the order, whose ledger fill gives the day; a fill with no FILL posting
matches on its own ledger date). A day's fees are then its posted fees for each symbol that has them and the
estimate for the others; the day stays `fees_estimated` while any fill the schedule charges (a crypto fill at
Alpaca) has no posting. A fee posting that matches no fill of the ledger is kept (unmatched, an event says so) and
matched again after later cycles; the report lists it. Interest (INT) postings are kept and totalled beside the
transition's estimates in the report (Alpaca posts interest for a period, not per day). FILL postings of orders
this ledger did not place (another ledger on the account) are not kept.

Two ledgers trading one coin on one account on the same day cannot tell their CFEE postings apart (they name no
order): both take the day's postings for that coin. The table is created in a ledger on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from ndjax.paper.broker import Broker, BrokerError, Posting
from ndjax.paper.ledger import Ledger

TABLE = ("postings (id TEXT PRIMARY KEY, kind TEXT NOT NULL, date TEXT NOT NULL, symbol TEXT, amount REAL NOT NULL, "
         "qty REAL NOT NULL, price REAL NOT NULL, order_id TEXT, detail TEXT NOT NULL, day TEXT)")
"""A posting as read, and `day`: the ledger day it was matched to (NULL: none yet)."""
LOOKBACK_DAYS = 7
"""Days before the ledger's last day that are read again after each cycle (late postings, interest)."""
FEE_KINDS = ("CFEE", "FEE")


def _has_table(ledger: Ledger) -> bool:
    return ledger._sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'postings'").fetchone() is not None


def stored(ledger: Ledger, kind: str | None = None) -> list[dict]:
    """The postings the ledger holds (all, or of one `kind`), in the order they were read."""
    if not _has_table(ledger):
        return []
    where = " WHERE kind = ?" if kind else ""
    return ledger._rows(f"SELECT * FROM postings{where} ORDER BY rowid", (kind,) if kind else ())


def read_after(ledger: Ledger, fills: Sequence[dict], charged: Sequence[str]) -> str:
    """The day after which to read: before the oldest day whose `fills` in the `charged` asset classes wait for a
    posting, and at least `LOOKBACK_DAYS` before the ledger's last day (never before its first)."""
    days = ledger.days()
    waiting = [d["date"] for d in days if d["fees_estimated"] and _charged(ledger, fills, d["date"], charged)]
    start = min([*waiting, str(date.fromisoformat(days[-1]["date"]) - timedelta(days=LOOKBACK_DAYS))])
    return str(date.fromisoformat(max(start, days[0]["date"])) - timedelta(days=1))


def _charged(ledger: Ledger, fills: Sequence[dict], day: str, charged: Sequence[str]) -> list[dict]:
    """The order fills of `day` in the asset classes the schedule charges."""
    classes = {s: "crypto" if c else "stock" for s, c in zip(ledger.identity.symbols, ledger.identity.is_crypto)}
    return [f for f in fills if f["date"] == day and f["kind"] == "order" and classes[f["symbol"]] in charged]


def reconcile_postings(ledger: Ledger, broker: Broker, today: str) -> list[str]:
    """After the cycle of `today` (a broker that `posts_fees`; others: nothing): read its postings, store the new
    ones, match what is unmatched and put the posted fees in place of the estimates, in one ledger transaction.
    Returns a line per new fee posting that matched no fill (each also a "posting" event). A failed read is
    recorded as an event instead (the fees stay estimates; the next cycle reads again)."""
    if not broker.posts_fees or ledger.last_date() is None:
        return []
    charged = [c for c in ("stock", "crypto") if broker.fee_rate(c) > 0]
    try:
        postings = broker.postings(read_after(ledger, ledger.fills(), charged))
    except BrokerError as e:
        with ledger.cycle():
            ledger.record_event(today, "posting", f"could not read the broker's postings ({e}); the fees stay "
                                                  "estimates and are read again after the next cycle")
        return []
    with ledger.cycle():
        return _store(ledger, postings, today, charged)


def _store(ledger: Ledger, postings: Sequence[Posting], today: str, charged: Sequence[str]) -> list[str]:
    ledger._sql(f"CREATE TABLE IF NOT EXISTS {TABLE}")
    ours = {r["broker_id"]: r["client_id"] for r in ledger.order_rows() if r["broker_id"]}
    known = {r["id"] for r in stored(ledger)}
    new = set()
    for p in postings:
        if p.id in known or (p.kind == "FILL" and p.order_id not in ours):
            continue
        known.add(p.id)
        new.add(p.id)
        ledger._sql("INSERT INTO postings VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (p.id, p.kind, p.date, p.symbol, p.amount, p.qty, p.price, p.order_id, p.detail, None))
    fills = ledger.fills()
    lines = [f"{r['kind']} {r['id']} of {r['date']} ({r['amount']:.2f} for {r['symbol'] or r['detail']}) matches "
             "no fill of this ledger: kept, not applied" for r in _match(ledger, fills, ours) if r["id"] in new]
    for line in lines:
        ledger.record_event(today, "posting", line)
    _apply(ledger, fills, charged)
    return lines


def _match(ledger: Ledger, fills: Sequence[dict], ours: dict[str, str]) -> list[dict]:
    """Give every unmatched posting its ledger day; returns the fee postings still unmatched."""
    fill_day: dict[str, list[str]] = {}  # client id -> the ledger days of its fills
    for f in fills:
        if f["client_id"]:
            fill_day.setdefault(f["client_id"], []).append(f["date"])
    executed = {}  # (symbol, execution day) -> ledger day
    for r in stored(ledger, "FILL"):
        days = fill_day.get(ours.get(r["order_id"]), [])
        day = min((d for d in days if d >= r["date"]), default=max(days, default=None))
        if day is not None:
            executed.setdefault((r["symbol"], r["date"]), day)
            ledger._sql("UPDATE postings SET day = ? WHERE id = ?", (day, r["id"]))
    own = {(f["symbol"], f["date"]) for f in fills if f["kind"] == "order"}
    recorded = [d["date"] for d in ledger.days()]
    left = []
    for r in stored(ledger):
        if r["day"] is not None or r["kind"] == "FILL":
            continue
        if r["kind"] == "INT":
            day = max((d for d in recorded if d <= r["date"]), default=None)
        else:
            key = (r["symbol"], r["date"])
            day = executed.get(key, r["date"] if key in own else None)
        if day is None:
            left.append(r)
        else:
            ledger._sql("UPDATE postings SET day = ? WHERE id = ?", (day, r["id"]))
    return [r for r in left if r["kind"] in FEE_KINDS]


def _apply(ledger: Ledger, fills: Sequence[dict], charged: Sequence[str]) -> None:
    """Each day's fees: posted per symbol where posted, estimated elsewhere; estimated while a charged fill waits."""
    posted: dict[str, dict[str, float]] = {}
    for r in stored(ledger):
        if r["kind"] in FEE_KINDS and r["day"] is not None:
            per = posted.setdefault(r["day"], {})
            per[r["symbol"]] = per.get(r["symbol"], 0.0) + r["amount"]
    by_day: dict[str, list[dict]] = {}
    for f in fills:
        by_day.setdefault(f["date"], []).append(f)
    for d in ledger.days():
        estimate: dict[str, float] = {}
        for f in by_day.get(d["date"], []):
            estimate[f["symbol"]] = estimate.get(f["symbol"], 0.0) + f["fee"]
        here = posted.get(d["date"], {})
        fees = sum(here.get(s, e) for s, e in estimate.items()) + sum(v for s, v in here.items() if s not in estimate)
        waiting = any(f["symbol"] not in here for f in _charged(ledger, by_day.get(d["date"], []), d["date"], charged))
        ledger._sql("UPDATE account_days SET fees = ?, fees_estimated = ? WHERE date = ?",
                    (fees, int(waiting), d["date"]))


def fee_table(ledger: Ledger) -> list[dict]:
    """Per day with fills or fee postings: the estimated fees (the schedule's, at the fill), the posted ones (None:
    none yet) and whether the day still waits for a posting."""
    posted: dict[str, float] = {}
    for r in stored(ledger):
        if r["kind"] in FEE_KINDS and r["day"] is not None:
            posted[r["day"]] = posted.get(r["day"], 0.0) + r["amount"]
    estimated: dict[str, float] = {}
    for f in ledger.fills():
        estimated[f["date"]] = estimated.get(f["date"], 0.0) + f["fee"]
    flags = {d["date"]: bool(d["fees_estimated"]) for d in ledger.days()}
    return [{"date": day, "estimated": estimated.get(day, 0.0), "posted": posted.get(day),
             "fees": "estimated" if flags.get(day, True) else "posted"}
            for day in sorted(set(estimated) | set(posted))]
