"""A user's mistake with a ledger costs one clear line and never the ledger: a second process is refused at open,
so is a corrupt file; a missing or empty file is a new ledger only when asked; --start must match the ledger;
a --through the data does not reach, or a run with no new row, is named; Ctrl-C says where the ledger stands."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ndjax.paper.controls import Controls
from ndjax.paper.cycle import PaperConfig
from ndjax.paper.ledger import Ledger, LedgerError, LedgerIdentity
from ndjax.paper.trade import open_session, paper_trade

ROOT = Path(__file__).resolve().parents[1]
PLAIN = PaperConfig(controls=Controls(ramp_days=0, halt_drawdown=1.0))
START = 130
ID = LedgerIdentity(("A",), (False,), "sim", 1000.0)


def _paper():
    spec = importlib.util.spec_from_file_location("paper_script", ROOT / "experiments" / "paper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _days(run_dir, path: Path, first: int, last: int, **kw):
    session = open_session(run_dir, path, config=PLAIN, out=path.parent, equity=25_000.0, **kw)
    dates = session.market.dates
    result = paper_trade(session, start=str(dates[first]), through=str(dates[last]), rows=False)
    return session, result


def test_a_second_process_is_refused_at_open(tmp_path):
    path = tmp_path / "shared.db"
    Ledger.open(path, ID).close()
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys
from ndjax.paper.ledger import Ledger, LedgerIdentity
ledger = Ledger.open({str(path)!r}, LedgerIdentity(("A",), (False,), "sim", 1000.0))
print("open", flush=True)
sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(LedgerError, match=r"shared\.db: in use by another process"):
            Ledger.open(path, ID)
    finally:
        holder.communicate("")
    Ledger.open(path, ID).close()  # free again once the other process ends
    again = Ledger.open(path, ID)  # this process may open it twice
    Ledger.open(path, ID).close()
    again.close()


def test_a_corrupt_ledger_is_refused_at_open_naming_it(run_dir, tmp_path):
    path = tmp_path / "c.db"
    session, _ = _days(run_dir, path, START, START + 40)
    session.ledger.close()
    size = path.stat().st_size
    assert size > 6 * 4096
    with open(path, "r+b") as fh:
        fh.seek(3 * 4096)
        fh.write(os.urandom(4096))
    with pytest.raises(LedgerError, match=r"c\.db: (corrupt ledger|not an SQLite database, or a corrupt one)"):
        open_session(run_dir, path, config=PLAIN)
    with pytest.raises(SystemExit, match=r"^paper: .*c\.db: .*corrupt"):
        _paper().main(["--run", str(run_dir), "--ledger", str(path)])


def test_a_new_ledger_only_when_asked(run_dir, tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    main = _paper().main
    for path in (empty, tmp_path / "missing.db"):
        with pytest.raises(SystemExit, match=r"^paper: .*\.db: (no such ledger|an empty \(0-byte\) file); pass --new"):
            main(["--run", str(run_dir), "--ledger", str(path), "--start", "2021-06-01", "--no-rows"])
    assert empty.stat().st_size == 0 and not (tmp_path / "missing.db").exists()
    session, _ = _days(run_dir, empty, START, START + 2, new=True)
    with pytest.raises(LedgerError, match="--new, but this ledger holds days"):
        open_session(run_dir, empty, new=True)


def test_start_must_match_the_ledger_and_come_before_through(run_dir, tmp_path):
    path = tmp_path / "s.db"
    session, _ = _days(run_dir, path, START, START + 5)
    dates = session.market.dates
    with pytest.raises(LedgerError, match=rf"started on {dates[START]} .* --start {dates[START + 20]}"):
        paper_trade(session, start=str(dates[START + 20]), through=str(dates[START + 25]), rows=False)
    assert session.ledger.last_date() == str(dates[START + 5])
    again = paper_trade(session, start=str(dates[START]), through=str(dates[START + 8]), rows=False)
    assert again.recorded == 3
    fresh = open_session(run_dir, tmp_path / "late.db", config=PLAIN)
    with pytest.raises(LedgerError, match=rf"--start {dates[START + 9]} is after --through {dates[START + 2]}"):
        paper_trade(fresh, start=str(dates[START + 9]), through=str(dates[START + 2]), rows=False)
    assert fresh.ledger.last_date() is None


def test_a_request_the_data_cannot_meet_names_both_dates(run_dir, tmp_path):
    path = tmp_path / "t.db"
    session, _ = _days(run_dir, path, START, START + 3)
    last = session.market.dates[-1]
    with pytest.raises(LedgerError, match=rf"--through 2099-01-01, but the data ends on {last} \(recorded \d+ day"):
        paper_trade(session, through="2099-01-01", rows=False)
    assert session.ledger.last_date() == str(last)  # the days the data holds were recorded
    with pytest.raises(LedgerError, match=rf"no new rows: the ledger is at {last} and the data ends on {last}"):
        paper_trade(session, rows=False)
    assert paper_trade(session, through=str(last), rows=False).recorded == 0  # asked for what is there: done


def test_resume_buys_without_a_halt_and_bad_equity_are_refused(run_dir, tmp_path):
    session, _ = _days(run_dir, tmp_path / "h.db", START, START + 2)
    with pytest.raises(LedgerError, match=r"buys are not halted \(last day .*\); nothing to resume"):
        session.resume_buys()
    assert not session.ledger.events("resume")
    for equity in ("-5", "0"):
        with pytest.raises(SystemExit, match=r"^paper: --equity: a ledger's starting equity must be a positive"):
            _paper().main(["--run", str(run_dir), "--ledger", str(tmp_path / "n.db"), "--equity", equity, "--new",
                           "--start", "2021-06-01"])
    assert not (tmp_path / "n.db").exists()


def test_ctrl_c_says_where_the_ledger_is(run_dir, tmp_path, monkeypatch):
    path = tmp_path / "i.db"
    session, _ = _days(run_dir, path, START, START + 2)
    session.ledger.close()
    script = _paper()

    def interrupted(session, **kw):
        session.replay(None, str(session.market.dates[START + 4]))
        raise KeyboardInterrupt

    import ndjax.paper.command as command

    monkeypatch.setattr(command, "paper_trade", interrupted)  # the script's command, interrupted mid-replay
    with pytest.raises(SystemExit) as stop:
        script.main(["--run", str(run_dir), "--ledger", str(path), "--equity", "25000"])
    dates = open_session(run_dir, path).market.dates
    assert str(stop.value) == f"paper: interrupted; the ledger is at {dates[START + 4]}"
