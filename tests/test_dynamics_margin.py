"""Margin: one buying-power pool and maintenance calls, on books computed by hand (docs/semantics.md)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ndjax.dynamics import (
    Action,
    Bar,
    MarketParams,
    PortfolioState,
    init_state,
    size_orders,
    step,
)
from ndjax.sim import simulate

K = 1 - (1 - 0.001) * (1 - 0.0008)  # equity lost per unit of value force-sold at the defaults


@jax.jit
def jstep(params, state, action, bar):
    return step(params, state, action, bar)


def _bar(close, tradable, days=1.0, high=None, low=None):
    close = jnp.asarray(close, jnp.float64)
    return Bar(high=close if high is None else jnp.asarray(high, jnp.float64),
               low=close if low is None else jnp.asarray(low, jnp.float64), close=close,
               tradable=jnp.asarray(tradable, jnp.float64), days_elapsed=jnp.asarray(days, jnp.float64))


def _hold(mark):
    """No orders."""
    zero = jnp.zeros_like(mark)
    return Action(buy_price=mark, sell_price=mark * 10, buy_frac=zero, sell_frac=zero)


def _book(cash, units, mark):
    return PortfolioState(cash=jnp.asarray(cash, jnp.float64), inventory=jnp.asarray(units, jnp.float64),
                          mark=jnp.asarray(mark, jnp.float64))


def test_worked_mixed_book_example():
    """docs/semantics.md, "A mixed book, bar by bar": $10,000 buys a stock and a coin, the stock falls 40 %."""
    with jax.enable_x64(True):
        params = MarketParams(is_crypto=jnp.array([False, True]))
        state = init_state(10_000.0, jnp.array([100.0, 1000.0]))
        buy = Action(buy_price=state.mark, sell_price=state.mark * 2, buy_frac=jnp.array([0.5, 0.5]),
                     sell_frac=jnp.zeros(2))
        sizes = size_orders(params, state, buy, jnp.ones(2), jnp.array(1.0))
        assert float(sizes.excess) == pytest.approx(10_000.0)
        np.testing.assert_allclose(sizes.outlay, [9992.012780, 5000.0], atol=1e-6)
        state, day1 = jstep(params, state, buy, _bar([100.0, 1000.0], [1.0, 1.0]))
        np.testing.assert_allclose(day1.buy_qty, [99.840256, 4.996003], atol=1e-6)
        assert float(day1.fees) == pytest.approx(11.984023, abs=1e-6)
        assert float(day1.cash) == pytest.approx(-4992.012780, abs=1e-6)
        assert float(day1.equity) == pytest.approx(9988.015977, abs=1e-6)
        assert float(day1.leverage) == pytest.approx(1.499800, abs=1e-6)
        assert float(day1.margin_call) == 0.0
        # the whole pool is used: equity equals the initial requirement, so the next bar buys nothing
        again = size_orders(params, state, buy, jnp.ones(2), jnp.array(1.0))
        assert float(again.initial_requirement) == pytest.approx(9988.015977, abs=1e-6)
        assert float(again.excess) == pytest.approx(0.0, abs=1e-6)

        state, day2 = jstep(params, state, _hold(state.mark), _bar([60.0, 1000.0], [1.0, 1.0]))
        assert float(day2.leverage_cost) == 0.0  # stock value 9,984.03 is below equity 9,988.02: nothing is charged
        assert float(day2.margin_call) == 1.0  # 5,994.41 < 0.3 x 5,990.42 + 4,996.00 = 6,793.13
        assert float(day2.forced_notional) / 0.999 == pytest.approx(4008.032729, abs=1e-6)
        np.testing.assert_allclose(day2.forced_qty, [66.800545, 0.0], atol=1e-6)
        assert float(day2.fees) == pytest.approx(3.203220, abs=1e-6)
        assert float(day2.cash) == pytest.approx(-991.191303, abs=1e-6)
        assert float(day2.equity) == pytest.approx(5987.194501, abs=1e-6)
        assert float(day2.leverage) == pytest.approx(1.165552, abs=1e-6)
        requirement = 0.5 * float(day2.inventory[0]) * 60 + float(day2.inventory[1]) * 1000
        assert float(day2.equity) == pytest.approx(requirement, abs=1e-6)  # back at the initial requirement


def test_call_sells_stocks_only_when_they_suffice():
    """Stocks $10,000 and crypto $3,000 on a $5,000 loan. The stock falls 20 %: E 6,000 >= MM 5,400, no call.
    It falls 40 %: E 4,000 < MM 4,800, and selling stocks alone restores the initial requirement."""
    with jax.enable_x64(True):
        params = MarketParams(is_crypto=jnp.array([False, True]))
        book = _book(-5000.0, [100.0, 3.0], [100.0, 1000.0])
        _, quiet = jstep(params, book, _hold(book.mark), _bar([80.0, 1000.0], [1, 1], days=0.0))
        assert float(quiet.margin_call) == 0.0 and float(quiet.equity) == pytest.approx(6000.0)
        _, info = jstep(params, book, _hold(book.mark), _bar([60.0, 1000.0], [1, 1], days=0.0))
        y = (0.5 * 6000 + 3000 - 4000) / (0.5 - K)  # 4,014.45 of stock value sold at the close
        assert float(info.margin_call) == 1.0
        np.testing.assert_allclose(info.forced_qty, [y / 60, 0.0], rtol=1e-12)
        assert float(info.equity) == pytest.approx(4000 - K * y, rel=1e-12)
        assert float(info.equity) == pytest.approx(0.5 * (6000 - y) + 3000, rel=1e-12)


def test_call_sells_crypto_when_stocks_are_not_enough():
    """Stocks $10,000, crypto $3,000, loan $5,000 (at the initial requirement); the stock falls 60 %:
    all stocks are sold, then crypto until equity meets the (crypto) requirement."""
    with jax.enable_x64(True):
        params = MarketParams(is_crypto=jnp.array([False, True]))
        book = _book(-5000.0, [100.0, 3.0], [100.0, 1000.0])
        _, info = jstep(params, book, _hold(book.mark), _bar([40.0, 1000.0], [1, 1], days=0.0))
        y = 4000.0  # (0.5 x 4,000 + 3,000 - 2,000) / (0.5 - k) = 6,021.7 is more than the 4,000 of stock
        z = (3000 - (2000 - K * y)) / (1 - K)  # 1,009.00 of crypto value
        assert float(info.margin_call) == 1.0
        np.testing.assert_allclose(info.forced_qty, [100.0, z / 1000], rtol=1e-12)
        assert float(info.inventory[0]) == 0.0
        assert float(info.cash) == pytest.approx(-5000 + (y + z) * (1 - 0.001) * (1 - 0.0008), rel=1e-12)
        assert float(info.equity) == pytest.approx(3000 - z, rel=1e-12)  # = its crypto: requirement 100 %
        assert float(info.fees) == pytest.approx(0.0008 * 0.999 * (y + z), rel=1e-12)


def test_weekend_call_sells_only_crypto():
    """Saturday: stocks are closed. Debit interest on the $6,999.50 loan takes equity under maintenance, so the
    call sells crypto only; the stock waits for Monday, when the call is recomputed."""
    with jax.enable_x64(True):
        params = MarketParams(is_crypto=jnp.array([False, True]), interest="debit")
        book = _book(-6999.5, [100.0, 5.0], [100.0, 1000.0])  # E 8,000.50 >= MM 8,000 on Friday
        saturday = _bar([100.0, 1000.0], [0.0, 1.0])
        state, info = jstep(params, book, _hold(book.mark), saturday)
        interest = 6999.5 * 0.065 / 365
        equity = 8000.5 - interest
        z = (10_000 - equity) / (1 - K)
        assert float(info.leverage_cost) == pytest.approx(interest, rel=1e-12)
        assert float(info.margin_call) == 1.0
        np.testing.assert_allclose(info.forced_qty, [0.0, z / 1000], rtol=1e-12)
        assert float(info.equity) == pytest.approx(10_000 - z, rel=1e-12)  # initial requirement met again
        monday = _bar([100.0, 1000.0], [1.0, 1.0], days=2.0)
        _, info = jstep(params, state, _hold(state.mark), monday)
        assert float(info.margin_call) == 0.0 and float(info.forced_qty.sum()) == 0.0


def test_crypto_bought_with_all_the_excess_is_not_called():
    """A cash account that spends its whole pool on crypto holds cash of +-rounding, not a loan: no call."""
    params = MarketParams(is_crypto=jnp.array([True, True]))
    state = init_state(jnp.full(64, 10_000.0), jnp.tile(jnp.array([997.3, 31.7]), (64, 1)))
    frac = jnp.tile(jnp.array([0.37, 0.63]), (64, 1)) * jnp.linspace(1.0, 3.0, 64)[:, None]
    action = Action(state.mark, state.mark * 2, frac, jnp.zeros_like(frac))
    bar = Bar(state.mark, state.mark, state.mark, jnp.ones_like(frac), jnp.ones(64))
    _, info = jstep(params, state, action, bar)
    assert float(jnp.max(jnp.abs(info.cash))) < 1e-2
    assert float(jnp.sum(info.margin_call)) == 0.0


def test_margin_call_off_keeps_the_book():
    with jax.enable_x64(True):
        params = MarketParams(is_crypto=jnp.array([False, True]), margin_call=False)
        book = _book(-5000.0, [100.0, 3.0], [100.0, 1000.0])
        _, info = jstep(params, book, _hold(book.mark), _bar([40.0, 1000.0], [1, 1], days=0.0))
        assert float(info.margin_call) == 0.0
        np.testing.assert_array_equal(info.inventory, [100.0, 3.0])
        assert float(info.equity) == pytest.approx(2000.0)


def _harsh_path(seed, T=500, B=8, N=5):
    """A violent random walk (7.6 % daily vol, a common fat-tailed factor) where every asset trades every day, and
    greedy orders."""
    rng = np.random.default_rng(seed)
    is_crypto = np.arange(N) >= 4
    market = rng.standard_t(3, (T, B, 1)) / np.sqrt(3)
    ret = 0.07 * market + 0.03 * rng.standard_t(3, (T, B, N)) / np.sqrt(3)
    close = 100 * np.exp(np.cumsum(np.clip(ret, -0.7, 0.7), axis=0))
    prev = np.concatenate([np.full((1, B, N), 100.0), close[:-1]])
    span = rng.exponential(0.02, (T, B, N))
    bars = Bar(high=jnp.asarray(np.maximum(prev, close) * (1 + span)),
               low=jnp.asarray(np.minimum(prev, close) * (1 - span)), close=jnp.asarray(close),
               tradable=jnp.ones((T, B, N)), days_elapsed=jnp.asarray(rng.choice([1.0, 3.0], (T, B))))
    actions = Action(buy_price=jnp.asarray(prev * (1 + rng.uniform(-0.02, 0.03, (T, B, N)))),
                     sell_price=jnp.asarray(prev * (1 + rng.uniform(0.0, 0.1, (T, B, N)))),
                     buy_frac=jnp.asarray(rng.uniform(0.5, 1.5, (T, B, N))),
                     sell_frac=jnp.asarray(rng.uniform(0.0, 0.05, (T, B, N))))
    return MarketParams(is_crypto=jnp.asarray(is_crypto)), init_state(10_000.0, jnp.full((B, N), 100.0)), actions, bars


@pytest.mark.parametrize("seed", [0, 1])
def test_leverage_bounded_over_a_harsh_rollout(seed):
    """500 steps, every asset tradable every day: a solvent account never reports more than 1/mm gross."""
    with jax.enable_x64(True):
        params, state0, actions, bars = _harsh_path(seed)
        _, infos = simulate(params, state0, actions, bars)
        chex.assert_tree_all_finite(infos)
        lev, eq = np.asarray(infos.leverage), np.asarray(infos.equity)
        assert np.all(lev[eq > 0] <= 1 / 0.3 + 1e-9)
        called = np.asarray(infos.margin_call) > 0
        assert called.sum() > 10  # the path really tests the calls
        assert np.all(lev[called & (eq > 0)] <= 2.0 + 1e-9)
        _, loose = simulate(params.replace(margin_call=False), state0, actions, bars)
        assert float(np.max(np.asarray(loose.leverage)[np.asarray(loose.equity) > 0])) > 1 / 0.3


def test_alpaca_preset():
    """Debit interest on ACT/360, 30 % maintenance, cash-only crypto, a crypto maker fee only with crypto."""
    with jax.enable_x64(True):
        mixed = MarketParams.alpaca([False, True])
        assert (mixed.interest, mixed.day_count, mixed.maintenance_margin) == ("debit", 360.0, 0.30)
        assert mixed.maker_fee == 0.0015 and MarketParams.alpaca([False]).maker_fee == 0.0
        assert MarketParams.alpaca([False], leverage_fee_rate=0.07).leverage_fee_rate == 0.07
        book = _book(-13_000.0, [150.0, 8.0], [100.0, 1000.0])  # the worked interest example's book
        _, info = jstep(mixed, book, _hold(book.mark), _bar([100.0, 1000.0], [0.0, 0.0]))
        assert float(info.leverage_cost) == pytest.approx(13_000 * 0.065 / 360, rel=1e-12)  # 2.347222 a day
