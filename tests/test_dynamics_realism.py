"""Broker-realism options of the transition: gap fills at the open and the volume participation cap."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState, step
from tests.helpers import random_case, to_jax
from tests.reference import reference_step

jstep = jax.jit(step)


def _one_asset(open_, high, low, close, volume=1e9):
    f = lambda x: jnp.array([[x]])  # noqa: E731
    return Bar(high=f(high), low=f(low), close=f(close), tradable=jnp.ones((1, 1)), days_elapsed=jnp.ones(1),
               open=f(open_), volume=f(volume))


def test_gap_fill_by_hand():
    # all cash 1000, stock at 100; the bar gaps down to open 95: a buy limit at 99 fills at the open
    state = PortfolioState(cash=jnp.array([1000.0]), inventory=jnp.zeros((1, 1)), mark=jnp.array([[100.0]]))
    bar = _one_asset(95.0, 97.0, 94.0, 96.0)
    action = Action(jnp.array([[99.0]]), jnp.array([[101.0]]), jnp.array([[0.5]]), jnp.zeros((1, 1)))
    for gap, px in ((False, 99.0), (True, 95.0)):
        params = MarketParams(is_crypto=jnp.array([False]), gap_fill=gap)
        _, info = jstep(params, state, action, bar)
        qty = 0.5 * 1000 / ((0.5 + 0.0008) * 99.0)  # half the excess at a 50 % margin rate, sized at the limit
        np.testing.assert_allclose(info.buy_qty[0, 0], qty, rtol=1e-6)
        np.testing.assert_allclose(info.cash[0], 1000 - qty * px * 1.0008, rtol=1e-6, atol=1e-3)
        np.testing.assert_allclose(info.fees[0], 0.0008 * qty * px, rtol=1e-6)
    # a sell limit below a gap-up open sells at the open
    held = PortfolioState(cash=jnp.array([0.0]), inventory=jnp.array([[10.0]]), mark=jnp.array([[100.0]]))
    up = _one_asset(106.0, 108.0, 104.0, 107.0)
    sell = Action(jnp.array([[90.0]]), jnp.array([[102.0]]), jnp.zeros((1, 1)), jnp.ones((1, 1)))
    _, info = jstep(MarketParams(is_crypto=jnp.array([False]), gap_fill=True), held, sell, up)
    np.testing.assert_allclose(info.cash[0], 10 * 106.0 * (1 - 0.0008), rtol=1e-6)


def test_participation_cap_by_hand():
    state = PortfolioState(cash=jnp.array([1000.0]), inventory=jnp.array([[30.0]]), mark=jnp.array([[10.0]]))
    bar = _one_asset(10.0, 11.0, 9.0, 10.0, volume=100.0)
    action = Action(jnp.array([[10.0]]), jnp.array([[10.5]]), jnp.ones((1, 1)), jnp.ones((1, 1)))
    params = MarketParams(is_crypto=jnp.array([True]), participation_cap=0.1)
    _, info = jstep(params, state, action, bar)
    np.testing.assert_allclose(info.buy_qty[0, 0], 10.0)  # order ~99.9 units, capped at 10 % of 100
    np.testing.assert_allclose(info.sell_qty[0, 0], 10.0)  # order 30 units
    np.testing.assert_allclose(info.inventory[0, 0], 30.0)
    with pytest.raises(ValueError, match="volume"):
        jstep(params, state, action, bar.replace(volume=None))
    with pytest.raises(ValueError, match="participation_cap"):
        MarketParams(is_crypto=jnp.array([True]), participation_cap=0.0)


def test_forced_sale_ignores_gap_and_participation_cap():
    """A margin call sells at the close: neither the open nor the bar's volume changes it."""
    book = PortfolioState(cash=jnp.array([-6000.0]), inventory=jnp.array([[100.0]]), mark=jnp.array([[100.0]]))
    hold = Action(jnp.array([[1.0]]), jnp.array([[1e6]]), jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    bar = _one_asset(90.0, 91.0, 70.0, 75.0, volume=1.0)
    plain = jstep(MarketParams(is_crypto=jnp.array([False])), book, hold, bar)[1]
    real = jstep(MarketParams(is_crypto=jnp.array([False]), gap_fill=True, participation_cap=0.01), book, hold, bar)[1]
    assert float(plain.margin_call[0]) == 1.0
    chex.assert_trees_all_equal(plain, real)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_invariants_hold_with_realism_options(seed):
    case = random_case(seed)
    rng = np.random.default_rng(seed)
    opn = case["low"] + (case["high"] - case["low"]) * rng.uniform(0, 1, case["low"].shape)
    volume = rng.exponential(20, case["low"].shape)
    with jax.enable_x64(True):
        params, state, action, bar = to_jax(case, jnp.float64, gap_fill=True, participation_cap=0.2)
        bar = bar.replace(open=jnp.asarray(opn), volume=jnp.asarray(volume))
        _, info = jstep(params, state, action, bar)
        info = jax.tree_util.tree_map(np.asarray, info)
    ref = reference_step(**case)
    chex.assert_tree_all_finite(info)
    assert np.all(info.inventory >= 0) and np.all(info.sell_qty <= case["inventory"] * (1 + 1e-12))
    assert np.all(info.buy_qty <= 0.2 * volume + 1e-12) and np.all(info.sell_qty <= 0.2 * volume + 1e-12)
    assert np.all(info.buy_qty[case["tradable"] == 0] == 0) and np.all(info.forced_qty[case["tradable"] == 0] == 0)
    m = np.where(case["is_crypto"], 1.0, 0.5)
    spent = (m + 0.0008) * info.buy_qty * np.minimum(case["buy_price"], opn)
    assert np.all(spent.sum(-1) <= ref["X"] * (1 + 1e-9) + 1e-9)
