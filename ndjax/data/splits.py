"""Dates to rows, and the splits of a market's rows: train/validation/test by date, and walk-forward folds."""

from __future__ import annotations

from collections.abc import Iterator

from ndjax.data.calendar import DateLike, row_at_or_before, to_day
from ndjax.data.market import DataError, MarketData
from ndjax.errors import ConfigError


def split_rows(market: MarketData, train_end: DateLike | None = None, val_end: DateLike | None = None, *,
               need_test: bool = True) -> tuple[int, int]:
    """Rows where validation and test start: after `train_end` and `val_end` (default 60 % / 80 % of the rows).

    Raises `DataError` naming the dates when a part would be empty.
    """
    T = market.n_days
    a = row_at_or_before(market.dates, train_end) + 1 if train_end is not None else int(T * 0.6)
    b = row_at_or_before(market.dates, val_end) + 1 if val_end is not None else int(T * 0.8)
    if not 0 < a < b < T + (0 if need_test else 1):
        raise DataError(f"date split: train rows [0, {a}), validation [{a}, {b}), test [{b}, {T}) must all be "
                        f"non-empty (train_end={train_end}, val_end={val_end}; data {market.dates[0]} .. "
                        f"{market.dates[-1]})")
    return a, b


def split(
    market: MarketData, train_end: DateLike, val_end: DateLike
) -> tuple[MarketData, MarketData, MarketData]:
    """(train, val, test): dates <= train_end, in (train_end, val_end], after val_end (any may be empty)."""
    a, b = to_day(train_end), to_day(val_end)
    if b < a:
        raise DataError(f"split: val_end {b} is before train_end {a}")
    i, j = row_at_or_before(market.dates, a) + 1, row_at_or_before(market.dates, b) + 1
    return market[:i], market[i:j], market[j:]


def walk_forward(
    market: MarketData, train_days: int, test_days: int, step_days: int | None = None
) -> Iterator[tuple[MarketData, MarketData]]:
    """Rolling (train, test) pairs in rows of the calendar: train `[k, k+train_days)`, test the next
    `test_days` rows, k = 0, step_days, 2*step_days, ... while the test window fits (default step = test_days)."""
    step_days = test_days if step_days is None else step_days
    if min(train_days, test_days, step_days) <= 0:
        raise ConfigError("walk_forward: train_days, test_days and step_days must be positive")
    k = 0
    while k + train_days + test_days <= market.n_days:
        yield market[k : k + train_days], market[k + train_days : k + train_days + test_days]
        k += step_days
