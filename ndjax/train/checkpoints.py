"""Checkpoints: atomic `.npz` files of a pytree's leaves plus JSON metadata, and a top-k manager.

A file is written to a temporary name in the same folder and moved into place with
`os.replace`, so a killed run leaves either the previous checkpoint or the new one,
never a torn file. Loading needs a template pytree of the same structure (built by
`Trainer.init`), and checks every leaf's shape and dtype against it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable or does not match its template."""


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically."""
    _atomic_write(Path(path), lambda fh: fh.write(json.dumps(obj, indent=2, default=_json_default).encode()))


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.generic, np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    if hasattr(x, "__dataclass_fields__"):
        return {k: getattr(x, k) for k in x.__dataclass_fields__}
    return str(x)


def save(path: str | os.PathLike, tree: Any, meta: dict | None = None) -> None:
    """Save the leaves of `tree` and `meta` (JSON-able) to `path` atomically."""
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]
    arrays = {f"leaf_{i:05d}": x for i, x in enumerate(leaves)}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta or {}, default=_json_default).encode(), np.uint8)
    _atomic_write(Path(path), lambda fh: np.savez(fh, **arrays))


def load(path: str | os.PathLike, template: Any) -> tuple[Any, dict]:
    """Restore a pytree shaped like `template` from `path`; returns `(tree, meta)`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with np.load(path) as z:
            meta = json.loads(bytes(z["__meta__"]).decode())
            stored = [z[k] for k in sorted(k for k in z.files if k.startswith("leaf_"))]
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({e})") from e
    leaves, treedef = jax.tree_util.tree_flatten(template)
    if len(stored) != len(leaves):
        raise CheckpointError(f"{path}: {len(stored)} arrays, the model expects {len(leaves)}")
    for i, (s, t) in enumerate(zip(stored, leaves)):
        t = np.asarray(t)
        if s.shape != t.shape or s.dtype != t.dtype:
            raise CheckpointError(f"{path}: array {i} is {s.dtype}{s.shape}, the model expects {t.dtype}{t.shape}")
    return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(s) for s in stored]), meta


class CheckpointManager:
    """A run folder's checkpoints: `latest.npz` (full train state, for `--resume`) and the top `keep`
    parameter sets by validation score (`best_<step>.npz`, listed best first in `index.json`)."""

    def __init__(self, directory: str | os.PathLike, keep: int = 3):
        self.dir = Path(directory)
        self.keep = keep
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def latest_path(self) -> Path:
        return self.dir / "latest.npz"

    def index(self) -> list[dict]:
        """Saved best checkpoints, best first: `[{"file", "step", "score"}, ...]`."""
        p = self.dir / "index.json"
        return json.loads(p.read_text()) if p.is_file() else []

    def save_latest(self, state: Any, meta: dict) -> None:
        save(self.latest_path, state, meta)

    def save_best(self, params: Any, step: int, score: float, meta: dict) -> bool:
        """Keep `params` if `score` is in the top `keep`; returns whether it was kept."""
        entries = self.index()
        if not np.isfinite(score):
            return False
        if len(entries) >= self.keep and score <= entries[-1]["score"]:
            return False
        name = f"best_{step:07d}.npz"
        save(self.dir / name, params, dict(meta, step=step, score=score))
        entries = [e for e in entries if e["file"] != name] + [{"file": name, "step": step, "score": score}]
        entries.sort(key=lambda e: -e["score"])
        for stale in entries[self.keep:]:
            (self.dir / stale["file"]).unlink(missing_ok=True)
        write_json(self.dir / "index.json", entries[: self.keep])
        return True

    def best_path(self) -> Path:
        entries = self.index()
        if not entries:
            raise CheckpointError(f"{self.dir}: no best checkpoint saved yet")
        return self.dir / entries[0]["file"]
