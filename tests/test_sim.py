"""Simulator, rollouts, objectives and reports."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ndjax.dynamics import Action, PortfolioState, step
from ndjax.loss import (
    calmar,
    evaluate_returns,
    get_objective,
    log_wealth,
    max_drawdown,
    score,
    sharpe,
    simulated_objective,
    sortino,
)
from ndjax.data.calendar import periods_per_year
from ndjax.sim import format_report, rollout, simulate, summary
from tests.conftest import path_to_jax, random_path

jstep = jax.jit(step)


@jax.jit
def _objective(params, state0, actions, bars):
    return simulated_objective(params, state0, actions, bars, periods_per_year=365)[0]


_score = jax.jit(lambda returns: score(returns, 365))


def _score_of_simulate(params, state0, actions, bars):
    """The objective computed on the simulator's stored returns (two separate programs)."""
    return _score(jnp.moveaxis(simulate(params, state0, actions, bars)[1].returns, 0, -1))


def test_simulate_equals_step_loop():
    params, state, actions, bars = path_to_jax(random_path(0, T=16))
    final, infos = simulate(params, state, actions, bars)
    for t in range(16):
        at = jax.tree_util.tree_map(lambda x: x[t], (actions, bars))
        state, info = jstep(params, state, *at)
        chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[t], infos), info, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(final, state, rtol=1e-6)


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
    value, _ = jax.jit(jax.value_and_grad(lambda a, p, s, b: _objective(p, s, a, b).sum()))(ste[2], ste[0], ste[1], ste[3])
    np.testing.assert_allclose(value, on_sim.sum(), rtol=2e-6)


def test_simulate_ste_equals_hard_bitwise():
    path = random_path(2, T=128)
    chex.assert_trees_all_equal(simulate(*path_to_jax(path)), simulate(*path_to_jax(path, fill="ste")))


@pytest.mark.parametrize("fill", ["hard", "soft"])
def test_float64_and_float32_agree_over_256_steps(fill):
    path = random_path(3, T=256)
    _, i32 = simulate(*path_to_jax(path, fill=fill))
    with jax.enable_x64(True):
        _, i64 = simulate(*path_to_jax(path, jnp.float64, fill=fill))
        eq64 = np.asarray(i64.equity)
    # float32 rounding can flip a hard fill only at an exact tie; the random limits keep clear of ties
    np.testing.assert_allclose(np.asarray(i32.equity), eq64, rtol=1e-5)


def test_long_rollout_finite():
    params, state0, actions, bars = path_to_jax(random_path(4, T=512, batch=3), fill="soft")
    final, infos = simulate(params, state0, actions, bars)
    chex.assert_tree_all_finite((final, infos))


def test_causality_of_simulate():
    params, state0, actions, bars = path_to_jax(random_path(5, T=48))
    _, base = simulate(params, state0, actions, bars)
    t = 20
    rng = np.random.default_rng(0)
    shock = lambda x: x.at[t:].multiply(jnp.asarray(rng.uniform(0.5, 1.5, x[t:].shape), x.dtype))  # noqa: E731
    bars2 = bars.replace(high=shock(bars.high), low=shock(bars.low), close=shock(bars.close))
    _, changed = simulate(params, state0, actions, bars2)
    before = jax.tree_util.tree_map(lambda x: x[:t], (base, changed))
    chex.assert_trees_all_equal(*before)
    assert not np.allclose(base.equity[t:], changed.equity[t:])


def _band_policy(theta, obs, state: PortfolioState) -> Action:
    """A tiny differentiable policy reading one observation per asset and the book."""
    ref = state.mark
    tilt = jnp.tanh(theta[0] * obs)
    return Action(
        buy_price=ref * (1 - 0.01 - 0.005 * tilt),
        sell_price=ref * (1 + 0.01 + 0.005 * tilt),
        buy_frac=jax.nn.sigmoid(theta[1] + tilt),
        sell_frac=jax.nn.sigmoid(theta[2] - tilt),
    )


@jax.jit
def _rollout(params, theta, state0, obs, bars):
    return rollout(params, _band_policy, theta, state0, obs, bars)


def test_rollout_causality_and_alignment():
    params, state0, _, bars = path_to_jax(random_path(6, T=40))
    obs = jnp.log(bars.close)  # row t computed from bar t
    theta = jnp.array([3.0, 0.0, 0.0])
    _, (actions, infos) = _rollout(params, theta, state0, obs, bars)
    assert infos.equity.shape[0] == 39
    t = 25  # perturb observations and bars from t on: actions for bars <= t are unchanged
    bars2 = bars.replace(close=bars.close.at[t:].multiply(1.1), high=bars.high.at[t:].multiply(1.1))
    _, (actions2, infos2) = _rollout(params, theta, state0, jnp.log(bars2.close), bars2)
    chex.assert_trees_all_equal(*jax.tree_util.tree_map(lambda x: x[:t], (actions, actions2)))
    chex.assert_trees_all_equal(*jax.tree_util.tree_map(lambda x: x[: t - 1], (infos, infos2)))


def test_rollout_rejects_bad_lag():
    params, state0, _, bars = path_to_jax(random_path(6, T=4))
    with pytest.raises(ValueError, match="lag"):
        rollout(params, _band_policy, jnp.zeros(3), state0, bars.close, bars, lag=4)


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
    assert periods_per_year(np.array([False, False])) == 252 and periods_per_year(np.array([False, True])) == 365
    with pytest.raises(ValueError, match="objective"):
        get_objective("omega")
    assert np.isfinite(float(log_wealth(jnp.array([0.1, -1.5]))))
    np.testing.assert_array_equal(evaluate_returns(r, "sortino", 252), sortino(r, 252))


def test_summary_and_report():
    params, state0, actions, bars = path_to_jax(random_path(9, T=30, batch=1))
    _, infos = simulate(params, state0, actions, bars)
    one = jax.tree_util.tree_map(lambda x: x[:, 0], infos)
    stats = summary(one, 365)
    eq = np.asarray(one.equity)
    assert stats["final_equity"] == pytest.approx(eq[-1])
    assert stats["net_pnl"] == pytest.approx(eq[-1] / 10_000 - 1, rel=1e-5)
    assert stats["total_fees"] == pytest.approx(np.asarray(one.fees).sum(), rel=1e-5)
    assert stats["max_leverage"] == pytest.approx(np.asarray(one.leverage).max())
    curve = np.r_[10_000, eq]
    assert stats["max_drawdown"] == pytest.approx(np.max(1 - curve / np.maximum.accumulate(curve)), rel=1e-4, abs=1e-7)
    dates = np.arange(np.datetime64("2025-01-01"), np.datetime64("2025-01-31"))
    text = format_report(dates, one, 365)
    header = text.splitlines()[0].split()
    assert header == ["Date", "Equity", "Cash", "Return", "Leverage", "LevCost"]
    assert len(text.splitlines()) >= 31 + 8
    assert f"Final Equity      : {eq[-1]:.4f}" in text
    for key in ("Net PnL", "Sortino", "Max Drawdown", "Max Leverage", "Total Lev. Costs", "Total Fees"):
        assert key in text
    with pytest.raises(ValueError, match="dates"):
        format_report(dates[:5], one)
