"""Run checkpoints on orbax: one `CheckpointManager` per run folder keeps the latest train state (resume) and
the best `keep` by validation score (evaluation, planning, `--init-from`).

Every checkpoint is a whole `TrainState` plus a JSON `meta` item (step, score, validation metrics), written
atomically (a temporary directory renamed into place, so a killed run leaves the previous checkpoint, never a
torn one) by every process of a multi-host run, with process 0 doing the directory work. Restoring checks
every leaf's shape and dtype against a template built by `Trainer.init` and names the first that differs
(orbax itself would silently cast a dtype).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from ndjax.errors import NdjaxError

UNSCORED = -1e30
"""Score stored for a checkpoint whose validation score is not finite: it can only rank last."""


class CheckpointError(NdjaxError):
    """A checkpoint folder that is missing, empty or does not match the model; the message names it."""


def _score(metrics: dict) -> float:
    return metrics["score"]


def _registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
    """The two items of a checkpoint, so a fresh manager can read their metadata before restoring."""
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    for args in (ocp.args.StandardSave, ocp.args.StandardRestore):
        registry.add("state", args, ocp.StandardCheckpointHandler)
    for args in (ocp.args.JsonSave, ocp.args.JsonRestore):
        registry.add("meta", args, ocp.JsonCheckpointHandler)
    return registry


class RunCheckpoints:
    """The checkpoints of one run folder, `directory` (created on the first save). With `existing=True` the
    folder must exist already (reading a trained run); nothing is written unless `save` is called."""

    def __init__(self, directory: str | Path, keep: int = 3, *, existing: bool = False):
        self.directory = Path(directory).absolute()
        if existing and not self.directory.is_dir():
            raise CheckpointError(f"{self.directory}: no checkpoint folder")
        options = ocp.CheckpointManagerOptions(
            best_fn=_score, best_mode="max", enable_async_checkpointing=False, cleanup_tmp_directories=True,
            create=not existing,
            preservation_policy=policies.AnyPreservationPolicy([
                policies.LatestN(n=1),
                policies.BestN(get_metric_fn=_score, reverse=False, n=keep, keep_checkpoints_without_metrics=False),
            ]),
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, handler_registry=_registry())

    def save(self, step: int, state: Any, score: float, meta: dict) -> None:
        """Store `state` (a `TrainState`) at `step` with its validation `score` and JSON-able `meta`."""
        score = float(score) if math.isfinite(float(score)) else UNSCORED
        saved = self.manager.save(int(step), metrics={"score": score}, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(_jsonable(meta), step=int(step),
                                                                             score=score))))
        if not saved:  # orbax skips a step at or before the latest one instead of overwriting it
            raise CheckpointError(f"{self.directory}: step {step} not saved: the folder already holds checkpoints "
                                  f"up to step {self.latest_step()}")

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        """The step with the highest validation score (None before the first save)."""
        return self.manager.best_step()

    def steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def restore(self, step: int | None, template: Any) -> tuple[Any, dict]:
        """`(state, meta)` at `step`, shaped like `template` (a `TrainState` from `Trainer.init`)."""
        if step is None:
            raise CheckpointError(f"{self.directory}: no checkpoint saved yet")
        try:
            stored = self.manager.item_metadata(step)["state"]
            _check_layout(self.directory / str(step), stored, template)
            abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
            out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                                    meta=ocp.args.JsonRestore()))
        except CheckpointError:
            raise
        except (ValueError, OSError, RuntimeError, KeyError, TypeError) as e:  # orbax's, on damaged files
            logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # its unretrieved task errors, said here once
            first = " ".join(str(e).split())[:160]
            raise CheckpointError(f"{self.directory / str(step)}: damaged checkpoint ({type(e).__name__}: {first}); "
                                  "restore the folder, or train the run again") from None
        return jax.tree_util.tree_map(_placed_like, template, out["state"]), dict(out["meta"])

    def restore_latest(self, template: Any) -> tuple[Any, dict]:
        return self.restore(self.latest_step(), template)

    def restore_best(self, template: Any) -> tuple[Any, dict]:
        return self.restore(self.best_step(), template)

    def close(self) -> None:
        self.manager.close()

    def __enter__(self) -> RunCheckpoints:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def saved_steps(directory: str | Path) -> list[int]:
    """The steps checkpointed in `directory` (empty when it does not exist)."""
    if not Path(directory).is_dir():
        return []
    with RunCheckpoints(directory, existing=True) as checkpoints:
        return sorted(checkpoints.steps())


def _leaf_names(tree: Any) -> dict[str, Any]:
    return {jax.tree_util.keystr(path, simple=True, separator="."): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _check_layout(where: Path, stored: Any, template: Any) -> None:
    """Raise `CheckpointError` naming the first leaf whose presence, shape or dtype differs."""
    tree = getattr(stored, "tree", stored)
    on_disk = {leaf.name: leaf for leaf in jax.tree_util.tree_leaves(tree)}
    expected = _leaf_names(template)
    missing, extra = sorted(set(expected) - set(on_disk)), sorted(set(on_disk) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{where}: arrays differ from the model's: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, leaf in expected.items():
        want = (tuple(np.shape(leaf)), np.dtype(leaf.dtype))
        got = (tuple(on_disk[name].shape), np.dtype(on_disk[name].dtype))
        if want != got:
            raise CheckpointError(f"{where}: array {name!r} is {got[1]}{got[0]}, the model expects {want[1]}{want[0]}")


def _placed_like(template: Any, restored: Any) -> Any:
    """`restored` uncommitted where the template leaf is (orbax commits every array it restores to a device, and
    `jit` compiles again for committed arguments: a resumed run would recompile its chunk)."""
    if (isinstance(template, jax.Array) and not template.committed and isinstance(restored, jax.Array)
            and not jax.dtypes.issubdtype(restored.dtype, jax.dtypes.extended)):
        return jnp.asarray(np.asarray(restored))
    return restored


def _jsonable(x: Any) -> Any:
    """Nested dicts/lists of Python numbers, strings and None (JSON for orbax's `JsonSave`)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
