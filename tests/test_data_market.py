"""The market container: alignment on the union calendar, marking of closed days, slicing and selection."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ndjax.data.loading import load_daily
from ndjax.data.market import DataError, MarketData
from tests.helpers import WEEK, days, write, yahoo

# ----------------------------------------------------------------------------- alignment


@pytest.fixture
def mixed(tmp_path: Path) -> MarketData:
    write(tmp_path / "AAA.csv", yahoo(WEEK))
    write(tmp_path / "BTC-USD.csv", yahoo(days("2024-07-01", 9), [50.0 + i for i in range(9)]))
    return load_daily(tmp_path)


def test_mixed_calendar_weekend_and_holiday(mixed: MarketData) -> None:
    m = mixed
    np.testing.assert_array_equal(m.dates, np.asarray(days("2024-07-01", 9), dtype="datetime64[D]"))
    assert m.periods_per_year == 365 and m.is_crypto.tolist() == [False, True]
    # Jul 1-9 2024: Mon Tue Wed Thu(holiday) Fri Sat Sun Mon Tue
    np.testing.assert_array_equal(m.tradable[:, 0], [1, 1, 1, 0, 1, 0, 0, 1, 1])
    np.testing.assert_array_equal(m.tradable[:, 1], 1)
    np.testing.assert_array_equal(m.days_elapsed, 1)
    # stock marks carried forward over the holiday and the weekend, with flat bars and no volume
    np.testing.assert_allclose(m.close[:, 0], [100, 101, 102, 102, 103, 103, 103, 104, 105])
    for k in ("open", "high", "low"):
        np.testing.assert_allclose(getattr(m, k)[[3, 5, 6], 0], [102, 103, 103])
    np.testing.assert_array_equal(m.volume[[3, 5, 6], 0], 0)
    np.testing.assert_array_equal(m.next_session_days, [1, 1, 2, 1, 3, 2, 1, 1, 1])
    np.testing.assert_array_equal(m.stock_tradable_next, [1, 1, 0, 1, 0, 0, 1, 1, 1])


def test_stock_only_calendar(tmp_path: Path) -> None:
    write(tmp_path / "AAA.csv", yahoo(["2024-07-11", "2024-07-12", "2024-07-15", "2024-07-16"]))
    m = load_daily(tmp_path)
    np.testing.assert_array_equal(m.days_elapsed, [1, 1, 3, 1])
    np.testing.assert_array_equal(m.next_session_days, [1, 3, 1, 1])
    np.testing.assert_array_equal(m.stock_tradable_next, 1)
    np.testing.assert_array_equal(m.tradable, 1)
    assert m.periods_per_year == 252


def test_late_listing_and_early_end(tmp_path: Path) -> None:
    write(tmp_path / "AAA.csv", yahoo(WEEK))
    write(tmp_path / "NEW.csv", yahoo(WEEK[2:], [7.0, 8.0, 9.0, 10.0]))
    write(tmp_path / "OLD.csv", yahoo(WEEK[:4], [1.0, 2.0, 3.0, 4.0]))
    m = load_daily(tmp_path)
    np.testing.assert_array_equal(m.tradable[:, 1], [0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(m.close[:, 1], [7, 7, 7, 8, 9, 10])
    np.testing.assert_allclose(m.high[:2, 1], 7)
    np.testing.assert_array_equal(m.tradable[:, 2], [1, 1, 1, 1, 0, 0])
    np.testing.assert_allclose(m.close[:, 2], [1, 2, 3, 4, 4, 4])


def test_start_end_and_prior_close_mark(tmp_path: Path) -> None:
    write(tmp_path / "AAA.csv", yahoo(WEEK))
    write(tmp_path / "BBB.csv", yahoo(["2024-07-01", "2024-07-02", "2024-07-08", "2024-07-09"], [5.0, 6.0, 7.0, 8.0]))
    m = load_daily(tmp_path, start="2024-07-03", end="2024-07-08")
    np.testing.assert_array_equal(m.dates, np.asarray(WEEK[2:5], dtype="datetime64[D]"))
    np.testing.assert_array_equal(m.tradable[:, 1], [0, 0, 1])
    np.testing.assert_allclose(m.close[:, 1], [6, 6, 7])  # last close before start, not a back-fill
    assert m.days_elapsed[0] == 1


def test_asset_classes_override_suffix_rule(tmp_path: Path) -> None:
    write(tmp_path / "BTCUSD.csv", yahoo(WEEK))
    write(tmp_path / "FOO.csv", yahoo(WEEK))
    assert load_daily(tmp_path).is_crypto.tolist() == [True, False]
    m = load_daily(tmp_path, asset_classes={"BTCUSD": "stock", "FOO": True})
    assert m.is_crypto.tolist() == [False, True]
    m = load_daily(tmp_path, asset_classes={"BTCUSD": "stock"})
    assert m.is_crypto.tolist() == [False, False] and m.periods_per_year == 252
    with pytest.raises(DataError, match="expected 'crypto' or 'stock'"):
        load_daily(tmp_path, asset_classes={"FOO": "bond"})


def test_symbols_order_and_list_of_paths(tmp_path: Path) -> None:
    a = write(tmp_path / "AAA.csv", yahoo(WEEK))
    b = write(tmp_path / "BBB.csv", yahoo(WEEK, [1.0] * 6))
    assert load_daily(tmp_path, symbols=["BBB", "AAA"]).symbols == ("BBB", "AAA")
    assert load_daily([b, a]).symbols == ("BBB", "AAA")


# ----------------------------------------------------------------------------- MarketData methods


def test_bars_shapes_and_dtype(mixed: MarketData) -> None:
    import jax.numpy as jnp

    b = mixed.bars()
    assert b.close.shape == (9, 2) and b.days_elapsed.shape == (9,) and b.close.dtype == jnp.float32
    assert b.open is not None and b.volume is not None
    np.testing.assert_allclose(np.asarray(b.tradable), mixed.tradable)
    assert mixed.bars(jnp.float16).close.dtype == jnp.float16


def test_arrays_are_read_only(mixed: MarketData) -> None:
    with pytest.raises(ValueError):
        mixed.close[0, 0] = 1.0


def test_select_matches_loading_subset(tmp_path: Path, mixed: MarketData) -> None:
    s = mixed.select(["AAA"])
    direct = load_daily(tmp_path / "AAA.csv")
    np.testing.assert_array_equal(s.dates, direct.dates)
    np.testing.assert_array_equal(s.days_elapsed, [1, 1, 1, 2, 3, 1])
    np.testing.assert_array_equal(s.stock_tradable_next, 1)
    np.testing.assert_allclose(s.close, direct.close)
    assert s.periods_per_year == 252 and s.n_assets == 1
    assert mixed.select(["BTC-USD", "AAA"]).symbols == ("BTC-USD", "AAA")
    with pytest.raises(DataError, match="NOPE"):
        mixed.select(["NOPE"])


def test_slice_dates_and_getitem(mixed: MarketData) -> None:
    s = mixed.slice_dates("2024-07-04", "2024-07-06")
    np.testing.assert_array_equal(s.dates, np.asarray(days("2024-07-04", 3), dtype="datetime64[D]"))
    assert s.n_days == 3 and s.n_assets == 2
    r = mixed[2:5]
    np.testing.assert_array_equal(r.dates, mixed.dates[2:5])
    np.testing.assert_array_equal(r.stock_tradable_next, mixed.stock_tradable_next[2:5])
    with pytest.raises(TypeError):
        mixed[3]  # type: ignore[index]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sets(st.integers(0, 40), min_size=2, max_size=30), min_size=1, max_size=4), st.data())
def test_alignment_invariants(day_sets: list[set[int]], data: st.DataObject) -> None:
    """Union calendar, tradable exactly on file days, marks = last close (first close before listing)."""
    base = np.datetime64("2024-01-01")
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        closes = []
        for k, ds in enumerate(day_sets):
            d = sorted(ds)
            c = data.draw(st.lists(st.floats(1, 1000), min_size=len(d), max_size=len(d)))
            closes.append(dict(zip(d, c)))
            files.append(write(Path(tmp) / f"S{k}-USD.csv", yahoo([str(base + i) for i in d], c)))  # any day
        m = load_daily(files, max_move=1e4)  # closes drawn from 1..1000 in any order
    union = sorted(set().union(*day_sets))
    np.testing.assert_array_equal(m.dates, base + np.asarray(union))
    assert m.days_elapsed[0] == 1 and m.days_elapsed.sum() == union[-1] - union[0] + 1
    for j, cl in enumerate(closes):
        first = min(cl)
        for i, day in enumerate(union):
            assert m.tradable[i, j] == (day in cl)
            last = max((x for x in cl if x <= day), default=first)
            assert m.close[i, j] == cl[last]
            if day not in cl:
                assert m.open[i, j] == m.high[i, j] == m.low[i, j] == cl[last] and m.volume[i, j] == 0
