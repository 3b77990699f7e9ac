"""Host-side run loop: jitted training chunks, metrics log, checkpoints, resume and a progress line.

The loop calls the same `Trainer.chunk` that `Trainer.train` scans, so a run driven
from here (with checkpoints between chunks) follows the pure run's updates.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import jax
import numpy as np

from ndjax.train import checkpoints as checkpoint
from ndjax.train.trainer import HParams, Trainer, TrainConfig, TrainState


def _floats(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: np.asarray(x).tolist(), tree)


def _progress(out: TextIO, step: int, total: int, train: dict, val: dict, t0: float) -> None:
    width = 24
    done = int(width * step / total)
    line = (f"\r[{'#' * done}{'.' * (width - done)}] {step}/{total}  "
            f"loss {np.mean(train['loss']):+.3f}  train Sortino {np.mean(train['sortino']):+.2f}  "
            f"val score {float(val['score']):+.3f}  val return {float(val['total_return']) * 100:+.2f}%  "
            f"{time.perf_counter() - t0:.0f}s")
    out.write(line)
    out.flush()


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop metric lines written after the checkpoint a resumed run starts from."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= last_step]
        checkpoint._atomic_write(path, lambda fh: fh.write("".join(ln + "\n" for ln in lines).encode()))


def fit(
    trainer: Trainer,
    cfg: TrainConfig,
    hp: HParams,
    key: jax.Array,
    run_dir: str | Path,
    *,
    meta: dict | None = None,
    resume: bool = False,
    init_params: Any = None,
    keep: int = 3,
    stop_after: int | None = None,
    progress: TextIO | None = sys.stderr,
) -> TrainState:
    """Train to `cfg.steps` updates, checkpointing after every chunk into `run_dir/checkpoints`.

    `resume` continues from `latest.npz`; `init_params` starts from given parameters (fine-tuning)
    with a fresh optimiser. `stop_after` ends after that many chunks (used to test resumption).
    Appends one JSON line per chunk to `run_dir/metrics.jsonl`.
    """
    run_dir = Path(run_dir)
    manager = checkpoint.CheckpointManager(run_dir / "checkpoints", keep=keep)
    meta = dict(meta or {})
    template = trainer.init(key, hp)
    if resume and manager.latest_path.is_file():
        ts, _ = checkpoint.load(manager.latest_path, template)
        _truncate_log(run_dir / "metrics.jsonl", int(ts.step))
    else:
        ts = template
        if init_params is not None:
            ts = template._replace(params=init_params, best_params=init_params)
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    chunk = jax.jit(trainer.chunk)
    t0 = time.perf_counter()
    chunks = 0
    with open(run_dir / "metrics.jsonl", "a") as log:
        while int(ts.step) < cfg.steps and (stop_after is None or chunks < stop_after):
            ts, m = chunk(ts, hp)
            step = int(m["step"])
            val = _floats(m["val"])
            train = {k: float(np.mean(v)) for k, v in m["train"].items()}
            log.write(json.dumps({"step": step, "train": train, "val": val, "time": time.perf_counter() - t0}) + "\n")
            log.flush()
            manager.save_best(ts.params, step, float(val["score"]), dict(meta, val=val))
            manager.save_latest(ts, dict(meta, step=step))
            if progress is not None:
                _progress(progress, step, cfg.steps, m["train"], m["val"], t0)
            chunks += 1
    if progress is not None:
        progress.write("\n")
    return ts
