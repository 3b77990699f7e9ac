"""When a daily bar is final: a stock's session bar after that session's close (early closes included, from
exchange-calendars' XNYS schedule) plus a settle delay; a crypto bar after its day has ended (24 hours after the
bar opened: midnight UTC for Alpaca's bars since 2025, midnight Chicago before) plus the same delay."""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from ndjax.data.calendar import xnys_calendar

DEFAULT_SETTLE = timedelta(minutes=30)
"""Wait after the close before a bar counts as final: late prints and the closing auction are in, and Alpaca's
SIP data is no longer "recent" (its free plan refuses the latest 15 minutes)."""


@functools.lru_cache(maxsize=4)
def _xnys_closes(last_year: int) -> pd.Series:
    cal = xnys_calendar(1990, last_year)
    closes = pd.DatetimeIndex(cal.schedule["close"]).tz_convert("UTC")
    return pd.Series(closes, index=cal.schedule.index.to_numpy().astype("datetime64[D]"))


def session_closes(until: date) -> pd.Series:
    """XNYS session closes (UTC timestamps) indexed by session day (`datetime64[D]`), from 1990 to past `until`."""
    return _xnys_closes(pd.Timestamp(until).year + 1)


def utc(now: datetime | str | pd.Timestamp) -> pd.Timestamp:
    """`now` as a UTC timestamp (naive means UTC)."""
    t = pd.Timestamp(now)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def final_through(is_crypto: bool, now: datetime | str | pd.Timestamp,
                  settle: timedelta = DEFAULT_SETTLE) -> np.datetime64:
    """The last day D such that every bar dated D or earlier is final at `now`: for crypto the day before the UTC
    day of `now - settle`; for stocks the day before the first session that has not closed by `now - settle`."""
    t = utc(now) - settle
    if is_crypto:
        return np.datetime64(t.date(), "D") - 1
    closes = session_closes(t.date())
    pending = np.flatnonzero(closes > t)
    return np.datetime64(closes.index[pending[0]], "D") - 1


def final_mask(bars: pd.DataFrame, is_crypto: bool, now: datetime | str | pd.Timestamp,
               settle: timedelta = DEFAULT_SETTLE) -> np.ndarray:
    """`(len(bars),)` bool: which bars of a bar frame are final at `now` (a crypto bar also needs its own 24 hours
    to have passed, whatever midnight it opened at)."""
    days = bars["date"].to_numpy().astype("datetime64[D]")
    ok = days <= final_through(is_crypto, now, settle)
    if is_crypto and len(bars):
        ends = pd.DatetimeIndex(bars["opened"]).tz_convert("UTC") + pd.Timedelta(days=1) + settle
        ok &= np.asarray(ends <= utc(now))
    return ok
