"""The policy: causality, asset-permutation equivariance, decoded limits within their bands, the observation."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ndjax.dynamics import MarketParams, init_state, size_orders
from ndjax.observation import BOOK_BOUND, observe
from ndjax.policy import PolicyConfig, create, encode, make_apply
from ndjax.sim import simulate_policy
from ndjax.train.config import HParams, market_params
from tests.helpers import SMALL_POLICY, small_arrays

F = PolicyConfig().n_features


@pytest.mark.parametrize("model", ["transformer", "mlp"])
def test_policy_causal(model):
    cfg = PolicyConfig(model=model, **SMALL_POLICY)
    graphdef, params = create(cfg, jax.random.PRNGKey(0))
    _, arr, _, _ = small_arrays(0, n_days=80)
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


WALK_FORWARD_DESIGN = dict(features="regime_vol", pooled=True, book_vol_target=0.15, band=0.25)
"""`walk_forward.py`'s policy: regime features, pooled context, a book vol cap and the no-trade band."""


@pytest.mark.parametrize("model,extra", [("transformer", {}), ("mlp", {}), ("mlp", WALK_FORWARD_DESIGN)])
def test_permuting_assets_permutes_actions(model, extra):
    cfg = PolicyConfig(model=model, **SMALL_POLICY, **extra)
    graphdef, params = create(cfg, jax.random.PRNGKey(1))
    params = jax.tree_util.tree_map(lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(5), x.shape), params)
    feats = jax.random.normal(jax.random.PRNGKey(2), (20, 5, cfg.n_features))
    state = init_state(1.0, jnp.linspace(10.0, 50.0, 5)).replace(inventory=jnp.array([0.0, 0.01, 0.0, 0.005, 0.0]))
    crypto = jnp.array([False, True, False, False, True])
    perm = jnp.array([3, 0, 4, 1, 2])
    apply = make_apply(graphdef)
    a = apply(params, observe(encode(graphdef, params, feats)[-1], state, MarketParams(is_crypto=crypto)))
    pstate = state.replace(inventory=state.inventory[perm], mark=state.mark[perm])
    b = apply(params, observe(encode(graphdef, params, feats[:, perm])[-1], pstate,
                              MarketParams(is_crypto=crypto[perm])))
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[perm], a), b, rtol=1e-5, atol=1e-6)


def test_target_head_stays_inside_the_margin_budget():
    """Whatever the parameters, the targets fit the initial margin, the orders are at the previous close and the
    fractions are valid."""
    cfg = PolicyConfig(model="mlp", **SMALL_POLICY)
    graphdef, params = create(cfg, jax.random.PRNGKey(3))
    params = jax.tree_util.tree_map(lambda x: x * 30 + 1.0, params)  # saturate the head towards large weights
    feats = jax.random.normal(jax.random.PRNGKey(4), (12, 4, F)) * 5
    ref = jnp.array([10.0, 20.0, 30.0, 40.0])
    mp = MarketParams(is_crypto=jnp.array([False, False, True, False]))
    state = init_state(1.0, ref)
    obs = observe(encode(graphdef, params, feats)[-1], state, mp)
    a = make_apply(graphdef)(params, obs)
    np.testing.assert_array_equal(a.buy_price, ref)
    np.testing.assert_array_equal(a.sell_price, ref)
    assert np.all((a.buy_frac >= 0) & (a.buy_frac <= 1) & (a.sell_frac >= 0) & (a.sell_frac <= 1))
    sizes = size_orders(mp, state, a, jnp.ones(4), jnp.asarray(1.0))
    spent = np.sum((np.asarray(obs.margin_rate) + 0.0008) * np.asarray(sizes.buy_qty) * np.asarray(ref))
    assert spent <= float(sizes.excess) * (1 + 1e-5) and spent >= 0.99 * float(sizes.excess)  # the whole pool


def test_observation_of_the_book():
    state = init_state(jnp.array([600.0, -5.0]), jnp.array([[10.0, 20.0], [10.0, 20.0]]))
    state = state.replace(inventory=jnp.array([[10.0, 15.0], [0.0, 0.0]]))
    obs = observe(jnp.zeros((2, 2, 3)), state)
    np.testing.assert_allclose(obs.book[0, :, 0], [0.1, 0.3])  # weights of 1000 equity
    np.testing.assert_allclose(obs.book[0, :, 1], [0.6, 0.6])  # cash fraction
    np.testing.assert_allclose(obs.book[0, :, 2], [0.4, 0.4])  # gross leverage
    np.testing.assert_array_equal(obs.book[1], 0.0)  # bust account: no ratios
    assert float(jnp.max(jnp.abs(obs.book))) <= BOOK_BOUND
    np.testing.assert_array_equal(obs.mark, state.mark)


@pytest.mark.parametrize("n", [1, 6, 56])
def test_initial_book_does_not_grow_with_the_number_of_assets(n):
    """At initialisation every asset's target is w_cap / (N + 1): a starting gross N / (N + 1) <= 1x for any N
    (not N * 0.18 cut to the margin limit), identical across assets."""
    cfg = PolicyConfig(model="mlp", **SMALL_POLICY)
    graphdef, params = create(cfg, jax.random.PRNGKey(6))
    feats = jax.random.normal(jax.random.PRNGKey(7), (12, n, F))
    ref = jnp.linspace(10.0, 50.0, n)
    mp = MarketParams(is_crypto=jnp.zeros(n, bool))
    state = init_state(1.0, ref)
    obs = observe(encode(graphdef, params, feats)[-1], state, mp)
    a = make_apply(graphdef)(params, obs)
    sizes = size_orders(mp, state, a, jnp.ones(n), jnp.asarray(1.0))
    value = np.asarray(sizes.buy_qty) * np.asarray(ref)
    np.testing.assert_allclose(value, 1.0 / (n + 1), rtol=2e-3)  # 1 of equity, fee-free of rounding


def test_risk_budget_head_scales_by_the_vol_forecast():
    """With vol_target the head's weight is w_cap / (N + 1) x min(vol_target / sigma, cap) at initialisation,
    sigma = exp(log_annual_vol): doubling one asset's vol halves its buy and leaves the others; equivariant."""
    cfg = PolicyConfig(model="mlp", features="regime_vol", vol_target=0.15, **SMALL_POLICY)
    graphdef, params = create(cfg, jax.random.PRNGKey(3))
    n, k = 4, cfg.feature_names.index("log_annual_vol")
    feats = jax.random.normal(jax.random.PRNGKey(4), (12, n, cfg.n_features))
    sigma = jnp.array([0.10, 0.20, 0.30, 0.60])
    feats = feats.at[..., k].set(jnp.log(sigma))
    ref = jnp.linspace(10.0, 40.0, n)
    mp = MarketParams(is_crypto=jnp.zeros(n, bool))
    state = init_state(1.0, ref)
    apply = jax.jit(lambda f: make_apply(graphdef)(params, observe(encode(graphdef, params, f)[-1], state, mp)))

    def value(f):
        return np.asarray(size_orders(mp, state, apply(f), jnp.ones(n), jnp.asarray(1.0)).buy_qty) * np.asarray(ref)

    base = value(feats)
    np.testing.assert_allclose(base, np.minimum(0.15 / np.asarray(sigma), 2.0) / (n + 1), rtol=2e-3)
    doubled = value(feats.at[..., 2, k].add(np.log(2.0)))
    np.testing.assert_allclose(doubled[2], base[2] / 2, rtol=2e-3)
    np.testing.assert_allclose(np.delete(doubled, 2), np.delete(base, 2), rtol=1e-6)
    perm = jnp.array([2, 0, 3, 1])
    permuted = value(feats[:, perm])
    np.testing.assert_allclose(permuted, base[perm], rtol=1e-5)  # a position's value follows its features
    with pytest.raises(ValueError, match="log_annual_vol"):
        PolicyConfig(vol_target=0.15)


def test_book_vol_cap_scales_every_weight_together():
    """With book_vol_target the weights are scaled down together until sum w sigma <= the target, and left alone
    below it: at initialisation every weight is 1 / (N + 1); with the risk-budget head too, the cap acts after it."""
    n, sigma = 4, np.array([0.10, 0.20, 0.30, 0.60])
    ref = jnp.linspace(10.0, 40.0, n)
    mp = MarketParams(is_crypto=jnp.zeros(n, bool))
    state = init_state(1.0, ref)

    def values(cfg, log_sigma):
        graphdef, params = create(cfg, jax.random.PRNGKey(3))
        k = cfg.feature_names.index("log_annual_vol")
        feats = jax.random.normal(jax.random.PRNGKey(4), (12, n, cfg.n_features)).at[..., k].set(log_sigma)
        apply = jax.jit(lambda f: make_apply(graphdef)(params, observe(encode(graphdef, params, f)[-1], state, mp)))
        return lambda f=feats: np.asarray(size_orders(mp, state, apply(f), jnp.ones(n), jnp.asarray(1.0)).buy_qty
                                          ) * np.asarray(ref), feats

    capped = PolicyConfig(model="mlp", features="regime_vol", book_vol_target=0.15, **SMALL_POLICY)
    value, feats = values(capped, jnp.log(sigma))
    base = value()
    np.testing.assert_allclose(base, 0.2 * 0.15 / (0.2 * sigma.sum()), rtol=2e-3)  # bound 0.24 cut to 0.15
    np.testing.assert_allclose(base @ sigma, 0.15, rtol=2e-3)
    k = capped.feature_names.index("log_annual_vol")
    doubled = value(feats.at[..., 3, k].add(np.log(2.0)))  # bound 0.36: every asset cut, not only the fourth
    np.testing.assert_allclose(doubled, base * 0.24 / 0.36, rtol=2e-3)
    perm = jnp.array([2, 0, 3, 1])
    np.testing.assert_allclose(value(feats[:, perm]), base[perm], rtol=1e-5)
    loose, _ = values(PolicyConfig(model="mlp", features="regime_vol", book_vol_target=0.5, **SMALL_POLICY),
                      jnp.log(sigma))
    np.testing.assert_allclose(loose(), 0.2, rtol=2e-3)  # bound 0.24 < 0.5: untouched
    both, _ = values(PolicyConfig(model="mlp", features="regime_vol", vol_target=0.15, book_vol_target=0.06,
                                  **SMALL_POLICY), jnp.log(sigma))
    np.testing.assert_allclose(both(), 0.5 * 0.2 * 0.15 / sigma, rtol=2e-3)  # risk budgets sum w sigma = 0.12
    with pytest.raises(ValueError, match="book_vol_target"):
        PolicyConfig(book_vol_target=0.15)


def test_learned_book_vol_cap_starts_at_the_target_and_carries_a_gradient():
    """With learn_book_vol the cap is exp(a trained parameter): at initialisation the orders equal the fixed cap's,
    and the bought value has a gradient with respect to the cap's log where the cap binds (sum w sigma = 0.24 >
    0.15), none where it does not (0.5); the fixed cap has no such parameter."""
    n, sigma = 4, jnp.array([0.10, 0.20, 0.30, 0.60])
    ref = jnp.linspace(10.0, 40.0, n)
    mp = MarketParams(is_crypto=jnp.zeros(n, bool))
    state = init_state(1.0, ref)

    def setup(**kw):
        cfg = PolicyConfig(model="mlp", features="regime_vol", **SMALL_POLICY, **kw)
        graphdef, params = create(cfg, jax.random.PRNGKey(3))
        k = cfg.feature_names.index("log_annual_vol")
        feats = jax.random.normal(jax.random.PRNGKey(4), (12, n, cfg.n_features)).at[..., k].set(jnp.log(sigma))

        def bought(p):
            action = make_apply(graphdef)(p, observe(encode(graphdef, p, feats)[-1], state, mp))
            return jnp.sum(size_orders(mp, state, action, jnp.ones(n), jnp.asarray(1.0)).buy_qty * ref)
        return params, jax.jit(jax.value_and_grad(bought))

    fixed_params, fixed = setup(book_vol_target=0.15)
    assert "log_book_vol" not in fixed_params
    params, learned = setup(book_vol_target=0.15, learn_book_vol=True)
    value, grad = learned(params)
    np.testing.assert_allclose(float(value), float(fixed(fixed_params)[0]), rtol=1e-6)
    np.testing.assert_allclose(float(value), 0.8 * 0.15 / 0.24, rtol=2e-3)
    np.testing.assert_allclose(float(grad["log_book_vol"][...]), float(value), rtol=2e-3)  # value ∝ kappa
    loose_params, loose = setup(book_vol_target=0.5, learn_book_vol=True)
    assert float(loose(loose_params)[1]["log_book_vol"][...]) == 0.0
    with pytest.raises(ValueError, match="learn_book_vol"):
        PolicyConfig(features="regime_vol", learn_book_vol=True)


def test_no_trade_band_holds_assets_near_their_target():
    """With band 0.25 and every target at 1 / (N + 1) = 0.2: a weight of 0.19 is left alone (0.01 <= 0.05), 0.1
    is bought up, 0.3 sold down, an empty asset entered; without the band all four trade."""
    n = 4
    ref = jnp.linspace(10.0, 40.0, n)
    held = jnp.array([0.19, 0.10, 0.0, 0.30])
    state = init_state(1.0 - float(held.sum()), ref).replace(inventory=held / ref)
    mp = MarketParams(is_crypto=jnp.zeros(n, bool))
    feats = jax.random.normal(jax.random.PRNGKey(4), (12, n, F))

    def act(band):
        graphdef, params = create(PolicyConfig(model="mlp", band=band, **SMALL_POLICY), jax.random.PRNGKey(3))
        return jax.jit(lambda f: make_apply(graphdef)(params, observe(encode(graphdef, params, f)[-1], state, mp)))(
            feats)

    a = act(0.25)
    np.testing.assert_array_equal(np.asarray(a.buy_frac)[[0, 3]], 0.0)
    np.testing.assert_array_equal(np.asarray(a.sell_frac)[[0, 1, 2]], 0.0)
    assert np.all(np.asarray(a.buy_frac)[[1, 2]] > 0) and float(a.sell_frac[3]) > 0
    np.testing.assert_allclose(float(a.sell_frac[3]), (0.30 - 0.2) / 0.30, rtol=1e-4)
    free = act(0.0)
    assert float(free.buy_frac[0]) > 0 and float(free.sell_frac[3]) > 0
    with pytest.raises(ValueError, match="band"):
        PolicyConfig(band=1.0)
