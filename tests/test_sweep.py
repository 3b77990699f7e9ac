"""Sweeps: vmapped training equals separate runs; sharding over (forced) host devices keeps the numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ndjax.data.features import FEATURE_NAMES, Normalizer, compute_features
from ndjax.policy import PolicyConfig
from ndjax.train.sweep import (
    best_validation,
    format_leaderboard,
    grid,
    leaderboard,
    random_search,
    stack_hparams,
    sweep,
    unstack_hparams,
    with_seeds,
    write_leaderboard,
)
from ndjax.data.synthetic import synthetic_market
from ndjax.train.trainer import HParams, TrainConfig, context_split, make_train, market_arrays

ROOT = Path(__file__).resolve().parents[1]
TOL = dict(rtol=1e-5, atol=1e-5)  # parameters (O(0.1)), optimiser state; Adam divides out gradient scale
METRIC_TOL = dict(rtol=1e-4, atol=1e-5)  # Sortino-type ratios amplify float32 rounding of near-cancelling sums


def assert_run_close(run, ref):
    """`run`, `ref`: `(TrainState, metrics)` of one run each."""
    (state, metrics), (ref_state, ref_metrics) = run, ref
    chex.assert_trees_all_close(state._replace(best_score=0.0), ref_state._replace(best_score=0.0), **TOL)
    chex.assert_trees_all_close((state.best_score, metrics), (ref_state.best_score, ref_metrics), **METRIC_TOL)


def small_trainer():
    """A tiny synthetic market and an mlp trainer: 4 updates, validation every 2.

    Training uses `soft` fills and no margin calls: an `ste` fill and a call are step functions, so a limit
    within one float32 ulp of the bar's low, or a book within one ulp of its maintenance line, may flip
    between two mathematically equal programs (different vmap/shard shapes round differently) and the runs
    then legitimately diverge. Validation still uses hard fills."""
    m = synthetic_market(0, n_stocks=2, n_crypto=2, n_days=160, signal_strength=0.3)
    f = compute_features(m)
    a, b = int(m.n_days * 0.6), int(m.n_days * 0.8)
    arr = market_arrays(m, Normalizer.fit(f[:a]).apply(f))
    pc = PolicyConfig(model="mlp", n_features=len(FEATURE_NAMES), d_model=8, hidden=16, n_heads=2, lookback=8)
    cfg = TrainConfig(policy=pc, window=16, batch_size=2, steps=4, eval_every=2, warmup_steps=1,
                      fill="soft", margin_call=False)
    return cfg, make_train(cfg, arr.rows(0, a), context_split(arr, a, b, pc.lookback))


@pytest.fixture(scope="module")
def trainer():
    return small_trainer()


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
    assert "score" in format_leaderboard(rows)
    assert write_leaderboard(rows, tmp_path / "lb.csv").read_text().startswith("rank,run,seed")


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


CHILD = textwrap.dedent("""
    import os, json, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np, chex
    assert jax.device_count() == 4, jax.devices()
    sys.path.insert(0, {root!r})
    from tests.test_sweep import small_trainer, assert_run_close
    from tests.conftest import path_to_jax, random_path
    from ndjax.train.sweep import sweep, grid, with_seeds, simulate_sharded
    from ndjax.sim import simulate

    out = {{}}
    _, tr = small_trainer()
    one = jax.jit(tr.train)
    for k in (4, 3):  # 3 pads to 4 (same compiled program)
        keys, hp, _ = with_seeds(grid(learning_rate=np.geomspace(1e-3, 2e-2, k).tolist()), [5])
        state, metrics = sweep(tr, keys, hp)
        assert state.best_score.shape == (k,)
        if k == 4:
            leaves = jax.tree_util.tree_leaves((state, metrics))
            out["sweep_devices"] = sorted({{len(x.sharding.device_set) for x in leaves}})
            out["sweep_spec"] = str(state.best_score.sharding.spec)
        for i in range(k):  # each run equals its own single-device run
            h = jax.tree_util.tree_map(lambda x: x[i], hp)
            ref = jax.device_get(one(jax.device_put(keys[i], jax.devices()[0]), jax.device_put(h, jax.devices()[0])))
            assert_run_close(jax.tree_util.tree_map(lambda x: np.asarray(x)[i], (state, metrics)), ref)
    for b in (8, 6):  # 6 pads to 8
        params, state0, actions, bars = path_to_jax(random_path(0, T=24, batch=b))
        final, infos = simulate_sharded(params, state0, actions, bars)
        rf, ri = simulate(params, state0, actions, bars)
        if b == 8:
            out["sim_devices"] = sorted({{len(x.sharding.device_set) for x in jax.tree_util.tree_leaves((final, infos))}})
            out["sim_spec"] = str(infos.equity.sharding.spec)
        assert infos.equity.shape == (24, b) and final.cash.shape == (b,)
        chex.assert_trees_all_close((final, infos), (rf, ri), rtol=1e-6, atol=1e-6)
    print("RESULT" + json.dumps(out))
""")


def test_sharded_over_four_host_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT))], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    out = json.loads(line[len("RESULT"):])
    assert out["sweep_devices"] == [4] and out["sim_devices"] == [4]
    assert "devices" in out["sweep_spec"] and "devices" in out["sim_spec"]
