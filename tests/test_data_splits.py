"""Date splits: train/validation/test by date and by row, walk-forward folds."""

from __future__ import annotations

from pathlib import Path

import pytest

from ndjax.data.loading import load_daily
from ndjax.data.market import DataError, MarketData
from ndjax.data.splits import split, split_rows, walk_forward
from tests.helpers import WEEK, D, days, write, yahoo


@pytest.fixture
def mixed(tmp_path: Path) -> MarketData:
    write(tmp_path / "AAA.csv", yahoo(WEEK))
    write(tmp_path / "BTC-USD.csv", yahoo(days("2024-07-01", 9), [50.0 + i for i in range(9)]))
    return load_daily(tmp_path)


def test_split_boundaries(mixed: MarketData) -> None:
    train, val, test = split(mixed, "2024-07-03", "2024-07-06")
    assert train.dates[-1] == D("2024-07-03") and val.dates[0] == D("2024-07-04")
    assert val.dates[-1] == D("2024-07-06") and test.dates[0] == D("2024-07-07")
    assert train.n_days + val.n_days + test.n_days == mixed.n_days
    _, _, empty = split(mixed, "2024-07-03", "2024-07-09")
    assert empty.n_days == 0


def test_walk_forward_boundaries(mixed: MarketData) -> None:
    folds = list(walk_forward(mixed, train_days=4, test_days=2, step_days=2))
    assert len(folds) == 2
    for k, (tr, te) in enumerate(folds):
        assert tr.n_days == 4 and te.n_days == 2
        assert tr.dates[0] == mixed.dates[2 * k]
        assert te.dates[0] == tr.dates[-1] + 1
    assert folds[-1][1].dates[-1] == mixed.dates[7]


def test_split_rows_defaults_and_errors(mixed: MarketData) -> None:
    assert split_rows(mixed) == (int(9 * 0.6), int(9 * 0.8))
    assert split_rows(mixed, "2024-07-03", "2024-07-06") == (3, 6)
    with pytest.raises(DataError, match="date split.*2024-07-09"):
        split_rows(mixed, "2024-07-08", "2024-07-09")  # no test rows left
    with pytest.raises(DataError, match="val_end"):
        split(mixed, "2024-07-05", "2024-07-02")
