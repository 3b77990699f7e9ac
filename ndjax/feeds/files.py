"""The data folder's files: a symbol's CSV read and written whole and atomically (a temporary file in the same
folder, flushed to disk, then renamed over the old one: a crash leaves the old file or the new one, never half of
either), leftovers of a killed run removed, one fetch at a time per folder, and the fetch log."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ndjax.feeds.bars import COLUMNS, PRICES, FeedError, empty_bars
from ndjax.files import TEMP_SUFFIX, FileLocked, atomic_write_text, lock, unlock

LOG_NAME = "fetch_log.jsonl"
"""The folder's record of corrections and rewritten histories, one JSON object a line."""


def csv_path(folder: Path, symbol: str) -> Path:
    return folder / f"{symbol}.csv"


def folder_symbols(folder: Path) -> list[str]:
    """The symbols of a folder's CSV files, sorted (every file, whatever its state)."""
    return sorted(p.stem for p in Path(folder).glob("*.csv"))


def read_bars(folder: Path, symbol: str) -> pd.DataFrame:
    """The bars of `symbol`'s CSV as a bar frame (`opened` left empty), or no rows if there is no file. A file
    not in fetch's format (columns `date,open,high,low,close,volume`, ISO dates) raises `FeedError`: fetch does
    not rewrite files it did not write (the columns it would drop are someone's data)."""
    path = csv_path(folder, symbol)
    if not path.exists():
        return empty_bars()
    try:
        df = pd.read_csv(path, dtype={"date": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise FeedError(f"{symbol}: {path} is unreadable ({' '.join(str(e).split())})") from None
    if tuple(c.strip().lower() for c in df.columns) != COLUMNS:
        raise FeedError(f"{symbol}: {path} has columns {list(df.columns)}, not fetch's {list(COLUMNS)}; fetch into "
                        "a new folder (--start sets how far back it begins)")
    days = pd.to_datetime(df["date"], format="%Y-%m-%d", errors="coerce")
    if days.isna().any():
        row = int(np.flatnonzero(days.isna().to_numpy())[0])
        raise FeedError(f"{symbol}: {path} data row {row + 1}: date {df['date'].iloc[row]!r} is not YYYY-MM-DD")
    frame = empty_bars().reindex(range(len(df)))
    frame["date"] = days.to_numpy().astype("datetime64[D]")
    for c in (*PRICES, "volume"):
        frame[c] = pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64)
    return frame


def write_bars(folder: Path, symbol: str, bars: pd.DataFrame) -> None:
    """Replace `symbol`'s CSV with `bars` (a bar frame), atomically (`ndjax.files.atomic_write_text`)."""
    out = pd.DataFrame({"date": pd.DatetimeIndex(bars["date"]).strftime("%Y-%m-%d"),
                        **{c: bars[c].to_numpy(np.float64) for c in (*PRICES, "volume")}})
    atomic_write_text(csv_path(folder, symbol), out.to_csv(index=False))  # floats as repr: they read back exactly


def remove_leftovers(folder: Path) -> list[str]:
    """Delete the temporary files a killed fetch left (never read: they do not end in .csv); their names."""
    gone = []
    for p in folder.glob(f".*.csv.*{TEMP_SUFFIX}"):
        p.unlink(missing_ok=True)
        gone.append(p.name)
    return gone


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's fetch lock (`ndjax.files.lock`, released by the system if the process dies); a second fetch
    of the same folder raises `FeedError` instead of waiting."""
    path = folder / ".fetch.lock"
    try:
        lock(path)
    except FileLocked as e:
        raise FeedError(f"{folder}: its fetch lock is {e} (another fetch); try again when it has finished") from None
    try:
        yield
    finally:
        unlock(path)


def read_log(folder: Path) -> list[dict[str, Any]]:
    """The fetch log's records, oldest first (a line a killed run left half written is skipped)."""
    path = folder / LOG_NAME
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def append_log(folder: Path, records: list[dict[str, Any]]) -> None:
    """Append records to the folder's fetch log (one JSON object a line)."""
    if records:
        with open(folder / LOG_NAME, "a") as f:
            f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
            f.flush()
            os.fsync(f.fileno())
