"""Tests for ndjax.data: formats, validation, alignment, splits and sampling."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ndjax.data.loading import load_daily
from ndjax.data.market import DataError, MarketData
from ndjax.data.splits import split, walk_forward

D = np.datetime64


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.write_bytes(text.strip("\n").replace("\n", newline).encode() + newline.encode())
    return path


def yahoo(dates: list[str], closes: list[float] | None = None, header: str = "Date,Open,High,Low,Close,Volume") -> str:
    """Yahoo-style CSV text with valid bars (open = close, high/low +-1%)."""
    closes = closes or [100.0 + i for i in range(len(dates))]
    cols = [c.strip().lower() for c in header.split(",")]
    lines = [header]
    for d, c in zip(dates, closes):
        vals = {"date": d, "open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "adj close": c, "volume": 1000}
        lines.append(",".join(str(vals[k]) for k in cols))
    return "\n".join(lines)


def days(start: str, n: int) -> list[str]:
    return [str(D(start) + i) for i in range(n)]


WEEK = ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08", "2024-07-09"]  # XNYS, 07-04 holiday


# ----------------------------------------------------------------------------- formats


def test_yahoo_standard_with_adj_close(tmp_path: Path) -> None:
    f = write(tmp_path / "AAA.csv", yahoo(WEEK, header="Date,Open,High,Low,Close,Adj Close,Volume"))
    m = load_daily(f)
    assert m.symbols == ("AAA",)
    assert m.dates.dtype == np.dtype("datetime64[D]")
    np.testing.assert_array_equal(m.dates, np.asarray(WEEK, dtype="datetime64[D]"))
    np.testing.assert_allclose(m.close[:, 0], [100, 101, 102, 103, 104, 105])
    np.testing.assert_allclose(m.volume[:, 0], 1000)
    assert m.tradable.shape == (6, 1) and m.tradable.dtype == np.float64
    assert m.periods_per_year == 252 and not m.is_crypto[0]


def test_yahoo_any_column_order_and_case(tmp_path: Path) -> None:
    write(tmp_path / "AAA.csv", yahoo(WEEK, header="Date,close,high,low,open,volume"))
    write(tmp_path / "BBB.csv", yahoo(WEEK, header="VOLUME,LOW,HIGH,CLOSE,OPEN,DATE"))
    m = load_daily(tmp_path)
    assert m.symbols == ("AAA", "BBB")
    np.testing.assert_allclose(m.close[:, 0], m.close[:, 1])
    np.testing.assert_allclose(m.high[:, 1], np.arange(100, 106) * 1.01)
    np.testing.assert_allclose(m.low[:, 0], np.arange(100, 106) * 0.99)


def test_timestamp_iso_with_and_without_tz(tmp_path: Path) -> None:
    text = """timestamp,open,high,low,close,volume
2024-01-01T00:00:00Z,10,11,9,10,5
2024-01-02T00:00:00+00:00,10,11,9,10.5,5
2024-01-03 00:00:00,10,11,9,10.2,5
2024-01-03T20:00:00-05:00,10,11,9,10.1,5
"""
    m = load_daily(write(tmp_path / "X-USD.csv", text))
    # 2024-01-03T20:00-05:00 is 2024-01-04 01:00 UTC
    np.testing.assert_array_equal(m.dates, np.asarray(days("2024-01-01", 4), dtype="datetime64[D]"))
    np.testing.assert_allclose(m.close[:, 0], [10, 10.5, 10.2, 10.1])
    assert m.is_crypto[0] and m.periods_per_year == 365


def test_open_time_ms_crlf_extra_columns(tmp_path: Path) -> None:
    ms = [int((D("2024-03-01") + i - D("1970-01-01")).astype(int)) * 86_400_000 for i in range(3)]
    lines = ["open_time,open,high,low,close,volume,close_time,quote_volume,trades,datetime"]
    for i, t in enumerate(ms):
        lines.append(f"{t},{100 + i},{102 + i},{99 + i},{101 + i},7.5,{t + 86_399_999},1.0,42,2024-03-0{i + 1} 00:00:00")
    m = load_daily(write(tmp_path / "ETHUSDT.csv", "\n".join(lines), newline="\r\n"))
    np.testing.assert_array_equal(m.dates, np.asarray(days("2024-03-01", 3), dtype="datetime64[D]"))
    np.testing.assert_allclose(m.open[:, 0], [100, 101, 102])
    np.testing.assert_allclose(m.volume[:, 0], 7.5)
    assert m.is_crypto[0]


def test_unix_seconds_and_unsorted_rows(tmp_path: Path) -> None:
    secs = [int((D(d) - D("1970-01-01")).astype(int)) * 86_400 for d in days("2023-05-01", 4)]
    rows = [f"{secs[i]},{10 + i},{11 + i},{9 + i},{10 + i},1" for i in (2, 0, 3, 1)]
    m = load_daily(write(tmp_path / "S.csv", "timestamp,open,high,low,close,volume\n" + "\n".join(rows)))
    np.testing.assert_array_equal(m.dates, np.asarray(days("2023-05-01", 4), dtype="datetime64[D]"))
    np.testing.assert_allclose(m.close[:, 0], [10, 11, 12, 13])
    assert np.all(np.diff(m.dates).astype(int) > 0)


def test_missing_volume_is_zero(tmp_path: Path) -> None:
    m = load_daily(write(tmp_path / "A.csv", yahoo(WEEK[:3], header="Date,Open,High,Low,Close")))
    np.testing.assert_array_equal(m.volume, 0.0)


def test_rounding_within_tolerance_is_clamped(tmp_path: Path) -> None:
    text = """Date,Open,High,Low,Close,Volume
2024-07-01,100,101,99,101.00000001,1
2024-07-02,98.99999999,101,99,100,1
"""
    m = load_daily(write(tmp_path / "A.csv", text))
    assert np.all(m.low <= np.minimum(m.open, m.close)) and np.all(m.high >= np.maximum(m.open, m.close))


def test_zero_volume_is_valid(tmp_path: Path) -> None:
    text = yahoo(WEEK[:3]).replace(",1000", ",0")
    m = load_daily(write(tmp_path / "A.csv", text))
    np.testing.assert_array_equal(m.volume, 0.0)


# ----------------------------------------------------------------------------- bad input

GOOD_HEADER = "Date,Open,High,Low,Close,Volume"
BAD_ROWS = [
    ("2024-07-02,nan,101,99,100,1", "open is NaN"),
    ("2024-07-02,100,inf,99,100,1", "high is NaN/inf"),
    ("2024-07-02,100,101,99,abc,1", "close is NaN/inf/non-numeric"),
    ("2024-07-02,100,101,99,0,1", "non-positive close"),
    ("2024-07-02,100,101,-99,100,1", "non-positive low"),
    ("2024-07-02,100,99,101,100,1", "high < low"),
    ("2024-07-02,105,101,99,100,1", "open outside [low, high]"),
    ("2024-07-02,100,101,99,98,1", "close outside [low, high]"),
    ("2024-07-02,100,101,99,100,-5", "negative volume"),
    ("2024-07-01,100,101,99,100,1", "duplicate date"),
]


@pytest.mark.parametrize(("row", "problem"), BAD_ROWS)
def test_bad_row_raises_with_file_row_date_problem(tmp_path: Path, row: str, problem: str) -> None:
    text = f"{GOOD_HEADER}\n2024-07-01,100,101,99,100,1\n{row}\n2024-07-03,100,101,99,100,1\n"
    f = write(tmp_path / "BAD.csv", text)
    with pytest.raises(DataError) as e:
        load_daily(f)
    msg = str(e.value)
    assert "BAD.csv" in msg and "data row 2" in msg and problem in msg
    date = "2024-07-02" if problem != "duplicate date" else "2024-07-01"
    assert date in msg


def test_unparsable_date(tmp_path: Path) -> None:
    text = f"{GOOD_HEADER}\n2024-07-01,100,101,99,100,1\n2024-07-01,100,101,99,100,1\nnot-a-date,100,101,99,100,1\n"
    f = write(tmp_path / "U.csv", text.replace("2024-07-01,100,101,99,100,1\n", "2024-07-02,100,101,99,100,1\n", 1))
    with pytest.raises(DataError, match=r"U\.csv: data row 3: unparsable date 'not-a-date'"):
        load_daily(f)


def test_missing_column(tmp_path: Path) -> None:
    f = write(tmp_path / "M.csv", "Date,Open,High,Close,Volume\n2024-07-01,1,1,1,1\n2024-07-02,1,1,1,1")
    with pytest.raises(DataError, match=r"M\.csv: missing column\(s\) \['low'\]"):
        load_daily(f)
    g = write(tmp_path / "N.csv", "day,open,high,low,close\n2024-07-01,1,1,1,1\n2024-07-02,1,1,1,1")
    with pytest.raises(DataError, match=r"N\.csv: missing date column"):
        load_daily(g)


def test_empty_file_header_only_and_too_few_rows(tmp_path: Path) -> None:
    (tmp_path / "E.csv").write_text("")
    with pytest.raises(DataError, match=r"E\.csv: empty file"):
        load_daily(tmp_path / "E.csv")
    write(tmp_path / "H.csv", GOOD_HEADER)
    with pytest.raises(DataError, match=r"H\.csv: empty file"):
        load_daily(tmp_path / "H.csv")
    write(tmp_path / "O.csv", f"{GOOD_HEADER}\n2024-07-01,100,101,99,100,1")
    with pytest.raises(DataError, match=r"O\.csv: too few valid rows \(1 < 2\)"):
        load_daily(tmp_path / "O.csv")


def test_unknown_symbol_and_missing_paths(tmp_path: Path) -> None:
    write(tmp_path / "AAA.csv", yahoo(WEEK))
    with pytest.raises(DataError, match="ZZZ"):
        load_daily(tmp_path, symbols=["AAA", "ZZZ"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty: no .csv files"):
        load_daily(empty)
    with pytest.raises(DataError, match="nowhere: no such file or folder"):
        load_daily(tmp_path / "nowhere")
    with pytest.raises(DataError, match="gone.csv: no such file"):
        load_daily([tmp_path / "AAA.csv", tmp_path / "gone.csv"])


def test_repair_drops_bad_rows_and_warns(tmp_path: Path) -> None:
    text = f"""{GOOD_HEADER}
2024-07-01,100,101,99,100,1
2024-07-02,100,99,101,100,1
2024-07-03,100,101,99,100.5,1
garbage,100,101,99,100,1
2024-07-05,100,101,99,101,1
2024-07-05,100,101,99,100.8,1
"""
    f = write(tmp_path / "R.csv", text)
    with pytest.raises(DataError, match=r"and 2 more bad row"):
        load_daily(f)
    with pytest.warns(UserWarning) as rec:
        m = load_daily(f, repair=True)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "dropped 3 bad row(s)" in msg
    assert "R.csv: data row 2 (2024-07-02): high < low" in msg
    assert "R.csv: data row 4: unparsable date 'garbage'" in msg
    assert "R.csv: data row 6 (2024-07-05): duplicate date (same day as data row 5)" in msg
    np.testing.assert_array_equal(m.dates, np.asarray(["2024-07-01", "2024-07-03", "2024-07-05"], dtype="datetime64[D]"))
    np.testing.assert_allclose(m.close[:, 0], [100, 100.5, 101])


def test_repair_without_bad_rows_does_not_warn(tmp_path: Path) -> None:
    f = write(tmp_path / "A.csv", yahoo(WEEK))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_daily(f, repair=True)


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


def test_other_date_formats(tmp_path: Path) -> None:
    write(tmp_path / "A.csv", "Date,Open,High,Low,Close\n20240701,1,1,1,1\n20240702,1,1,1,1")
    write(tmp_path / "B.csv", "Date,Open,High,Low,Close\n07/01/2024,1,1,1,1\n07/02/2024,1,1,1,1\n\n")
    m = load_daily(tmp_path)
    np.testing.assert_array_equal(m.dates, np.asarray(WEEK[:2], dtype="datetime64[D]"))
    np.testing.assert_array_equal(m.tradable, 1)
    write(tmp_path / "C.csv", "Date,Open,High,Low,Close\n2024-07-01,1,1,1,1\n,1,1,1,1\n2024-07-02,1,1,1,1")
    with pytest.raises(DataError, match=r"C\.csv: data row 2: missing date"):
        load_daily(tmp_path / "C.csv")
    write(tmp_path / "D.csv", "Date,Close,close,Open,High,Low\n2024-07-01,1,1,1,1,1\n2024-07-02,1,1,1,1,1")
    with pytest.raises(DataError, match=r"D\.csv: duplicate column"):
        load_daily(tmp_path / "D.csv")


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
            files.append(write(Path(tmp) / f"S{k}.csv", yahoo([str(base + i) for i in d], c)))
        m = load_daily(files)
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
