"""Objectives: values by hand, one summation order in every program, gradients through the simulator."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from ndjax.dynamics import Action
from ndjax.loss import (
    calmar,
    evaluate_returns,
    get_objective,
    log_wealth,
    max_drawdown,
    mean_variance,
    return_sums,
    score,
    sharpe,
    simulated_objective,
    sortino,
)
from ndjax.sim import simulate
from tests.helpers import path_to_jax, random_path


@jax.jit
def _objective(params, state0, actions, bars):
    return simulated_objective(params, state0, actions, bars, periods_per_year=365)[0]


_score = jax.jit(lambda returns: score(returns, 365))


def _score_of_simulate(params, state0, actions, bars):
    """The objective computed on the simulator's stored returns (two separate programs)."""
    return _score(jnp.moveaxis(simulate(params, state0, actions, bars)[1].returns, 0, -1))


@pytest.mark.parametrize("interest", ["excess", "debit"])
@pytest.mark.parametrize("seed", [1, 5, 9])
def test_objective_forward_equals_simulator_bitwise(interest, seed):
    path = random_path(seed)
    hard = path_to_jax(path, interest=interest)
    ste = path_to_jax(path, fill="ste", interest=interest)
    on_sim = _score_of_simulate(*hard)
    np.testing.assert_array_equal(_objective(*hard), on_sim)
    # a policy trained with ste reports, while training, exactly what the hard simulator reports
    np.testing.assert_array_equal(_objective(*ste), on_sim)
    # the gradient program is compiled separately: XLA CPU fuses (and contracts multiply-adds) differently
    # there, so its forward value agrees to float32 rounding (measured <= 3.4e-7 relative over 20 paths)
    value, _ = jax.jit(jax.value_and_grad(lambda a, p, s, b: _objective(p, s, a, b).sum()))(
        ste[2], ste[0], ste[1], ste[3])
    np.testing.assert_allclose(value, on_sim.sum(), rtol=2e-6)


def test_objective_gradients_soft():
    with jax.enable_x64(True):
        params, state0, actions, bars = path_to_jax(random_path(7, T=12, batch=1, n=3), jnp.float64, fill="soft",
                                                    fill_temperature=5e-3)

        def f(buy_price, sell_price, buy_frac, sell_frac):
            a = Action(buy_price, sell_price, buy_frac, sell_frac)
            return simulated_objective(params, state0, a, bars, periods_per_year=365)[0].sum()

        args = (actions.buy_price, actions.sell_price, actions.buy_frac, actions.sell_frac)
        check_grads(f, args, order=1, modes=["rev"], atol=1e-3, rtol=1e-3, eps=1e-6)


def test_objective_gradients_finite_ste():
    params, state0, actions, bars = path_to_jax(random_path(8, T=64), fill="ste")
    grads = jax.jit(jax.grad(lambda a: _objective(params, state0, a, bars).sum()))(actions)
    chex.assert_tree_all_finite(grads)
    assert float(jnp.abs(grads.buy_frac).sum()) > 0


def test_objectives_by_hand():
    r = jnp.array([0.01, -0.02, 0.03, 0.0, -0.01])
    m, down = 0.002, np.mean(np.minimum(np.asarray(r), 0) ** 2)
    np.testing.assert_allclose(sortino(r, 252, eps=0.0), m / np.sqrt(down) * np.sqrt(252), rtol=1e-6)
    np.testing.assert_allclose(sharpe(r, 252, eps=0.0), m / np.std(np.asarray(r)) * np.sqrt(252), rtol=1e-6)
    np.testing.assert_allclose(score(r, 365, 0.08), sortino(r, 365) + 0.08 * m * 365, rtol=1e-6)
    np.testing.assert_allclose(log_wealth(r), np.sum(np.log1p(np.asarray(r))), rtol=1e-6)
    wealth = np.cumprod(1 + np.asarray(r))
    np.testing.assert_allclose(max_drawdown(r), 1 - wealth[1] / wealth[0], rtol=1e-6)
    np.testing.assert_allclose(calmar(r, 252), m * 252 / (float(max_drawdown(r)) + 1e-4), rtol=1e-5)
    with pytest.raises(ValueError, match="objective"):
        get_objective("omega")
    assert np.isfinite(float(log_wealth(jnp.array([0.1, -1.5]))))
    np.testing.assert_array_equal(evaluate_returns(r, "sortino", 252), sortino(r, 252))
    var = np.var(np.asarray(r, np.float64))
    np.testing.assert_allclose(mean_variance(r, 252, 3.0), (m - 1.5 * var) * 252, rtol=1e-5)
    np.testing.assert_array_equal(evaluate_returns(r, "mean_variance", 252, risk_aversion=3.0),
                                  mean_variance(r, 252, 3.0))
    np.testing.assert_allclose(evaluate_returns(r, "mean_variance_drawdown", 252, risk_aversion=3.0,
                                                drawdown_weight=0.5),
                               (m - 1.5 * var) * 252 - 0.5 * (1 - wealth[1] / wealth[0]), rtol=1e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 300))
def test_ordered_sums_match_float64(seed, n):
    """The ordered time sums agree with float64 NumPy to float32 rounding, any length and batch."""
    r = np.random.default_rng(seed).normal(0.001, 0.03, (3, n)).astype(np.float32)
    sums = jax.jit(return_sums)(r)
    r64 = r.astype(np.float64)
    np.testing.assert_allclose(sums.total, r64.sum(-1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sums.downside, (np.minimum(r64, 0) ** 2).sum(-1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(sums.log_growth, np.log1p(r64).sum(-1), rtol=1e-4, atol=1e-5)
    wealth = np.concatenate([np.ones((3, 1)), np.cumprod(1 + r64, -1)], -1)
    np.testing.assert_allclose(sums.max_drawdown, np.max(1 - wealth / np.maximum.accumulate(wealth, -1), -1),
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="time axis"):
        return_sums(np.zeros((3, 0)))
