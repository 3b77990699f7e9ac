"""The live loop's health: the ledger's last day, equity, open orders and halt state, the champion model, the last
final bar of each symbol, and whether the loop is stale (more than N cycle days due and not run).

The ledger is read through SQLite read-only (its tables `account_days`, `orders`, `models`), so a status check
never waits on or changes a ledger a cycle is writing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ndjax.assets import is_crypto_symbol
from ndjax.feeds.bars import FeedError
from ndjax.feeds.files import folder_symbols, read_bars
from ndjax.feeds.final import DEFAULT_SETTLE, final_through, session_closes, utc
from ndjax.paper.broker import OPEN_ORDERS
from ndjax.paper.controls import still_halted

STALE_SESSIONS = 1
"""Cycle days that may be due and not yet run before the loop counts as stale."""


def ledger_summary(path: str | Path) -> dict[str, Any] | None:
    """The ledger's last day (`date, equity, cash, halted, fees_estimated`), its open orders, its champion and the
    units it held that day (None if the file does not exist or holds no day yet)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            conn.row_factory = sqlite3.Row
            day = conn.execute("SELECT * FROM account_days ORDER BY date DESC LIMIT 1").fetchone()
            if day is None:
                return None
            orders = [dict(r) for r in conn.execute(
                f"SELECT client_id, symbol, side, quantity, limit_price, status FROM orders WHERE {OPEN_ORDERS} "
                "ORDER BY client_id")]
            held = {r["symbol"]: r["quantity"] for r in conn.execute(
                "SELECT symbol, quantity FROM positions WHERE date = ?", (day["date"],)) if r["quantity"]}
            champion = conn.execute("SELECT * FROM models WHERE decision = 'promoted' ORDER BY id DESC LIMIT 1"
                                    ).fetchone()
            resumes = [r[0] for r in conn.execute("SELECT date FROM events WHERE kind = 'resume'")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise FeedError(f"{path}: cannot read the ledger ({e})") from None
    day = dict(day)
    day["halted"] = still_halted(day["halted"], day["date"], resumes)  # a person's resume lifts the day's halt
    return {"day": day, "open_orders": orders, "champion": dict(champion) if champion else None,
            "held": held}


def cycle_day(symbols: Sequence[str], now: Any, settle: timedelta = DEFAULT_SETTLE) -> np.datetime64:
    """The last day whose bars are final for every asset class among `symbols` at `now`: the day a cycle may run
    through."""
    classes = {is_crypto_symbol(s) for s in symbols} or {False}
    return min(final_through(c, now, settle) for c in classes)


def due_days(after: np.datetime64 | None, through: np.datetime64, any_crypto: bool) -> int:
    """Cycle days in (`after`, `through`]: calendar days with crypto in the book, else XNYS sessions."""
    if after is None:
        return 1
    if any_crypto:
        return max(0, int((through - after).astype(int)))
    sessions = session_closes(through.astype(object)).index.to_numpy().astype("datetime64[D]")
    return int(((sessions > after) & (sessions <= through)).sum())


def last_bars(folder: Path, symbols: Sequence[str]) -> dict[str, str | None]:
    """Each symbol's last bar in the folder (None: no file)."""
    out = {}
    for s in symbols:
        days = read_bars(folder, s)["date"].to_numpy().astype("datetime64[D]")
        out[s] = str(days[-1]) if len(days) else None
    return out


def loop_status(ledger: str | Path, folder: str | Path, symbols: Sequence[str] | None, now: Any, *,
                settle: timedelta = DEFAULT_SETTLE, stale_after: int = STALE_SESSIONS) -> tuple[str, bool]:
    """The status text and whether the loop is stale (no ledger, or more than `stale_after` cycle days due)."""
    folder = Path(folder)
    symbols = list(symbols) if symbols else folder_symbols(folder)
    now = utc(now)
    summary = ledger_summary(ledger)
    through = cycle_day(symbols, now, settle)
    last = None if summary is None else np.datetime64(summary["day"]["date"], "D")
    due = due_days(last, through, any(is_crypto_symbol(s) for s in symbols))
    lines = [f"status at {now.isoformat()}"]
    if summary is None:
        lines.append(f"ledger {ledger}: no day recorded yet")
    else:
        d = summary["day"]
        fees = "estimated from the schedule" if d["fees_estimated"] else "the broker's own"
        lines.append(f"ledger {ledger}: last day {d['date']}, equity {d['equity']:,.2f} (cash {d['cash']:,.2f}), "
                     f"{'HALTED: buys stopped by the kill switch' if d['halted'] else 'not halted'}, fees "
                     f"{fees}")
        orders = summary["open_orders"]
        lines.append(f"open orders: {len(orders)}" + "".join(
            f"\n  {o['client_id']}: {o['side']} {o['quantity']:g} {o['symbol']} at {o['limit_price']:g} "
            f"({o['status']})" for o in orders))
        c = summary["champion"]
        lines.append("champion: none recorded" if c is None else f"champion: model {c['id']}, {c['run']} step "
                     f"{c['checkpoint_step']} (content hash {c['content_hash']}, since {c['date']})")
    bars = last_bars(folder, symbols)
    lines.append("last final bar: " + ", ".join(f"{s} {d or 'none'}" for s, d in bars.items()))
    stale = summary is None or due > stale_after
    lines.append(f"cycles due through {through}: {due} not run (stale after {stale_after}): "
                 f"{'STALE' if stale else 'ok'}")
    return "\n".join(lines), stale
