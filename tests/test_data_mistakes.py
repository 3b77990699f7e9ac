"""A user's mistake in the data costs one named error, never a wrong load: ambiguous day/month dates, stock bars on
closed days, one-bar moves beyond the bound (and `repair` dropping them), and random malformed CSVs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ndjax.data.calendar import xnys_sessions
from ndjax.data.loading import MAX_MOVE, load_daily
from ndjax.data.market import DataError
from ndjax.data.source import MarketSource

SESSIONS = xnys_sessions(np.datetime64("2024-01-01"), np.datetime64("2024-12-31"))
SESSIONS = SESSIONS[(SESSIONS >= np.datetime64("2024-01-01")) & (SESSIONS <= np.datetime64("2024-12-31"))]


def _frame(days: np.ndarray, close: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"date": [str(d) for d in days], "open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": 1000.0})


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_day_month_dates_are_read_in_the_one_order_that_fits_or_refused(tmp_path):
    days = SESSIONS[:40]
    close = np.linspace(100, 110, days.size)
    frame = _frame(days, close)
    frame["date"] = pd.to_datetime(frame.date).dt.strftime("%d/%m/%Y")  # days > 12 rule out month-first
    m = load_daily(_write(tmp_path / "DM.csv", frame))
    np.testing.assert_array_equal(m.dates, days)
    short = _frame(np.array(["2024-03-04", "2024-04-03"], "datetime64[D]"), np.array([1.0, 1.0]))
    short["date"] = ["04/03/2024", "03/04/2024"]  # both orders valid crypto days: ambiguous
    with pytest.raises(DataError, match=r"BTC-USD\.csv: data row 1: ambiguous date '04/03/2024'"):
        load_daily(_write(tmp_path / "BTC-USD.csv", short))
    frame["date"] = frame.date.where(frame.index != 3, "Jan 5 2024")
    with pytest.raises(DataError, match=r"DM\.csv: data row 4: unparsable date 'Jan 5 2024'"):
        load_daily(_write(tmp_path / "DM.csv", frame))


def test_a_stock_bar_on_a_closed_day_is_named(tmp_path):
    frame = _frame(SESSIONS[:10], np.full(10, 50.0))
    frame.loc[4, "date"] = "2024-01-13"  # a Saturday
    f = _write(tmp_path / "AAA.csv", frame)
    with pytest.raises(DataError, match=r"AAA\.csv: data row 5 \(2024-01-13\): date '2024-01-13' is 2024-01-13, "
                                        r"not an XNYS session.*--repair"):
        load_daily(f)
    frame.loc[4, "date"] = "2024-01-12T22:00:00-05:00"  # a Friday evening in New York is Saturday in UTC
    with pytest.raises(DataError, match="not an XNYS session"):
        load_daily(_write(tmp_path / "AAA.csv", frame))
    crypto = _write(tmp_path / "BTC-USD.csv", _frame(np.arange("2024-01-01", "2024-01-11", dtype="datetime64[D]"),
                                                      np.full(10, 5.0)))
    assert load_daily(crypto).n_days == 10  # crypto trades every day


def test_an_implausible_move_is_named_and_repair_drops_it(tmp_path):
    close = np.linspace(100, 120, 30)
    frame = _frame(SESSIONS[:30], close)
    frame.loc[12, ["open", "high", "low", "close"]] *= 1e10
    f = _write(tmp_path / "JMP.csv", frame)
    with pytest.raises(DataError, match=r"JMP\.csv: data row 13 \(2024-01-19\): implausible one-bar move: "
                                        r"open 1\.08\d+e\+12 against the previous close 107\.586 "
                                        r"\(data row 12, 2024-01-18\)"):
        load_daily(f)
    with pytest.warns(UserWarning, match=r"dropped 1 bad row\(s\):\n.*JMP\.csv: data row 13 .*implausible"):
        m = load_daily(f, repair=True)
    assert m.n_days == 29 and m.close.max() == pytest.approx(120)
    frame.loc[12, ["open", "high", "low", "close"]] /= 1e10 / 15  # x15: inside the default bound of x20
    f = _write(tmp_path / "JMP.csv", frame)
    assert load_daily(f).close.max() > 1000
    with pytest.raises(DataError, match=r"beyond x10 or /10"):
        load_daily(f, max_move=10)
    source = MarketSource(data_dir=str(tmp_path), max_move=10, repair=True)
    with pytest.warns(UserWarning, match="implausible"):
        assert source.load().n_days == 29
    with pytest.raises(ValueError, match="--max-move"):
        MarketSource(max_move=1).check()


# ------------------------------------------------------------------------- random malformed CSVs

MISTAKES = ("none", "shuffle", "unix_ms", "day_first", "month_first", "weekend", "jump", "drop", "text_price",
            "duplicate", "blank_date")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 60), crypto=st.booleans(),
       mistakes=st.lists(st.sampled_from(MISTAKES), min_size=1, max_size=3))
@example(seed=3, n=3, crypto=False, mistakes=["weekend", "day_first"])  # a Saturday once flipped the date order
def test_a_malformed_csv_gives_a_named_error_or_the_right_load(tmp_path, seed, n, crypto, mistakes):
    rng = np.random.default_rng(seed)
    pool = np.arange("2024-01-01", "2024-12-31", dtype="datetime64[D]") if crypto else SESSIONS
    days = np.sort(rng.choice(pool, n, replace=False))
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    frame = _frame(days, close)
    jumped = False  # two jumps of one row can cancel into a plausible move (x25 then /30: -17 %): one jump at most
    for mistake in mistakes:
        i = int(rng.integers(0, len(frame)))
        if mistake == "jump" and jumped:
            continue
        jumped = jumped or mistake == "jump"
        if mistake == "shuffle":
            frame = frame.sample(frac=1, random_state=seed % 1000).reset_index(drop=True)
        elif mistake == "unix_ms" and frame.date.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all():
            frame["date"] = (pd.to_datetime(frame.date).astype("int64") // 10**6).astype(str)
        elif mistake in ("day_first", "month_first") and frame.date.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all():
            frame["date"] = pd.to_datetime(frame.date).dt.strftime("%d/%m/%Y" if mistake == "day_first" else
                                                                      "%m/%d/%Y")
        elif mistake == "weekend" and not crypto and frame.date.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all():
            frame.loc[i, "date"] = "2024-06-08"  # a Saturday
        elif mistake == "jump":
            frame.loc[i, ["open", "high", "low", "close"]] *= float(rng.choice([25.0, 1e3, 1e10, 1 / 30]))
        elif mistake == "drop":
            frame.loc[i, "close"] = np.nan
        elif mistake == "text_price":
            frame["open"] = frame.open.astype(object)
            frame.loc[i, "open"] = "n/a"
        elif mistake == "duplicate":
            frame = pd.concat([frame, frame.iloc[[i]]], ignore_index=True)
        elif mistake == "blank_date":
            frame.loc[i, "date"] = ""
    name = "X-USD.csv" if crypto else "XYZ.csv"
    f = _write(tmp_path / name, frame)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = load_daily(f)
    except DataError as e:
        assert str(e).startswith(str(f)), e  # a named error
        return
    # a load: exactly the true bars (a duplicated row is the same bar)
    np.testing.assert_array_equal(m.dates, days)
    np.testing.assert_allclose(m.close[:, 0], close, rtol=1e-9)
    assert np.all(m.close[1:, 0] / m.close[:-1, 0] < MAX_MOVE)
