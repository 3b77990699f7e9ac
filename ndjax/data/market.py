"""The market container: aligned daily bars of N assets on T calendar rows, and their alignment.

Everything here is host-side numpy. `MarketData.bars()` is the hand-off to the JAX side.

Alignment semantics (see `align` and `loading.load_daily`): rows are the union of all assets' dates
(UTC days). An asset is `tradable` only on rows where it has a bar; on other rows its
open/high/low/close are a flat bar at the last close (before its first bar: its first close), for
marking only, with volume 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ndjax.data.calendar import (
    DateLike,
    calendar_fields,
    periods_per_year,
    row_at_or_after,
    row_at_or_before,
)
from ndjax.dynamics import Bar
from ndjax.errors import NdjaxError

PRICE_COLUMNS = ("open", "high", "low", "close")


class DataError(NdjaxError):
    """Bad or missing market data; the message names the file, row/date and problem."""


class UnknownSymbolError(DataError):
    """Symbols asked for that the data does not hold; the message names them and what is available."""


@dataclass(frozen=True, eq=False)
class MarketData:
    """Aligned daily bars for N assets on T calendar rows (host-side numpy, read-only arrays).

    `dates (T,)` datetime64[D] strictly increasing; `open/high/low/close/volume/tradable (T, N)`;
    `days_elapsed (T,)` calendar days since the previous row (1 on the first loaded row);
    `is_crypto (N,)`; `next_session_days (T,)` calendar days from each date to the next XNYS
    session; `stock_tradable_next (T,)` 1 if the next row of this calendar is an XNYS session.
    """

    symbols: tuple[str, ...]
    dates: np.ndarray  # (T,)
    open: np.ndarray  # (T, N)
    high: np.ndarray  # (T, N)
    low: np.ndarray  # (T, N)
    close: np.ndarray  # (T, N)
    volume: np.ndarray  # (T, N)
    tradable: np.ndarray  # (T, N)
    days_elapsed: np.ndarray  # (T,)
    is_crypto: np.ndarray  # (N,)
    periods_per_year: int
    next_session_days: np.ndarray  # (T,)
    stock_tradable_next: np.ndarray  # (T,)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v.setflags(write=False)

    @property
    def n_days(self) -> int:
        """Number of calendar rows T."""
        return int(self.dates.shape[0])

    @property
    def n_assets(self) -> int:
        """Number of assets N."""
        return len(self.symbols)

    def __len__(self) -> int:
        return self.n_days

    def bars(self, dtype: Any = np.float32) -> Bar:
        """All rows as one `Bar` of jnp arrays with leading time axis: fields `(T, N)`, `days_elapsed (T,)`."""
        import jax.numpy as jnp

        def a(x: np.ndarray) -> Any:
            return jnp.asarray(x, dtype=dtype)

        return Bar(
            high=a(self.high),
            low=a(self.low),
            close=a(self.close),
            tradable=a(self.tradable),
            days_elapsed=a(self.days_elapsed),
            open=a(self.open),
            volume=a(self.volume),
        )

    def __getitem__(self, rows: slice) -> MarketData:
        """Row slice (step 1); values, including `days_elapsed[0]`, are kept as in the full calendar."""
        if not isinstance(rows, slice):
            raise TypeError(f"MarketData indexes by a row slice, got {type(rows).__name__}")
        if rows.step not in (None, 1):
            raise DataError("MarketData row slices must have step 1")
        per_row = ("dates", "open", "high", "low", "close", "volume", "tradable", "days_elapsed",
                   "next_session_days", "stock_tradable_next")  # fmt: skip
        return dataclasses.replace(self, **{k: getattr(self, k)[rows].copy() for k in per_row})

    def slice_dates(self, start: DateLike | None = None, end: DateLike | None = None) -> MarketData:
        """Rows with `start <= date <= end` (both inclusive, either may be None)."""
        lo = 0 if start is None else row_at_or_after(self.dates, start)
        hi = self.n_days if end is None else row_at_or_before(self.dates, end) + 1
        return self[lo:hi]

    def select(self, symbols: Sequence[str]) -> MarketData:
        """Assets `symbols` (in that order) on the union calendar of their own bars.

        Rows where none of them has a bar are dropped and their calendar days added to the next
        kept row's `days_elapsed`; `stock_tradable_next` and `periods_per_year` are recomputed.
        """
        index = {s: i for i, s in enumerate(self.symbols)}
        unknown = [s for s in symbols if s not in index]
        if unknown:
            raise UnknownSymbolError(f"select: unknown symbol(s) {unknown}; available: {list(self.symbols)}")
        cols = np.asarray([index[s] for s in symbols], dtype=np.int64)
        keep = np.flatnonzero(self.tradable[:, cols].any(axis=1)) if self.n_days else np.zeros(0, np.int64)
        is_crypto = self.is_crypto[cols]
        days_elapsed = self.days_elapsed[keep].copy()
        if keep.size > 1:
            cum = np.cumsum(self.days_elapsed)
            days_elapsed[1:] = np.diff(cum[keep])
        dates = self.dates[keep]
        nsd, stn = calendar_fields(dates, bool(is_crypto.any()))
        return MarketData(
            symbols=tuple(symbols),
            dates=dates,
            open=self.open[np.ix_(keep, cols)],
            high=self.high[np.ix_(keep, cols)],
            low=self.low[np.ix_(keep, cols)],
            close=self.close[np.ix_(keep, cols)],
            volume=self.volume[np.ix_(keep, cols)],
            tradable=self.tradable[np.ix_(keep, cols)],
            days_elapsed=days_elapsed,
            is_crypto=is_crypto.copy(),
            periods_per_year=periods_per_year(is_crypto),
            next_session_days=nsd,
            stock_tradable_next=stn,
        )


@dataclass(frozen=True)
class AssetSeries:
    """One asset's validated bars (input to `align`), sorted by day: `days (n,)` datetime64[D], prices/volume `(n,)`."""

    days: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    prior_close: float = np.nan  # last close before the requested start, if any


def align(symbols: Sequence[str], series: Sequence[AssetSeries], is_crypto: np.ndarray) -> MarketData:
    """Align per-asset bar series on the union of their days into a `MarketData` (see module docstring)."""
    days_all = np.unique(np.concatenate([s.days for s in series]))
    t, n = days_all.size, len(series)
    fields = {k: np.zeros((t, n)) for k in ("open", "high", "low", "close", "volume")}
    tradable = np.zeros((t, n))
    for j, s in enumerate(series):
        pos = np.searchsorted(days_all, s.days)
        tradable[pos, j] = 1.0
        for k in fields:
            fields[k][pos, j] = getattr(s, k)
    has = tradable > 0
    rows = np.arange(t)[:, None]
    last = np.maximum.accumulate(np.where(has, rows, -1), axis=0)
    first = has.argmax(axis=0)
    mark = np.take_along_axis(fields["close"], np.where(last < 0, first[None, :], last), axis=0)
    prior = np.asarray([s.prior_close for s in series])
    mark = np.where((last < 0) & np.isfinite(prior)[None, :], prior[None, :], mark)
    for k in PRICE_COLUMNS:
        fields[k] = np.where(has, fields[k], mark)
    fields["volume"] = np.where(has, fields["volume"], 0.0)
    days_elapsed = np.ones(t)
    days_elapsed[1:] = np.diff(days_all).astype(np.float64)
    is_crypto = np.asarray(is_crypto, dtype=bool)
    nsd, stn = calendar_fields(days_all, bool(is_crypto.any()))
    return MarketData(
        symbols=tuple(symbols),
        dates=days_all,
        tradable=tradable,
        days_elapsed=days_elapsed,
        is_crypto=is_crypto,
        periods_per_year=periods_per_year(is_crypto),
        next_session_days=nsd,
        stock_tradable_next=stn,
        **fields,
    )
