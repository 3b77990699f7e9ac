"""Walk-forward folds: contiguous tests, validation just before each, no fold seeing past its end."""

from __future__ import annotations

import numpy as np
import pytest

from ndjax.data.loading import listed_symbols
from ndjax.data.market import DataError
from ndjax.data.source import MarketSource
from ndjax.runs.folds import drawdown_target, fold_universe, make_folds
from ndjax.runs.job import JobSpec


def test_folds_are_contiguous_and_causal():
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2026-03-19"))
    folds = make_folds(dates, ["2023-01-01", "2022-01-01", "2025-01-01", "2024-01-01"], val_days=180)
    assert [f.name for f in folds] == ["2022", "2023", "2024", "2025-01-01 .. 2026-03-18"]
    for f, g in zip(folds, folds[1:]):
        assert np.datetime64(f.test_end) + 1 == np.datetime64(g.test_start)
    for f in folds:
        assert f.train_end < f.val_end < f.test_start <= f.test_end
        assert np.datetime64(f.test_start) - np.datetime64(f.val_end) == 1
        assert np.datetime64(f.val_end) - np.datetime64(f.train_end) == 180
    with pytest.raises(DataError, match="fewer than 250 days"):
        make_folds(dates, ["2020-06-01"], val_days=60)
    with pytest.raises(DataError, match="no test rows"):
        make_folds(dates, ["2027-01-01"])


def test_drawdown_target():
    assert drawdown_target(0.30, 0.24) == (pytest.approx(0.36), True)
    assert drawdown_target(0.26, 0.10) == (0.25, False)


def test_a_fold_trades_only_what_was_listed_before_its_test(tmp_path):
    """A symbol whose first bar comes after a fold's validation is not in that fold's universe."""
    for name, first in (("OLD", "2020-01-02"), ("NEW", "2023-03-01"), ("BTC-USD", "2021-05-01")):
        days = np.arange(np.datetime64(first), np.datetime64("2024-12-31"), 7)
        px = np.linspace(10, 20, days.size)
        rows = "\n".join(f"{d},{p},{p * 1.01},{p * 0.99},{p},100" for d, p in zip(days, px))
        (tmp_path / f"{name}.csv").write_text("Date,Open,High,Low,Close,Volume\n" + rows + "\n")
    assert listed_symbols(tmp_path, "2022-12-31") == ["BTC-USD", "OLD"]
    assert listed_symbols(tmp_path, "2023-03-01") == ["BTC-USD", "NEW", "OLD"]
    spec = JobSpec(source=MarketSource(data_dir=str(tmp_path)))
    folds = make_folds(np.arange(np.datetime64("2020-01-02"), np.datetime64("2024-12-31")),
                       ["2023-01-01", "2024-01-01"])
    assert [fold_universe(spec, f) for f in folds] == [("BTC-USD", "OLD"), ("BTC-USD", "NEW", "OLD")]
    chosen = JobSpec(source=MarketSource(data_dir=str(tmp_path), symbols=("NEW",)))
    assert fold_universe(chosen, folds[0]) == ("NEW",)
    (tmp_path / "BAD.csv").write_text("when,close\n2021-01-01,3\n")
    with pytest.raises(DataError, match="BAD.csv: missing date column"):
        listed_symbols(tmp_path, "2022-12-31")
