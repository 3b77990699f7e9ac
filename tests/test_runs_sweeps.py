"""A sweep's runs are run folders: `experiments/sweep.py --out DIR` writes each run as a folder `load_run` reads,
and `DIR/best` (or `DIR` itself) is the best run by validation score, which evaluation and planning take."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ndjax.runs.evaluate import evaluate_run
from ndjax.runs.folder import load_run
from ndjax.runs.plan import plan_next_day

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--synthetic-days", "240", "--n-stocks", "2", "--n-crypto", "1", "--d-model", "4", "--hidden", "4",
        "--lookback", "4", "--window", "16", "--batch-size", "2", "--steps", "4", "--eval-every", "2",
        "--warmup-steps", "1", "--learning-rate", "1e-3,3e-2", "--seeds", "0,1"]


def _sweep_script():
    spec = importlib.util.spec_from_file_location("sweep_script", ROOT / "experiments" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    rows = _sweep_script().main([*TINY, "--out", str(out)])
    return out, rows


def test_every_run_is_a_run_folder_with_its_own_hyperparameters(swept):
    out, rows = swept
    assert len(rows) == 4 and sorted(p.name for p in out.glob("run-*")) == [f"run-{k:03d}" for k in range(4)]
    for row in rows:
        run = load_run(out / f"run-{row['run']:03d}")
        assert run.config.seed == row["seed"]
        assert float(np.float32(run.config.hparams.learning_rate)) == pytest.approx(row["learning_rate"], rel=1e-6)
        assert run.step == row["best_step"]
        assert float(run.checkpoint_meta["score"]) == pytest.approx(row["score"], rel=1e-5, abs=1e-6)


def test_best_is_the_leaderboards_first_run_and_the_sweep_folder_stands_for_it(swept, tmp_path):
    out, rows = swept
    best, folder = load_run(out / "best"), load_run(out)
    assert best.path.resolve() == (out / f"run-{rows[0]['run']:03d}").resolve() == folder.path.resolve()
    assert best.config.hparams == folder.config.hparams and best.step == rows[0]["best_step"]
    result = evaluate_run(folder, tmp_path / "eval", rows=False)
    assert "policy" in result["text"]
    plan = plan_next_day(best, tmp_path / "plan", equity=10_000.0)
    assert plan["run"] == str(best.path) and plan["equity"] == pytest.approx(10_000.0)
