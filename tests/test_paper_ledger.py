"""The ledger's identity and the script around it: the champion is the checkpoint the ledger recorded (absolute
path, step, content hash), another starting equity is refused, a locked file is named, orders carry the ledger's
own id, and experiments/paper.py takes its defaults from the dataclasses and fails in one line."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest

from ndjax.paper import ledger as ledger_module
from ndjax.paper.controls import Controls
from ndjax.paper.cycle import PaperConfig
from ndjax.paper.ledger import DEFAULT_EQUITY, LedgerError
from ndjax.paper.retrain import RetrainPolicy
from ndjax.paper.trade import open_session, paper_trade
from ndjax.runs.folder import RunError

ROOT = Path(__file__).resolve().parents[1]
PLAIN = PaperConfig(controls=Controls(ramp_days=0, halt_drawdown=1.0))
START = 130


def _script():
    spec = importlib.util.spec_from_file_location("paper_script", ROOT / "experiments" / "paper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _two_days(run_dir, path: Path, **kw):
    session = open_session(run_dir, path, config=PLAIN, out=path.parent, **kw)
    dates = session.market.dates
    paper_trade(session, start=str(dates[START]), through=str(dates[START + 1]), rows=False)
    return session


def test_the_champion_is_the_recorded_checkpoint(run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(run_dir.parent)
    session = _two_days(Path(run_dir.name), tmp_path / "c.db")  # a relative run folder
    (model,) = session.ledger.models()
    assert model["run"] == str(run_dir.resolve())  # stored absolute
    monkeypatch.chdir(tmp_path)  # from elsewhere, the ledger still finds its champion
    assert open_session(run_dir, tmp_path / "c.db").run.step == model["checkpoint_step"]
    with sqlite3.connect(tmp_path / "c.db") as conn:
        conn.execute("UPDATE models SET checkpoint_step = 999")
    with pytest.raises(RunError, match="no checkpoint at step 999"):  # the recorded step, not the run's best
        open_session(run_dir, tmp_path / "c.db")
    with sqlite3.connect(tmp_path / "c.db") as conn:
        conn.execute("UPDATE models SET checkpoint_step = ?, content_hash = 'feedfacefeedface'",
                     (model["checkpoint_step"],))
    with pytest.raises(LedgerError, match=f"content hash feedfacefeedface, the checkpoint there now hashes to "
                                          f"{model['content_hash']}"):
        open_session(run_dir, tmp_path / "c.db")


def test_another_equity_is_refused_and_the_ledger_id_is_kept(run_dir, tmp_path):
    empty = open_session(run_dir, tmp_path / "e.db", equity=10_000.0).ledger
    assert empty.identity.initial_equity == 10_000.0
    assert open_session(run_dir, tmp_path / "e.db", equity=20_000.0).ledger.identity.initial_equity == 20_000.0
    session = _two_days(run_dir, tmp_path / "l.db")  # no equity given: the default
    ledger = session.ledger
    assert ledger.identity.initial_equity == DEFAULT_EQUITY and len(ledger.ledger_id) == 6
    assert ledger.ledger_id != empty.ledger_id
    assert all(o["client_id"].startswith(f"ndjax-{ledger.ledger_id}-") for o in ledger.order_rows())
    with pytest.raises(LedgerError, match=r"l.db: kept for initial_equity 25000.0, not 30000.0"):
        open_session(run_dir, tmp_path / "l.db", equity=30_000.0)
    again = open_session(run_dir, tmp_path / "l.db").ledger  # without an equity: the stored one
    assert (again.identity.initial_equity, again.ledger_id) == (DEFAULT_EQUITY, ledger.ledger_id)
    assert open_session(run_dir, tmp_path / "l.db", equity=DEFAULT_EQUITY).ledger.ledger_id == ledger.ledger_id


def test_a_locked_ledger_ends_the_script_in_one_line(run_dir, tmp_path, monkeypatch):
    _two_days(run_dir, tmp_path / "k.db")
    monkeypatch.setattr(ledger_module, "BUSY_TIMEOUT", 0.05)
    holder = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing
    try:
        with pytest.raises(LedgerError, match=r"k.db: database is locked: another process holds it"):
            open_session(run_dir, tmp_path / "k.db")
        with pytest.raises(SystemExit) as stop:
            _script().main(["--run", str(run_dir), "--ledger", str(tmp_path / "k.db")])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    message = str(stop.value)
    assert message.startswith("paper: ") and str(tmp_path / "k.db") in message and "\n" not in message


def test_script_defaults_are_the_dataclasses():
    script = _script()
    args = script.parse_args(["--run", "r", "--ledger", "l"])
    assert Controls(args.ramp_days, args.ramp_drawdown, args.halt_drawdown) == Controls()
    policy, paper = RetrainPolicy(every=1), PaperConfig()
    assert (args.retrain_steps, args.retrain_val_days) == (policy.steps, policy.val_days)
    assert (args.max_stale_days, args.status_polls, args.status_wait) == (paper.max_stale_days, paper.status_polls,
                                                                          paper.status_wait)
    assert args.equity is None and args.probe_notional is None and args.whole_shares is False
    assert script.parse_args(["--run", "r", "--ledger", "l", "--equity", "broker"]).equity == "broker"
    assert script.parse_args(["--run", "r", "--ledger", "l", "--equity", "12.5"]).equity == 12.5
    with pytest.raises(SystemExit):
        script.parse_args(["--run", "r", "--ledger", "l", "--equity", "lots"])
