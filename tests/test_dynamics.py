"""The transition against the contract: float64 reference, invariants over random books, modes, gradients, params."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState, init_state, step
from tests.helpers import random_case, to_jax
from tests.reference import reference_step

seeds = st.integers(0, 2**31 - 1)
MODES = [(fill, interest) for fill in ("hard", "soft", "ste") for interest in ("excess", "debit")]
FEE = 0.0008


@jax.jit
def jstep(params, state, action, bar):
    return step(params, state, action, bar)


def _run(case, dtype=jnp.float32, **kw):
    params, state, action, bar = to_jax(case, dtype, **kw)
    return jstep(params, state, action, bar)


def _run64(case, **kw):
    with jax.enable_x64(True):
        new, info = _run(case, jnp.float64, **kw)
        return jax.tree_util.tree_map(np.asarray, (new, info))


def _f32_roundtrip(case):
    """The case as float32 values held in float64, so the reference sees exactly what jax sees."""
    return {k: (np.asarray(v, np.float32).astype(np.float64) if k != "is_crypto" else v) for k, v in case.items()}


def _reference(case, fill="hard", interest="excess", margin_call=True):
    return reference_step(**case, fill="hard" if fill == "ste" else fill, interest=interest, margin_call=margin_call)


@pytest.mark.parametrize("fill,interest", MODES)
@pytest.mark.parametrize("margin_call", [True, False])
@settings(max_examples=10, deadline=None)
@given(seed=seeds)
def test_matches_reference_float32(fill, interest, margin_call, seed):
    case = _f32_roundtrip(random_case(seed))
    new, info = _run(case, fill=fill, interest=interest, margin_call=margin_call)
    ref = _reference(case, fill, interest, margin_call)
    # a book within float32 rounding of its maintenance line may be called in one precision and not the other
    clear = np.abs(ref["equity2"] - ref["MM"]) > 1e-4 * (np.abs(ref["S"] + ref["C"]) + np.abs(case["cash"]) + 1)
    scale = (np.abs(ref["E0"]) + np.abs(case["cash"]) + 1).max()
    np.testing.assert_array_equal(np.asarray(info.margin_call)[clear] > 0, ref["call"][clear])
    np.testing.assert_allclose(np.asarray(info.equity)[clear], ref["equity"][clear], atol=1e-5 * scale)
    np.testing.assert_allclose(np.asarray(info.cash)[clear], ref["cash"][clear], atol=1e-5 * scale)
    np.testing.assert_allclose(np.asarray(info.fees)[clear], ref["fees"][clear], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(info.inventory)[clear], ref["inventory"][clear], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(info.forced_qty)[clear], ref["forced"][clear], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(info.leverage_cost, ref["interest"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info.buy_fill, ref["fb"], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(new.mark, np.asarray(case["close"], np.float32))


@pytest.mark.parametrize("fill,interest", MODES)
@pytest.mark.parametrize("margin_call", [True, False])
@settings(max_examples=12, deadline=None)
@given(seed=seeds)
def test_spec_invariants(fill, interest, margin_call, seed):
    case = random_case(seed)
    _, info = _run64(case, fill=fill, interest=interest, margin_call=margin_call)
    ref = _reference(case, fill, interest, margin_call)
    q, tradable, crypto = case["inventory"], case["tradable"], case["is_crypto"]
    chex.assert_tree_all_finite(info)
    np.testing.assert_allclose(info.equity, ref["equity"], rtol=1e-10, atol=1e-7)
    np.testing.assert_allclose(info.returns, ref["returns"], rtol=1e-9, atol=1e-12)
    # no shorting, sells only from held inventory, nothing trades where closed (forced sales included)
    assert np.all(info.inventory >= 0) and np.all(info.forced_qty >= 0)
    assert np.all(info.sell_qty <= q * (1 + 1e-12))
    for x in (info.buy_qty, info.sell_qty, info.forced_qty):
        assert np.all(x[tradable == 0] == 0)
    # the day's buys consume at most the excess equity at the prices paid
    m = np.where(crypto, 1.0, 0.5)
    assert np.all(np.sum((m + FEE) * info.buy_qty * case["buy_price"], -1) <= ref["X"] * (1 + 1e-9) + 1e-9)
    assert np.all(ref["X"] >= 0)
    if not margin_call:
        np.testing.assert_array_equal(info.forced_qty, 0)
        np.testing.assert_array_equal(info.margin_call, 0)
        return
    # after the call: above maintenance again, or nothing tradable left to sell
    close = case["close"]
    S3, C3 = (info.inventory * close * ~crypto).sum(-1), (info.inventory * close * crypto).sum(-1)
    left = (info.inventory * close * tradable).sum(-1)
    ok = info.equity >= 0.3 * S3 + C3 - 1e-6 * (S3 + C3) - 1e-9
    assert np.all(ok | (left <= 1e-9 * (S3 + C3 + 1)))
    called = info.margin_call > 0
    assert np.all(info.forced_notional[~called] == 0)
    # on a day when everything trades: gross <= 1/mm for a solvent account, <= Ls right after a call
    all_tradable = np.all(tradable > 0, -1) & (info.equity > 0)
    assert np.all(info.leverage[all_tradable] <= 1 / 0.3 + 1e-6)
    assert np.all(info.leverage[all_tradable & called] <= 2.0 + 1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=seeds, fill=st.sampled_from(["hard", "ste"]))
def test_all_cash_account_cannot_exceed_its_caps(seed, fill):
    """All cash, buys in both classes in one bar: gross at the prices paid <= Ls x equity, crypto paid in cash,
    and the margin loan never above the loan value of the stocks bought."""
    case = random_case(seed)
    case["inventory"] = np.zeros_like(case["inventory"])
    case["cash"] = np.abs(case["cash"]) + 1.0
    case["buy_frac"] = np.abs(case["buy_frac"]) + 0.5
    _, info = _run64(case, fill=fill)
    crypto, px = case["is_crypto"], case["buy_price"]
    stock_value = np.sum(info.buy_qty * px * ~crypto, -1)
    crypto_value = np.sum(info.buy_qty * px * crypto, -1)
    equity_after = case["cash"] - FEE * (stock_value + crypto_value)
    assert np.all(stock_value + crypto_value <= 2.0 * equity_after * (1 + 1e-9))
    assert np.all(crypto_value * (1 + FEE) <= case["cash"] * (1 + 1e-9))
    cash_after_buys = case["cash"] - (stock_value + crypto_value) * (1 + FEE)
    assert np.all(-cash_after_buys <= 0.5 * stock_value * (1 + 1e-9) + 1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=seeds)
def test_accounting_identity_hard(seed):
    """E3 - E0 = price moves + fills against the close - fees - interest - liquidation slippage."""
    case = random_case(seed)
    _, info = _run64(case)
    ref = _reference(case)
    p, q, close = case["mark"], case["inventory"], case["close"]
    lhs = info.equity - ref["E0"]
    rhs = ((q * (close - p)).sum(-1) + (info.buy_qty * (close - case["buy_price"])).sum(-1)
           - (info.sell_qty * (close - case["sell_price"])).sum(-1) - info.fees - info.leverage_cost
           - 0.001 * (ref["y"] + ref["z"]))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-7 * np.abs(ref["E0"]).max())


@settings(max_examples=20, deadline=None)
@given(seed=seeds, days_zero=st.booleans())
def test_interest_zero_cases(seed, days_zero):
    case = random_case(seed)
    no_stock = dict(case, inventory=np.where(case["is_crypto"], case["inventory"], 0.0))
    np.testing.assert_array_equal(_run(no_stock, interest="excess")[1].leverage_cost, 0)
    for interest in ("excess", "debit"):
        if days_zero:
            _, info = _run(dict(case, days=np.zeros_like(case["days"])), interest=interest)
        else:
            _, info = _run(case, interest=interest, leverage_fee_rate=0.0)
        np.testing.assert_array_equal(info.leverage_cost, 0)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, margin_call=st.booleans())
def test_ste_forward_equals_hard_bitwise(seed, margin_call):
    case = random_case(seed)
    hard = _run(case, fill="hard", margin_call=margin_call)
    ste = _run(case, fill="ste", margin_call=margin_call)
    chex.assert_trees_all_equal(hard, ste)


def test_ste_equals_hard_through_calls():
    """Over many random books, calls included (about a fifth of them), ste == hard bit for bit."""
    cases = [random_case(s, batch=16) for s in range(4)]
    n_calls = 0
    for case in cases:
        hard, ste = _run(case, fill="hard"), _run(case, fill="ste")
        chex.assert_trees_all_equal(hard, ste)
        n_calls += int(np.sum(hard[1].margin_call))
    assert n_calls >= 5


def test_soft_tends_to_hard_away_from_ties():
    case = random_case(7, batch=8)
    gap_b = np.abs(case["buy_price"] - case["low"]) / case["mark"]
    gap_s = np.abs(case["high"] - case["sell_price"]) / case["mark"]
    away = (gap_b > 1e-3) & (gap_s > 1e-3)
    _, hard = _run(case)
    errs = []
    for tau in (1e-2, 1e-3, 1e-4, 1e-5):
        _, soft = _run(case, fill="soft", fill_temperature=tau)
        errs.append(float(np.max(np.abs(np.asarray(soft.buy_fill - hard.buy_fill))[away])))
    assert errs[-1] < 1e-6
    assert all(a >= b for a, b in zip(errs, errs[1:]))


def test_vmap_equals_loop():
    case = random_case(3, batch=4)
    params, state, action, bar = to_jax(case)
    batched = jax.jit(jax.vmap(step, in_axes=(None, 0, 0, 0)))(params, state, action, bar)
    for i in range(4):
        one = jax.tree_util.tree_map(lambda x: x[i], (state, action, bar))
        chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[i], batched), jstep(params, *one),
                                    rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("field,values", [("maker_fee", [0.0, 0.0008, 0.002]),
                                          ("maintenance_margin", [0.25, 0.3, 0.5]),
                                          ("liquidation_slippage", [0.0, 0.001, 0.01])])
def test_vmap_over_params_equals_loop(field, values):
    params, state, action, bar = to_jax(random_case(4))
    swept = jax.jit(jax.vmap(lambda v: step(params.replace(**{field: v}), state, action, bar)))(jnp.array(values))
    for i, v in enumerate(values):
        chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[i], swept),
                                    jstep(params.replace(**{field: v}), state, action, bar), rtol=1e-5, atol=1e-5)


def test_step_traces_once():
    traced = chex.assert_max_traces(step, n=1)
    fn = jax.jit(traced)
    for seed in range(4):
        fn(*to_jax(random_case(seed)))
    chex.clear_trace_counter()


def test_leading_batch_dims():
    case = random_case(5, batch=6)
    params, state, action, bar = to_jax(case)
    reshape = lambda x: x.reshape((2, 3) + x.shape[1:])  # noqa: E731
    new2, info2 = jstep(params, *jax.tree_util.tree_map(reshape, (state, action, bar)))
    new1, info1 = jstep(params, state, action, bar)
    assert info2.equity.shape == (2, 3) and info2.forced_qty.shape == (2, 3, case["mark"].shape[-1])
    chex.assert_trees_all_close(jax.tree_util.tree_map(reshape, info1), info2)


def _objective(fill):
    def f(buy_price, sell_price, buy_frac, sell_frac, case):
        params, state, _, bar = to_jax(case, jnp.float64, fill=fill)
        _, info = step(params, state, Action(buy_price, sell_price, buy_frac, sell_frac), bar)
        return jnp.sum(info.equity / info.prev_equity.clip(1))

    return f


def _smooth_case(seed, bust=False):
    """Fractions off their clip kinks, limits within a few temperatures of the bar."""
    case = random_case(seed, bust=bust)
    case["buy_frac"] = np.clip(case["buy_frac"], 0.05, 0.95)
    case["sell_frac"] = np.clip(case["sell_frac"], 0.05, 0.95)
    case["buy_price"] = case["low"] * (1 + 1e-3 * np.sign(np.random.default_rng(0).normal(size=case["low"].shape)))
    case["sell_price"] = case["high"] * (1 + 1e-3)
    return case


@pytest.mark.parametrize("bust", [False, True])
def test_step_gradients_soft(bust):
    case = _smooth_case(11, bust)
    with jax.enable_x64(True):
        args = tuple(jnp.asarray(case[k]) for k in ("buy_price", "sell_price", "buy_frac", "sell_frac"))
        check_grads(lambda *a: _objective("soft")(*a, case), args, order=1, modes=["rev"], atol=1e-4, rtol=1e-4,
                    eps=1e-6)


def test_gradients_through_a_call_soft():
    """A book that is called at the close and partly sold: gradients wrt the orders and the book."""
    case = _smooth_case(3)
    case["inventory"] = np.full_like(case["mark"], 20.0)
    value = (case["inventory"] * case["mark"]).sum(-1)
    case["cash"] = -0.4 * value
    case["close"] = case["mark"] * 0.85
    case["high"], case["low"] = case["mark"] * 1.01, case["close"] * 0.99
    case["buy_price"], case["sell_price"] = case["low"] * 1.001, case["high"] * 1.001
    case["tradable"] = np.ones_like(case["mark"])
    ref = _reference(case, "soft")
    value = ref["inventory2"] * case["close"]
    stock, crypto = (value * ~case["is_crypto"]).sum(-1), (value * case["is_crypto"]).sum(-1)
    stocks_partly_sold = (ref["y"] > 0.01 * stock) & (ref["y"] < 0.99 * stock)
    crypto_partly_sold = (ref["y"] == stock) & (ref["z"] > 0.01 * crypto) & (ref["z"] < 0.99 * crypto)
    assert np.all(ref["call"] & (stocks_partly_sold | crypto_partly_sold))  # away from the clips' kinks
    assert np.any(stocks_partly_sold) and np.any(crypto_partly_sold)
    with jax.enable_x64(True):
        params, state, action, bar = to_jax(case, jnp.float64, fill="soft")

        def f(cash, inventory, buy_frac, sell_frac):
            s = state.replace(cash=cash, inventory=inventory)
            _, info = step(params, s, action.replace(buy_frac=buy_frac, sell_frac=sell_frac), bar)
            return jnp.sum(info.equity) + jnp.sum(info.forced_notional)

        check_grads(f, (state.cash, state.inventory, action.buy_frac, action.sell_frac), order=1, modes=["rev"],
                    atol=1e-4, rtol=1e-4, eps=1e-6)


@pytest.mark.parametrize("fill", ["soft", "ste"])
def test_gradients_finite_far_limits_and_bust(fill):
    case = random_case(12, bust=True)
    case["buy_price"] = case["mark"] * 0.2  # far below the bar: fill probability underflows to 0
    case["sell_price"] = case["mark"] * 5.0
    params, state, action, bar = to_jax(case, fill=fill)

    def total(action, state):
        _, info = step(params, state, action, bar)
        return jnp.sum(info.returns) + jnp.sum(info.equity) * 1e-6 + jnp.sum(info.leverage)

    grads = jax.jit(jax.grad(total, argnums=(0, 1)))(action, state)
    chex.assert_tree_all_finite(grads)
    chex.assert_tree_all_finite(jstep(params, state, action, bar))


@pytest.mark.parametrize("fill", ["soft", "ste"])
def test_gradients_finite_with_dust_positions(fill):
    """Soft fills leave residues like 1e-25 units. The call's `z / Ct` must not differentiate through an
    underflowing `Ct ** 2`: it gave NaN gradients once, on a book with no call at all."""
    params = MarketParams(is_crypto=jnp.array([False, True]), fill=fill)
    state = PortfolioState(cash=jnp.array([100.0]), inventory=jnp.array([[10.0, 3.7e-25]]),
                           mark=jnp.array([[100.0, 110.0]]))
    bar = Bar(high=jnp.array([[101.0, 111.0]]), low=jnp.array([[99.0, 109.0]]), close=jnp.array([[100.0, 110.0]]),
              tradable=jnp.ones((1, 2)), days_elapsed=jnp.ones(1))
    action = Action(buy_price=bar.low * 0.9, sell_price=bar.high * 1.1, buy_frac=jnp.full((1, 2), 0.5),
                    sell_frac=jnp.zeros((1, 2)))  # limits far from the bar: the soft fills underflow to 0

    def total(action, state):
        return jnp.sum(step(params, state, action, bar)[1].equity)

    chex.assert_tree_all_finite(jax.jit(jax.grad(total, argnums=(0, 1)))(action, state))


def test_bust_account_returns_zero_and_is_sold_out():
    params = MarketParams(is_crypto=jnp.array([False]))
    state = init_state(-500.0, jnp.array([[100.0]])).replace(inventory=jnp.array([[1.0]]))
    bar = Bar(high=jnp.array([[110.0]]), low=jnp.array([[90.0]]), close=jnp.array([[95.0]]), tradable=jnp.ones((1, 1)),
              days_elapsed=jnp.ones(1))
    _, info = jstep(params, state, Action(bar.low, bar.high, jnp.ones((1, 1)), jnp.zeros((1, 1))), bar)
    assert float(info.returns[0]) == 0.0 and float(info.buy_qty[0, 0]) == 0.0
    assert float(info.margin_call[0]) == 1.0 and float(info.inventory[0, 0]) == 0.0
    chex.assert_tree_all_finite(info)


@pytest.mark.parametrize("field,value", [
    ("maker_fee", -0.001), ("stock_max_leverage", 0.0), ("crypto_max_leverage", -0.5), ("leverage_fee_rate", -0.1),
    ("day_count", 0.0), ("fill_temperature", 0.0), ("maker_fee", float("nan")), ("maintenance_margin", 0.0),
    ("maintenance_margin", 0.6), ("liquidation_slippage", -0.01), ("liquidation_slippage", 0.4995),
])
def test_bad_numeric_params_raise(field, value):
    with pytest.raises(ValueError, match=field):
        MarketParams(is_crypto=jnp.zeros(2, bool), **{field: value})


def test_params_checked_against_each_other():
    with pytest.raises(ValueError, match="maintenance_margin"):  # 0.3 above 1/Ls = 0.25
        MarketParams(is_crypto=jnp.zeros(2, bool), stock_max_leverage=4.0)
    with pytest.raises(ValueError, match="liquidation_slippage"):  # sl + f >= 1/Lc
        MarketParams(is_crypto=jnp.zeros(2, bool), crypto_max_leverage=1000.0, stock_max_leverage=1.5)
    MarketParams(is_crypto=jnp.zeros(2, bool), stock_max_leverage=4.0, maintenance_margin=0.25)


@pytest.mark.parametrize("field,value", [("fill", "smooth"), ("interest", "simple")])
def test_bad_modes_raise(field, value):
    with pytest.raises(ValueError, match=field):
        MarketParams(is_crypto=jnp.zeros(2, bool), **{field: value})


def test_init_state_broadcasts():
    s = init_state(1000.0, jnp.ones((4, 3)))
    assert s.cash.shape == (4,) and s.inventory.shape == (4, 3) and float(s.inventory.sum()) == 0
