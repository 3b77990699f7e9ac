"""The calendar: UTC days, XNYS sessions (exchange-calendars), the calendar fields of a row set, bars per year."""

from __future__ import annotations

import functools
import warnings
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from ndjax.errors import ConfigError

STOCK_PERIODS_PER_YEAR = 252
CRYPTO_PERIODS_PER_YEAR = 365

DateLike = str | date | datetime | np.datetime64 | pd.Timestamp


@functools.lru_cache(maxsize=8)
def xnys_calendar(first_year: int, last_year: int) -> Any:
    """exchange-calendars' XNYS calendar from January 1 of `first_year` to December 31 of `last_year`, cached: the
    one place the schedule is built (sessions here, session closes in `feeds.final`)."""
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecation noise from inside exchange_calendars
        return xcals.get_calendar("XNYS", start=f"{first_year}-01-01", end=f"{last_year}-12-31")


@functools.lru_cache(maxsize=8)
def _xnys_sessions(first_year: int, last_year: int) -> np.ndarray:
    return xnys_calendar(first_year, last_year).sessions.values.astype("datetime64[D]")


def xnys_sessions(first: np.datetime64, last: np.datetime64) -> np.ndarray:
    """XNYS sessions (datetime64[D]) covering at least [first, last + 1 year]; cached per decade."""
    y0 = int(str(np.datetime64(first, "Y"))) // 10 * 10
    y1 = (int(str(np.datetime64(last, "Y"))) + 1) // 10 * 10 + 9
    return _xnys_sessions(max(y0, 1900), y1)


def is_xnys_session(days: np.ndarray) -> np.ndarray:
    """`(T,)` bool: whether each datetime64[D] day is an XNYS session."""
    days = np.asarray(days, dtype="datetime64[D]")
    if days.size == 0:
        return np.zeros(0, dtype=bool)
    sessions = xnys_sessions(days.min(), days.max())
    pos = np.searchsorted(sessions, days).clip(max=sessions.size - 1)
    return sessions[pos] == days


def calendar_fields(dates: np.ndarray, any_crypto: bool) -> tuple[np.ndarray, np.ndarray]:
    """`next_session_days (T,)` and `stock_tradable_next (T,)` for a calendar of rows `dates`.

    The last row's next row is assumed to be the next calendar day if the calendar holds crypto
    (daily), else the next XNYS session.
    """
    if dates.size == 0:
        return np.zeros(0), np.zeros(0)
    sessions = xnys_sessions(dates.min(), dates.max())
    nxt = sessions[np.searchsorted(sessions, dates, side="right")]
    next_session_days = (nxt - dates).astype(np.float64)
    following = np.empty_like(dates)
    following[:-1] = dates[1:]
    following[-1] = next_bar_day(dates, any_crypto)
    return next_session_days, is_xnys_session(following).astype(np.float64)


def asset_periods_per_year(is_crypto: Any) -> np.ndarray:
    """Bars per year of each asset, `(N,)`: 365 for crypto, 252 for a stock (what annualises its own returns)."""
    return np.where(np.asarray(is_crypto, bool), CRYPTO_PERIODS_PER_YEAR, STOCK_PERIODS_PER_YEAR)


def periods_per_year(is_crypto: Any) -> int:
    """Bars per year of a book: 252 for stocks only, 365 when any asset is crypto (it trades every day).
    `is_crypto (N,)`."""
    return CRYPTO_PERIODS_PER_YEAR if bool(np.any(np.asarray(is_crypto))) else STOCK_PERIODS_PER_YEAR


def to_day(x: DateLike, name: str | None = None) -> np.datetime64:
    """A date-like (tz-aware converted to UTC) as datetime64[D]; `ConfigError` naming `name` (e.g. the flag) and the
    value when it is not a date."""
    try:
        ts = pd.Timestamp(x)
        if pd.isna(ts):
            raise ValueError("not a date")
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{name or 'date'}: {x!r} is not a date (expected YYYY-MM-DD; {e})") from None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return np.datetime64(ts.date(), "D")


def next_bar_day(dates: np.ndarray, any_crypto: bool) -> np.datetime64:
    """The day of the bar after the last of `dates (T,)`: the next calendar day for a book with crypto, else the
    next XNYS session."""
    last = np.datetime64(dates[-1], "D")
    if any_crypto:
        return last + 1
    sessions = xnys_sessions(last, last)
    return sessions[np.searchsorted(sessions, last, side="right")]


def check_reaches(dates: np.ndarray, any_crypto: bool, day: DateLike, flag: str) -> None:
    """Raise `ConfigError` naming `flag`, `day` and the data's last row when the data stops before `day`: the bar
    after its last row is on or before `day`. `dates (T,)` datetime64[D]."""
    want, following = to_day(day, name=flag), next_bar_day(dates, any_crypto)
    if following <= want:
        raise ConfigError(f"{flag} {want}: the data ends on {dates[-1]}; its rows from {following} on are missing "
                         "(newer data, or an earlier date)")


def row_at_or_after(dates: np.ndarray, day: DateLike) -> int:
    """Index of the first row on or after `day` (`len(dates)` if none).  dates (T,) datetime64[D]."""
    return int(np.searchsorted(dates, to_day(day), side="left"))


def row_at_or_before(dates: np.ndarray, day: DateLike) -> int:
    """Index of the last row on or before `day` (-1 if none).  dates (T,) datetime64[D]."""
    return int(np.searchsorted(dates, to_day(day), side="right")) - 1
