"""CSV loading: formats, row-by-row validation with errors naming file, row, date and problem, repair."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ndjax.data.loading import load_daily
from ndjax.data.market import DataError
from tests.helpers import WEEK, D, days, write, yahoo

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
        lines.append(f"{t},{100 + i},{102 + i},{99 + i},{101 + i},7.5,{t + 86_399_999},1.0,42,"
                     f"2024-03-0{i + 1} 00:00:00")
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
    np.testing.assert_array_equal(m.dates,
                                  np.asarray(["2024-07-01", "2024-07-03", "2024-07-05"], dtype="datetime64[D]"))
    np.testing.assert_allclose(m.close[:, 0], [100, 100.5, 101])


def test_repair_without_bad_rows_does_not_warn(tmp_path: Path) -> None:
    f = write(tmp_path / "A.csv", yahoo(WEEK))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_daily(f, repair=True)


def test_other_date_formats(tmp_path: Path) -> None:
    write(tmp_path / "A.csv", "Date,Open,High,Low,Close\n20240701,1,1,1,1\n20240702,1,1,1,1\n20240715,1,1,1,1")
    write(tmp_path / "B.csv",
          "Date,Open,High,Low,Close\n07/01/2024,1,1,1,1\n07/02/2024,1,1,1,1\n07/15/2024,1,1,1,1\n\n")
    m = load_daily(tmp_path)  # 15 rules day-first out
    np.testing.assert_array_equal(m.dates, np.asarray(WEEK[:2] + ["2024-07-15"], dtype="datetime64[D]"))
    np.testing.assert_array_equal(m.tradable, 1)
    # day-first reads Jan 7, a Sunday: the calendar does not choose the order, so the column is ambiguous
    write(tmp_path / "B.csv", "Date,Open,High,Low,Close\n07/01/2024,1,1,1,1\n07/02/2024,1,1,1,1\n")
    with pytest.raises(DataError, match=r"B\.csv: data row 1: ambiguous date '07/01/2024'"):
        load_daily(tmp_path / "B.csv")
    write(tmp_path / "C.csv", "Date,Open,High,Low,Close\n2024-07-01,1,1,1,1\n,1,1,1,1\n2024-07-02,1,1,1,1")
    with pytest.raises(DataError, match=r"C\.csv: data row 2: missing date"):
        load_daily(tmp_path / "C.csv")
    write(tmp_path / "D.csv", "Date,Close,close,Open,High,Low\n2024-07-01,1,1,1,1,1\n2024-07-02,1,1,1,1,1")
    with pytest.raises(DataError, match=r"D\.csv: duplicate column"):
        load_daily(tmp_path / "D.csv")


