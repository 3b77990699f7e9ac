"""Sweeps: vmapped training equals separate runs; sharding over (forced) host devices keeps the numbers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ndjax.report.tables import format_leaderboard
from ndjax.report.writers import write_rows
from ndjax.train.config import HParams
from ndjax.train.sweep import (
    best_validation,
    grid,
    leaderboard,
    random_search,
    stack_hparams,
    sweep,
    unstack_hparams,
    varied_hparams,
    with_seeds,
)
from tests.helpers import assert_run_close, sweep_trainer


@pytest.fixture(scope="module")
def trainer():
    return sweep_trainer()


def test_hparam_builders():
    g = grid(learning_rate=[1e-3, 3e-3], maker_fee=[0.0, 8e-4, 1e-3])
    assert g.learning_rate.shape == (6,) and g.return_weight.shape == (6,)
    np.testing.assert_allclose(g.maker_fee, [0.0, 8e-4, 1e-3] * 2, rtol=1e-6)
    hs = unstack_hparams(g)
    assert len(hs) == 6 and hs[3].learning_rate == pytest.approx(3e-3) and hs[3].maker_fee == 0.0
    r = random_search(jax.random.PRNGKey(0), 16, learning_rate=(1e-4, 1e-2), stock_max_leverage=[1.0, 2.0])
    assert np.all((r.learning_rate >= 1e-4) & (r.learning_rate <= 1e-2))
    assert set(np.asarray(r.stock_max_leverage).tolist()) <= {1.0, 2.0}
    keys, hp, seeds = with_seeds(g, [0, 1])
    assert keys.shape == (12, 2) and hp.maker_fee.shape == (12,) and seeds.tolist() == [0, 1] * 6
    with pytest.raises(ValueError):
        grid(not_a_field=[1.0])


def test_vmapped_sweep_equals_separate_runs(trainer, tmp_path):
    _, tr = trainer
    hps = [HParams(learning_rate=1e-3, maker_fee=8e-4, fill_temperature=5e-3),
           HParams(learning_rate=5e-3, maker_fee=2e-4, stock_max_leverage=1.5, fill_temperature=1e-2)]
    seeds = [0, 7]
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    state, metrics = sweep(tr, keys, stack_hparams(hps))
    one = jax.jit(tr.train)
    for i, (s, hp) in enumerate(zip(seeds, hps)):
        ref_state, ref_metrics = one(jax.random.PRNGKey(s), jax.tree_util.tree_map(jnp.float32, hp))
        assert_run_close(jax.tree_util.tree_map(lambda x, i=i: x[i], (state, metrics)), (ref_state, ref_metrics))
    # runs really differ, and the leaderboard reads the best evaluation
    assert not np.allclose(metrics["train"]["loss"][0], metrics["train"]["loss"][1])
    best = best_validation(metrics)
    np.testing.assert_allclose(best["score"], state.best_score, rtol=1e-6)
    rows = leaderboard(stack_hparams(hps), seeds, metrics)
    assert [r["rank"] for r in rows] == [1, 2] and rows[0]["score"] >= rows[1]["score"]
    assert varied_hparams(rows) == ["learning_rate", "fill_temperature", "maker_fee", "stock_max_leverage"]
    assert "score" in format_leaderboard(rows, varied_hparams(rows))
    assert write_rows(tmp_path / "lb.csv", rows).read_text().startswith("rank,run,seed")


def test_sweep_chunks_and_padding_match_separate_runs(trainer):
    _, tr = trainer
    keys, hp, seeds = with_seeds(grid(learning_rate=[1e-3, 4e-3, 2e-2]), [3])
    seen = []
    # K = 3 in chunks of 2 (the last one padded): the program compiled for K = 2 above is reused
    state, metrics = sweep(tr, keys, hp, max_parallel=2, progress=lambda done, k, m: seen.append((done, k)))
    assert seen == [(2, 3), (3, 3)]
    assert metrics["val"]["score"].shape == (3, 2) and state.best_score.shape == (3,)
    one = jax.jit(tr.train)
    for i, h in enumerate(unstack_hparams(hp)):
        ref = one(keys[i], jax.tree_util.tree_map(jnp.float32, h))
        assert_run_close(jax.tree_util.tree_map(lambda x, i=i: x[i], (state, metrics)), ref)
