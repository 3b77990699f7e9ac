"""Ramp-up and kill switch: the arithmetic, and what they do to a replay."""

from __future__ import annotations

import pytest

from ndjax.feeds.status import ledger_summary
from ndjax.paper.controls import Controls, buy_scale, drawdown, halts, next_ramp
from ndjax.paper.cycle import PaperConfig
from ndjax.paper.trade import open_session, paper_trade

START = 130


def test_ramp_and_halt_arithmetic():
    c = Controls(ramp_days=4, ramp_drawdown=0.05, halt_drawdown=0.10)
    assert next_ramp(None, 0.0, c) == 0.25
    assert next_ramp(0.25, 0.02, c) == 0.5 and next_ramp(0.5, 0.06, c) == 0.5  # holds at or past the limit
    assert next_ramp(1.0, 0.0, c) == 1.0 and next_ramp(None, 0.5, Controls(ramp_days=0)) == 1.0
    assert drawdown([100, 120, 90]) == pytest.approx(0.25) and drawdown([100, 110]) == 0 and drawdown([]) == 0
    assert halts(0.10, c) and not halts(0.099, c) and not halts(0.99, Controls(halt_drawdown=1.0))
    # an account of 1000 holding stocks that require 300: the full pool is 700; at 50 % it is 200 of it
    assert buy_scale(0.5, 1000.0, 300.0) == pytest.approx(200 / 700)
    assert buy_scale(0.2, 1000.0, 300.0) == 0.0 and buy_scale(1.0, 1000.0, 300.0) == 1.0
    assert buy_scale(0.5, 100.0, 200.0) == 1.0  # no pool at all: nothing to scale
    for bad in ({"ramp_days": -1}, {"ramp_drawdown": 0.0}, {"halt_drawdown": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Controls(**bad)


def _session(run_dir, path, controls):
    session = open_session(run_dir, path, equity=25_000.0, config=PaperConfig(controls=controls), out=path.parent)
    return session, session.market.dates


def test_ramp_grows_the_buys(run_dir, tmp_path):
    session, dates = _session(run_dir, tmp_path / "r.db", Controls(ramp_days=5, ramp_drawdown=0.5, halt_drawdown=1.0))
    paper_trade(session, start=str(dates[START]), through=str(dates[START + 8]), rows=False)
    ramps = [d["ramp"] for d in session.ledger.days()]
    assert ramps[:6] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    first = [o for o in session.ledger.order_rows() if o["date"] == str(dates[START]) and o["side"] == "buy"]
    full, _ = _session(run_dir, tmp_path / "f.db", Controls(ramp_days=0, halt_drawdown=1.0))
    paper_trade(full, start=str(dates[START]), through=str(dates[START]), rows=False)
    unramped = {o["symbol"]: o["quantity"] for o in full.ledger.order_rows() if o["side"] == "buy"}
    assert first and all(o["quantity"] == pytest.approx(0.2 * unramped[o["symbol"]], rel=1e-3) for o in first)


def test_kill_switch_halts_buys_until_resumed(run_dir, tmp_path):
    session, dates = _session(run_dir, tmp_path / "h.db", Controls(ramp_days=0, halt_drawdown=0.001))
    paper_trade(session, start=str(dates[START]), through=str(dates[START + 25]), rows=False)
    halted = [d for d in session.ledger.days() if d["halted"]]
    assert halted and session.ledger.events("halt")
    first = halted[0]["date"]
    assert not [o for o in session.ledger.order_rows() if o["date"] >= first and o["side"] == "buy"]
    assert ledger_summary(session.ledger.path)["day"]["halted"]  # daily.py --status: halted ...
    assert session.resume_buys() == str(dates[START + 25])
    assert not ledger_summary(session.ledger.path)["day"]["halted"]  # ... until a person resumes
    paper_trade(session, through=str(dates[START + 26]), rows=False)
    assert not session.ledger.days()[-1]["halted"]
    assert [o for o in session.ledger.order_rows() if o["date"] == str(dates[START + 26]) and o["side"] == "buy"]
