"""Policy causality and equivariance, training, the lookahead guard, checkpoints and resume."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ndjax.train import checkpoints as checkpoint
from ndjax.dynamics import init_state
from ndjax.runs.evaluate import held_out
from ndjax.data.features import FEATURE_NAMES, Normalizer, compute_features
from ndjax.policy import PolicyConfig, create, encode, policy_apply
from ndjax.train.loop import fit
from ndjax.sim import summary
from ndjax.data.synthetic import synthetic_market
from ndjax.train.trainer import HParams, TrainConfig, context_split, make_train, market_arrays, market_params, simulate_policy

F = len(FEATURE_NAMES)
SMALL = dict(n_features=F, d_model=16, hidden=32, n_heads=2, lookback=8)


def _arrays(seed: int, signal: float = 0.0, n_days: int = 300, n_stocks: int = 2):
    m = synthetic_market(seed, n_stocks=n_stocks, n_crypto=2, n_days=n_days, signal_strength=signal)
    f = compute_features(m)
    a, b = int(m.n_days * 0.6), int(m.n_days * 0.8)
    return m, market_arrays(m, Normalizer.fit(f[:a]).apply(f)), a, b


@pytest.mark.parametrize("model", ["transformer", "mlp"])
def test_policy_causal(model):
    cfg = PolicyConfig(model=model, **SMALL)
    graphdef, params = create(cfg, jax.random.PRNGKey(0))
    _, arr, _, _ = _arrays(0, n_days=80)
    mp = market_params(HParams(), arr.is_crypto, "hard", "excess")
    run = jax.jit(lambda a: simulate_policy(graphdef, params, a, mp, cfg.lookback))
    actions, infos = run(arr)
    t = 40  # change features and bars from row t on: actions for bars <= t (rows < t - lookback) stay
    changed = arr.replace(features=arr.features.at[t:].add(3.0), close=arr.close.at[t:].multiply(1.2),
                          high=arr.high.at[t:].multiply(1.2), low=arr.low.at[t:].multiply(1.2))
    actions2, infos2 = run(changed)
    k = t - cfg.lookback  # action row k is for bar lookback + 1 + k, decided from row lookback + k
    chex.assert_trees_all_equal(*jax.tree_util.tree_map(lambda x: x[:k], (actions, actions2)))
    chex.assert_trees_all_equal(*jax.tree_util.tree_map(lambda x: x[: k - 1], (infos.equity, infos2.equity)))
    assert not np.allclose(actions.buy_price[k:], actions2.buy_price[k:])


@pytest.mark.parametrize("model", ["transformer", "mlp"])
def test_permuting_assets_permutes_actions(model):
    cfg = PolicyConfig(model=model, **SMALL)
    graphdef, params = create(cfg, jax.random.PRNGKey(1))
    feats = jax.random.normal(jax.random.PRNGKey(2), (20, 5, F))
    state = init_state(1.0, jnp.linspace(10.0, 50.0, 5)).replace(inventory=jnp.array([0.0, 0.01, 0.0, 0.005, 0.0]))
    perm = jnp.array([3, 0, 4, 1, 2])
    apply = policy_apply(graphdef)
    a = apply(params, encode(graphdef, params, feats)[-1], state)
    pstate = state.replace(inventory=state.inventory[perm], mark=state.mark[perm])
    b = apply(params, encode(graphdef, params, feats[:, perm])[-1], pstate)
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[perm], a), b, rtol=1e-5, atol=1e-6)


def test_decoded_limits_respect_bands():
    cfg = PolicyConfig(model="mlp", **SMALL)
    graphdef, params = create(cfg, jax.random.PRNGKey(3))
    params = jax.tree_util.tree_map(lambda x: x * 30, params)  # saturate the head
    feats = jax.random.normal(jax.random.PRNGKey(4), (12, 4, F)) * 5
    ref = jnp.array([10.0, 20.0, 30.0, 40.0])
    a = policy_apply(graphdef)(params, encode(graphdef, params, feats)[-1], init_state(1.0, ref))
    assert np.all(a.buy_price <= ref) and np.all(a.buy_price >= ref * (1 - 2 * cfg.offset))
    assert np.all(a.sell_price >= a.buy_price * (1 + cfg.min_gap) * (1 - 1e-6))
    assert np.all((a.buy_frac >= 0) & (a.buy_frac <= 1) & (a.sell_frac >= 0) & (a.sell_frac <= 1))


def _small_trainer(arr, a, b, steps=4, eval_every=2, model="mlp"):
    cfg = TrainConfig(policy=PolicyConfig(model=model, **SMALL), window=24, batch_size=4, steps=steps,
                      eval_every=eval_every, periods_per_year=365)
    return cfg, make_train(cfg, arr.rows(0, a), context_split(arr, a, b, cfg.policy.lookback))


def test_training_reduces_loss():
    _, arr, a, b = _arrays(5)
    cfg, trainer = _small_trainer(arr, a, b, steps=100, eval_every=100)
    hp = HParams(learning_rate=3e-3, fill_temperature=5e-3)
    ts0 = trainer.init(jax.random.PRNGKey(0), hp)
    keys = jax.random.split(jax.random.PRNGKey(9), 32)
    mean_loss = jax.jit(lambda p: jnp.mean(jax.vmap(lambda k: trainer.loss(p, hp, k)[0])(keys)))
    ts, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0), hp)
    assert float(mean_loss(ts.params)) < float(mean_loss(ts0.params))
    chex.assert_tree_all_finite(metrics)


def test_chunk_traces_once():
    _, arr, a, b = _arrays(6)
    cfg, trainer = _small_trainer(arr, a, b)
    hp = HParams()
    chunk = jax.jit(chex.assert_max_traces(trainer.chunk, n=1))
    ts = trainer.init(jax.random.PRNGKey(0), hp)
    for _ in range(3):
        ts, _ = chunk(ts, hp)
    chex.clear_trace_counter()


def test_bad_train_config_raises():
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=10, eval_every=3)
    with pytest.raises(ValueError, match="fill"):
        TrainConfig(fill="round")
    with pytest.raises(ValueError, match="model"):
        PolicyConfig(model="lstm")
    _, arr, a, b = _arrays(0, n_days=120)
    with pytest.raises(ValueError, match="window"):
        make_train(TrainConfig(policy=PolicyConfig(**SMALL), window=200), arr.rows(0, a), arr.rows(a, b))


def test_checkpoint_round_trip_and_errors(tmp_path):
    _, params = create(PolicyConfig(**SMALL), jax.random.PRNGKey(0))
    checkpoint.save(tmp_path / "p.npz", params, {"note": "x"})
    back, meta = checkpoint.load(tmp_path / "p.npz", params)
    chex.assert_trees_all_equal(params, back)
    assert meta == {"note": "x"}
    _, other = create(PolicyConfig(**dict(SMALL, d_model=8, n_heads=2)), jax.random.PRNGKey(0))
    with pytest.raises(checkpoint.CheckpointError, match="p.npz"):
        checkpoint.load(tmp_path / "p.npz", other)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(checkpoint.CheckpointError, match="bad.npz"):
        checkpoint.load(tmp_path / "bad.npz", params)
    manager = checkpoint.CheckpointManager(tmp_path / "ck", keep=2)
    for step, score in [(1, 0.5), (2, 0.9), (3, 0.1), (4, 0.7)]:
        manager.save_best(params, step, score, {})
    assert [e["step"] for e in manager.index()] == [2, 4]
    assert sorted(p.name for p in (tmp_path / "ck").glob("best_*.npz")) == ["best_0000002.npz", "best_0000004.npz"]


def test_resume_reaches_same_parameters(tmp_path):
    _, arr, a, b = _arrays(7)
    cfg, trainer = _small_trainer(arr, a, b, steps=6, eval_every=2)
    hp, key = HParams(fill_temperature=5e-3), jax.random.PRNGKey(3)
    straight = fit(trainer, cfg, hp, key, tmp_path / "a", progress=None)
    fit(trainer, cfg, hp, key, tmp_path / "b", stop_after=1, progress=None)  # "killed" after one chunk
    resumed = fit(trainer, cfg, hp, key, tmp_path / "b", resume=True, progress=None)
    chex.assert_trees_all_equal(straight, resumed)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3
    # the pure run scans the same chunk function: same parameters
    pure, _ = jax.jit(trainer.train)(key, hp)
    chex.assert_trees_all_close(pure.params, straight.params, rtol=1e-5, atol=1e-6)


def _held_out_sortino_gap(seed: int, signal: float) -> float:
    m, arr, a, b = _arrays(seed, signal, n_days=1000, n_stocks=4)
    cfg = TrainConfig(policy=PolicyConfig(model="mlp", **SMALL), window=64, batch_size=8, steps=200,
                      eval_every=50, periods_per_year=m.periods_per_year)
    hp = HParams(learning_rate=3e-3, fill_temperature=5e-3, stock_max_leverage=1.0)
    trainer = make_train(cfg, arr.rows(0, a), context_split(arr, a, b, cfg.policy.lookback))
    ts, _ = jax.jit(trainer.train)(jax.random.PRNGKey(seed), hp)
    runs = held_out(trainer.graphdef, ts.best_params, arr, b, cfg.policy.lookback,
                    market_params(hp, arr.is_crypto, "hard", "excess"))
    s = {k: float(summary(v, m.periods_per_year)["sortino"]) for k, v in runs.items()}
    return s["policy"] - max(s["buy_and_hold"], s["cash"])


@pytest.mark.xfail(reason="under the one-pool margin rules the current training no longer finds the signal; "
                          "issue 14 (learning) replaces this guard with a strict one", strict=False)
def test_planted_signal_is_learned_and_no_signal_is_not():
    """Held-out Sortino (hard fills) minus the better baseline, averaged over three market seeds."""
    with_signal = np.mean([_held_out_sortino_gap(seed, 0.5) for seed in range(3)])
    without = np.mean([_held_out_sortino_gap(seed, 0.0) for seed in range(3)])
    assert with_signal > 0.5, with_signal
    assert without < 0.5, without
    assert with_signal - without > 0.5
