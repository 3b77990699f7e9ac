"""Report tables and writers: the daily report, its summary block, the period report's files."""

from __future__ import annotations

import csv
import json

import jax
import numpy as np
import pytest

from ndjax.metrics import summary
from ndjax.report.tables import format_comparison, format_report
from ndjax.report.writers import DAILY_COLUMNS, atomic_write_text, write_period_report
from ndjax.sim import simulate
from tests.helpers import path_to_jax, random_path


def test_daily_report_and_tables():
    params, state0, actions, bars = path_to_jax(random_path(9, T=30, batch=1))
    _, infos = simulate(params, state0, actions, bars)
    one = jax.tree_util.tree_map(lambda x: x[:, 0], infos)
    stats = summary(one, 365)
    eq = np.asarray(one.equity)
    dates = np.arange(np.datetime64("2025-01-01"), np.datetime64("2025-01-31"))
    text = format_report(dates, one, 365)
    header = text.splitlines()[0].split()
    assert header == ["Date", "Equity", "Cash", "Return", "Leverage", "LevCost"]
    assert len(text.splitlines()) >= 31 + 8
    assert f"Final Equity      : {eq[-1]:.4f}" in text
    for key in ("Net PnL", "Sortino", "Max Drawdown", "Max Leverage", "Total Lev. Costs", "Total Fees", "Margin Calls",
                "Forced Sales"):
        assert key in text
    with pytest.raises(ValueError, match="dates"):
        format_report(dates[:5], one)
    table = format_comparison({"policy": stats, "other": stats}).splitlines()
    assert table[0].split() == ["Return", "Sortino", "Sharpe", "MaxDD", "MaxLev", "Fees", "LevCost", "Turn", "Calls"]
    assert table[1].startswith("policy") and len(table) == 3


def test_period_report_files(tmp_path):
    params, state0, actions, bars = path_to_jax(random_path(10, T=20, batch=2))
    _, infos = simulate(params, state0, actions, bars)
    paths = {name: jax.tree_util.tree_map(lambda x, i=i: x[:, i], infos) for i, name in enumerate(["policy", "rule"])}
    dates = np.arange(np.datetime64("2025-01-01"), np.datetime64("2025-01-21"))
    text, stats = write_period_report(tmp_path, "test", ["title line"], dates, paths, 252,
                                      summary_extra={"note": 1})
    assert text.startswith("title line") and (tmp_path / "test_report.txt").read_text() == text + "\n"
    with open(tmp_path / "test_daily.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(DAILY_COLUMNS) and len(rows) == 20
    assert float(rows[-1]["equity"]) == pytest.approx(float(stats["policy"].final_equity))
    saved = json.loads((tmp_path / "test_summary.json").read_text())
    assert saved["note"] == 1 and saved["period"] == ["2025-01-01", "2025-01-20"]
    assert saved["summary"]["rule"]["total_return"] == pytest.approx(float(stats["rule"].total_return))
    assert (tmp_path / "equity.png").stat().st_size > 1000


def test_atomic_write_replaces_whole_file(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "f.txt", "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and sorted(p.name for p in path.parent.iterdir()) == ["f.txt"]
