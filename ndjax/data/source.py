"""Where a market comes from: a folder of daily CSVs, or the built-in synthetic market of a seed.

A `MarketSource` is stored in a run folder, so evaluation and planning rebuild the same history.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ndjax.data.calendar import to_day
from ndjax.data.loading import MAX_MOVE, listed_symbols, load_daily
from ndjax.data.market import DataError, MarketData
from ndjax.data.synthetic import SyntheticTruth, synthetic_market_with_truth
from ndjax.errors import ConfigError

ALL_SYMBOLS = "all"
"""`symbols` value that takes every file of the data folder with a bar in the period."""


def active_symbols(folder: str | Path, start: Any = None, end: Any = None) -> list[str]:
    """`symbols` "all" of `folder`: every file with a bar from `start` to `end` (None: no bound), in `load_daily`'s
    order. The files left out (listed before the period, or delisted before it) are named in one line on stderr;
    `DataError` if none is left."""
    files = listed_symbols(folder, None)
    kept = listed_symbols(folder, end, start)
    period = f"{start or 'the first row'} .. {end or 'the last row'}"
    if not kept:
        raise DataError(f"{folder}: no file has a bar in {period} (symbols 'all')")
    left = [s for s in files if s not in kept]
    if left:
        print(f"symbols 'all': left out {', '.join(left)} of {folder}: no bar in {period}", file=sys.stderr)
    return kept


def _option(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class MarketSource:
    """A CSV folder (`data_dir`, optional `symbols`, `start`/`end` dates) or, without one, the synthetic market
    (`synthetic_seed`, `synthetic_days` calendar days, planted `signal`, `n_stocks` + `n_crypto` assets)."""

    data_dir: str | None = _option(None, "folder of daily CSVs, one per symbol (default: the built-in synthetic "
                                         "market)")
    symbols: tuple[str, ...] | None = _option(None, "comma-separated symbols to load (default: every file)")
    start: str | None = _option(None, "first date loaded (default: the data's first)")
    end: str | None = _option(None, "last date loaded (default: the data's last)")
    synthetic_seed: int = _option(0, "seed of the synthetic market")
    synthetic_days: int = _option(1100, "calendar days of the synthetic market")
    signal: float = _option(0.3, "planted signal strength of the synthetic market (AR(1) of standardised returns; "
                                 "< 0 reverts)")
    n_stocks: int = _option(4, "stocks in the synthetic market")
    n_crypto: int = _option(2, "crypto assets in the synthetic market")
    repair: bool = _option(False, "drop bad rows of the data (listed in a warning) instead of stopping at the first")
    max_move: float = _option(MAX_MOVE, "an open or close beyond this many times (or below 1/this of) the previous "
                                        "close is a bad row")

    def check(self) -> MarketSource:
        """Raise `ConfigError` naming the flag for a date that is not one, an end before the start, or a synthetic
        market of no days or assets; reads nothing."""
        days = {k: to_day(getattr(self, k), name=f"--{k}") for k in ("start", "end") if getattr(self, k) is not None}
        if len(days) == 2 and days["end"] < days["start"]:
            raise ConfigError(f"--end {self.end} is before --start {self.start}")
        if self.max_move <= 1:
            raise ConfigError(f"--max-move: must be > 1 (a bound on a one-bar price ratio), got {self.max_move}")
        if self.synthetic and (self.synthetic_days < 2 or self.n_stocks < 0 or self.n_crypto < 0
                               or self.n_stocks + self.n_crypto < 1):
            raise ConfigError(f"synthetic market: --synthetic-days {self.synthetic_days} must be >= 2 and --n-stocks "
                              f"{self.n_stocks} + --n-crypto {self.n_crypto} >= 1")
        return self

    @property
    def synthetic(self) -> bool:
        return self.data_dir is None

    def load(self, *, data_dir: str | Path | None = None, symbols: Any = None, end: Any = None,
             to_last_row: bool = False, repair: bool | None = None, period: tuple[Any, Any] = (None, None)
             ) -> MarketData:
        """The market; `data_dir`, `symbols`, `end` and `repair` override the stored ones (newer data, another
        universe). `to_last_row` reads past the stored `end` to the data's last row (or to `end`): the stored end
        bounds training only. `symbols` "all" (`ALL_SYMBOLS`) takes the folder's files with a bar in the days read
        and in `period` (first, last day; None: no bound), naming the others (`active_symbols`)."""
        folder = data_dir if data_dir is not None else self.data_dir
        last = end if end is not None or to_last_row else self.end
        if folder is not None:
            chosen = symbols if symbols is not None else self.symbols
            if isinstance(chosen, str) and chosen == ALL_SYMBOLS:
                firsts = [to_day(d) for d in (self.start, period[0]) if d is not None]
                lasts = [to_day(d) for d in (last, period[1]) if d is not None]
                chosen = active_symbols(folder, max(firsts) if firsts else None, min(lasts) if lasts else None)
            return load_daily(folder, symbols=None if chosen is None else list(chosen), start=self.start, end=last,
                              repair=self.repair if repair is None else repair, max_move=self.max_move)
        market, _ = self._synthetic()
        return market.slice_dates(self.start, last) if (self.start or last) else market

    def _synthetic(self) -> tuple[MarketData, SyntheticTruth]:
        return synthetic_market_with_truth(self.synthetic_seed, n_stocks=self.n_stocks, n_crypto=self.n_crypto,
                                           n_days=self.synthetic_days, signal_strength=self.signal)

    def truth(self, market: MarketData) -> SyntheticTruth | None:
        """The synthetic market's truth on the rows of `market` (a load of this source); None for CSV data."""
        if self.data_dir is not None:
            return None
        full, truth = self._synthetic()
        rows = np.searchsorted(full.dates, market.dates)
        if not np.array_equal(full.dates[rows], market.dates):
            raise ConfigError("MarketSource.truth: the market's dates are not rows of this synthetic market")
        return SyntheticTruth(expected_log_return=truth.expected_log_return[rows], vol=truth.vol[rows])

    def describe(self) -> str:
        if self.data_dir is not None:
            return f"{self.data_dir} ({self.start or 'first row'} .. {self.end or 'last row'})"
        return (f"synthetic(seed={self.synthetic_seed}, days={self.synthetic_days}, signal={self.signal}, "
                f"stocks={self.n_stocks}, crypto={self.n_crypto})")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["symbols"] = None if self.symbols is None else list(self.symbols)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MarketSource:
        d = dict(d)
        if d.get("symbols") is not None:
            d["symbols"] = tuple(d["symbols"])
        return cls(**d)
