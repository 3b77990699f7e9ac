"""Summary-only simulation: `simulate_stats` equals the statistics of the stored path, a float64 NumPy reduction,
vmap equals a loop, gradients check, `record=` stacks only what it names, validation scores bit for bit."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from ndjax.loss import OBJECTIVES, evaluate_returns, evaluate_sums
from ndjax.metrics import path_stats
from ndjax.policy import PolicyConfig, create
from ndjax.sim import simulate, simulate_policy, simulate_policy_stats, simulate_policy_sums, simulate_stats
from ndjax.stats_scan import PathStats
from ndjax.train.config import HParams, market_params
from tests.helpers import SMALL_POLICY, path_to_jax, random_path, small_arrays

_stats = jax.jit(lambda *a: simulate_stats(*a, periods_per_year=365))
_path_stats = jax.jit(lambda infos: path_stats(infos, 365))


def _reference(infos, initial) -> dict:
    """The statistics by a direct float64 NumPy reduction of the stored steps (time on axis 0)."""
    g = {k: np.asarray(v, np.float64) for k, v in vars(infos).items() if v is not None}
    r = g["returns"]
    n = r.shape[0]
    curve = np.concatenate([initial[None], g["equity"]])
    peak = np.maximum.accumulate(curve)
    placed_b, placed_s = g["buy_order_qty"] > 0, g["sell_order_qty"] > 0
    return dict(
        final_equity=g["equity"][-1], total_return=g["equity"][-1] / initial - 1,
        sortino=r.mean(0) / np.sqrt((np.minimum(r, 0) ** 2).mean(0) + 1e-6) * np.sqrt(365),
        sharpe=r.mean(0) / np.sqrt(r.var(0) + 1e-6) * np.sqrt(365),
        max_drawdown=np.max(1 - curve / peak, 0), mean_leverage=g["leverage"].mean(0),
        max_leverage=g["leverage"].max(0), total_leverage_cost=g["leverage_cost"].sum(0), total_fees=g["fees"].sum(0),
        turnover=g["traded_notional"].sum(0) / g["equity"].mean(0),
        buy_fill_rate=(g["buy_fill"] * placed_b).sum((0, 2)) / np.maximum(placed_b.sum((0, 2)), 1),
        sell_fill_rate=(g["sell_fill"] * placed_s).sum((0, 2)) / np.maximum(placed_s.sum((0, 2)), 1),
        n_buys=(g["buy_qty"] > 0).sum((0, 2)), n_sells=(g["sell_qty"] > 0).sum((0, 2)),
        margin_calls=g["margin_call"].sum(0), forced_notional=g["forced_notional"].sum(0),
    ) | {"n": n}


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), interest=st.sampled_from(["excess", "debit"]),
       fill=st.sampled_from(["hard", "soft"]))
def test_simulate_stats_equals_stats_of_the_stored_path(seed, interest, fill):
    params, state0, actions, bars = path_to_jax(random_path(seed % 10_000, T=48, batch=3), interest=interest,
                                                fill=fill, fill_temperature=5e-3)
    stats = _stats(params, state0, actions, bars)
    _, infos = simulate(params, state0, actions, bars)
    stored = _path_stats(infos)
    chex.assert_trees_all_close(stats, stored, rtol=2e-6, atol=1e-9)
    ref = _reference(infos, np.full(3, 10_000.0))
    for name, value in ref.items():
        if name != "n":
            np.testing.assert_allclose(getattr(stats, name), value, rtol=2e-4, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(stats.initial_equity, 10_000.0)


def test_margin_calls_and_a_bust_start_are_counted():
    params, state0, actions, bars = path_to_jax(random_path(4, T=40, batch=2), stock_max_leverage=4.0,
                                                maintenance_margin=0.25)
    stats = _stats(params, state0, actions, bars)
    chex.assert_trees_all_close(stats, _path_stats(simulate(params, state0, actions, bars)[1]), rtol=2e-6)
    bust = path_to_jax(random_path(3, T=8, batch=1), cash=-5.0)
    assert float(_stats(*bust).total_return[0]) == 0.0


def test_vmap_over_params_equals_a_loop():
    params, state0, actions, bars = path_to_jax(random_path(2, T=32, batch=2))
    fees = jnp.array([0.0, 0.0008, 0.003])
    batched = jax.vmap(lambda f: simulate_stats(params.replace(maker_fee=f), state0, actions, bars))(fees)
    for i, f in enumerate(fees):
        one = simulate_stats(params.replace(maker_fee=f), state0, actions, bars)
        chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[i], batched), one, rtol=1e-6)


def test_gradients_of_summary_statistics():
    with jax.enable_x64(True):
        params, state0, actions, bars = path_to_jax(random_path(7, T=12, batch=1, n=3), jnp.float64, fill="soft",
                                                    fill_temperature=5e-3)

        def f(buy_price, buy_frac, sell_frac):
            a = actions.replace(buy_price=buy_price, buy_frac=buy_frac, sell_frac=sell_frac)
            s = simulate_stats(params, state0, a, bars)
            return (s.sortino + s.sharpe + 3 * s.total_return - s.total_fees / 100 + s.mean_leverage).sum()

        check_grads(f, (actions.buy_price, actions.buy_frac, actions.sell_frac), order=1, modes=["rev"],
                    atol=1e-3, rtol=1e-3, eps=1e-6)


def test_record_stacks_only_the_named_fields():
    params, state0, actions, bars = path_to_jax(random_path(5, T=16))
    final, full = simulate(params, state0, actions, bars)
    final2, part = simulate(params, state0, actions, bars, record=("equity", "buy_qty"))
    chex.assert_trees_all_equal(final, final2)
    np.testing.assert_array_equal(part.equity, full.equity)
    np.testing.assert_array_equal(part.buy_qty, full.buy_qty)
    assert part.returns is None and part.inventory is None
    with pytest.raises(ValueError, match="equty"):
        simulate(params, state0, actions, bars, record=("equty",))


def test_policy_stats_and_the_validation_score_are_bitwise():
    cfg = PolicyConfig(model="mlp", **SMALL_POLICY)
    graphdef, params = create(cfg, jax.random.PRNGKey(1))
    _, arr, _, _ = small_arrays(2, n_days=90)
    hp = HParams()
    mp = market_params(hp, arr.is_crypto, "hard", "excess")
    _, infos = jax.jit(lambda a: simulate_policy(graphdef, params, a, mp, cfg.lookback, 1000.0))(arr)
    stats = jax.jit(lambda a: simulate_policy_stats(graphdef, params, a, mp, cfg.lookback, 1000.0,
                                                    periods_per_year=365))(arr)
    assert isinstance(stats, PathStats)
    chex.assert_trees_all_close(stats, jax.jit(path_stats, static_argnums=1)(infos, 365), rtol=2e-6, atol=1e-9)
    sums = jax.jit(lambda a: simulate_policy_sums(graphdef, params, a, mp, cfg.lookback, 1000.0))(arr)
    for name in OBJECTIVES:
        on_sums = jax.jit(lambda s: evaluate_sums(s, name, 365, 0.08, 10.0))(sums.returns)  # noqa: B023
        on_returns = jax.jit(lambda r: evaluate_returns(r, name, 365, 0.08, 10.0))(infos.returns)  # noqa: B023
        np.testing.assert_array_equal(on_sums, on_returns, err_msg=name)
