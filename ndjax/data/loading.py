"""Reading daily bars from CSV files: one file per symbol, validated row by row, aligned on one calendar.

Bad input raises `DataError` naming the file, the data row, its date and the problem.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ndjax.assets import asset_class_mask
from ndjax.data.calendar import DateLike, is_xnys_session, to_day
from ndjax.data.market import PRICE_COLUMNS, AssetSeries, DataError, MarketData, UnknownSymbolError, align
from ndjax.data.plausible import MAX_MOVE, implausible_moves, move_problem

DATE_COLUMNS = ("date", "timestamp", "open_time", "datetime", "time")
ISO_DATE = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?"
"""The date spellings read from text: ISO 8601, year first (with an optional time and zone)."""
NUMERIC_DATE = r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$"
"""Day and month in either order, then the year: read only when one order fits every row (`_day_month_order`)."""
PRICE_RTOL = 1e-6
"""Relative tolerance for OHLC ordering; violations within it are clamped, beyond it are errors."""
MIN_ROWS = 2
REPAIR_HINT = "pass --repair (repair=True) to drop such rows with a warning"


def _parse_days(col: pd.Series) -> np.ndarray:
    """Dates/timestamps to UTC datetime64[D]; NaT where unparsable.

    Numbers are Unix epochs, unit by magnitude: < 1e11 seconds, < 1e14 ms, < 1e17 us, else ns.
    Integers 1e7..1e8 are yyyymmdd. Strings are ISO 8601 (year first, with or without time zone; naive means
    UTC). A column of day-month-year or month-day-year dates (`/`, `.` or `-` between them) is read in the one
    order that gives valid, distinct dates on every row; when both orders do, the column is ambiguous and every
    such row is NaT (reported), as is any other spelling. The calendar does not choose the order: one bar on a
    closed day would then flip the whole column into the other order without a word."""
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
    iso = text.str.fullmatch(ISO_DATE).fillna(False).to_numpy(dtype=bool)
    ts = pd.to_datetime(text.where(iso), utc=True, format="ISO8601", errors="coerce")
    out = ts.dt.tz_convert(None).to_numpy().astype("datetime64[D]")
    parts = text.str.extract(NUMERIC_DATE)
    numeric = parts[0].notna().to_numpy()
    if numeric.any():
        out[numeric] = _day_month_order(parts[numeric])
    return out


def _day_month_order(parts: pd.DataFrame) -> np.ndarray:
    """Dates of `(a, b, year)` text triples read as day-month or month-day: the one order that gives a valid date,
    each day once, on every row; NaT everywhere when both orders do, or neither does."""
    readings = []
    for day, month in ((0, 1), (1, 0)):
        d = pd.to_datetime(pd.DataFrame({"year": parts[2].astype(int), "month": parts[month].astype(int),
                                         "day": parts[day].astype(int)}), errors="coerce").to_numpy()
        d = d.astype("datetime64[D]")
        valid = not np.isnat(d).any() and np.unique(d).size == d.size
        readings.append(d if valid else None)
    viable = [d for d in readings if d is not None]
    if len(viable) == 1:
        return viable[0]
    return np.full(len(parts), np.datetime64("NaT"), dtype="datetime64[D]")


def _read_series(
    file: Path, start: np.datetime64 | None, end: np.datetime64 | None, repair: bool, stock: bool = False,
    max_move: float = MAX_MOVE,
) -> tuple[AssetSeries, list[str]]:
    """Parse, validate and (if `repair`) clean one CSV; returns the series and the dropped-row notes. A `stock`
    bar must fall on an XNYS session; a move beyond `max_move` against the previous close is implausible."""
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
        if pd.isna(raw):
            return f"missing {date_col}"
        if re.match(NUMERIC_DATE, str(raw).strip()):
            return (f"ambiguous {date_col} {raw!r}: day-month-year and month-day-year do not give exactly one valid "
                    "reading of the column (write ISO dates YYYY-MM-DD)")
        return f"unparsable {date_col} {raw!r} (expected an ISO date YYYY-MM-DD or a Unix timestamp)"

    flag(np.isnat(days), date_problem)
    if stock:
        dated = np.flatnonzero(~np.isnat(days))
        closed = dated[~is_xnys_session(days[dated])]
        flag(np.isin(np.arange(n), closed), lambda i: f"{date_col} {df[date_col].iloc[i]!r} is {days[i]}, not an XNYS "
                                                      "session (a stock bar on a day the market was closed)")
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
    new_day = np.ones(by_day.size, dtype=bool)  # (an empty file of bad rows too)
    new_day[1:] = days[by_day][1:] != days[by_day][:-1]
    first = by_day[np.maximum.accumulate(np.where(new_day, np.arange(by_day.size), 0))]
    dup, first_of = by_day[~new_day], dict(zip(by_day[~new_day].tolist(), first[~new_day].tolist()))
    flag(np.isin(np.arange(n), dup), lambda i: f"duplicate date (same day as data row {first_of[i] + 1})")
    bad[dup] = True
    for i, j in implausible_moves(np.flatnonzero(~bad)[np.argsort(days[~bad], kind="stable")], o, c, max_move):
        flag(np.arange(n) == i, lambda i, j=j: move_problem(i, j, days, o, c, max_move))
        bad[i] = True

    def where(i: int) -> str:
        d = "" if np.isnat(days[i]) else f" ({days[i]})"
        return f"{file}: data row {i + 1}{d}"

    notes: list[str] = []
    if problems:
        rows = sorted(problems)
        if not repair:
            more = f" [and {len(rows) - 1} more bad row(s)]" if len(rows) > 1 else ""
            raise DataError(f"{where(rows[0])}: {'; '.join(problems[rows[0]])}{more}; {REPAIR_HINT}")
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


def listed_symbols(path: str | PathLike | Sequence[str | PathLike], end: DateLike | None,
                   start: DateLike | None = None) -> list[str]:
    """The symbols (file stems, in `load_daily`'s order) of `path` with a dated row on or before `end` (and on or
    after `start`; None: no bound): the universe that existed by then, or that traded in a period. Reads only the
    date column; `load_daily` validates the rest."""
    out = []
    for f in _list_files(path):
        try:
            df = pd.read_csv(f, skipinitialspace=True, usecols=lambda c: str(c).strip().lower() in DATE_COLUMNS)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
            raise DataError(f"{f}: unreadable CSV ({e})") from None
        if df.shape[1] == 0:
            raise DataError(f"{f}: missing date column (one of {list(DATE_COLUMNS)})")
        days = _parse_days(df.iloc[:, 0])
        days = days[~np.isnat(days)]
        inside = np.ones(days.shape, bool)
        if end is not None:
            inside &= days <= to_day(end)
        if start is not None:
            inside &= days >= to_day(start)
        if inside.any():
            out.append(f.stem)
    return out


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
    max_move: float = MAX_MOVE,
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
    silently (high/low widened to cover open/close). Bad rows include dates that are not ISO 8601 or Unix
    timestamps (DD/MM and MM/DD are ambiguous), stock bars on a day that is not an XNYS session, and bars
    with an open or close beyond `max_move` times (or below one `max_move`-th of) the previous close.
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
            raise UnknownSymbolError(f"{path}: unknown symbol(s) {unknown}; available: {sorted(by_symbol)}")
        if len(set(symbols)) != len(symbols):
            raise DataError(f"load_daily: duplicate symbols in {symbols}")
    else:
        symbols = list(by_symbol)
    start_day = None if start is None else to_day(start, name="start")
    end_day = None if end is None else to_day(end, name="end")
    if not max_move > 1:
        raise DataError(f"load_daily: max_move must be > 1, got {max_move}")
    if start_day is not None and end_day is not None and end_day < start_day:
        raise DataError(f"load_daily: end {end_day} is before start {start_day}")
    try:
        is_crypto = asset_class_mask(symbols, asset_classes)
    except ValueError as e:
        raise DataError(str(e)) from None

    series, notes = [], []
    for i, s in enumerate(symbols):
        ser, dropped = _read_series(by_symbol[s], start_day, end_day, repair, not is_crypto[i], max_move)
        series.append(ser)
        notes.extend(dropped)
    if notes:
        warnings.warn(
            f"load_daily(repair=True) dropped {len(notes)} bad row(s):\n" + "\n".join(notes), stacklevel=2
        )
    return align(symbols, series, is_crypto)
