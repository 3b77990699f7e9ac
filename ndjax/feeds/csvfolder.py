"""A folder of daily CSVs as a bar feed (replays and tests): any file `ndjax.data.loading.load_daily` reads, one
per symbol. A file it refuses is a `FeedError` naming the symbol."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ndjax.data.loading import load_daily
from ndjax.data.market import DataError
from ndjax.feeds.bars import PRICES, BarFeed, FeedError, empty_bars


class CsvFolderFeed(BarFeed):
    """Bars from `folder/SYMBOL.csv`; every bar counts as already published (finality is the updater's)."""

    name = "csv"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def bars(self, symbol: str, is_crypto: bool, first: date, last: date) -> pd.DataFrame:
        path = self.folder / f"{symbol}.csv"
        if not path.is_file():
            raise FeedError(f"{symbol}: the source folder {self.folder} has no {path.name}")
        try:
            market = load_daily(path, asset_classes={symbol: "crypto" if is_crypto else "stock"})
        except DataError as e:
            raise FeedError(f"{symbol}: {e}") from None
        days = market.dates
        keep = (days >= np.datetime64(first, "D")) & (days <= np.datetime64(last, "D"))
        keep &= market.tradable[:, 0].astype(bool)
        if not keep.any():
            return empty_bars()
        opened = pd.DatetimeIndex(days[keep]).tz_localize("UTC" if is_crypto else "America/New_York")
        return pd.DataFrame({"date": days[keep], "opened": opened.tz_convert("UTC"),
                             **{c: getattr(market, c)[keep, 0] for c in (*PRICES, "volume")}})
