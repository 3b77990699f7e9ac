"""Daily bars for the live-loop tests: random-walk OHLC histories on XNYS sessions (stocks) or every day (crypto),
put on the local Alpaca server with Alpaca's timestamps (a stock bar opens at midnight New York, a crypto bar at
midnight UTC)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ndjax.feeds.final import session_closes


def sessions(first: str, last: str) -> list[pd.Timestamp]:
    closes = session_closes(pd.Timestamp(last).date())
    days = closes.index[(closes.index >= pd.Timestamp(first)) & (closes.index <= pd.Timestamp(last))]
    return list(days)


def history(days: list[pd.Timestamp], crypto: bool, seed: int, price: float = 100.0) -> list[dict]:
    """Bars in Alpaca's JSON shape (`t, o, h, l, c, v`) on `days`, valid OHLC, prices near `price`."""
    rng = np.random.default_rng(seed)
    out, close = [], price
    for d in days:
        opened = (d.tz_localize("UTC") if crypto else d.tz_localize("America/New_York").tz_convert("UTC"))
        o = close * float(np.exp(rng.normal(0, 0.002)))
        close = o * float(np.exp(rng.normal(0.0005, 0.02)))
        h, lo = max(o, close) * (1 + abs(rng.normal(0, 0.005))), min(o, close) * (1 - abs(rng.normal(0, 0.005)))
        out.append({"t": opened.strftime("%Y-%m-%dT%H:%M:%SZ"), "o": round(o, 4), "h": round(h, 4),
                    "l": round(lo, 4), "c": round(close, 4), "v": float(rng.integers(1000, 100000))})
    return out


def closes_at(day: str) -> pd.Timestamp:
    """The XNYS close of session `day` (UTC)."""
    return session_closes(pd.Timestamp(day).date())[pd.Timestamp(day)]
