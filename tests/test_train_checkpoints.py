"""Orbax checkpoints: exact round trip, the latest plus the best k kept, errors that name the leaf or folder."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

from ndjax.policy import PolicyConfig
from ndjax.train.checkpoints import CheckpointError, RunCheckpoints
from ndjax.train.config import HParams, TrainConfig
from ndjax.train.trainer import make_template
from tests.helpers import SMALL_POLICY


def _state(seed: int = 0, **policy):
    cfg = TrainConfig(policy=PolicyConfig(**dict(SMALL_POLICY, **policy)))
    _, template = make_template(cfg, HParams())
    noise = lambda x: x + jax.random.normal(jax.random.PRNGKey(seed), x.shape, x.dtype) if x.dtype.kind == "f" else x  # noqa: E731
    return jax.tree_util.tree_map(noise, template), template


def test_round_trip_is_exact_and_keeps_types(tmp_path):
    state, template = _state()
    with RunCheckpoints(tmp_path / "ck") as ck:
        ck.save(7, state, 0.5, {"note": "x", "val": {"sortino": np.float32(1.5)}})
    with RunCheckpoints(tmp_path / "ck", existing=True) as ck:
        back, meta = ck.restore_latest(template)
    chex.assert_trees_all_equal(back, state)
    assert type(back) is type(state) and type(back.params) is type(state.params)
    assert meta["note"] == "x" and meta["step"] == 7 and meta["score"] == 0.5 and meta["val"]["sortino"] == 1.5


def test_restored_arrays_are_placed_like_the_template(tmp_path):
    """orbax commits every restored array to a device, and `jit` compiles again for committed arguments: a resumed
    run recompiled its training chunk. A leaf comes back committed only where the template's is."""
    state, template = _state()
    with RunCheckpoints(tmp_path / "ck") as ck:
        ck.save(1, state, 0.0, {})
    pinned_template = jax.device_put(template, jax.devices()[0])
    with RunCheckpoints(tmp_path / "ck", existing=True) as ck:
        loose, _ = ck.restore_latest(template)
        pinned, _ = ck.restore_latest(pinned_template)
    assert {x.committed for x in jax.tree_util.tree_leaves(loose)} == {False}
    assert {x.committed for x in jax.tree_util.tree_leaves(pinned)} == {True}
    chex.assert_trees_all_equal(loose, state)
    chex.assert_trees_all_equal(pinned, state)
    scale = jax.jit(lambda tree: jax.tree_util.tree_map(lambda x: x * 2, tree))
    scale(state)
    scale(loose)
    assert scale._cache_size() == 1


def test_latest_and_best_k_are_kept(tmp_path):
    state, template = _state()
    with RunCheckpoints(tmp_path / "ck", keep=2) as ck:
        for step, score in [(1, 0.5), (2, 0.9), (3, 0.1), (4, 0.7), (5, float("nan"))]:
            ck.save(step, state, score, {})
        assert ck.steps() == [2, 4, 5] and ck.best_step() == 2 and ck.latest_step() == 5
    with RunCheckpoints(tmp_path / "ck", keep=2) as ck:  # a restarted run keeps ranking by the stored scores
        ck.save(6, state, 0.8, {})
        assert ck.steps() == [2, 6] and ck.best_step() == 2


def test_mismatches_name_the_leaf_or_folder(tmp_path):
    state, _ = _state()
    with RunCheckpoints(tmp_path / "ck") as ck:
        ck.save(1, state, 0.1, {})
    _, other = _state(d_model=8, hidden=16)
    with RunCheckpoints(tmp_path / "ck", existing=True) as ck:
        with pytest.raises(CheckpointError, match=r"ck/1: array 'params\..*' is float32\(.*\), the model expects"):
            ck.restore_latest(other)
    half = jax.tree_util.tree_map(lambda x: x.astype(np.float16) if x.dtype == np.float32 else x, state)
    with RunCheckpoints(tmp_path / "ck", existing=True) as ck:
        with pytest.raises(CheckpointError, match="float16"):  # orbax alone would cast silently
            ck.restore_latest(half)
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        RunCheckpoints(tmp_path / "missing", existing=True)
    (tmp_path / "empty").mkdir()
    with RunCheckpoints(tmp_path / "empty", existing=True) as ck:
        with pytest.raises(CheckpointError, match="no checkpoint saved yet"):
            ck.restore_latest(state)


def test_a_save_killed_half_way_is_invisible(tmp_path):
    """A killed save leaves `<step>.orbax-checkpoint-tmp`; readers ignore it and the next save removes it."""
    state, template = _state()
    with RunCheckpoints(tmp_path / "ck") as ck:
        ck.save(1, state, 0.1, {})
    torn = tmp_path / "ck" / "2.orbax-checkpoint-tmp"
    torn.mkdir()
    (torn / "partial").write_bytes(b"\0" * 16)
    with RunCheckpoints(tmp_path / "ck", existing=True) as ck:
        assert ck.steps() == [1]
        back, _ = ck.restore_latest(template)
        chex.assert_trees_all_equal(back, state)
        ck.save(3, state, 0.2, {})
    assert not torn.exists()
