"""Seed ensembles: the mean of the members' target weights, simulated through the same rollout as one policy."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest
from flax import nnx

from ndjax.data.arrays import prepare
from ndjax.dynamics import init_state
from ndjax.ensemble import Ensemble, ensemble
from ndjax.errors import ConfigError
from ndjax.observation import observe
from ndjax.policy import PolicyConfig, create, encode, orders
from ndjax.sim import simulate_policy
from ndjax.train.config import HParams, market_params
from tests.helpers import SMALL_POLICY, small_arrays

DESIGN = dict(model="mlp", features="regime_vol", pooled=True, book_vol_target=0.15, band=0.25, **SMALL_POLICY)


def member(cfg: PolicyConfig, seed: int):
    """A policy whose head is not the zero-initialised one, so members differ."""
    graphdef, params = create(cfg, jax.random.PRNGKey(seed))
    kernel = params["head_out"]["kernel"]
    params["head_out"]["kernel"] = nnx.Param(jax.random.normal(jax.random.PRNGKey(100 + seed), kernel.shape))
    return graphdef, params


def test_ensemble_orders_are_those_of_the_mean_target_weights():
    """Three different members: the ensemble's weights are the mean of theirs (checked in float64 against each
    member's own encode and target weights), within the cap, and its action is `orders` of that mean; an
    ensemble of three copies of one policy simulates exactly that policy's path."""
    cfg = PolicyConfig(**DESIGN)
    members = [member(cfg, s) for s in range(3)]
    graphdef = members[0][0]
    g, p = ensemble(graphdef, [m[1] for m in members])
    market, _, a, _ = small_arrays(0, n_days=120)
    arr = prepare(market, a, names=cfg.feature_names)[1]
    mp = market_params(HParams(), arr.is_crypto, "hard", "excess")
    state = init_state(1.0, arr.close[20])
    obs = observe(encode(g, p, arr.features, arr.valid)[20], state, mp)
    mean = np.mean([np.asarray(nnx.merge(graphdef, q).target_weights(
        observe(encode(graphdef, q, arr.features, arr.valid)[20], state, mp)), np.float64) for _, q in members], 0)
    weights = jax.jit(lambda q, o: nnx.merge(g, q).target_weights(o))(p, obs)
    np.testing.assert_allclose(np.asarray(weights, np.float64), mean, rtol=1e-5)
    assert not np.allclose(mean, np.asarray(nnx.merge(graphdef, members[0][1]).target_weights(
        observe(encode(graphdef, members[0][1], arr.features, arr.valid)[20], state, mp))))
    sigma = np.exp(np.asarray(arr.features[20, :, cfg.feature_names.index("log_annual_vol")], np.float64))
    assert np.sum(mean * sigma) <= 0.15 * (1 + 1e-5)
    chex.assert_trees_all_close(jax.jit(lambda q, o: nnx.merge(g, q).decide(o))(p, obs), orders(weights, obs, 0.25))

    same_g, same_p = ensemble(graphdef, [members[1][1]] * 3)
    run = jax.jit(simulate_policy, static_argnums=(0, 4))
    one = run(graphdef, members[1][1], arr, mp, cfg.context)
    three = run(same_g, same_p, arr, mp, cfg.context)
    chex.assert_trees_all_close(one, three, rtol=1e-5, atol=1e-6)  # (x + x + x) / 3 rounds
    chex.assert_tree_all_finite(three)


def test_ensemble_rejects_members_of_different_configurations():
    a = create(PolicyConfig(**DESIGN), jax.random.PRNGKey(0))
    b = create(PolicyConfig(**dict(DESIGN, band=0.1)), jax.random.PRNGKey(1))
    with pytest.raises(ConfigError, match="configurations differ"):
        Ensemble([nnx.merge(*a), nnx.merge(*b)])
    with pytest.raises(ConfigError, match="at least one"):
        Ensemble([])
