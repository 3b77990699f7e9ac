"""Walk-forward folds: contiguous tests, validation just before each, no fold seeing past its end."""

from __future__ import annotations

import json
from dataclasses import replace

import chex
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ndjax.data.loading import listed_symbols
from ndjax.data.market import DataError
from ndjax.data.source import MarketSource
from ndjax.policy import PolicyConfig
from ndjax.runs.folder import load_run
from ndjax.runs.folds import (choose_by_validation, drawdown_target, evaluate_ensemble, fold_spec, fold_universe,
                              make_folds, run_fold, validation_sortino)
from ndjax.runs.job import JobSpec, prepare_run, start_run
from ndjax.train.config import TrainConfig


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


def test_yearly_tests_start_where_a_fold_can_train():
    from ndjax.runs.folds import yearly_tests

    dates = np.arange(np.datetime64("2020-01-02"), np.datetime64("2026-03-10"))
    assert yearly_tests(dates, 2005) == [f"{y}-01-01" for y in range(2022, 2027)]  # 2021: 180 + 250 days do not fit
    assert yearly_tests(dates, 2024) == ["2024-01-01", "2025-01-01", "2026-01-01"]
    with pytest.raises(DataError, match="no test year from 2027"):
        yearly_tests(dates, 2027)


def test_drawdown_target():
    assert drawdown_target(0.30, 0.24) == (0.24, False)  # max(buy and hold's, 20 %)
    assert drawdown_target(0.24, 0.24) == (0.24, True)
    assert drawdown_target(0.19, 0.10) == (0.20, True)
    assert drawdown_target(0.21, 0.10) == (0.20, False)


def test_nested_validation_reads_the_best_checkpoint_s_validation_sortino(run_dir):
    """The figure γ is chosen by is the validation Sortino logged at the step of the run's best score; the choice
    is the highest figure, NaN never wins, ties go to the first value, all-NaN is a named error."""
    log = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    best = max(log, key=lambda r: r["val"]["score"])
    assert validation_sortino(load_run(run_dir).checkpoint_meta) == pytest.approx(best["val"]["sortino"], rel=1e-6)
    assert choose_by_validation({1.0: 0.3, 3.0: 0.9, 10.0: float("nan")}) == 3.0
    assert choose_by_validation({1.0: float("nan"), 3.0: -0.2, 10.0: -0.2}) == 3.0
    with pytest.raises(DataError, match="no run recorded a validation Sortino"):
        choose_by_validation({1.0: float("nan")})


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
    chosen = JobSpec(source=MarketSource(data_dir=str(tmp_path), symbols=("NEW", "OLD", "GHOST")))
    assert [fold_universe(chosen, f) for f in folds] == [("OLD", "GHOST"), ("NEW", "OLD", "GHOST")]
    with pytest.raises(DataError, match="GHOST"):  # a name with no file is the loader's to refuse, by name
        prepare_run(fold_spec(chosen, folds[1]))
    only_new = JobSpec(source=MarketSource(data_dir=str(tmp_path), symbols=("NEW",)))
    with pytest.raises(DataError, match="fold 2023: none of the symbols NEW .* on or before 2022-12-31"):
        fold_universe(only_new, folds[0])
    (tmp_path / "BAD.csv").write_text("when,close\n2021-01-01,3\n")
    with pytest.raises(DataError, match="BAD.csv: missing date column"):
        listed_symbols(tmp_path, "2022-12-31")


def _write_folder(path, rng_seed: int, poison_after: str | None = None):
    """Two stocks (XNYS sessions) and BTC-USD (every day), 2019-01-01 .. 2022-12-31; with `poison_after`, every
    bar after that date is replaced by a wild one (x0.3 .. x3: inside the loader's x20 one-bar bound)."""
    from ndjax.data.calendar import is_xnys_session
    from tests.helpers import write, yahoo

    rng = np.random.default_rng(rng_seed)
    path.mkdir(parents=True, exist_ok=True)
    every = np.arange(np.datetime64("2019-01-01"), np.datetime64("2023-01-01"))
    sessions = every[is_xnys_session(every)]
    for name, dates in (("AAA", sessions), ("BBB", sessions), ("BTC-USD", every)):
        px = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, dates.size)))
        if poison_after is not None:
            late = dates > np.datetime64(poison_after)
            px = np.where(late, px * np.random.default_rng(rng_seed + 1).uniform(0.3, 3.0, dates.size), px)
        write(path / f"{name}.csv", yahoo([str(d) for d in dates], [round(float(p), 4) for p in px]))


@settings(max_examples=5, deadline=None)
@given(first=st.sampled_from(["2020-07-01", "2021-01-01", "2021-04-01"]), step=st.integers(60, 300),
       val_days=st.integers(30, 120), seed=st.integers(0, 100))
def test_no_fold_reads_a_bar_after_its_test(tmp_path_factory, first, step, val_days, seed):
    """Training, validation and normalisation of every fold are the same whatever the bars after its test are."""
    root = tmp_path_factory.mktemp("wf")
    _write_folder(root / "clean", seed)
    tests = [str(np.datetime64(first) + k * step) for k in range(3)]
    folds = make_folds(np.arange(np.datetime64("2019-01-01"), np.datetime64("2023-01-01")), tests, val_days)
    train = TrainConfig(window=8, steps=2, eval_every=1, policy=PolicyConfig(lookback=4))
    for k, fold in enumerate(folds[:-1]):
        _write_folder(root / f"poisoned{k}", seed, poison_after=fold.test_end)
        prepared = []
        for folder in ("clean", f"poisoned{k}"):
            spec = JobSpec(source=MarketSource(data_dir=str(root / folder)), train=train)
            prepared.append(start_run(fold_spec(spec, fold), root / f"run{k}{folder}"))
        clean, poisoned = prepared
        dates = clean.market.dates
        assert dates[-1] <= np.datetime64(fold.test_end) < np.datetime64(folds[k + 1].test_start)
        assert dates[clean.train_rows - 1] <= np.datetime64(fold.train_end) < dates[clean.train_rows]
        assert dates[clean.val_rows - 1] <= np.datetime64(fold.val_end) < dates[clean.val_rows]
        np.testing.assert_array_equal(clean.config.normalizer.mean, poisoned.config.normalizer.mean)
        np.testing.assert_array_equal(clean.config.normalizer.std, poisoned.config.normalizer.std)
        for field in ("features", "close", "high", "low", "tradable"):
            np.testing.assert_array_equal(np.asarray(getattr(clean.arrays, field)),
                                          np.asarray(getattr(poisoned.arrays, field)))
        assert (clean.config.split, clean.config.symbols) == (poisoned.config.split, poisoned.config.symbols)


def test_a_fold_s_seed_ensemble_is_tested_like_one_run(tmp_path):
    """`evaluate_ensemble` of one run reproduces that run's own test (policy and baselines); of two seeds, the
    baselines are the same and the policy's path is another, finite one."""
    _write_folder(tmp_path / "data", 3)
    fold = make_folds(np.arange(np.datetime64("2019-01-01"), np.datetime64("2023-01-01")), ["2022-01-01"], 60)[0]
    spec = JobSpec(source=MarketSource(data_dir=str(tmp_path / "data")),
                   train=TrainConfig(window=8, steps=2, eval_every=1,
                                     policy=PolicyConfig(lookback=4, features="regime_vol", book_vol_target=0.15)))
    runs = [run_fold(replace(spec, seed=s), fold, tmp_path / f"seed-{s}", rows=False, progress=False) for s in (0, 1)]
    stats, paths, dates = evaluate_ensemble(spec, fold, [runs[0].run_dir])
    np.testing.assert_array_equal(dates, runs[0].dates)
    for name in ("policy", "buy_and_hold", "trend", "inverse_vol"):
        chex.assert_trees_all_close(paths[name], runs[0].paths[name], rtol=1e-6)
    both, paths2, _ = evaluate_ensemble(spec, fold, [r.run_dir for r in runs])
    chex.assert_trees_all_close(paths2["buy_and_hold"], paths["buy_and_hold"])
    chex.assert_tree_all_finite(paths2["policy"])
    assert float(both["policy"].total_return) != float(stats["policy"].total_return)
