"""Bringing a folder of per-symbol daily CSVs up to date from a feed, final bars only.

For each symbol: re-fetch from the K-th last bar of its file (a new file from `start`) through the last final
day (and `through`), keep the final bars, refuse the lot if one is bad (nothing is written for that symbol),
compare the re-fetched bars with the file and record each changed value as a correction. When the oldest
re-fetched bar changed, the history before it may have changed too (a split or dividend adjustment): the whole
history is fetched again and, if it differs, the file is rewritten from it and the rewrite recorded. Files are
replaced atomically and only when something changed. Corrections and rewrites go to the folder's fetch log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ndjax.assets import is_crypto_symbol
from ndjax.feeds.bars import PRICES, BarFeed, FeedError, check_bars
from ndjax.feeds.files import append_log, folder_lock, folder_symbols, read_bars, remove_leftovers, write_bars
from ndjax.feeds.final import DEFAULT_SETTLE, final_mask, final_through, utc

REFETCH = 5
"""Bars re-fetched at the end of each file to catch corrections (Alpaca recomputes daily bars the next morning)."""
DEFAULT_START = date(2016, 1, 1)
"""First day fetched for a symbol without a file."""
RTOL = 1e-9
"""Relative difference above which a re-fetched value counts as a correction."""
FIELDS = (*PRICES, "volume")


@dataclasses.dataclass
class SymbolUpdate:
    """What updating one symbol did: bars added, values corrected, whether the history was rewritten, the file's
    last (final) bar after the update, and the error that stopped it (nothing written then)."""

    symbol: str
    added: list[str] = dataclasses.field(default_factory=list)
    corrections: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    rewritten: dict[str, Any] | None = None
    last: str | None = None
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            named = self.error.startswith(self.symbol)
            return f"FAILED: {self.error}" if named else f"{self.symbol}: FAILED: {self.error}"
        parts = [f"+{len(self.added)} bar(s)" + (f" ({self.added[0]}..{self.added[-1]})" if self.added else "")]
        if self.corrections:
            parts.append(f"{len(self.corrections)} correction(s)")
        if self.rewritten:
            parts.append(f"history rewritten ({self.rewritten['changed_bars']} bar(s) from "
                         f"{self.rewritten['first_changed']}, close ratio {self.rewritten['close_ratio']:.6g})")
        return f"{self.symbol}: {', '.join(parts)}; last final bar {self.last}"


def _differences(symbol: str, old: pd.DataFrame, new: pd.DataFrame) -> list[dict[str, Any]]:
    """A record for each value of a bar in both frames that differs beyond `RTOL`."""
    both = old.merge(new, on="date", suffixes=("_old", "_new"))
    out = []
    for _, r in both.iterrows():
        for c in FIELDS:
            a, b = float(r[f"{c}_old"]), float(r[f"{c}_new"])
            if not np.isclose(a, b, rtol=RTOL, atol=0.0):
                out.append({"kind": "correction", "symbol": symbol, "date": str(np.datetime64(r["date"], "D")),
                            "field": c, "old": a, "new": b})
    return out


def _final(feed: BarFeed, symbol: str, crypto: bool, first: date, last: np.datetime64, now, settle) -> pd.DataFrame:
    got = feed.bars(symbol, crypto, first, pd.Timestamp(last).date())
    check_bars(symbol, got, stock=not crypto)
    keep = final_mask(got, crypto, now, settle) & (got["date"].to_numpy().astype("datetime64[D]") <= last)
    return got[keep].reset_index(drop=True)


def update_symbol(folder: Path, symbol: str, feed: BarFeed, now: Any, *, through: Any = None,
                  settle: timedelta = DEFAULT_SETTLE, refetch: int = REFETCH, start: date = DEFAULT_START,
                  is_crypto: bool | None = None) -> SymbolUpdate:
    """Update `folder/symbol.csv` from `feed` with the bars final at `now` (dated `through` or earlier); raises
    `FeedError` naming the symbol (and a bad bar's date) with the file untouched."""
    crypto = is_crypto_symbol(symbol) if is_crypto is None else is_crypto
    result = SymbolUpdate(symbol)
    old = read_bars(folder, symbol)
    if len(old):
        check_bars(symbol, old, stock=not crypto)
    last = final_through(crypto, now, settle)
    if through is not None:
        last = min(last, np.datetime64(pd.Timestamp(through).date(), "D"))
    old_days = old["date"].to_numpy().astype("datetime64[D]")
    first = pd.Timestamp(old_days[-min(refetch, len(old))]).date() if len(old) else start
    if len(old) and old_days[-1] > last:
        last = old_days[-1]  # never shorten a file: `through` before its end re-checks up to its end
    got = _final(feed, symbol, crypto, first, last, now, settle)
    if not len(old) and not len(got):
        raise FeedError(f"{symbol}: the feed has no final bar from {first} through {last}; nothing written")
    window = old[old_days >= np.datetime64(first, "D")]
    corrections = _differences(symbol, window, got)
    new = pd.concat([old[old_days < np.datetime64(first, "D")], got,
                     window[~window["date"].isin(got["date"])]]).sort_values("date", kind="stable")
    if len(old) > len(window) and any(c["date"] == str(np.datetime64(first, "D")) for c in corrections):
        full = _final(feed, symbol, crypto, pd.Timestamp(old_days[0]).date(), last, now, settle)
        before = old[old_days < np.datetime64(first, "D")]
        changed = _differences(symbol, before, full)
        if changed:
            changed += corrections
            closes = [c["old"] / c["new"] for c in changed if c["field"] == "close"]
            result.rewritten = {"kind": "history_rewritten", "symbol": symbol, "changed_bars":
                                len({c["date"] for c in changed}), "first_changed": min(c["date"] for c in changed),
                                "last_changed": max(c["date"] for c in changed),
                                "close_ratio": float(np.median(closes)) if closes else 1.0}
            kept = old[old_days < full["date"].to_numpy().astype("datetime64[D]").min()] if len(full) else old[:0]
            new = pd.concat([kept, full, new[~new["date"].isin(full["date"]) & ~new["date"].isin(kept["date"])]])
            new = new.sort_values("date", kind="stable")
    new = new.reset_index(drop=True)
    check_bars(symbol, new, stock=not crypto)
    result.added = [str(d) for d in np.setdiff1d(new["date"].to_numpy().astype("datetime64[D]"), old_days)]
    result.corrections = [] if result.rewritten else corrections
    if result.added or corrections or result.rewritten:
        write_bars(folder, symbol, new)
    result.last = str(new["date"].to_numpy().astype("datetime64[D]")[-1])
    return result


def update_folder(folder: str | Path, symbols: Sequence[str] | None, feed: BarFeed, now: Any = None, *,
                  log: Callable[[str], None] | None = None, **options: Any) -> list[SymbolUpdate]:
    """`update_symbol` for each of `symbols` (default: the folder's CSVs) under the folder's lock; a symbol that
    fails is reported in its `SymbolUpdate.error` and the others still update. Corrections and rewrites are
    appended to the fetch log and passed, one line each, to `log`. `now` defaults to the clock (UTC)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = utc(now if now is not None else datetime.now(UTC))
    if symbols is None:
        symbols = folder_symbols(folder)
        if not symbols:
            raise FeedError(f"{folder}: no CSV files to update; name the symbols")
    results = []
    with folder_lock(folder):
        for name in remove_leftovers(folder):
            if log:
                log(f"removed {name}, left by a fetch that did not finish")
        for s in symbols:
            try:
                r = update_symbol(folder, s, feed, now, **options)
            except FeedError as e:
                r = SymbolUpdate(s, error=" ".join(str(e).split()))
            stamp = {"fetched_at": now.isoformat()}
            records = [{**c, **stamp} for c in r.corrections] + ([{**r.rewritten, **stamp}] if r.rewritten else [])
            append_log(folder, records)
            if log:
                for c in records:
                    log(_describe(c))
                log(r.describe())
            results.append(r)
    return results


def _describe(record: dict[str, Any]) -> str:
    if record["kind"] == "correction":
        return (f"correction: {record['symbol']} {record['date']} {record['field']} {record['old']:.10g} -> "
                f"{record['new']:.10g}")
    return (f"history rewritten: {record['symbol']} {record['changed_bars']} bar(s) {record['first_changed']}.."
            f"{record['last_changed']} changed (old/new close {record['close_ratio']:.6g})")
