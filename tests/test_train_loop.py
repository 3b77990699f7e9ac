"""The host loop: checkpoints each chunk, resumes bit for bit, truncates the metrics log, fine-tunes."""

from __future__ import annotations

import json

import chex
import jax
import pytest

from ndjax.train.checkpoints import CheckpointError, RunCheckpoints
from ndjax.train.config import HParams
from ndjax.train.loop import fit
from tests.helpers import small_arrays, small_trainer


def test_resume_reaches_same_parameters(tmp_path):
    _, arr, a, b = small_arrays(7)
    cfg, trainer = small_trainer(arr, a, b, steps=6, eval_every=2)
    hp, key = HParams(fill_temperature=5e-3), jax.random.PRNGKey(3)
    straight = fit(trainer, cfg, hp, key, tmp_path / "a", progress=False)
    fit(trainer, cfg, hp, key, tmp_path / "b", stop_after=1, progress=False)  # "killed" after one chunk
    resumed = fit(trainer, cfg, hp, key, tmp_path / "b", resume=True, progress=False)
    chex.assert_trees_all_equal(straight, resumed)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    # the pure run scans the same chunk function: same parameters
    pure, _ = jax.jit(trainer.train)(key, hp)
    chex.assert_trees_all_close(pure.params, straight.params, rtol=1e-5, atol=1e-6)
    with RunCheckpoints(tmp_path / "b" / "checkpoints", existing=True) as ck:
        assert ck.latest_step() == 6
    assert [json.loads(ln)["step"] for ln in lines] == [2, 4, 6]


def test_init_params_start_from_given_parameters(tmp_path):
    _, arr, a, b = small_arrays(8)
    cfg, trainer = small_trainer(arr, a, b, steps=2, eval_every=2)
    hp, key = HParams(), jax.random.PRNGKey(0)
    first = fit(trainer, cfg, hp, key, tmp_path / "a", progress=False)
    tuned = fit(trainer, cfg, hp, jax.random.PRNGKey(1), tmp_path / "b", init_params=first.params, progress=False)
    fresh = fit(trainer, cfg, hp, jax.random.PRNGKey(1), tmp_path / "c", progress=False)
    leaves = lambda t: jax.tree_util.tree_leaves(t.params)  # noqa: E731
    assert any(float(abs(x - y).max()) > 0 for x, y in zip(leaves(tuned), leaves(fresh)))
    chex.assert_trees_all_equal(tuned.step, first.step)


def test_a_new_run_never_trains_into_another_runs_checkpoints(tmp_path):
    """orbax skips a save at or before its latest step: a second run into the same folder would keep the first
    run's model. It raises instead, and `overwrite` starts the folder afresh."""
    _, arr, a, b = small_arrays(8)
    cfg, trainer = small_trainer(arr, a, b, steps=2, eval_every=2)
    hp = HParams()
    first = fit(trainer, cfg, hp, jax.random.PRNGKey(0), tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="holds checkpoints of another run"):
        fit(trainer, cfg, hp, jax.random.PRNGKey(1), tmp_path, progress=False)
    second = fit(trainer, cfg, hp, jax.random.PRNGKey(1), tmp_path, overwrite=True, progress=False)
    with RunCheckpoints(tmp_path / "checkpoints", existing=True) as ck:
        restored, _ = ck.restore_best(trainer.init(jax.random.PRNGKey(1), hp))
    chex.assert_trees_all_equal(restored.best_params, second.best_params)
    leaves = lambda t: jax.tree_util.tree_leaves(t.best_params)  # noqa: E731
    assert any(float(abs(x - y).max()) > 0 for x, y in zip(leaves(first), leaves(second)))
    with RunCheckpoints(tmp_path / "checkpoints") as ck, pytest.raises(CheckpointError, match="step 2 not saved"):
        ck.save(2, second, 0.0, {})


def test_prior_checkpoint_competes_with_every_chunk(tmp_path):
    """With `prior_checkpoint` the start is saved as step 0 with its own validation score, and the best checkpoint
    (the run a report loads) is the start unless a chunk beats it; the pure run keeps the same best score. A
    learning rate of 1e8 wrecks the policy (a worse score, then NaN), so there the start is kept."""
    _, arr, a, b = small_arrays(8)
    cfg, trainer = small_trainer(arr, a, b, steps=4, eval_every=2, prior_checkpoint=True)
    key = jax.random.PRNGKey(0)
    for name, hp in (("plain", HParams()), ("wrecked", HParams(learning_rate=1e8))):
        ts = fit(trainer, cfg, hp, key, tmp_path / name, progress=False)
        start = trainer.init(key, hp)
        prior = float(jax.jit(trainer.validate)(start.params, hp)["score"])
        scores = [prior] + [json.loads(ln)["val"]["score"]
                            for ln in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        scores = [s if s == s else float("-inf") for s in scores]  # NaN ranks last
        with RunCheckpoints(tmp_path / name / "checkpoints", existing=True) as ck:
            assert ck.steps() == [0, 2, 4] and ck.best_step() == 2 * scores.index(max(scores))
            restored, meta = ck.restore(0, start)
            best = ck.best_step()
        assert meta["val"]["score"] == pytest.approx(prior)
        chex.assert_trees_all_equal(restored.params, start.params)
        assert float(ts.best_score) == pytest.approx(max(scores))
        pure, _ = jax.jit(trainer.train)(key, hp)
        assert float(pure.best_score) == pytest.approx(max(scores), rel=1e-5)
        if name == "wrecked":
            assert best == 0
            chex.assert_trees_all_equal(ts.best_params, start.params)
    plain_cfg, plain = small_trainer(arr, a, b, steps=2, eval_every=2)
    fit(plain, plain_cfg, HParams(), key, tmp_path / "no_prior", progress=False)
    with RunCheckpoints(tmp_path / "no_prior" / "checkpoints", existing=True) as ck:
        assert ck.steps() == [2]
