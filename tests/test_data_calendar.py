"""The calendar: XNYS sessions, calendar fields of a row set, bars per year, dates to rows."""

from __future__ import annotations

import numpy as np

from ndjax.data.calendar import (
    calendar_fields,
    is_xnys_session,
    periods_per_year,
    row_at_or_after,
    row_at_or_before,
    to_day,
)


def test_sessions_and_calendar_fields():
    days = np.arange(np.datetime64("2024-07-01"), np.datetime64("2024-07-09"))  # Mon .. Mon, Jul 4 a holiday
    assert is_xnys_session(days).tolist() == [True, True, True, False, True, False, False, True]
    next_days, stock_next = calendar_fields(days, any_crypto=True)
    assert next_days.tolist() == [1, 1, 2, 1, 3, 2, 1, 1]
    assert stock_next.tolist() == [1, 1, 0, 1, 0, 0, 1, 1]


def test_periods_per_year_and_rows():
    assert periods_per_year([False, False]) == 252 and periods_per_year(np.array([False, True])) == 365
    dates = np.array(["2024-01-02", "2024-01-05", "2024-01-09"], dtype="datetime64[D]")
    assert row_at_or_after(dates, "2024-01-03") == 1 and row_at_or_before(dates, "2024-01-03") == 0
    assert row_at_or_after(dates, "2024-01-05") == 1 and row_at_or_before(dates, "2024-01-05") == 1
    assert row_at_or_after(dates, "2025-01-01") == 3 and row_at_or_before(dates, "2023-01-01") == -1
    assert to_day("2024-01-05T23:30:00-05:00") == np.datetime64("2024-01-06")  # UTC day
