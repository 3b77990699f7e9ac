"""Walk-forward folds: contiguous tests, validation just before each, no fold seeing past its end."""

from __future__ import annotations

import numpy as np
import pytest

from ndjax.data.market import DataError
from ndjax.runs.folds import drawdown_target, make_folds


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
