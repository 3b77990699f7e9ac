"""The host loop of a run: jitted training chunks, a metrics log, orbax checkpoints, resume, a tqdm bar.

The loop calls the same `Trainer.chunk` that `Trainer.train` scans, so a run driven from here (with
checkpoints between chunks) follows the pure run's updates; a resumed run continues bit for bit.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ndjax.files import atomic_write_text
from ndjax.train.checkpoints import CheckpointError, RunCheckpoints, saved_steps
from ndjax.train.config import HParams, TrainConfig
from ndjax.train.trainer import Trainer, TrainState, init_train_state

METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop metric lines written after the checkpoint a resumed run starts from."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= last_step]
        atomic_write_text(path, "".join(ln + "\n" for ln in lines))


def check_fresh(run_dir: str | Path, *, resume: bool, overwrite: bool) -> None:
    """Raise `CheckpointError` when a new run (neither `resume` nor `overwrite`) would train into a folder that
    holds another run's checkpoints (they would shadow the new one's)."""
    steps = [] if resume or overwrite else saved_steps(Path(run_dir) / CHECKPOINT_DIR)
    if steps:
        raise CheckpointError(f"{run_dir}: holds checkpoints of another run (steps {steps[0]} .. {steps[-1]}); "
                              "resume it, overwrite it, or train into an empty folder")


def fit(
    trainer: Trainer,
    cfg: TrainConfig,
    hp: HParams,
    key: jax.Array,
    run_dir: str | Path,
    *,
    meta: dict | None = None,
    resume: bool = False,
    overwrite: bool = False,
    init_params: Any = None,
    keep: int = 3,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainState:
    """Train to `cfg.steps` updates, checkpointing after every chunk into `run_dir/checkpoints`.

    `resume` continues from the latest checkpoint; otherwise a folder that holds checkpoints already raises
    `CheckpointError`, unless `overwrite` deletes them first. `init_params` starts from given parameters
    (fine-tuning) with a fresh optimiser. With `cfg.prior_checkpoint` the starting parameters are saved as step 0
    with their validation score, so the best checkpoint is the start unless training beats it on validation.
    `stop_after` ends after that many chunks (used to test resumption). Appends one JSON line per chunk to
    `run_dir/metrics.jsonl`; `progress` shows a tqdm bar on stderr.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / METRICS_FILE
    # `trainer.init` without its prior validation (`prior_checkpoint`): the fresh start below scores the start once,
    # jitted, and a resumed run restores its scores
    template = init_train_state(cfg, hp, key)
    check_fresh(run_dir, resume=resume, overwrite=overwrite)
    if overwrite and not resume:
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    with RunCheckpoints(run_dir / CHECKPOINT_DIR, keep=keep) as checkpoints:
        if resume and checkpoints.latest_step() is not None:
            ts, _ = checkpoints.restore_latest(template)
            _truncate_log(log_path, int(ts.step))
        else:
            ts = template
            if init_params is not None:
                ts = template._replace(params=init_params, best_params=init_params)
            log_path.unlink(missing_ok=True)
            if cfg.prior_checkpoint:
                val = {k: float(v) for k, v in jax.jit(trainer.validate)(ts.params, hp).items()}
                ts = ts._replace(best_score=jnp.asarray(val["score"], jnp.float32))  # the start's own (--init-from too)
                checkpoints.save(0, ts, val["score"], dict(meta or {}, val=val))
        chunk = jax.jit(trainer.chunk)
        t0 = time.perf_counter()
        bar = tqdm(total=cfg.steps, initial=int(ts.step), unit="update", disable=not progress, dynamic_ncols=True)
        chunks = 0
        with open(log_path, "a") as log, bar:
            while int(ts.step) < cfg.steps and (stop_after is None or chunks < stop_after):
                ts, m = chunk(ts, hp)
                step = int(m["step"])
                val = {k: float(v) for k, v in m["val"].items()}
                train = {k: float(np.mean(v)) for k, v in m["train"].items()}
                log.write(json.dumps({"step": step, "train": train, "val": val,
                                      "time": time.perf_counter() - t0}) + "\n")
                log.flush()
                checkpoints.save(step, ts, val["score"], dict(meta or {}, val=val))
                bar.update(step - bar.n)
                bar.set_postfix(loss=f"{train['loss']:+.3f}", val_score=f"{val['score']:+.3f}",
                                val_return=f"{val['total_return'] * 100:+.2f}%")
                chunks += 1
    return ts
