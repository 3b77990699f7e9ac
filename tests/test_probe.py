"""Probe mode: the trade memory and the buy cap after losing trades, forced sales included."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState, init_state, step
from ndjax.probe import ProbeState, probing
from ndjax.sim import simulate
from tests.helpers import random_case, to_jax
from tests.reference import reference_step


def test_probe_mode_transitions():
    # one crypto asset, hard fills: buy @100, sell @90 (loss), capped buy @100, sell @125 (win), full buy @100
    prices = [100.0, 90.0, 100.0, 125.0, 100.0]
    T = len(prices)
    close = jnp.array([[c] for c in prices])
    bars = Bar(high=close, low=close, close=close, tradable=jnp.ones((T, 1)), days_elapsed=jnp.ones(T))
    buy = jnp.array([[1.0], [0.0], [1.0], [0.0], [1.0]])
    actions = Action(buy_price=close, sell_price=close, buy_frac=buy, sell_frac=1.0 - buy)
    params = MarketParams(is_crypto=jnp.array([True]), probe_notional=0.1)
    state0 = init_state(1000.0, jnp.array([100.0]), probe=True)
    final, infos = simulate(params, state0, actions, bars)
    spent = np.asarray(infos.buy_qty[:, 0] * close[:, 0] * 1.0008)
    equity_before = np.asarray(infos.prev_equity)
    np.testing.assert_allclose(spent[0], 1000.0, rtol=1e-5)  # no history: the whole excess
    np.testing.assert_allclose(spent[2], 0.1 * equity_before[2], rtol=1e-5)  # after a loss: probe size
    np.testing.assert_allclose(spent[4], equity_before[4], rtol=1e-4)  # loss then a larger win: normal again
    assert int(final.probe.n_closed[0]) == 2 and not bool(probing(final.probe)[0])
    _, plain = simulate(params.replace(probe_notional=None), init_state(1000.0, jnp.array([100.0])), actions, bars)
    assert float(plain.buy_qty[2, 0] * 100.0 * 1.0008) == pytest.approx(float(plain.prev_equity[2]), rel=1e-5)
    with pytest.raises(ValueError, match="probe"):
        simulate(params, init_state(1000.0, jnp.array([100.0])), actions, bars)


def test_forced_sale_closes_a_trade():
    """A call that sells a stock bought at 100 for 60 x (1 - sl) records a losing trade: the next buy is capped."""
    with jax.enable_x64(True):
        params = MarketParams(is_crypto=jnp.array([False]), probe_notional=0.05)
        memory = ProbeState(cost_basis=jnp.array([100.08]), last=jnp.zeros(1), previous=jnp.zeros(1),
                            n_closed=jnp.zeros(1))
        book = PortfolioState(cash=jnp.array(-5000.0), inventory=jnp.array([100.0]), mark=jnp.array([100.0]),
                              probe=memory)
        hold = Action(jnp.array([1.0]), jnp.array([1e6]), jnp.zeros(1), jnp.zeros(1))
        bar = Bar(jnp.array([60.0]), jnp.array([60.0]), jnp.array([60.0]), jnp.ones(1), jnp.array(1.0))
        new, info = jax.jit(step)(params, book, hold, bar)
        assert float(info.margin_call) == 1.0 and float(info.forced_qty[0]) > 0
        expected = 60.0 * (1 - 0.001) * (1 - 0.0008) / 100.08 - 1
        assert float(new.probe.last[0]) == pytest.approx(expected, rel=1e-12)
        assert int(new.probe.n_closed[0]) == 1 and bool(probing(new.probe)[0])
        assert float(new.probe.cost_basis[0]) == pytest.approx(100.08)  # the units kept keep their cost


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_invariants_hold_in_probe_mode(seed):
    case = random_case(seed)
    rng = np.random.default_rng(seed)
    shape = case["mark"].shape
    memory = ProbeState(cost_basis=jnp.asarray(case["mark"] * rng.uniform(0.8, 1.2, shape)),
                        last=jnp.asarray(rng.normal(0, 0.05, shape)), previous=jnp.asarray(rng.normal(0, 0.05, shape)),
                        n_closed=jnp.asarray(rng.integers(0, 3, shape).astype(np.float64)))
    with jax.enable_x64(True):
        params, state, action, bar = to_jax(case, jnp.float64, probe_notional=0.05)
        new, info = jax.jit(step)(params, state.replace(probe=memory), action, bar)
        new, info = jax.tree_util.tree_map(np.asarray, (new, info))
    ref = reference_step(**case)
    chex.assert_tree_all_finite((new, info))
    assert np.all(info.inventory >= 0) and np.all(info.buy_qty <= ref["xb"] * (1 + 1e-12) + 1e-15)
    assert np.all(new.probe.cost_basis >= 0)


def _probing_book(cash):
    """Two stocks, all cash `(B,)`; the first lost on its last trade (probing), the second never traded."""
    cash = jnp.asarray(cash)
    memory = ProbeState(cost_basis=jnp.zeros((cash.size, 2)), last=jnp.array([[-0.1, 0.0]] * cash.size),
                        previous=jnp.zeros((cash.size, 2)), n_closed=jnp.array([[1.0, 0.0]] * cash.size))
    return PortfolioState(cash=cash, inventory=jnp.zeros((cash.size, 2)), mark=jnp.full((cash.size, 2), 50.0),
                          probe=memory)


def test_probe_cap_binds_hand_computed():
    """min(1 % of equity, 300) in float64, by hand: at 10,000 the relative cap (100) binds, at 100,000 the absolute
    (300); the symbol that is not probing buys its full share; the cut is what the cap removed."""
    from ndjax.probe import PROBE_FRACTION, PROBE_MAX_OUTLAY

    with jax.enable_x64(True):
        params = MarketParams(is_crypto=jnp.array([False, False]), probe_notional=PROBE_FRACTION,
                              probe_max_outlay=PROBE_MAX_OUTLAY)
        state = _probing_book([10_000.0, 100_000.0])
        buy = Action(buy_price=jnp.full((2, 2), 50.0), sell_price=jnp.full((2, 2), 1e6),
                     buy_frac=jnp.full((2, 2), 0.5), sell_frac=jnp.zeros((2, 2)))
        bar = Bar(high=jnp.full((2, 2), 51.0), low=jnp.full((2, 2), 49.0), close=jnp.full((2, 2), 50.0),
                  tradable=jnp.ones((2, 2)), days_elapsed=jnp.ones(2))
        new, info = jax.jit(step)(params, state, buy, bar)
    f, m = 0.0008, 0.5
    for b, (cash, cap) in enumerate([(10_000.0, 100.0), (100_000.0, 300.0)]):
        share = 0.5 * cash * (1 + f) / (m + f)  # half the pool's outlay, uncapped
        assert (PROBE_FRACTION * cash < PROBE_MAX_OUTLAY) == (b == 0)  # which cap binds
        np.testing.assert_allclose(np.asarray(info.buy_qty[b]), [cap / (50.0 * (1 + f)), share / (50.0 * (1 + f))],
                                   rtol=1e-12)
        np.testing.assert_allclose(np.asarray(info.probe_cut[b]), [share - cap, 0.0], rtol=1e-12, atol=1e-9)
        assert float(new.cash[b]) == pytest.approx(cash - cap - share, rel=1e-12)
    plain = params.replace(probe_notional=None, probe_max_outlay=None)
    _, free = jax.jit(step)(plain, state, buy, bar)
    assert float(free.probe_cut.sum()) == 0.0 and float(free.buy_qty[0, 0]) > float(info.buy_qty[0, 0])


def test_each_cap_alone_and_a_vmapped_sweep_over_the_cap():
    """Only the absolute cap, only the relative one, and a vmap over the relative cap equal to the loop and to the
    formula min(share, x E1)."""
    from ndjax.dynamics import size_orders

    with jax.enable_x64(True):
        state = _probing_book([20_000.0])
        buy = Action(jnp.full((1, 2), 50.0), jnp.full((1, 2), 1e6), jnp.full((1, 2), 0.5), jnp.zeros((1, 2)))
        params = MarketParams(is_crypto=jnp.array([False, False]))
        sizes = jax.jit(size_orders)
        share = 0.5 * 20_000.0 * 1.0008 / 0.5008
        absolute = sizes(params.replace(probe_max_outlay=250.0), state, buy, jnp.ones(2), jnp.array(1.0))
        relative = sizes(params.replace(probe_notional=0.02), state, buy, jnp.ones(2), jnp.array(1.0))
        np.testing.assert_allclose(np.asarray(absolute.outlay[0]), [250.0, share], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(relative.outlay[0]), [400.0, share], rtol=1e-12)
        caps = jnp.array([0.001, 0.01, 0.2, 1.0])
        sweep = jax.jit(jax.vmap(lambda x: size_orders(params.replace(probe_notional=x), state, buy, jnp.ones(2),
                                                       jnp.array(1.0)).outlay[0, 0]))(caps)
        loop = [float(sizes(params.replace(probe_notional=x), state, buy, jnp.ones(2), jnp.array(1.0)).outlay[0, 0])
                for x in caps]
    np.testing.assert_allclose(np.asarray(sweep), loop, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(sweep), np.minimum(share, np.asarray(caps) * 20_000.0), rtol=1e-12)
    with pytest.raises(ValueError, match="probe_max_outlay: must be > 0"):
        MarketParams(is_crypto=jnp.array([False]), probe_max_outlay=0.0)


def test_probe_cap_holds_the_position_not_the_day_s_buy():
    """A probing stock already held buys only the room left under the cap, `max(cap - q p, 0)`, by hand in float64:
    holding 2 units at 50 (100) under a cap of 1 % of 30,100 (301) leaves 201; holding 10 units (500) leaves none."""
    from ndjax.dynamics import size_orders

    with jax.enable_x64(True):
        base = _probing_book([30_000.0, 29_700.0])
        state = base.replace(inventory=jnp.array([[2.0, 0.0], [10.0, 0.0]]))
        buy = Action(jnp.full((2, 2), 50.0), jnp.full((2, 2), 1e6), jnp.full((2, 2), 0.5), jnp.zeros((2, 2)))
        params = MarketParams(is_crypto=jnp.array([False, False]), probe_notional=0.01)
        sizes = jax.jit(size_orders)(params, state, buy, jnp.ones(2), jnp.array(1.0))
    equity = np.array([30_100.0, 30_200.0])
    f, m = 0.0008, 0.5
    share = 0.5 * (equity - np.array([100.0, 500.0]) * m) * (1 + f) / (m + f)
    np.testing.assert_allclose(np.asarray(sizes.outlay), np.stack([[0.01 * equity[0] - 100.0, share[0]],
                                                                   [0.0, share[1]]]), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(np.asarray(sizes.probe_cut[:, 0]), [share[0] - (0.01 * equity[0] - 100.0), share[1]],
                               rtol=1e-12)
