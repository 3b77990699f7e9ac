"""A user's mistake with a run costs one clear line: --resume continues the run as configured (a differing flag is
refused, nothing is overwritten), every flag is checked before a file is written, newer data is read past the
run's stored end, a date the data does not reach is named, and a non-positive starting equity is refused."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from ndjax.report.tables import format_symbols
from ndjax.report.writers import atomic_write_text, write_json
from ndjax.runs.evaluate import evaluate_run
from ndjax.runs.folder import RunError, load_config, load_market, load_run
from ndjax.runs.job import resume_spec, train_job
from ndjax.runs.plan import plan_next_day
from tests.conftest import TINY_JOB

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def _fail(main, argv) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    message = str(stop.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_resume_continues_the_run_as_configured(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    config, checkpoints = (run / "config.json").read_bytes(), _digest(run / "checkpoints")
    train = _script("train").main
    train(["--out", str(run), "--resume", "--no-rows"])  # the stored synthetic(200 days), not the flags' defaults
    assert (run / "config.json").read_bytes() == config and _digest(run / "checkpoints") == checkpoints
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    message = _fail(train, ["--out", str(run), "--resume", "--steps", "8"])
    assert "--steps 8 differs from the run's 2" in message and "config.json" in message
    message = _fail(train, ["--out", str(run), "--resume", "--synthetic-days", "1100"])
    assert "--synthetic-days 1100 differs from the run's 200" in message
    assert "--learning-rate 0.01 differs" in _fail(train, ["--out", str(run), "--resume", "--learning-rate", "1e-2"])
    stored = load_config(run)
    same = resume_spec(run, {"window": 16, "synthetic_days": 200, "train_end": stored.split["train"][1],
                             "val_end": stored.split["val"][1], "learning_rate": 3e-3, "seed": 0})
    assert same.train.window == 16 and same.source.synthetic_days == 200
    assert "--train-end" in str(pytest.raises(RunError, resume_spec, run, {"train_end": stored.split["val"][1]}).value)
    assert "--resume continues the run, --overwrite replaces it" in _fail(
        train, ["--out", str(run), "--resume", "--overwrite"])
    assert "holds checkpoints of another run" in _fail(train, ["--out", str(run), "--no-rows"])
    assert (run / "config.json").read_bytes() == config and _digest(run / "checkpoints") == checkpoints


def test_a_folder_with_another_runs_config_is_not_overwritten(run_dir, tmp_path):
    (tmp_path / "config.json").write_text((run_dir / "config.json").read_text())
    with pytest.raises(RunError, match=r"holds another run's config\.json"):
        train_job(TINY_JOB, tmp_path, progress=False)
    assert (tmp_path / "config.json").read_text() == (run_dir / "config.json").read_text()


@pytest.mark.parametrize("flags, named", [
    (["--steps", "0"], "--steps): must be a whole number >= 1, got 0"),
    (["--steps", "-5"], "--steps): must be a whole number >= 1, got -5"),
    (["--eval-every", "0"], "--eval-every): must be a whole number >= 1, got 0"),
    (["--interest", "foo"], "TrainConfig.interest: unknown 'foo'"),
    (["--maker-fee", "2"], "maker_fee (--maker-fee): 2.0 is 100 % or more"),
    (["--train-end", "2024-13-45"], "--train-end: '2024-13-45' is not a date"),
    (["--end", "yesterday-ish"], "--end: 'yesterday-ish' is not a date"),
    (["--initial-cash", "0"], "--initial-cash): must be > 0"),
])
def test_every_flag_is_checked_before_a_file_is_written(tmp_path, flags, named):
    out = tmp_path / "never"
    message = _fail(_script("train").main, ["--out", str(out), *flags])
    assert message.startswith("train: ") and named in message, message
    assert not out.exists()


def test_a_config_of_a_newer_format_is_described_as_newer(run_dir, tmp_path):
    d = json.loads((run_dir / "config.json").read_text())
    write_json(tmp_path / "config.json", dict(d, format="ndjax-run/9"))
    with pytest.raises(RunError, match="format ndjax-run/9 was written by a newer ndjax"):
        load_config(tmp_path)
    write_json(tmp_path / "config.json", dict(d, format="ndjax-run/1"))
    with pytest.raises(RunError, match="must be trained again"):
        load_config(tmp_path)


def _with_stored_end(run_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the run whose stored source ends 40 rows before the synthetic market's last row."""
    run = tmp_path / "ended"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("*.png", "*.csv", "*.txt"))
    full = load_market(load_run(run_dir))
    end = str(full.dates[-41])
    d = json.loads((run / "config.json").read_text())
    d["source"]["end"] = end
    write_json(run / "config.json", d)
    return run, end


def test_newer_rows_are_read_past_the_runs_stored_end(run_dir, tmp_path):
    run, end = _with_stored_end(run_dir, tmp_path)
    full = load_market(load_run(run_dir))
    market = load_market(load_run(run))
    assert market.dates[-1] == full.dates[-1] > market.dates[0]
    start = str(full.dates[-20])
    result = evaluate_run(load_run(run), tmp_path / "ev", start=start, rows=False)
    assert result["period"][-1] == str(full.dates[-1])
    plan = plan_next_day(load_run(run), tmp_path / "plan", equity=25_000.0)
    assert plan["as_of"] == str(full.dates[-1])
    with pytest.raises(ValueError, match=rf"--as-of 2099-01-01: the data ends on {full.dates[-1]}"):
        plan_next_day(load_run(run), tmp_path / "plan", equity=25_000.0, as_of="2099-01-01")
    with pytest.raises(ValueError, match=rf"--end 2099-01-01: the data ends on {full.dates[-1]}"):
        evaluate_run(load_run(run), tmp_path / "ev", start=start, end="2099-01-01", rows=False)


def test_non_positive_starting_equity_is_refused(run_dir, tmp_path):
    run = load_run(run_dir)
    for value in (-100.0, 0.0, float("nan")):
        with pytest.raises(RunError, match="--equity: a starting equity must be a positive amount"):
            plan_next_day(run, tmp_path, equity=value)
        with pytest.raises(RunError, match="--initial-cash: a starting equity must be a positive amount"):
            evaluate_run(run, tmp_path, initial_cash=value, rows=False)
    assert not list(tmp_path.iterdir())
    message = _fail(_script("evaluate").main, ["--run", str(run_dir), "--initial-cash", "-1", "--out", str(tmp_path)])
    assert message.startswith("evaluate: --initial-cash")


def test_tables_are_sized_to_their_values_and_files_follow_the_umask(tmp_path):
    row = {"symbol": "AAA", "asset_class": "stock", "pnl": -20040.29464, "realised": -10758.88641,
           "unrealised": -9281408.123, "interest": 12345678.5, "fees": 1.0, "trades": 3, "forced_sales": 0,
           "buy_fill_rate": 0.5, "sell_fill_rate": 1.0}
    lines = format_symbols([row, dict(row, pnl=1.0)]).splitlines()
    assert lines[1].split()[2:6] == ["-20040.29464", "-10758.88641", "-9281408.12300", "12345678.500000"]
    assert len({len(line) for line in lines}) == 1  # one width for every row
    old = os.umask(0o022)
    try:
        assert atomic_write_text(tmp_path / "a.txt", "x").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        assert write_json(tmp_path / "b.json", {}).stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
