"""One day of the live loop: bring the folder up to date with final bars, then run the paper cycle through the
last day final for every asset class, unless the ledger already holds it (a holiday, a weekend without crypto,
a second run the same day: nothing to do, and it says so). A fetch error stops the day before the cycle."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ndjax.feeds.bars import BarFeed, FeedError
from ndjax.feeds.files import append_log, read_log
from ndjax.feeds.final import DEFAULT_SETTLE, utc
from ndjax.feeds.status import cycle_day, ledger_summary
from ndjax.feeds.update import SymbolUpdate, update_folder

SPLIT_LOG_RATIO = float(np.log(1.2))
"""A rewritten history whose closes moved by more than this (log ratio) is a split, not a dividend: warned of."""


def _hold_for_splits(folder: Path, summary: dict | None, accept: Sequence[str], now, log) -> None:
    """Stop before the cycle while a symbol the ledger holds has a split-like rewrite in the fetch log that no one
    has accepted: the ledger's units are not split-adjusted, so the cycle would mark them at the new price."""
    pending: dict[str, dict] = {}
    for record in read_log(folder):
        if record.get("kind") == "history_rewritten" and abs(np.log(record["close_ratio"])) > SPLIT_LOG_RATIO:
            pending[record["symbol"]] = record
        elif record.get("kind") == "rewrite_accepted":
            pending.pop(record["symbol"], None)
    accepted = [s for s in accept if s in pending]
    append_log(folder, [{"kind": "rewrite_accepted", "symbol": s, "at": now.isoformat()} for s in accepted])
    for s in accepted:
        log(f"{s}: the rewritten history accepted; the ledger's units stay as they are")
        pending.pop(s)
    held = {s: q for s, q in (summary or {}).get("held", {}).items() if s in pending}
    if held:
        raise FeedError("no cycle: " + "; ".join(
            f"{s}'s history was rewritten with old/new close {pending[s]['close_ratio']:.4g} from "
            f"{pending[s]['first_changed']} (a split?) while the ledger holds {q:g} units, which it does not "
            f"split-adjust (the book would show a false loss or gain on them)" for s, q in held.items())
            + "; once you have seen to it, run again with --accept-rewrite " + ",".join(held))


@dataclasses.dataclass
class DayOutcome:
    """The fetch results, the day the cycle ran through (None: nothing to do) and why, and the cycle's result."""

    fetched: list[SymbolUpdate]
    through: str | None
    reason: str
    paper: Any = None


def live_day(folder: str | Path, symbols: Sequence[str] | None, feed: BarFeed, ledger: str | Path,
             run_paper: Callable[[str], Any], now: Any = None, *, settle: timedelta = DEFAULT_SETTLE,
             through: Any = None, log: Callable[[str], None] = print, accept: Sequence[str] = (),
             **fetch: Any) -> DayOutcome:
    """Fetch, then `run_paper(day)` (the paper cycle through `day`, an ISO date) when the folder holds a final bar
    after the ledger's last day. Raises `FeedError` listing the symbols whose fetch failed (the cycle is not run:
    the others' new bars wait in the folder for the next run), or naming a held symbol whose history was
    rewritten as by a split and not yet accepted (`accept` holds the symbols a person has accepted)."""
    folder = Path(folder)
    now = utc(now if now is not None else datetime.now(UTC))
    fetched = update_folder(folder, symbols, feed, now, log=log, settle=settle, through=through, **fetch)
    failed = [r.describe() for r in fetched if r.error]
    if failed:
        raise FeedError("no cycle: the fetch failed for " + "; ".join(failed))
    summary = ledger_summary(ledger)
    _hold_for_splits(folder, summary, accept, now, log)
    names = [r.symbol for r in fetched]
    day = cycle_day(names, now, settle)
    if through is not None:
        day = min(day, np.datetime64(str(through), "D"))
    bars = [np.datetime64(r.last, "D") for r in fetched if r.last]  # each file's last bar, as the update left it
    newest = min(max(bars), day) if bars else None
    last = None if summary is None else np.datetime64(summary["day"]["date"], "D")
    if newest is None or (last is not None and newest <= last):
        reason = (f"nothing to do at {now.isoformat()}: no new final bar after the ledger's last day {last} "
                  f"(bars final through {day})")
        log(reason)
        return DayOutcome(fetched, None, reason)
    log(f"cycle through {newest} (the ledger's last day: {last or 'none yet'})")
    return DayOutcome(fetched, str(newest), "cycled", run_paper(str(newest)))
