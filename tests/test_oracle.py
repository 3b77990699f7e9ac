"""The oracle and the target-weight decoder: weights inside the margin budget, leverage only when it pays,
orders that reach the targets, and an oracle that reads the planted signal."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ndjax.data.synthetic import synthetic_market_with_truth
from ndjax.dynamics import Bar, MarketParams, init_state, step
from ndjax.metrics import summary
from ndjax.observation import observe
from ndjax.oracle import OracleParams, oracle_weights, run_oracle, truth_rows
from ndjax.targets import target_action


def _params(n_stock: int, n_crypto: int, daily_rate: float = 0.065 / 365) -> OracleParams:
    is_crypto = np.r_[np.zeros(n_stock, bool), np.ones(n_crypto, bool)]
    return OracleParams(margin_rate=jnp.where(is_crypto, 1.0, 0.5), maker_fee=jnp.asarray(0.0008),
                        daily_rate=jnp.asarray(daily_rate), risk_aversion=jnp.asarray(2.0),
                        is_stock=jnp.asarray(~is_crypto, jnp.float32), trade_cost=jnp.asarray(0.0),
                        cap=jnp.asarray(10.0))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_weights_respect_the_budget(seed):
    rng = np.random.default_rng(seed)
    p = _params(3, 2)
    mu = jnp.asarray(rng.normal(0.0, 0.01, (4, 5)), jnp.float32)
    var = jnp.asarray(rng.uniform(1e-4, 2e-3, (4, 5)), jnp.float32)
    w = np.asarray(oracle_weights(mu, var, p))
    assert np.all(w >= 0) and np.all(w[np.asarray(mu) <= 0] == 0)
    assert np.all((w * np.asarray(p.margin_rate)).sum(-1) <= 1 + 1e-4)
    held = jnp.asarray(rng.uniform(0, 0.3, (4, 5)), jnp.float32)
    banded = np.asarray(oracle_weights(mu, var, p.replace(trade_cost=jnp.asarray(0.002), cap=jnp.asarray(0.5)), held))
    assert np.all(banded <= 0.5 + 1e-6) and np.all((banded * np.asarray(p.margin_rate)).sum(-1) <= 1 + 1e-4)
    # the band keeps weights nearer to those held than the frictionless weights are
    free = np.asarray(oracle_weights(mu, var, p.replace(cap=jnp.asarray(0.5)), held))
    assert np.abs(banded - np.asarray(held)).sum() <= np.abs(free - np.asarray(held)).sum() + 1e-5


def test_leverage_only_when_the_edge_beats_interest():
    p = _params(2, 0)
    var = jnp.full(2, 4e-4)
    strong = oracle_weights(jnp.array([0.004, 0.004]), var, p)  # unconstrained weight 5 each: levered to 2x
    assert float(strong.sum()) > 1.5
    thin = oracle_weights(jnp.array([0.004, 0.004]), var, _params(2, 0, daily_rate=0.0041))  # interest eats it
    assert float(thin.sum()) <= 1.0 + 1e-5


def test_target_orders_reach_the_targets_in_one_flat_bar():
    """All cash -> 60 % stock, 30 % crypto: one bar at unchanged prices (every limit fills) lands on the targets."""
    params = MarketParams(is_crypto=jnp.array([False, True]))
    state = init_state(10_000.0, jnp.array([100.0, 1000.0]))
    rates = jnp.array([0.5, 1.0])
    action = target_action(jnp.array([0.6, 0.3]), observe(jnp.zeros((2, 1)), state), rates, jnp.asarray(0.0008))
    bar = Bar(state.mark, state.mark, state.mark, jnp.ones(2), jnp.asarray(1.0))
    new, info = jax.jit(step)(params, state, action, bar)
    weights = np.asarray(new.inventory * new.mark) / float(info.equity)
    np.testing.assert_allclose(weights, [0.6, 0.3], atol=2e-3)
    back = target_action(jnp.array([0.2, 0.3]), observe(jnp.zeros((2, 1)), new), rates, jnp.asarray(0.0008))
    assert float(back.sell_frac[0]) > 0.6 and float(back.buy_frac[0]) == 0.0


def test_oracle_reads_the_planted_signal():
    for strength, floor in ((0.3, 2.0), (-0.3, 1.0)):
        m, truth = synthetic_market_with_truth(11, n_days=500, signal_strength=strength)
        params = MarketParams(is_crypto=jnp.asarray(m.is_crypto))
        infos = run_oracle(params, m.bars(), jnp.asarray(truth_rows(truth)), jnp.asarray(1.0))
        stats = summary(infos, m.periods_per_year)
        assert float(stats.sortino) > floor, (strength, float(stats.sortino))
        assert float(stats.max_leverage) <= 1 / 0.3 + 1e-3 and float(stats.margin_calls) == 0
