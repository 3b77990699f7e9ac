"""Market sources: the synthetic market or a CSV folder, with overrides for newer data and another universe."""

from __future__ import annotations

import numpy as np
import pytest

from ndjax.data.market import DataError
from ndjax.data.source import MarketSource
from tests.helpers import OLD_WEEK, WEEK, days, write, yahoo


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


def test_all_symbols_leaves_out_a_file_without_a_bar_in_the_period(tmp_path, capsys):
    """`symbols` "all" takes the files with a bar in the days read and in the period; the others are named in one
    line on stderr (a file ending in 2018 used to stop the load with `no rows between start=... and end=...`)."""
    write(tmp_path / "AAA.csv", yahoo(WEEK))
    write(tmp_path / "BTC-USD.csv", yahoo(days("2024-07-01", 9)))
    write(tmp_path / "OLD.csv", yahoo(OLD_WEEK))
    market = MarketSource(data_dir=str(tmp_path), start="2024-01-01").load(symbols="all")
    assert market.symbols == ("AAA", "BTC-USD")
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "left out OLD" in notice[0] and "2024-01-01" in notice[0]
    src = MarketSource(data_dir=str(tmp_path))
    assert src.load(symbols="all").symbols == ("AAA", "BTC-USD", "OLD") and not capsys.readouterr().err
    assert src.load(symbols="all", period=("2024-07-06", None)).symbols == ("AAA", "BTC-USD")
    assert src.load(symbols="all", period=(None, "2018-12-31")).symbols == ("OLD",)
    assert "left out AAA, BTC-USD" in capsys.readouterr().err
    with pytest.raises(DataError, match="no file has a bar in 2019-01-01 .. 2019-12-31"):
        src.load(symbols="all", period=("2019-01-01", "2019-12-31"))
