"""Market sources: the synthetic market or a CSV folder, with overrides for newer data and another universe."""

from __future__ import annotations

import numpy as np

from ndjax.data.source import MarketSource
from tests.helpers import WEEK, days, write, yahoo


def test_synthetic_source_round_trips_and_slices():
    src = MarketSource(synthetic_days=60, n_stocks=1, n_crypto=1, signal=0.1)
    assert MarketSource.from_dict(src.to_dict()) == src and src.synthetic
    full = src.load()
    assert full.n_days == 60 and full.symbols == ("STK0", "CRY0-USD")
    cut = src.load(end=str(full.dates[29]))
    assert cut.n_days == 30 and np.array_equal(cut.close, full.close[:30])


def test_folder_source_with_overrides(tmp_path):
    write(tmp_path / "AAA.csv", yahoo(WEEK))
    write(tmp_path / "BTC-USD.csv", yahoo(days("2024-07-01", 9)))
    src = MarketSource(data_dir=str(tmp_path), symbols=("AAA",))
    assert src.load().symbols == ("AAA",)
    assert src.load(symbols=["BTC-USD"]).symbols == ("BTC-USD",)
    assert src.load(end="2024-07-03").n_days == 3
    assert MarketSource.from_dict(src.to_dict()) == src
