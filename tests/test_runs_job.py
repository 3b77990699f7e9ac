"""The main job as a library function: the run folder it writes, a resume that changes nothing, bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ndjax.data.market import DataError
from ndjax.runs.folder import RunError
from ndjax.runs.job import train_job
from ndjax.train.config import HParams
from tests.conftest import TINY_JOB


def test_run_folder_contents(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "checkpoints", "metrics.jsonl", "test_report.txt", "test_daily.csv", "test_summary.json",
            "equity.png"} <= names
    summary = json.loads((run_dir / "test_summary.json").read_text())["summary"]
    assert set(summary) == {"policy", "buy_and_hold", "cash", "trend", "inverse_vol", "oracle"}
    assert summary["cash"]["total_return"] == 0.0 and summary["buy_and_hold"]["max_leverage"] <= 1.0 + 1e-6


def test_resume_of_a_finished_run_reproduces_it(run_dir, tmp_path):
    again = train_job(TINY_JOB, tmp_path, rows=False, progress=False)
    resumed = train_job(TINY_JOB, tmp_path, resume=True, rows=False, progress=False)
    assert resumed.text == again.text
    first = json.loads((run_dir / "test_summary.json").read_text())["summary"]["policy"]
    assert first["final_equity"] == pytest.approx(float(again.stats["policy"].final_equity), rel=1e-6)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_fine_tuning_and_bad_input(run_dir, tmp_path):
    tuned = train_job(TINY_JOB, tmp_path / "tuned", init_from=run_dir, rows=False, progress=False)
    assert np.isfinite(float(tuned.stats["policy"].final_equity))
    with pytest.raises(RunError, match="no checkpoints to resume"):
        train_job(TINY_JOB, tmp_path / "new", resume=True, progress=False)
    with pytest.raises(ValueError, match="maintenance_margin"):
        train_job(dataclasses.replace(TINY_JOB, hparams=HParams(maintenance_margin=0.9)), tmp_path / "x",
                  progress=False)
    with pytest.raises(DataError, match="date split"):
        train_job(dataclasses.replace(TINY_JOB, train_end="2021-01-05", val_end="2021-01-04"), tmp_path / "y",
                  progress=False)
