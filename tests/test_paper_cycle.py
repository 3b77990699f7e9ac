"""The daily cycle on a ledger with the simulated broker: paper equals simulation, a re-run changes nothing, a run
stopped half-way (or killed inside a cycle) ends where one run does, bad ledgers are named."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ndjax.paper.broker import BrokerError
from ndjax.paper.controls import Controls
from ndjax.paper.cycle import PaperConfig
from ndjax.paper.ledger import LedgerError
from ndjax.paper.trade import open_session, paper_trade
from ndjax.runs.evaluate import evaluate_run
from ndjax.runs.folder import load_run

ROOT = Path(__file__).resolve().parents[1]
PLAIN = PaperConfig(controls=Controls(ramp_days=0, halt_drawdown=1.0))
START, THROUGH = 130, 175  # rows of the tiny run's market: its test split and a little before


def _dump(path: Path) -> dict[str, list]:
    """Every table of a ledger, rows sorted, for comparing two ledgers."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def _replay(run_dir, ledger, through=THROUGH, start=START, config=PLAIN, **kw):
    session = open_session(run_dir, ledger, equity=25_000.0, config=config, out=ledger.parent / "report")
    dates = session.market.dates
    return session, paper_trade(session, start=str(dates[start]), through=str(dates[through]), rows=False, **kw)


def test_paper_equals_simulation(run_dir, tmp_path):
    session, result = _replay(run_dir, tmp_path / "a.db")
    days = session.ledger.days()
    assert result.recorded == THROUGH - START + 1 == len(days)
    assert len(session.ledger.fills()) > 20  # the policy really trades
    dates = session.market.dates
    ev = evaluate_run(load_run(run_dir), tmp_path / "ev", start=str(dates[START]), end=str(dates[THROUGH]),
                      initial_cash=25_000.0, rows=False)
    with open(tmp_path / "ev" / "evaluate_daily.csv") as fh:
        simulated = np.array([float(r["equity"]) for r in csv.DictReader(fh)])
    paper = np.array([d["equity"] for d in days])[1:]
    assert paper.shape == simulated.shape and ev["period"][0] == days[1]["date"]
    np.testing.assert_allclose(paper, simulated, rtol=1e-5)  # float32 rounding of quantities, nothing else
    assert (tmp_path / "report" / "paper_report.txt").is_file() and (tmp_path / "report" / "equity.png").is_file()
    assert "Models" in result.text and "promoted" in result.text


def test_rerun_changes_nothing_and_halfway_equals_one_run(run_dir, tmp_path):
    _replay(run_dir, tmp_path / "one.db")
    before = _dump(tmp_path / "one.db")
    _, again = _replay(run_dir, tmp_path / "one.db")
    assert again.recorded == 0 and _dump(tmp_path / "one.db") == before
    _replay(run_dir, tmp_path / "two.db", through=START + 20)
    _, rest = _replay(run_dir, tmp_path / "two.db")
    assert rest.recorded == THROUGH - START - 20
    assert _dump(tmp_path / "two.db") == before


CRASH = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from ndjax.paper.controls import Controls
    from ndjax.paper.cycle import PaperConfig
    from ndjax.paper.trade import open_session
    session = open_session({run!r}, {ledger!r}, equity=25000.0, config=PaperConfig(controls=Controls(0, 0.05, 1.0)))
    dates = session.market.dates
    submit = session.broker.submit
    def dying_submit(orders):
        if orders and orders[0].date == str(dates[{kill}]):
            session.ledger.conn.execute("SELECT 1")  # the day's fills, positions and account row are written
            os._exit(9)  # killed inside the cycle, before its commit
        return submit(orders)
    session.broker.submit = dying_submit
    session.replay(str(dates[{start}]), str(dates[{through}]))
""")


def test_a_process_killed_inside_a_cycle_leaves_the_previous_day(run_dir, tmp_path):
    kill = START + 10
    child = CRASH.format(root=str(ROOT), run=str(run_dir), ledger=str(tmp_path / "k.db"), kill=kill, start=START,
                         through=THROUGH)
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    session = open_session(run_dir, tmp_path / "k.db", equity=25_000.0, config=PLAIN)
    dates = session.market.dates
    assert session.ledger.last_date() == str(dates[kill - 1])
    killed = str(dates[kill])
    dump = _dump(tmp_path / "k.db")
    assert not [r for t in ("account_days", "positions", "fills", "orders") for r in dump[t] if killed in r]
    paper_trade(session, through=str(dates[THROUGH]), rows=False)
    _replay(run_dir, tmp_path / "one.db")
    assert _dump(tmp_path / "k.db") == _dump(tmp_path / "one.db")


def test_bad_ledgers_and_books_are_named(run_dir, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="junk.db: not an SQLite database"):
        open_session(run_dir, junk)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE trades (id INTEGER)")
    with pytest.raises(LedgerError, match=r"foreign.db: not an ndjax ledger \(missing tables"):
        open_session(run_dir, foreign)
    _replay(run_dir, tmp_path / "sim.db", through=START + 3)
    with pytest.raises(LedgerError, match="kept for broker 'sim', not 'alpaca'"):
        open_session(run_dir, tmp_path / "sim.db", broker="alpaca", alpaca={"url": "http://127.0.0.1:9"})
    with pytest.raises(LedgerError, match="last recorded day is .*; the next cycle is"):
        open_session(run_dir, tmp_path / "sim.db", config=PLAIN).cycle(START + 9)  # days may not be skipped
    with pytest.raises(LedgerError, match="needs a start date"):
        open_session(run_dir, tmp_path / "empty.db").replay(None, None)


def test_out_of_sync_broker_is_named(run_dir, tmp_path):
    session, _ = _replay(run_dir, tmp_path / "s.db", through=START + 5)
    broker = session.broker
    real_account = broker.account

    def drifted():
        account = real_account()
        return account.__class__(cash=account.cash, positions=dict(account.positions, **{session.symbols[0]: 123.0}))

    broker.account = drifted
    with pytest.raises(BrokerError, match=f"holds 123 {session.symbols[0]}, the ledger expects"):
        paper_trade(session, through=str(session.market.dates[START + 6]), rows=False)


def test_probe_mode_reads_closed_trades_from_the_ledger(run_dir, tmp_path):
    config = PaperConfig(controls=Controls(ramp_days=0, halt_drawdown=1.0), probe_notional=0.0005)
    session, _ = _replay(run_dir, tmp_path / "p.db", config=config)
    ledger = session.ledger
    trades = ledger.conn.execute("SELECT COUNT(*), SUM(return < 0) FROM closed_trades").fetchone()
    assert trades[0] > 0 and trades[1] > 0
    memory = ledger.memory(ledger.last_date())
    assert np.all(np.asarray(memory.n_closed) >= 0) and np.any(np.asarray(memory.n_closed) > 0)
    plain, _ = _replay(run_dir, tmp_path / "plain.db")
    spent = lambda led: sum(o["notional"] for o in led.order_rows() if o["side"] == "buy")  # noqa: E731
    assert spent(ledger) < spent(plain.ledger)  # buys after losing trades were capped
