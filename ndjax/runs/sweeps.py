"""A sweep's runs as run folders: each run of a vmapped sweep written as a folder `load_run` reads (its
`config.json` with its own hyperparameters and seed, one checkpoint holding its best parameters), plus `best`, the
run with the highest validation score. Evaluation, planning and paper trading then take a sweep's best run
directly (`--run DIR/best`, or `--run DIR`)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ndjax.runs.folder import SWEEP_BEST, RunConfig, save_config
from ndjax.train.checkpoints import RunCheckpoints
from ndjax.train.config import HParams
from ndjax.train.loop import CHECKPOINT_DIR
from ndjax.train.sweep import VAL_COLUMNS, best_validation, unstack_hparams


def run_folder_name(k: int) -> str:
    """The folder of the sweep's run `k`: `run-000`, `run-001`, ..."""
    return f"run-{k:03d}"


def save_sweep_runs(out: str | Path, config: RunConfig, state: Any, hparams: HParams, seeds: Sequence[int],
                    metrics: dict) -> list[Path]:
    """Write run k of a sweep (leading axis K of `state`, a stacked `TrainState`, of `hparams` and `metrics`) as
    `out/run-KKK`: `config` with the run's hyperparameters and seed, and one checkpoint, at the run's best
    evaluation step, of its best parameters (`TrainState.best_params`) with that evaluation's validation metrics.
    `out/best` links to the run with the highest validation score (NaN never wins). Returns the K folders."""
    out = Path(out)
    best = best_validation(metrics)
    hps = unstack_hparams(hparams)
    state = jax.device_get(state)
    folders = []
    for k, hp in enumerate(hps):
        folder = out / run_folder_name(k)
        save_config(folder, dataclasses.replace(config, hparams=hp, seed=int(seeds[k])))
        run_state = jax.tree_util.tree_map(lambda x: np.asarray(x[k]), state)
        run_state = run_state._replace(params=run_state.best_params)
        val = {c: float(best[c][k]) for c in VAL_COLUMNS}
        with RunCheckpoints(folder / CHECKPOINT_DIR, keep=1) as checkpoints:
            checkpoints.save(int(best["best_step"][k]), run_state, val["score"], {"val": val, "sweep_run": k})
        folders.append(folder)
    scores = [-math.inf if math.isnan(s) else s for s in np.asarray(best["score"], np.float64)]
    link = out / SWEEP_BEST
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(run_folder_name(int(np.argmax(scores))), link, target_is_directory=True)
    return folders
