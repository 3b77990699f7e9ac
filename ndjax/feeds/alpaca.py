"""Alpaca's market data through alpaca-py: `StockHistoricalDataClient.get_stock_bars` and
`CryptoHistoricalDataClient.get_crypto_bars` with `TimeFrame.Day`.

Keys come from `APCA_API_KEY_ID` / `APCA_API_SECRET_KEY` (stock data needs them; crypto data does not) and are
sent only in request headers: no message of this module contains them. `APCA_API_DATA_URL` (or `url`) replaces
the data base URL, as alpaca-py's `url_override`, so a local server can stand in. A 429 or 5xx answer is retried
with doubling waits (`retry_wait`, `2 retry_wait`, ... at most `MAX_WAIT` seconds, `retries` times); other HTTP
errors and network failures raise `FeedError` naming the symbol.

Defaults: `feed="sip"`: the consolidated tape, whose daily bars carry the official close and the full volume (the
free IEX feed holds one exchange's trades, a few percent of the volume, and its last trade is not the close).
Alpaca's free plan refuses only the latest 15 minutes of SIP data, and bars are read after the close plus the
settle delay (30 minutes); on a plan that refuses SIP anyway (HTTP 403) use `feed="iex"`. `adjustment="all"`:
prices adjusted for splits and dividends, so a split is not a crash and a return includes its dividend, as the
training data's adjusted closes do; each split or dividend then changes the history before it, which the updater
detects and rewrites. Stock bars are dated by their New York day, crypto bars by their UTC opening day.

Written from alpaca-py's source and tried against a local server with its response shapes, never against Alpaca.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from ndjax.feeds.bars import PRICES, BarFeed, FeedError, alpaca_pair, empty_bars

FEEDS = ("sip", "iex", "delayed_sip")
ADJUSTMENTS = ("all", "split", "dividend", "raw")
RETRIED = (429, 500, 502, 503, 504)
MAX_WAIT = 30.0
"""Seconds: the longest single wait between retries."""


class AlpacaFeed(BarFeed):
    """Daily bars from Alpaca's market data API."""

    name = "alpaca"

    def __init__(self, *, feed: str = "sip", adjustment: str = "all", url: str | None = None,
                 key: str | None = None, secret: str | None = None, retries: int = 5, retry_wait: float = 1.0,
                 timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep):
        if feed not in FEEDS or adjustment not in ADJUSTMENTS:
            raise FeedError(f"alpaca feed: feed must be one of {FEEDS} and adjustment one of {ADJUSTMENTS}, got "
                            f"{feed!r} and {adjustment!r}")
        try:
            import alpaca  # noqa: F401
        except ImportError:
            raise FeedError('alpaca feed: alpaca-py is not installed; pip install -e ".[alpaca]"') from None
        self.feed, self.adjustment = feed, adjustment
        self.url = url or os.environ.get("APCA_API_DATA_URL") or None
        self.key = key or os.environ.get("APCA_API_KEY_ID")
        self.secret = secret or os.environ.get("APCA_API_SECRET_KEY")
        self.retries, self.retry_wait, self.timeout, self.sleep = int(retries), float(retry_wait), timeout, sleep

    @functools.cached_property
    def _stocks(self):
        from alpaca.data.historical import StockHistoricalDataClient

        if not self.key or not self.secret:
            raise FeedError("alpaca feed: stock data needs APCA_API_KEY_ID and APCA_API_SECRET_KEY (crypto does not)")
        return self._quiet(StockHistoricalDataClient(self.key, self.secret, url_override=self.url))

    @functools.cached_property
    def _crypto(self):
        from alpaca.data.historical import CryptoHistoricalDataClient

        return self._quiet(CryptoHistoricalDataClient(self.key, self.secret, url_override=self.url))

    def _quiet(self, client):
        """alpaca-py retries 429s itself with fixed waits and sets no timeout: retries are ours, a hung request
        ends after `timeout` seconds."""
        client._retry = 0
        session = client._session
        session.request = functools.partial(session.request, timeout=self.timeout)
        return client

    def bars(self, symbol: str, is_crypto: bool, first: date, last: date) -> pd.DataFrame:
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        start = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(days=1)
        end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=2)
        if is_crypto:
            try:
                name = alpaca_pair(symbol)
            except ValueError as e:
                raise FeedError(f"{symbol}: {e}") from None
            request = CryptoBarsRequest(symbol_or_symbols=name, timeframe=TimeFrame.Day, start=start, end=end)
            answer = self._call(symbol, lambda: self._crypto.get_crypto_bars(request))
        else:
            name = symbol
            request = StockBarsRequest(symbol_or_symbols=name, timeframe=TimeFrame.Day, start=start, end=end,
                                       adjustment=Adjustment(self.adjustment), feed=DataFeed(self.feed))
            answer = self._call(symbol, lambda: self._stocks.get_stock_bars(request))
        found = answer.data.get(name, [])
        if not found:
            return empty_bars()
        opened = pd.DatetimeIndex([b.timestamp for b in found]).tz_convert("UTC")
        local = opened if is_crypto else opened.tz_convert("America/New_York")
        frame = pd.DataFrame({"date": local.tz_localize(None).normalize().to_numpy().astype("datetime64[D]"),
                              "opened": opened, **{c: [float(getattr(b, c)) for b in found] for c in PRICES},
                              "volume": [float(b.volume) for b in found]})
        days = frame["date"].to_numpy()
        return frame[(days >= np.datetime64(first, "D")) & (days <= np.datetime64(last, "D"))].reset_index(drop=True)

    def _call(self, symbol: str, fn: Callable):
        from alpaca.common.exceptions import APIError

        for attempt in range(self.retries + 1):
            try:
                return fn()
            except APIError as e:
                code = e.status_code
                if code not in RETRIED or attempt == self.retries:
                    hint = " (the plan may not include SIP data: try --feed iex)" if code == 403 else ""
                    raise FeedError(f"{symbol}: Alpaca data answered HTTP {code} after {attempt + 1} attempt(s): "
                                    f"{' '.join(str(e).split())[:200]}{hint}") from None
            except FeedError:
                raise
            except ValueError as e:  # not JSON, or bars alpaca-py's models refuse (a null price)
                raise FeedError(f"{symbol}: Alpaca data answered with bars that cannot be read "
                                f"({type(e).__name__}); nothing written for {symbol}") from None
            except OSError as e:  # requests' ConnectionError, Timeout
                raise FeedError(f"{symbol}: could not reach Alpaca data ({type(e).__name__}); files left as they "
                                "were") from None
            self.sleep(min(MAX_WAIT, self.retry_wait * 2**attempt))
        raise AssertionError("unreachable")
