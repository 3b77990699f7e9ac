"""A feed's daily bars: the frame every feed returns, the checks a bar must pass before it is written, and the
`BarFeed` interface.

A bar frame has one row per bar, oldest first: `date` (the bar's day, `datetime64[D]`: the session for a stock, the
UTC day for crypto), `opened` (when the bar's period began, UTC), `open, high, low, close, volume`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date

import numpy as np
import pandas as pd

from ndjax.assets import CRYPTO_QUOTES
from ndjax.data.calendar import is_xnys_session
from ndjax.data.plausible import MAX_MOVE, implausible_moves, move_problem
from ndjax.errors import NdjaxError

PRICES = ("open", "high", "low", "close")
COLUMNS = ("date", *PRICES, "volume")
"""The columns of a CSV that `fetch` writes (and `ndjax.data.loading.load_daily` reads)."""


class FeedError(NdjaxError):
    """A feed that cannot be reached or answers with bars that cannot be written; the message names the symbol
    (and the date of a bad bar)."""


def alpaca_pair(symbol: str) -> str:
    """`BTC-USD` / `BTCUSD` / `ETH-USDT` -> `BTC/USD` / `ETH/USDT`: Alpaca's name of a crypto pair (orders, data)."""
    s = symbol.upper().replace("-", "").replace("/", "")
    for quote in CRYPTO_QUOTES:  # the asset classes' quotes: a pair here is crypto in the loader
        if s.endswith(quote) and len(s) > len(quote):
            return f"{s[: -len(quote)]}/{quote}"
    raise FeedError(f"cannot map crypto symbol {symbol!r} to a pair")


def empty_bars() -> pd.DataFrame:
    """A bar frame with no rows."""
    return pd.DataFrame({"date": np.array([], "datetime64[D]"), "opened": pd.to_datetime([], utc=True),
                         **{c: np.array([], np.float64) for c in (*PRICES, "volume")}})


def check_bars(symbol: str, bars: pd.DataFrame, *, stock: bool = False, max_move: float = MAX_MOVE) -> None:
    """Raise `FeedError` naming `symbol` and the date of the first bad bar of `bars` (a bar frame): a price or
    volume that is NaN or infinite, a price that is zero or negative, a negative volume, high < low, open or close
    outside [low, high], a date seen twice, dates out of order, and the loader's own rules (so the fetch never
    writes a bar `load_daily` refuses): a `stock` bar on a day that is not an XNYS session, and a one-bar move
    beyond `max_move` (`data.plausible`)."""
    days = bars["date"].to_numpy().astype("datetime64[D]")
    values = {c: bars[c].to_numpy(np.float64) for c in (*PRICES, "volume")}
    o, h, lo, c = (values[k] for k in PRICES)
    closed = ~is_xnys_session(days) if stock else np.zeros(len(days), bool)
    jumps = dict(implausible_moves(np.arange(len(days)), o, c, max_move)) if len(days) > 1 else {}
    for i in range(len(bars)):
        problems = [f"{k} is {values[k][i]}" for k in values if not np.isfinite(values[k][i])]
        problems += [f"{k} is {values[k][i]:g}, not positive" for k in PRICES if values[k][i] <= 0]
        if values["volume"][i] < 0:
            problems.append(f"volume is {values['volume'][i]:g}, negative")
        if not problems:
            if h[i] < lo[i]:
                problems.append(f"high {h[i]:g} < low {lo[i]:g}")
            problems += [f"{k} {v:g} outside [low {lo[i]:g}, high {h[i]:g}]" for k, v in (("open", o[i]),
                         ("close", c[i])) if not lo[i] <= v <= h[i]]
        if i and days[i] == days[i - 1]:
            problems.append("the same date as the bar before (duplicated)")
        elif i and days[i] < days[i - 1]:
            problems.append(f"out of order (after {days[i - 1]})")
        if closed[i]:
            problems.append("not an XNYS session (a stock bar on a day the market was closed)")
        if i in jumps:
            problems.append(move_problem(i, jumps[i], days, o, c, max_move))
        if problems:
            raise FeedError(f"{symbol} {days[i]}: bad bar refused ({'; '.join(problems)}); nothing written for "
                            f"{symbol}")


class BarFeed(ABC):
    """A source of daily bars."""

    name: str

    @abstractmethod
    def bars(self, symbol: str, is_crypto: bool, first: date, last: date) -> pd.DataFrame:
        """The bars of `symbol` dated `first`..`last` (inclusive) as the source holds them now, the current
        (unfinished) bar included if the source has one: a bar frame, not checked. Raises `FeedError` naming the
        symbol when the source cannot be read."""
