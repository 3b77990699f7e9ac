"""The daily bar feeds and the folder update against the local Alpaca server: finality (early closes, holidays,
both crypto midnights), every class of bad bar refused naming the symbol and date with nothing written for it,
corrections and rewritten histories logged, 429/5xx retried with bounded waits, network failures naming the
symbol, a SIGKILLed fetch leaving a loadable folder, and keys never written anywhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("alpaca")

from ndjax.data.loading import load_daily
from ndjax.feeds.alpaca import MAX_WAIT, AlpacaFeed
from ndjax.feeds.bars import FeedError, check_bars
from ndjax.feeds.csvfolder import CsvFolderFeed
from ndjax.feeds.final import final_mask, final_through
from ndjax.feeds.update import update_folder, update_symbol
from tests.fake_alpaca import FakeAlpaca
from tests.live_bars import history, sessions

ROOT = Path(__file__).resolve().parents[1]
KEY, SECRET = "PKTESTKEY0123456789", "sEcReTtEsT9876543210abcdef"
DAYS = sessions("2026-10-01", "2026-11-30")
CRYPTO_DAYS = list(pd.date_range("2026-10-01", "2026-11-30"))
FIRST = pd.Timestamp("2026-10-01").date()


def _fake(fake: FakeAlpaca) -> FakeAlpaca:
    fake.bars = {"STK0": history(DAYS, False, 1), "STK1": history(DAYS, False, 2),
                 "CRY0/USD": history(CRYPTO_DAYS, True, 3, 50_000.0)}
    return fake


def _feed(fake: FakeAlpaca, **kw) -> AlpacaFeed:
    waits = kw.pop("waits", [])
    return AlpacaFeed(url=fake.url, key=KEY, secret=SECRET, sleep=waits.append, **{"retry_wait": 0.001, **kw})


def test_finality_knows_early_closes_holidays_and_both_crypto_midnights():
    assert final_through(False, "2026-11-27T18:29Z") == np.datetime64("2026-11-26")  # early close 13:00 ET + 30 min
    assert final_through(False, "2026-11-27T18:31Z") == np.datetime64("2026-11-29")  # through the weekend
    assert final_through(False, "2026-11-26T23:00Z") == np.datetime64("2026-11-26")  # Thanksgiving: no session
    assert final_through(False, "2026-11-30T21:29Z") == np.datetime64("2026-11-29")
    assert final_through(True, "2026-11-30T00:29Z") == np.datetime64("2026-11-28")
    assert final_through(True, "2026-11-30T00:31Z") == np.datetime64("2026-11-29")
    bars = pd.DataFrame({"date": np.array(["2025-01-06", "2026-11-29"], "datetime64[D]"),
                         "opened": pd.to_datetime(["2025-01-06T06:00Z", "2026-11-29T00:00Z"], utc=True)})
    # midnight Chicago (before 2025): the bar ends at 06:00 UTC the next day, not at midnight UTC
    assert final_mask(bars, True, "2025-01-07T00:45Z").tolist() == [False, False]
    assert final_mask(bars, True, "2026-11-30T06:31Z").tolist() == [True, True]


@pytest.mark.parametrize("field, value, problem", [
    ("h", 1.0, "high 1 < low"), ("o", 1e6, "open 1e\\+06 outside"),
    ("c", 0.001, "close 0.001 outside"), ("l", -1.0, "low is -1, not positive"), ("o", 0.0, "open is 0"),
    ("v", -5.0, "volume is -5, negative")])
def test_every_bad_bar_is_refused_naming_symbol_and_date(tmp_path, field, value, problem):
    with _fake(FakeAlpaca()) as fake:
        bad = fake.bars["STK1"][20]
        bad[field] = value
        results = update_folder(tmp_path, ["STK0", "STK1"], _feed(fake), "2026-12-01T00:00Z", start=FIRST)
        assert results[0].error is None and (tmp_path / "STK0.csv").exists()
        date = str(DAYS[20].date())
        assert f"STK1 {date}: bad bar refused" in results[1].error
        assert pd.Series([results[1].error]).str.contains(problem).all(), results[1].error
        assert not (tmp_path / "STK1.csv").exists()


def test_the_feed_refuses_what_the_loader_refuses(tmp_path):
    """A stock bar on a day the market was closed and a one-bar jump beyond x20 are refused by the fetch too, so it
    never writes a file `load_daily` would then refuse every day."""
    days = np.array(["2026-11-05", "2026-11-06", "2026-11-07"], "datetime64[D]")  # 11-07 is a Saturday
    frame = pd.DataFrame({"date": days, **{k: [10.0, 10.0, 10.0] for k in ("open", "high", "low", "close")},
                          "volume": [1.0, 1.0, 1.0]})
    check_bars("X", frame)  # crypto trades every day
    with pytest.raises(FeedError, match=r"^X 2026-11-07: bad bar refused \(not an XNYS session"):
        check_bars("X", frame, stock=True)
    jump = frame.iloc[:2].copy()
    jump.loc[1, ["open", "high", "low", "close"]] = 300.0
    with pytest.raises(FeedError, match=r"^X 2026-11-06: bad bar refused \(implausible one-bar move: open 300"):
        check_bars("X", jump, stock=True)


def test_nan_and_unreadable_bars_are_refused(tmp_path):
    """JSON has no NaN: a bar frame with one (from any feed) is refused by the check, naming symbol and date; a
    null price from the server is refused naming the symbol; a replayed CSV with a NaN names file, row and date."""
    frame = pd.DataFrame({"date": np.array(["2026-11-02", "2026-11-03"], "datetime64[D]"), "open": [1.0, 1.0],
                          "high": [1.0, np.inf], "low": [1.0, 1.0], "close": [1.0, np.nan], "volume": [0.0, 0.0]})
    with pytest.raises(FeedError, match=r"^X 2026-11-03: bad bar refused \(high is inf; close is nan\)"):
        check_bars("X", frame)
    with _fake(FakeAlpaca()) as fake:
        fake.bars["STK0"][3]["c"] = None
        with pytest.raises(FeedError, match="STK0: Alpaca data answered with bars that cannot be read"):
            update_symbol(tmp_path, "STK0", _feed(fake), "2026-12-01T00:00Z", start=FIRST)
    source = tmp_path / "source"
    source.mkdir()
    pd.DataFrame({"date": ["2026-11-02", "2026-11-03", "2026-11-04"], "open": [1.0, 1.0, 1.0],
                  "high": [1.0, 1.0, 1.0], "low": [1.0, 1.0, 1.0], "close": [1.0, "nan", 1.0]}).to_csv(
        source / "Y.csv", index=False)
    with pytest.raises(FeedError, match=r"Y: .*Y.csv: data row 2 \(2026-11-03\): close is NaN"):
        update_symbol(tmp_path, "Y", CsvFolderFeed(source), "2026-12-01T00:00Z", start=FIRST)
    assert not (tmp_path / "STK0.csv").exists() and not (tmp_path / "Y.csv").exists()


def test_duplicated_and_out_of_order_bars_are_refused(tmp_path):
    with _fake(FakeAlpaca()) as fake:
        fake.bars["STK0"].insert(11, dict(fake.bars["STK0"][10]))
        fake.bars["STK1"][5], fake.bars["STK1"][6] = fake.bars["STK1"][6], fake.bars["STK1"][5]
        results = update_folder(tmp_path, ["STK0", "STK1"], _feed(fake), "2026-12-01T00:00Z", start=FIRST)
        assert f"STK0 {DAYS[10].date()}: bad bar refused (the same date as the bar before" in results[0].error
        assert f"STK1 {DAYS[5].date()}: bad bar refused (out of order (after {DAYS[6].date()})" in results[1].error
        assert not list(tmp_path.glob("*.csv"))


def test_updates_corrections_splits_and_the_log(tmp_path):
    """Only final bars; re-running changes nothing; a corrected close inside the re-fetch window is rewritten and
    logged; a split rewrites the history and records it; the folder loads after each step."""
    with _fake(FakeAlpaca()) as fake:
        feed = _feed(fake)
        lines: list[str] = []
        r = update_folder(tmp_path, ["STK0", "CRY0-USD"], feed, "2026-11-27T18:20Z", start=FIRST, log=lines.append)
        assert [x.last for x in r] == ["2026-11-25", "2026-11-26"]  # the early close is 30 minutes away
        fake.bars["STK0"][-2]["c"] = fake.bars["STK0"][-2]["h"]  # 2026-11-27's bar changes after it was read
        r = update_folder(tmp_path, ["STK0", "CRY0-USD"], feed, "2026-11-27T18:31Z", log=lines.append)
        assert r[0].added == ["2026-11-27"] and r[1].added == []
        before = (tmp_path / "STK0.csv").read_bytes()
        r = update_folder(tmp_path, ["STK0"], feed, "2026-11-27T18:31Z")
        assert r[0].added == r[0].corrections == [] and (tmp_path / "STK0.csv").read_bytes() == before
        fake.bars["STK0"][-3]["c"] = round(fake.bars["STK0"][-3]["c"] * 1.001, 4)  # 11-25 recomputed
        fake.bars["STK0"][-3]["h"] = max(fake.bars["STK0"][-3]["h"], fake.bars["STK0"][-3]["c"])
        r = update_folder(tmp_path, ["STK0"], feed, "2026-12-01T00:00Z", log=lines.append)
        assert r[0].added == ["2026-11-30"] and {c["field"] for c in r[0].corrections} >= {"close"}
        assert any(line.startswith("correction: STK0 2026-11-25 close") for line in lines)
        assert load_daily(tmp_path / "STK0.csv").close[-3, 0] == pytest.approx(fake.bars["STK0"][-3]["c"])
        for b in fake.bars["STK0"][:-1]:  # a 2:1 split on 11-30: everything before is halved
            b.update(o=b["o"] / 2, h=b["h"] / 2, l=b["l"] / 2, c=b["c"] / 2, v=b["v"] * 2)
        r = update_folder(tmp_path, ["STK0"], feed, "2026-12-01T00:00Z", log=lines.append)
        assert r[0].rewritten["changed_bars"] == len(DAYS) - 1 and r[0].rewritten["close_ratio"] == pytest.approx(2)
        assert r[0].rewritten["first_changed"] == str(DAYS[0].date())
        market = load_daily(tmp_path / "STK0.csv")
        assert market.close[:, 0] == pytest.approx([b["c"] for b in fake.bars["STK0"]])
        log = [json.loads(x) for x in (tmp_path / "fetch_log.jsonl").read_text().splitlines()]
        assert [x["kind"] for x in log].count("history_rewritten") == 1
        assert {(x["date"], x["field"]) for x in log if x["kind"] == "correction"} >= {("2026-11-25", "close")}
        assert any("history rewritten: STK0" in line for line in lines)


def test_faults_are_retried_with_bounded_waits_then_named(tmp_path, monkeypatch):
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    with _fake(FakeAlpaca()) as fake:
        waits: list[float] = []
        fake.data_faults = [429, 500, 503]
        r = update_folder(tmp_path, ["STK0"], _feed(fake, waits=waits, retry_wait=1.0), "2026-12-01T00:00Z",
                          start=FIRST)
        assert r[0].error is None and waits == [1.0, 2.0, 4.0] and len(fake.requests) == 4
        fake.data_faults = [503] * 10
        waits.clear()
        feed = _feed(fake, waits=waits, retries=6, retry_wait=10.0)
        with pytest.raises(FeedError, match="STK1: Alpaca data answered HTTP 503 after 7 attempt"):
            update_symbol(tmp_path, "STK1", feed, "2026-12-01T00:00Z", start=FIRST)
        assert waits == [10.0, 20.0, MAX_WAIT, MAX_WAIT, MAX_WAIT, MAX_WAIT]
        fake.data_faults = [403]
        with pytest.raises(FeedError, match="HTTP 403 after 1 attempt.*--feed iex"):
            update_symbol(tmp_path, "STK1", _feed(fake), "2026-12-01T00:00Z", start=FIRST)
    before = (tmp_path / "STK0.csv").read_bytes()
    with pytest.raises(FeedError, match="STK0: could not reach Alpaca data"):
        update_symbol(tmp_path, "STK0", AlpacaFeed(url=fake.url, key=KEY, secret=SECRET), "2026-12-02T00:00Z")
    assert (tmp_path / "STK0.csv").read_bytes() == before and not (tmp_path / "STK1.csv").exists()
    with pytest.raises(FeedError, match="stock data needs APCA_API_KEY_ID"):
        update_symbol(tmp_path, "STK0", AlpacaFeed(url=fake.url, key=None, secret=None), "2026-12-02T00:00Z")


def test_crypto_needs_no_keys_and_a_csv_folder_replays(tmp_path, monkeypatch):
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    with _fake(FakeAlpaca()) as fake:
        r = update_folder(tmp_path / "a", ["CRY0-USD"], AlpacaFeed(url=fake.url), "2026-11-15T01:00Z", start=FIRST)
        assert r[0].error is None and r[0].last == "2026-11-14" and fake.requests[0][3] is None
        r = update_folder(tmp_path / "a", ["CRY0-USD"], AlpacaFeed(url=fake.url), "2026-12-01T01:00Z")
    replay = update_folder(tmp_path / "b", ["CRY0-USD"], CsvFolderFeed(tmp_path / "a"), "2026-11-10T01:00Z",
                           start=FIRST)
    assert replay[0].last == "2026-11-09"
    replay = update_folder(tmp_path / "b", None, CsvFolderFeed(tmp_path / "a"), "2026-12-01T01:00Z")
    assert (tmp_path / "b" / "CRY0-USD.csv").read_bytes() == (tmp_path / "a" / "CRY0-USD.csv").read_bytes()
    (tmp_path / "c").mkdir()
    pd.DataFrame({"timestamp": [1, 2], "open": [1, 1], "high": [1, 1], "low": [1, 1], "close": [1, 1]}).to_csv(
        tmp_path / "c" / "X.csv", index=False)
    with pytest.raises(FeedError, match="X: .*X.csv has columns .*not fetch's"):
        update_symbol(tmp_path / "c", "X", CsvFolderFeed(tmp_path / "a"), "2026-12-01T01:00Z")
    check_bars("ok", pd.DataFrame({"date": [], "open": [], "high": [], "low": [], "close": [], "volume": []}))


def _script(name: str, *args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "experiments" / name), *args], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_mid_fetch_leaves_a_loadable_folder_and_keys_never_reach_disk(tmp_path):
    keys = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}
    with _fake(FakeAlpaca()) as fake:
        env = {**keys, "APCA_API_DATA_URL": fake.url}
        common = ["--data-dir", str(tmp_path), "--history-start", "2026-10-01", "--retry-wait", "0.01"]
        first = _script("fetch.py", *common, "--symbols", "STK0,STK1,CRY0-USD", "--now", "2026-11-20T00:00Z",
                        env=env)
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        old = {p.name: p.read_bytes() for p in tmp_path.glob("*.csv")}
        fake.bars["STK1"][-8]["c"] = fake.bars["STK1"][-8]["l"]  # a correction the next run logs
        fake.data_delay, seen = 0.4, len(fake.requests)
        killed = _script("fetch.py", *common, "--now", "2026-12-01T00:00Z", env=env)
        deadline = time.monotonic() + 60
        while len(fake.requests) < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=30)
        assert killed.returncode == -signal.SIGKILL
        market = load_daily(tmp_path)  # every file is the old one or the new one
        assert market.dates[-1] <= np.datetime64("2026-11-30")
        states = {p.name: p.read_bytes() == old[p.name] for p in tmp_path.glob("*.csv")}
        assert set(states) == set(old) and not all(states.values()) and any(states.values())
        fake.data_delay = 0.0
        again = _script("fetch.py", *common, "--now", "2026-12-01T00:00Z", env=env)
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert "correction: STK1" in err or "correction: STK1" in (tmp_path / "fetch_log.jsonl").read_text()
        market = load_daily(tmp_path)
        assert str(market.dates[-1]) == "2026-11-30" and not list(tmp_path.glob(".*.tmp"))
        assert {k for *_, k in fake.requests if k} == {KEY}  # the keys were sent, in headers
        fake.data_faults = [403]
        failed = _script("fetch.py", *common, "--symbols", "STK0", "--now", "2026-12-02T00:00Z", env=env)
        fout, ferr = failed.communicate(timeout=120)
        assert failed.returncode == 1 and "fetch: FAILED: STK0: Alpaca data answered HTTP 403" in ferr
    for text in [out, err, fout, ferr] + [p.read_bytes().decode() for p in tmp_path.rglob("*") if p.is_file()]:
        assert KEY not in text and SECRET not in text
