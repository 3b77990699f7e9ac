"""The daily cycle on a ledger with the simulated broker: paper equals simulation (through a margin call, in probe
mode), a re-run changes nothing, a run stopped half-way (or killed inside a cycle, or fed one more day of data at a
time) ends where one run does, bad ledgers are named."""

from __future__ import annotations

import csv
import dataclasses
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ndjax.paper.broker import Book, BrokerError, Order
from ndjax.paper.controls import Controls
from ndjax.paper.cycle import PaperConfig
from ndjax.paper.ledger import LedgerError
from ndjax.paper.simulated import SimulatedBroker
from ndjax.paper.trade import open_session, paper_trade
from ndjax.runs.evaluate import evaluate_run, simulate_run
from ndjax.runs.folder import load_market, load_run, run_arrays

ROOT = Path(__file__).resolve().parents[1]
PLAIN = PaperConfig(controls=Controls(ramp_days=0, halt_drawdown=1.0))
START, THROUGH = 130, 175  # rows of the tiny run's market: its test split and a little before
LAST = -1  # the data's last row


def _dump(path: Path) -> dict[str, list]:
    """Every table of a ledger, rows sorted, for comparing two ledgers (its random id, in the meta table and in
    every client order id, reads `<id>`)."""
    with sqlite3.connect(path) as conn:
        ledger_id = conn.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]

        def same(v):
            return v.replace(ledger_id, "<id>") if isinstance(v, str) else v

        return {t: sorted((tuple(map(same, r)) for r in conn.execute(f"SELECT * FROM {t}")), key=repr) for t in tables}


def _replay(run_dir, ledger, through=THROUGH, start=START, config=PLAIN, market=None, **kw):
    session = open_session(run_dir, ledger, equity=25_000.0, config=config, out=ledger.parent / "report",
                           market=market)
    dates = session.market.dates
    return session, paper_trade(session, start=str(dates[start]), through=str(dates[through]), rows=False, **kw)


def _simulated_equity(run_dir, start=START, through=THROUGH, market=None, **overrides) -> np.ndarray:
    """Equity at the closes of rows start+1 .. through of the run's policy simulated from 25,000 in cash at row
    `start` (`simulate_run`, what evaluation runs), on the run's market or `market`."""
    run = load_run(run_dir)
    arrays = run_arrays(run, market if market is not None else load_market(run))
    _, infos = simulate_run(run, arrays, start, through + 1, initial_cash=25_000.0, **overrides)
    return np.asarray(infos.equity, np.float64)


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
    one, _ = _replay(run_dir, tmp_path / "one.db", through=LAST)  # through the data's last row
    last = str(one.market.dates[-1])
    assert one.ledger.last_date() == last and one.ledger.orders(last)  # decided on the last row, to be settled later
    before = _dump(tmp_path / "one.db")
    _, again = _replay(run_dir, tmp_path / "one.db", through=LAST)
    assert again.recorded == 0 and _dump(tmp_path / "one.db") == before
    _replay(run_dir, tmp_path / "two.db", through=START + 20)
    _, rest = _replay(run_dir, tmp_path / "two.db", through=LAST)
    assert rest.recorded == one.market.n_days - 1 - START - 20
    assert _dump(tmp_path / "two.db") == before


def test_day_by_day_on_growing_data_equals_one_replay(run_dir, tmp_path):
    """Each call sees the data up to its day only (the day's bar is the data's last row), as live trading does:
    the orders decided on it are settled by the next call, so the ledger is the one replay's."""
    full = load_market(load_run(run_dir))
    first = full.n_days - 12
    for row in range(first, full.n_days):
        session = open_session(run_dir, tmp_path / "daily.db", market=full[: row + 1], equity=25_000.0, config=PLAIN)
        assert session.replay(str(full.dates[first]) if row == first else None) == 1
        session.ledger.close()
    _replay(run_dir, tmp_path / "once.db", start=first, through=LAST)
    daily = _dump(tmp_path / "daily.db")
    assert len(daily["orders"]) > 12 and len(daily["fills"]) > 6  # it trades every day
    assert daily == _dump(tmp_path / "once.db")


def test_a_margin_call_equals_simulation(run_dir, tmp_path):
    """A crash of the stocks (to a tenth, from row DROP on) puts the levered book below maintenance: the sim broker
    force-sells at close (1 - slippage), records the call and closes the trades, and paper equity stays the
    simulation's."""
    run = load_run(run_dir)
    market = load_market(run)
    drop, through = START + 8, START + 14
    crash = np.where((np.arange(market.n_days)[:, None] >= drop) & ~np.asarray(market.is_crypto), 0.1, 1.0)
    crashed = dataclasses.replace(market, **{k: getattr(market, k) * crash for k in ("open", "high", "low", "close")})
    session, _ = _replay(run_dir, tmp_path / "m.db", through=through, market=crashed)
    days = session.ledger.days()
    called = [d for d in days if d["margin_call"]]
    assert [d["date"] for d in called] == [str(market.dates[drop])] and called[0]["forced_notional"] > 0
    forced = [x for x in session.ledger.fills() if x["kind"] == "margin_call"]
    assert forced and all(x["date"] == called[0]["date"] for x in forced)
    sl = float(run.config.hparams.liquidation_slippage)
    for x in forced:
        close = float(crashed.close[drop, crashed.symbols.index(x["symbol"])])
        assert x["price"] == pytest.approx(close * (1 - sl), rel=1e-6)
    closed = session.ledger.conn.execute("SELECT COUNT(*) FROM closed_trades WHERE date = ?", (called[0]["date"],))
    assert closed.fetchone()[0] >= len({x["symbol"] for x in forced})
    paper = np.array([d["equity"] for d in days])[1:]
    np.testing.assert_allclose(paper, _simulated_equity(run_dir, through=through, market=crashed), rtol=1e-5)


def test_sim_fills_at_the_execution_price(run_dir):
    """With gap fills a buy limit above the open executes at the open, as `dynamics.step` does: the fill's price,
    its fee and the cash it implies are the transition's."""
    run = load_run(run_dir)
    market = load_market(run)
    arrays = run_arrays(run, market)
    params = run.config.market_params(is_crypto=market.is_crypto).replace(gap_fill=True)
    j = 0
    row = START + int(np.flatnonzero(market.tradable[START:, j])[0])  # a session of the stock
    opened = float(arrays.open[row, j])
    limit = max(opened * 1.02, float(arrays.low[row, j]))  # the bar opens below the limit: the buy fills at the open
    broker = SimulatedBroker(arrays, market.dates, market.symbols, params)
    order = Order("ndjax-x-1", str(market.dates[row - 1]), market.symbols[j], "buy", limit, 10.0, "stock")
    broker.sync(Book(cash=25_000.0), [order])
    settlement = broker.settle(row)
    (fill,) = settlement.fills
    f = float(params.maker_fee)
    assert fill.price == pytest.approx(opened, rel=1e-6) and fill.price < limit
    assert fill.fee == pytest.approx(f * fill.quantity * opened, rel=1e-6)
    assert broker.account().cash == pytest.approx(25_000.0 - settlement.interest - fill.quantity * opened * (1 + f),
                                                  rel=1e-6)


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
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
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
    probe = 0.0005
    config = PaperConfig(controls=Controls(ramp_days=0, halt_drawdown=1.0), probe_notional=probe)
    session, _ = _replay(run_dir, tmp_path / "p.db", config=config)
    ledger = session.ledger
    trades = ledger.conn.execute("SELECT COUNT(*), SUM(return < 0) FROM closed_trades").fetchone()
    assert trades[0] > 0 and trades[1] > 0
    memory = ledger.memory(ledger.last_date())
    assert np.all(np.asarray(memory.n_closed) >= 0) and np.any(np.asarray(memory.n_closed) > 0)
    plain, _ = _replay(run_dir, tmp_path / "plain.db")

    def spent(led):
        return sum(o["notional"] for o in led.order_rows() if o["side"] == "buy")

    assert spent(ledger) < spent(plain.ledger)  # buys after losing trades were capped
    paper = np.array([d["equity"] for d in ledger.days()])[1:]
    probed = _simulated_equity(run_dir, probe=True, probe_notional=probe)
    assert np.abs(probed / _simulated_equity(run_dir) - 1).max() > 1e-4  # the cap changes the path
    np.testing.assert_allclose(paper, probed, rtol=1e-5)  # and the ledger's memory caps it as the simulation does


def test_probe_caps_bind_alike_in_paper_and_evaluation(run_dir, tmp_path):
    """With an absolute cap under the relative one, the paper ledger's probe events fall on the days the simulation's
    cap cut a buy, the two equity paths agree, and the paper report says how often it bound (and that the
    simulated broker's fees are exact)."""
    from ndjax.probe import binding

    fraction, absolute = 0.05, 40.0  # 5 % of 25,000 is 1,250: the 40 binds
    config = dataclasses.replace(PLAIN, probe_notional=fraction, probe_max_outlay=absolute)
    session, result = _replay(run_dir, tmp_path / "cap.db", config=config)
    events = session.ledger.events("probe")
    assert events and all("buy outlay cut by" in e["detail"] for e in events)
    run = load_run(run_dir)
    arrays = run_arrays(run, load_market(run))
    _, infos = simulate_run(run, arrays, START, THROUGH + 2, initial_cash=25_000.0, probe=True,
                            probe_notional=fraction, probe_max_outlay=absolute)  # one bar more: the last day's orders
    cut = np.asarray(infos.probe_cut)
    dates = session.market.dates
    assert {e["date"] for e in events} == {str(dates[START + t]) for t in np.flatnonzero(cut.sum(1) > 0)}
    np.testing.assert_allclose([d["equity"] for d in session.ledger.days()][1:], np.asarray(infos.equity)[:-1],
                               rtol=1e-5)
    bound = binding(cut)
    assert f"bound on {bound['steps']} of {THROUGH - START + 1} days ({bound['asset_steps']} buys)" in result.text
    assert f"min(0.05 of equity, {absolute:,.2f})" in result.text and "Exact: the simulated broker" in result.text
