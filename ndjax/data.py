"""Daily-bar data layer: CSV loading, validation, calendar alignment, splits and window sampling.

Everything here is host-side numpy. `MarketData.bars()` is the hand-off to the JAX side.

Alignment semantics (see `load_daily`): rows are the union of all loaded files' dates
(UTC days). An asset is `tradable` only on rows where its file has a bar; on other rows
its open/high/low/close are a flat bar at the last close (before its first bar: its first
close), for marking only, with volume 0.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ndjax.assets import asset_class_mask
from ndjax.dynamics import Bar

PRICE_COLUMNS = ("open", "high", "low", "close")
DATE_COLUMNS = ("date", "timestamp", "open_time", "datetime", "time")
PRICE_RTOL = 1e-6
"""Relative tolerance for OHLC ordering; violations within it are clamped, beyond it are errors."""
MIN_ROWS = 2
STOCK_PERIODS_PER_YEAR = 252
CRYPTO_PERIODS_PER_YEAR = 365

DateLike = str | date | datetime | np.datetime64 | pd.Timestamp


class DataError(ValueError):
    """Bad or missing market data; the message names the file, row/date and problem."""


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
            raise ValueError("MarketData row slices must have step 1")
        per_row = ("dates", "open", "high", "low", "close", "volume", "tradable", "days_elapsed",
                   "next_session_days", "stock_tradable_next")  # fmt: skip
        return dataclasses.replace(self, **{k: getattr(self, k)[rows].copy() for k in per_row})

    def slice_dates(self, start: DateLike | None = None, end: DateLike | None = None) -> MarketData:
        """Rows with `start <= date <= end` (both inclusive, either may be None)."""
        lo = 0 if start is None else int(np.searchsorted(self.dates, to_day(start), side="left"))
        hi = self.n_days if end is None else int(np.searchsorted(self.dates, to_day(end), side="right"))
        return self[lo:hi]

    def select(self, symbols: Sequence[str]) -> MarketData:
        """Assets `symbols` (in that order) on the union calendar of their own bars.

        Rows where none of them has a bar are dropped and their calendar days added to the next
        kept row's `days_elapsed`; `stock_tradable_next` and `periods_per_year` are recomputed.
        """
        index = {s: i for i, s in enumerate(self.symbols)}
        unknown = [s for s in symbols if s not in index]
        if unknown:
            raise DataError(f"select: unknown symbol(s) {unknown}; available: {list(self.symbols)}")
        cols = np.asarray([index[s] for s in symbols], dtype=np.int64)
        keep = np.flatnonzero(self.tradable[:, cols].any(axis=1)) if self.n_days else np.zeros(0, np.int64)
        is_crypto = self.is_crypto[cols]
        days_elapsed = self.days_elapsed[keep].copy()
        if keep.size > 1:
            cum = np.cumsum(self.days_elapsed)
            days_elapsed[1:] = np.diff(cum[keep])
        dates = self.dates[keep]
        nsd, stn = _calendar_fields(dates, bool(is_crypto.any()))
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
            periods_per_year=_periods_per_year(is_crypto),
            next_session_days=nsd,
            stock_tradable_next=stn,
        )


# ----------------------------------------------------------------------------- calendar


@functools.lru_cache(maxsize=8)
def _xnys_sessions(first_year: int, last_year: int) -> np.ndarray:
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecation noise from inside exchange_calendars
        cal = xcals.get_calendar("XNYS", start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    return cal.sessions.values.astype("datetime64[D]")


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


def _calendar_fields(dates: np.ndarray, any_crypto: bool) -> tuple[np.ndarray, np.ndarray]:
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
    following[-1] = dates[-1] + 1 if any_crypto else nxt[-1]
    return next_session_days, is_xnys_session(following).astype(np.float64)


def _periods_per_year(is_crypto: np.ndarray) -> int:
    return CRYPTO_PERIODS_PER_YEAR if bool(np.any(is_crypto)) else STOCK_PERIODS_PER_YEAR


def to_day(x: DateLike) -> np.datetime64:
    """A date-like (tz-aware converted to UTC) as datetime64[D]."""
    ts = pd.Timestamp(x)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return np.datetime64(ts.date(), "D")


# ----------------------------------------------------------------------------- alignment


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
    nsd, stn = _calendar_fields(days_all, bool(is_crypto.any()))
    return MarketData(
        symbols=tuple(symbols),
        dates=days_all,
        tradable=tradable,
        days_elapsed=days_elapsed,
        is_crypto=is_crypto,
        periods_per_year=_periods_per_year(is_crypto),
        next_session_days=nsd,
        stock_tradable_next=stn,
        **fields,
    )


# ----------------------------------------------------------------------------- CSV parsing


def _parse_days(col: pd.Series) -> np.ndarray:
    """Dates/timestamps to UTC datetime64[D]; NaT where unparsable.

    Numbers are Unix epochs, unit by magnitude: < 1e11 seconds, < 1e14 ms, < 1e17 us, else ns.
    Integers 1e7..1e8 are yyyymmdd. Strings are ISO 8601 (with or without time zone; naive means
    UTC), falling back to pandas' parser.
    """
    num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    present = col.notna().to_numpy()
    if np.isfinite(num).sum() * 2 > present.sum():
        fin = num[np.isfinite(num)]
        if np.all((fin >= 1e7) & (fin < 1e8) & (fin == np.floor(fin))):  # yyyymmdd, not 1970 epoch seconds
            ymd = pd.to_datetime(pd.Series(num).map(lambda x: f"{x:.0f}"), format="%Y%m%d", errors="coerce")
            return ymd.to_numpy().astype("datetime64[D]")
        mag = np.abs(num)
        scale = np.select([mag < 1e11, mag < 1e14, mag < 1e17], [1.0, 1e-3, 1e-6], 1e-9)
        secs = num * scale
        ok = np.isfinite(secs)
        out = np.full(num.shape, np.datetime64("NaT"), dtype="datetime64[D]")
        out[ok] = np.floor(secs[ok] / 86400.0).astype(np.int64).astype("datetime64[D]")
        return out
    text = col.astype("string").str.strip()
    ts = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    retry = ts.isna().to_numpy() & present
    if retry.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts[retry] = pd.to_datetime(text[retry], utc=True, format="mixed", errors="coerce")
    return ts.dt.tz_convert(None).to_numpy().astype("datetime64[D]")


def _read_series(
    file: Path, start: np.datetime64 | None, end: np.datetime64 | None, repair: bool
) -> tuple[AssetSeries, list[str]]:
    """Parse, validate and (if `repair`) clean one CSV; returns the series and the dropped-row notes."""
    try:
        df = pd.read_csv(file, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{file}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{file}: unreadable CSV ({e})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    dup_cols = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup_cols:
        raise DataError(f"{file}: duplicate column(s) {dup_cols} (names are case-insensitive)")
    if len(df) == 0:
        raise DataError(f"{file}: empty file (header only, no data rows)")
    date_col = next((c for c in DATE_COLUMNS if c in df.columns), None)
    if date_col is None:
        raise DataError(f"{file}: missing date column (one of {list(DATE_COLUMNS)}); found {list(df.columns)}")
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{file}: missing column(s) {missing}; found {list(df.columns)}")

    n = len(df)
    days = _parse_days(df[date_col])
    px = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) for c in PRICE_COLUMNS}
    if "volume" in df.columns:
        vol = pd.to_numeric(df["volume"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        vol = np.zeros(n)
    o, h, lo, c = px["open"], px["high"], px["low"], px["close"]

    problems: dict[int, list[str]] = {}

    def flag(mask: np.ndarray, reason: Any) -> None:
        for i in np.flatnonzero(mask):
            problems.setdefault(int(i), []).append(reason(i) if callable(reason) else reason)

    def date_problem(i: int) -> str:
        raw = df[date_col].iloc[i]
        return f"missing {date_col}" if pd.isna(raw) else f"unparsable {date_col} {raw!r}"

    flag(np.isnat(days), date_problem)
    for name, v in px.items():
        flag(~np.isfinite(v), lambda i, name=name: f"{name} is NaN/inf/non-numeric ({df[name].iloc[i]!r})")
        flag(np.isfinite(v) & (v <= 0), lambda i, name=name, v=v: f"non-positive {name} ({v[i]:g})")
    flag(~np.isfinite(vol), lambda i: f"volume is NaN/inf/non-numeric ({df['volume'].iloc[i]!r})")
    flag(vol < 0, lambda i: f"negative volume ({vol[i]:g})")
    with np.errstate(invalid="ignore"):
        tol = PRICE_RTOL * np.maximum(np.abs(h), np.abs(lo))
        flag(h < lo - tol, lambda i: f"high < low (high={h[i]:g}, low={lo[i]:g})")
        for name, v in (("open", o), ("close", c)):
            flag(
                (v > h + tol) | (v < lo - tol),
                lambda i, name=name, v=v: f"{name} outside [low, high] ({name}={v[i]:g}, low={lo[i]:g}, high={h[i]:g})",
            )
    bad = np.zeros(n, dtype=bool)
    bad[list(problems)] = True
    # Duplicates among otherwise good rows: the first occurrence in file order is kept.
    good = np.flatnonzero(~bad)
    by_day = good[np.argsort(days[good], kind="stable")]
    new_day = np.r_[True, days[by_day][1:] != days[by_day][:-1]]
    first = by_day[np.maximum.accumulate(np.where(new_day, np.arange(by_day.size), 0))]
    dup, first_of = by_day[~new_day], dict(zip(by_day[~new_day].tolist(), first[~new_day].tolist()))
    flag(np.isin(np.arange(n), dup), lambda i: f"duplicate date (same day as data row {first_of[i] + 1})")
    bad[dup] = True

    def where(i: int) -> str:
        d = "" if np.isnat(days[i]) else f" ({days[i]})"
        return f"{file}: data row {i + 1}{d}"

    notes: list[str] = []
    if problems:
        rows = sorted(problems)
        if not repair:
            more = f" [and {len(rows) - 1} more bad row(s); repair=True drops them]" if len(rows) > 1 else ""
            raise DataError(f"{where(rows[0])}: {'; '.join(problems[rows[0]])}{more}")
        notes = [f"{where(i)}: {'; '.join(problems[i])}" for i in rows]
    keep = ~bad
    if keep.sum() < MIN_ROWS:
        raise DataError(f"{file}: too few valid rows ({int(keep.sum())} < {MIN_ROWS})")

    order = np.flatnonzero(keep)[np.argsort(days[keep], kind="stable")]
    days, o, h, lo, c, vol = days[order], o[order], h[order], lo[order], c[order], vol[order]
    hi_all = np.maximum(np.maximum(h, lo), np.maximum(o, c))
    lo_all = np.minimum(np.minimum(h, lo), np.minimum(o, c))
    prior = np.nan
    in_range = np.ones(days.size, dtype=bool)
    if start is not None:
        in_range &= days >= start
        before = np.flatnonzero(days < start)
        if before.size:
            prior = float(c[before[-1]])
    if end is not None:
        in_range &= days <= end
    if not in_range.any():
        raise DataError(f"{file}: no rows between start={start} and end={end}")
    sel = in_range
    return AssetSeries(days[sel], o[sel], hi_all[sel], lo_all[sel], c[sel], vol[sel], prior), notes


def _list_files(path: str | PathLike | Sequence[str | PathLike]) -> list[Path]:
    if isinstance(path, (str, PathLike)):
        p = Path(path)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".csv")
            if not files:
                raise DataError(f"{p}: no .csv files found in folder")
            return files
        if p.is_file():
            return [p]
        raise DataError(f"{p}: no such file or folder")
    files = [Path(f) for f in path]
    if not files:
        raise DataError("load_daily: empty list of files")
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: no such file")
    return files


def load_daily(
    path: str | PathLike | Sequence[str | PathLike],
    *,
    symbols: Sequence[str] | None = None,
    asset_classes: Mapping[str, str | bool] | None = None,
    start: DateLike | None = None,
    end: DateLike | None = None,
    repair: bool = False,
) -> MarketData:
    """Load one-CSV-per-symbol daily bars (symbol = file stem) and align them on their union calendar.

    `path`: a folder of `*.csv`, one file, or a list of files. Columns (any order/case): a date
    column (`date`, `timestamp`, `open_time`, `datetime` or `time`: ISO strings with or without
    time zone, or Unix s/ms/us/ns by magnitude; normalised to UTC days), `open, high, low, close`
    (required) and `volume` (optional; missing means 0). Other columns are ignored. Rows may be in
    any order. `symbols` picks files (in that order; default: all, sorted in a folder, as given in a
    list). `asset_classes` maps symbol -> "crypto"/"stock"/bool and wins over the suffix rule.
    `start`/`end` (inclusive) restrict the calendar; the last close before `start` marks an asset
    until its first bar. Bad rows raise `DataError`, or with `repair=True` are dropped with one
    warning listing them; messages name the file, the 1-based data row (header and blank lines not
    counted), its date and the problem. OHLC ordering violations within `PRICE_RTOL` are clamped
    silently (high/low widened to cover open/close).
    """
    files = _list_files(path)
    by_symbol: dict[str, Path] = {}
    for f in files:
        if f.stem in by_symbol:
            raise DataError(f"{f}: duplicate symbol {f.stem!r} (also {by_symbol[f.stem]})")
        by_symbol[f.stem] = f
    if symbols is not None:
        symbols = list(symbols)
        unknown = [s for s in symbols if s not in by_symbol]
        if unknown:
            raise DataError(f"{path}: unknown symbol(s) {unknown}; available: {sorted(by_symbol)}")
        if len(set(symbols)) != len(symbols):
            raise DataError(f"load_daily: duplicate symbols in {symbols}")
    else:
        symbols = list(by_symbol)
    start_day = None if start is None else to_day(start)
    end_day = None if end is None else to_day(end)
    if start_day is not None and end_day is not None and end_day < start_day:
        raise DataError(f"load_daily: end {end_day} is before start {start_day}")
    try:
        is_crypto = asset_class_mask(symbols, asset_classes)
    except ValueError as e:
        raise DataError(str(e)) from None

    series, notes = [], []
    for s in symbols:
        ser, dropped = _read_series(by_symbol[s], start_day, end_day, repair)
        series.append(ser)
        notes.extend(dropped)
    if notes:
        warnings.warn(
            f"load_daily(repair=True) dropped {len(notes)} bad row(s):\n" + "\n".join(notes), stacklevel=2
        )
    return align(symbols, series, is_crypto)


# ----------------------------------------------------------------------------- splits and sampling


def split(
    market: MarketData, train_end: DateLike, val_end: DateLike
) -> tuple[MarketData, MarketData, MarketData]:
    """(train, val, test): dates <= train_end, in (train_end, val_end], after val_end (any may be empty)."""
    a, b = to_day(train_end), to_day(val_end)
    if b < a:
        raise ValueError(f"split: val_end {b} is before train_end {a}")
    i = int(np.searchsorted(market.dates, a, side="right"))
    j = int(np.searchsorted(market.dates, b, side="right"))
    return market[:i], market[i:j], market[j:]


def walk_forward(
    market: MarketData, train_days: int, test_days: int, step_days: int | None = None
) -> Iterator[tuple[MarketData, MarketData]]:
    """Rolling (train, test) pairs in rows of the calendar: train `[k, k+train_days)`, test the next
    `test_days` rows, k = 0, step_days, 2*step_days, ... while the test window fits (default step = test_days)."""
    step_days = test_days if step_days is None else step_days
    if min(train_days, test_days, step_days) <= 0:
        raise ValueError("walk_forward: train_days, test_days and step_days must be positive")
    k = 0
    while k + train_days + test_days <= market.n_days:
        yield market[k : k + train_days], market[k + train_days : k + train_days + test_days]
        k += step_days


def sample_windows(
    rng: np.random.Generator,
    market_or_arrays: MarketData | np.ndarray | Sequence[int],
    window: int,
    batch: int,
    n_assets: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Random training windows: `starts (batch,)` uniform in [0, T - window] and `assets (batch, n_assets)`,
    each row a sorted subset of distinct asset indices. Takes a `MarketData`, an array with leading
    `(T, N)` axes, or a shape `(T, N)`."""
    if isinstance(market_or_arrays, MarketData):
        t, n = market_or_arrays.n_days, market_or_arrays.n_assets
    else:
        shape = tuple(market_or_arrays.shape) if hasattr(market_or_arrays, "shape") else tuple(market_or_arrays)
        t, n = int(shape[0]), int(shape[1])
    if not 1 <= window <= t:
        raise ValueError(f"sample_windows: window {window} must be in [1, T={t}]")
    if not 1 <= n_assets <= n:
        raise ValueError(f"sample_windows: n_assets {n_assets} must be in [1, N={n}]")
    starts = rng.integers(0, t - window + 1, size=batch)
    assets = np.sort(np.argsort(rng.random((batch, n)), axis=1)[:, :n_assets], axis=1)
    return starts, assets
