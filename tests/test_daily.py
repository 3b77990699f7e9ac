"""The live loop against the local Alpaca server, 30 sessions as if live: the server reveals one bar a day and
experiments/daily.py runs each day at its scheduled time (00:45 UTC). The ledger must equal the simulated
broker's replay over the same final bars. One run carries every fault the loop must absorb without changing the
inputs (a bar not final when first asked for, a 429 and a 5xx, a day missing for one stock); a second carries the
two that change the inputs (a corrected close, a split rewriting the history), and differs from the replay over
the final data only from the day the inputs changed. Keys never reach the data folder, ledger, reports or logs."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("alpaca")

from ndjax.paper.trade import open_session, paper_trade
from tests.fake_alpaca import FakeAlpaca
from tests.live_bars import closes_at, history, sessions

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "PKDAILYKEY55555", "dailySecret77777xyz"
HISTORY = sessions("2026-06-01", "2026-11-30")
LIVE = HISTORY[-30:]
SYMBOLS = ("STK0", "STK1", "CRY0-USD")
CRYPTO_DAYS = list(pd.date_range(HISTORY[0], HISTORY[-1]))


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


DAILY = _script("daily")


def _server(fake: FakeAlpaca) -> FakeAlpaca:
    fake.bars = {"STK0": history(HISTORY, False, 11), "STK1": history(HISTORY, False, 12, 40.0),
                 "CRY0/USD": history(CRYPTO_DAYS, True, 13, 2_000.0)}
    return fake


def _daily(tmp: Path, run_dir: Path, now: str, *extra: str, exits: bool = False) -> tuple[object, str]:
    """daily.py's result (with `exits`: the SystemExit it must end with) and everything it printed."""
    err = io.StringIO()
    first = [] if (tmp / "book.db").exists() else ["--new"]  # a trader's first run starts the ledger
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        try:
            out = DAILY(["--data-dir", str(tmp / "data"), "--symbols", ",".join(SYMBOLS), "--ledger",
                         str(tmp / "book.db"), "--now", now, "--history-start", str(HISTORY[0].date()),
                         "--retry-wait", "0.001", *extra, "--", "--run", str(run_dir), "--broker", "sim", "--start",
                         str(LIVE[0].date()), "--ramp-days", "0", "--halt-drawdown", "1.0", "--no-rows", *first])
        except SystemExit as e:
            if not exits:
                raise AssertionError(f"daily.py exited ({e.code}):\n{err.getvalue()}") from None
            out = e
    return out, err.getvalue()


CONFIG = dict(ramp_days=0, halt_drawdown=1.0)


@pytest.fixture
def quick_paper(monkeypatch):
    """The paper command daily.py calls (`ndjax.paper.command.paper_command`) as is, with the run's checkpoint read
    once per test (not once a day) and the report written only when `report` holds True: the cycles are the
    command's own, the test keeps to seconds."""
    import functools

    import ndjax.paper.trade as trade

    cached = functools.lru_cache(maxsize=4)(trade.load_run)
    real_report = trade.write_paper_report
    report = [False]
    monkeypatch.setattr(trade, "load_run", lambda path, step=None: cached(str(path), step))
    monkeypatch.setattr(trade, "write_paper_report",
                        lambda *a, **k: real_report(*a, **k) if report[0] else (None, None))
    return report


def _at(day: pd.Timestamp) -> str:
    """The scheduled run after session `day`: 00:45 UTC the next calendar day."""
    return (day + pd.Timedelta(days=1)).strftime("%Y-%m-%dT00:45Z")


def _live(tmp: Path, run_dir: Path, fake: FakeAlpaca, events: dict[int, str], transcript: list[str],
          report: list[bool]) -> list[str]:
    """Run daily.py after each of the 30 sessions, applying `events` (live-day index -> what happens that day), with
    the report written on the last day; returns the reasons daily.py gave."""
    reasons = []
    for i, day in enumerate(LIVE):
        event, stamp = events.get(i), str(day.date())
        report[0] = i == len(LIVE) - 1
        if event == "not_final":  # asked 10 minutes after the close: the server answers the day's bar as it forms
            stk0 = next(b for b in fake.bars["STK0"] if b["t"].startswith(stamp))
            fake.partial[("STK0", stk0["t"])] = {**stk0, "c": stk0["h"], "v": 1.0}
            early = (closes_at(stamp) + pd.Timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%MZ")
            fake.now = early
            out, log = _daily(tmp, run_dir, early)
            transcript.append(f"$ daily.py --now {early}\n{log}")
            assert out.through is None and "nothing to do" in out.reason
            assert not (tmp / "data" / "STK0.csv").read_text().rstrip().endswith(stk0["t"][:10])
            assert stamp not in (tmp / "data" / "STK0.csv").read_text()
            fake.partial.clear()
        if event == "faults":
            fake.data_faults = [429, 503]
        if event == "missing":  # STK1 did not trade that session: the server never has its bar
            fake.bars["STK1"] = [b for b in fake.bars["STK1"] if not b["t"].startswith(stamp)]
        if event == "split":  # 2:1 on this session: Alpaca's adjusted history halves every STK1 price
            for b in fake.bars["STK1"]:
                b.update(o=b["o"] / 2, h=b["h"] / 2, l=b["l"] / 2, c=b["c"] / 2, v=b["v"] * 2)
        fake.now, extra = _at(day), ()
        if event == "split":  # the loop stops: the ledger holds STK1 units it does not split-adjust
            stopped, log = _daily(tmp, run_dir, fake.now, exits=True)
            transcript.append(f"$ daily.py --now {fake.now}\n{log}{stopped.code}\n(exit 1)")
            assert "daily: no cycle: STK1's history was rewritten with old/new close 2 from" in stopped.code
            assert "--accept-rewrite STK1" in stopped.code
            again, log = _daily(tmp, run_dir, fake.now, exits=True)  # and stays stopped until accepted
            assert "no cycle: STK1's history" in again.code
            extra = ("--accept-rewrite", "STK1")
        seen = len(fake.requests)
        out, log = _daily(tmp, run_dir, fake.now, *extra)
        transcript.append(f"$ daily.py --now {fake.now} {' '.join(extra)}\n{log}")
        reasons.append(out.reason)
        assert out.through == stamp, log
        if event == "faults":
            assert not fake.data_faults and len(fake.requests) - seen == len(SYMBOLS) + 2
        if event == "correct":  # the next morning Alpaca recomputes the day's bar: a cancelled trade removed
            stk0 = next(b for b in fake.bars["STK0"] if b["t"].startswith(stamp))
            stk0["c"] = round((stk0["c"] + stk0["l"]) / 2, 4)
        if i == 1:  # run twice: nothing the second time
            before = (tmp / "book.db").read_bytes()
            again, log = _daily(tmp, run_dir, fake.now)
            transcript.append(f"$ daily.py --now {fake.now}   # again\n{log}")
            assert again.through is None and "nothing to do" in again.reason
            assert (tmp / "book.db").read_bytes() == before
    return reasons


def _replay(tmp: Path, run_dir: Path, name: str):
    """The simulated broker's replay over the folder's final bars, into a fresh ledger."""
    from ndjax.paper.controls import Controls
    from ndjax.paper.cycle import PaperConfig

    session = open_session(run_dir, tmp / name, data_dir=str(tmp / "data"), symbols=list(SYMBOLS), broker="sim",
                           config=PaperConfig(controls=Controls(**CONFIG)))
    paper_trade(session, start=str(LIVE[0].date()), through=str(LIVE[-1].date()), rows=False)
    return session.ledger


def _days(ledger) -> pd.DataFrame:
    return pd.DataFrame(ledger.days()).set_index("date")[["equity", "cash", "gross", "fees", "leverage_cost"]]


def _orders(ledger) -> pd.DataFrame:
    rows = pd.DataFrame(ledger.order_rows())
    return rows[["date", "symbol", "side", "limit_price", "quantity", "status", "filled_qty"]].reset_index(drop=True)


def _open(tmp: Path, name: str):
    from ndjax.paper.ledger import Ledger, LedgerIdentity

    return Ledger.open(tmp / name, LedgerIdentity(SYMBOLS, (False, False, True), "sim"))


def _write_transcript(name: str, transcript: list[str], live, replay, rel) -> None:
    """With NDJAX_LIVE_TRANSCRIPT set (a folder), keep the run's transcript and its ledger beside the replay's."""
    import os

    folder = os.environ.get("NDJAX_LIVE_TRANSCRIPT")
    if folder:
        table = live.join(replay, rsuffix="_replay")
        if rel is not None:
            table["max_rel_diff"] = rel
        Path(folder, f"{name}.txt").write_text("\n".join(transcript) + "\n" + table.to_string())


def _no_keys(tmp: Path, transcript: list[str]) -> None:
    texts = transcript + [p.read_bytes().decode("latin-1") for p in tmp.rglob("*") if p.is_file()]
    assert texts and not [t for t in texts if KEY in t or SECRET in t]


def test_thirty_sessions_live_with_faults_equal_the_replay(run_dir, tmp_path, monkeypatch, quick_paper):
    """A bar not final when first asked for, a 429 and a 5xx, a day missing for one stock: the live ledger equals
    the replay over the same bars on every day, order for order; --status reports it, and calls it stale when the
    cycles stop."""
    transcript: list[str] = []
    with _server(FakeAlpaca()) as fake:
        monkeypatch.setenv("APCA_API_KEY_ID", KEY)
        monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
        monkeypatch.setenv("APCA_API_DATA_URL", fake.url)
        _live(tmp_path, run_dir, fake, {6: "not_final", 9: "faults", 14: "missing"}, transcript, quick_paper)
        assert {k for *_, k in fake.requests} == {KEY}
        status, _ = _daily(tmp_path, run_dir, _at(LIVE[-1]), "--status")
        transcript.append(f"$ daily.py --status\n{status}")
        assert f"last day {LIVE[-1].date()}" in status and "champion: model 1" in status and "ok" in status
        assert f"STK1 {LIVE[-1].date()}" in status and "not halted" in status
        later = _at(LIVE[-1] + pd.Timedelta(days=4))
        stale, text = _daily(tmp_path, run_dir, later, "--status", exits=True)
        transcript.append(f"$ daily.py --status --now {later}   # four days later\n{text}\n(exit {stale.code})")
        assert stale.code == 2 and "4 not run (stale after 1): STALE" in text
    live, replay = _open(tmp_path, "book.db"), _replay(tmp_path, run_dir, "replay.db")
    assert str(LIVE[14].date()) not in (tmp_path / "data" / "STK1.csv").read_text()
    assert len(live.days()) == len(replay.days()) >= 40  # every calendar day: crypto trades on weekends
    pd.testing.assert_frame_equal(_days(live), _days(replay), rtol=1e-9)
    pd.testing.assert_frame_equal(_orders(live), _orders(replay), rtol=1e-9)
    assert len(live.fills()) == len(replay.fills()) > 0
    _write_transcript("faults", transcript, _days(live), _days(replay), None)
    _no_keys(tmp_path, transcript)


def test_thirty_sessions_live_with_a_correction_and_a_split(run_dir, tmp_path, monkeypatch, quick_paper):
    """A close corrected the next morning, and a 2:1 split rewriting STK1's history: both are logged, and the split
    stops the loop (the ledger holds STK1 units it does not split-adjust) until it is accepted; the live ledger
    equals the replay over the final bars on every day before the first changed input and differs from there (the
    loop traded on the close first published, and on the unadjusted history before the split)."""
    transcript: list[str] = []
    with _server(FakeAlpaca()) as fake:
        monkeypatch.setenv("APCA_API_KEY_ID", KEY)
        monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
        monkeypatch.setenv("APCA_API_DATA_URL", fake.url)
        _live(tmp_path, run_dir, fake, {10: "correct", 20: "split"}, transcript, quick_paper)
    log = [json.loads(line) for line in (tmp_path / "data" / "fetch_log.jsonl").read_text().splitlines()]
    assert [(x["symbol"], x["date"], x["field"]) for x in log if x["kind"] == "correction"] == [
        ("STK0", str(LIVE[10].date()), "close")]
    (split,) = [x for x in log if x["kind"] == "history_rewritten"]
    assert split["symbol"] == "STK1" and split["close_ratio"] == pytest.approx(2.0)
    text = "\n".join(transcript)
    assert f"correction: STK0 {LIVE[10].date()} close" in text and "history rewritten: STK1" in text
    assert "STK1: the rewritten history accepted" in text
    live, replay = _days(_open(tmp_path, "book.db")), _days(_replay(tmp_path, run_dir, "replay.db"))
    assert list(live.index) == list(replay.index)
    rel = ((live - replay).abs() / replay.abs().clip(lower=1.0)).max(axis=1)
    before = live.index < str(LIVE[10].date())
    # the replay sees STK1 at half price on every day (the adjusted history): twice the units, the same dollars
    assert rel[before].max() < 1e-6, rel[before]
    assert rel[~before].max() > 1e-6  # from the corrected close on, the loop traded on other inputs
    _write_transcript("correction_split", transcript, live, replay, rel)
    assert (tmp_path / "paper_report.txt").exists()
    _no_keys(tmp_path, transcript)
