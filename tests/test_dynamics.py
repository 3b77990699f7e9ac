"""The transition against SPEC.md: reference agreement, invariants, worked example, modes, gradients."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from ndjax.dynamics import (
    Action,
    Bar,
    MarketParams,
    PortfolioState,
    asset_class_mask,
    init_state,
    is_crypto_symbol,
    step,
)
from tests.conftest import random_case, to_jax
from tests.reference import reference_step

seeds = st.integers(0, 2**31 - 1)
MODES = [(fill, interest) for fill in ("hard", "soft", "ste") for interest in ("excess", "debit")]


@jax.jit
def jstep(params, state, action, bar):
    return step(params, state, action, bar)


def _run(case, dtype=jnp.float32, **kw):
    params, state, action, bar = to_jax(case, dtype, **kw)
    return jstep(params, state, action, bar)


def _f32_roundtrip(case):
    """The case as float32 values held in float64, so the reference sees exactly what jax sees."""
    return {k: (np.asarray(v, np.float32).astype(np.float64) if k != "is_crypto" else v) for k, v in case.items()}


@pytest.mark.parametrize("fill,interest", MODES)
@settings(max_examples=15, deadline=None)
@given(seed=seeds)
def test_matches_reference_float32(fill, interest, seed):
    case = _f32_roundtrip(random_case(seed))
    new, info = _run(case, fill=fill, interest=interest)
    ref = reference_step(**case, fill="hard" if fill == "ste" else fill, interest=interest)
    scale = np.abs(ref["E0"]) + np.abs(case["cash"]) + 1
    np.testing.assert_allclose(info.equity, ref["equity"], atol=1e-5 * scale.max())
    np.testing.assert_allclose(info.cash, ref["cash"], atol=1e-5 * scale.max())
    np.testing.assert_allclose(info.leverage_cost, ref["interest"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info.buy_fill, ref["fb"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(info.inventory, ref["inventory"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(info.fees, ref["fees"], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(new.mark, np.asarray(case["close"], np.float32))


@pytest.mark.parametrize("fill,interest", MODES)
@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_spec_invariants(fill, interest, seed):
    case = random_case(seed)
    with jax.enable_x64(True):
        new, info = _run(case, jnp.float64, fill=fill, interest=interest)
        info = jax.tree_util.tree_map(np.asarray, info)
    ref = reference_step(**case, fill="hard" if fill == "ste" else fill, interest=interest)
    q, tradable, crypto = case["inventory"], case["tradable"], case["is_crypto"]
    # no shorting, sells only from held inventory, nothing trades where closed
    assert np.all(info.inventory >= 0)
    assert np.all(info.sell_qty <= q * (1 + 1e-12))
    assert np.all(info.buy_qty[tradable == 0] == 0) and np.all(info.sell_qty[tradable == 0] == 0)
    # purchases stay inside the room of their class; crypto never bought with borrowed money
    spent = info.buy_qty * case["buy_price"] * (1 + 0.0008)
    assert np.all(np.sum(spent * ~crypto, -1) <= ref["room_stock"] * (1 + 1e-9) + 1e-9)
    assert np.all(np.sum(spent * crypto, -1) <= ref["room_crypto"] * (1 + 1e-9) + 1e-9)
    assert np.all(ref["room_crypto"] <= np.maximum(ref["c1"], 0) + 1e-9)
    # every output finite, including bust accounts
    chex.assert_tree_all_finite(info)
    np.testing.assert_allclose(info.equity, ref["equity"], rtol=1e-10, atol=1e-7)
    np.testing.assert_allclose(info.returns, ref["returns"], rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=seeds)
def test_accounting_identity_hard(seed):
    case = random_case(seed)
    with jax.enable_x64(True):
        _, info = _run(case, jnp.float64)
        info = jax.tree_util.tree_map(np.asarray, info)
    p, q, close = case["mark"], case["inventory"], case["close"]
    E0 = case["cash"] + (q * p).sum(-1)
    lhs = info.equity - E0
    rhs = (
        (q * (close - p)).sum(-1)
        + (info.buy_qty * (close - case["buy_price"])).sum(-1)
        - (info.sell_qty * (close - case["sell_price"])).sum(-1)
        - info.fees
        - info.leverage_cost
    )
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-7 * np.abs(E0).max())


@settings(max_examples=20, deadline=None)
@given(seed=seeds, days_zero=st.booleans())
def test_interest_zero_cases(seed, days_zero):
    case = random_case(seed)
    # excess interest is zero with no stock held
    no_stock = dict(case, inventory=np.where(case["is_crypto"], case["inventory"], 0.0))
    for interest in ("excess",):
        _, info = _run(no_stock, interest=interest)
        np.testing.assert_array_equal(info.leverage_cost, 0)
    # any interest is zero with days_elapsed = 0 or r = 0
    for interest in ("excess", "debit"):
        if days_zero:
            _, info = _run(dict(case, days=np.zeros_like(case["days"])), interest=interest)
        else:
            _, info = _run(case, interest=interest, leverage_fee_rate=0.0)
        np.testing.assert_array_equal(info.leverage_cost, 0)


def _worked_example(interest: str):
    # stock $15,000, crypto $8,000, cash -$13,000: equity $10,000; closed market so nothing trades
    with jax.enable_x64(True):
        params = MarketParams(is_crypto=jnp.array([False, True]), interest=interest)
        state = PortfolioState(
            cash=jnp.array(-13_000.0), inventory=jnp.array([150.0, 80.0]), mark=jnp.array([100.0, 100.0])
        )
        bar = Bar(
            high=state.mark, low=state.mark, close=state.mark, tradable=jnp.zeros(2), days_elapsed=jnp.array(1.0)
        )
        action = Action(state.mark, state.mark, jnp.zeros(2), jnp.zeros(2))
        _, info = jstep(params, state, action, bar)
        year = jstep(params, state, action, bar.replace(days_elapsed=jnp.array(365.0)))[1]
        return float(info.leverage_cost), float(year.leverage_cost)


def test_worked_example_excess():
    day, year = _worked_example("excess")
    assert round(day, 6) == 0.890411
    assert round(year, 6) == 325.0


def test_worked_example_debit():
    day, _ = _worked_example("debit")
    assert round(day, 6) == 2.315068


def test_worked_example_crypto_only_pays_nothing():
    for interest in ("excess", "debit"):
        params = MarketParams(is_crypto=jnp.array([True]), interest=interest)
        state = PortfolioState(cash=jnp.array(2000.0), inventory=jnp.array([80.0]), mark=jnp.array([100.0]))
        bar = Bar(state.mark, state.mark, state.mark, jnp.ones(1), jnp.array(1.0))
        _, info = jstep(params, state, Action(state.mark, state.mark, jnp.zeros(1), jnp.zeros(1)), bar)
        assert float(info.leverage_cost) == 0.0


@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_ste_forward_equals_hard_bitwise(seed):
    case = random_case(seed)
    hard = _run(case, fill="hard")
    ste = _run(case, fill="ste")
    chex.assert_trees_all_equal(hard, ste)


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
        chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[i], batched), jstep(params, *one), rtol=1e-5, atol=1e-6)


def test_vmap_over_params_equals_loop():
    case = random_case(4)
    params, state, action, bar = to_jax(case)
    fees = jnp.array([0.0, 0.0008, 0.002])
    axes = MarketParams(is_crypto=None, maker_fee=0, stock_max_leverage=None, crypto_max_leverage=None,
                        leverage_fee_rate=None, day_count=None, fill_temperature=None)
    swept = jax.jit(jax.vmap(step, in_axes=(axes, None, None, None)))(
        params.replace(maker_fee=fees), state, action, bar
    )
    for i, fee in enumerate(fees):
        chex.assert_trees_all_close(
            jax.tree_util.tree_map(lambda x: x[i], swept), jstep(params.replace(maker_fee=fee), state, action, bar),
            rtol=1e-5, atol=1e-6,
        )


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
    assert info2.equity.shape == (2, 3) and info2.buy_qty.shape == (2, 3, case["mark"].shape[-1])
    chex.assert_trees_all_close(jax.tree_util.tree_map(reshape, info1), info2)


def _grad_objective(fill):
    def f(buy_price, sell_price, buy_frac, sell_frac, case):
        params, state, _, bar = to_jax(case, jnp.float64, fill=fill)
        _, info = step(params, state, Action(buy_price, sell_price, buy_frac, sell_frac), bar)
        return jnp.sum(info.equity / info.prev_equity.clip(1))

    return f


@pytest.mark.parametrize("bust", [False, True])
def test_step_gradients_soft(bust):
    case = random_case(11, bust=bust)
    # keep fractions off the clip kinks and limits within a few temperatures of the bar
    case["buy_frac"] = np.clip(case["buy_frac"], 0.05, 0.95)
    case["sell_frac"] = np.clip(case["sell_frac"], 0.05, 0.95)
    case["buy_price"] = case["low"] * (1 + 1e-3 * np.sign(np.random.default_rng(0).normal(size=case["low"].shape)))
    case["sell_price"] = case["high"] * (1 + 1e-3)
    with jax.enable_x64(True):
        f = _grad_objective("soft")
        args = tuple(jnp.asarray(case[k]) for k in ("buy_price", "sell_price", "buy_frac", "sell_frac"))
        check_grads(lambda *a: f(*a, case), args, order=1, modes=["rev"], atol=1e-4, rtol=1e-4, eps=1e-6)


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


def test_bust_account_returns_zero():
    params = MarketParams(is_crypto=jnp.array([False]))
    state = PortfolioState(cash=jnp.array([-500.0]), inventory=jnp.array([[1.0]]), mark=jnp.array([[100.0]]))
    bar = Bar(jnp.array([[110.0]]), jnp.array([[90.0]]), jnp.array([[95.0]]), jnp.ones((1, 1)), jnp.ones(1))
    _, info = jstep(params, state, Action(bar.low, bar.high, jnp.ones((1, 1)), jnp.zeros((1, 1))), bar)
    assert float(info.returns[0]) == 0.0
    assert float(info.buy_qty[0, 0]) == 0.0
    chex.assert_tree_all_finite(info)


@pytest.mark.parametrize(
    "field,value",
    [("maker_fee", -0.001), ("stock_max_leverage", -1.0), ("crypto_max_leverage", -0.5), ("leverage_fee_rate", -0.1),
     ("day_count", 0.0), ("fill_temperature", 0.0), ("maker_fee", float("nan"))],
)
def test_bad_numeric_params_raise(field, value):
    with pytest.raises(ValueError, match=field):
        MarketParams(is_crypto=jnp.zeros(2, bool), **{field: value})


@pytest.mark.parametrize("field,value", [("fill", "smooth"), ("interest", "simple")])
def test_bad_modes_raise(field, value):
    with pytest.raises(ValueError, match=field):
        MarketParams(is_crypto=jnp.zeros(2, bool), **{field: value})


def test_crypto_symbol_rule_and_override():
    assert [is_crypto_symbol(s) for s in ("BTC-USD", "ethusdt", "SOLUSD", "DOGE-USDT", "AAPL", "USDC")] == [
        True, True, True, True, False, False,
    ]
    mask = asset_class_mask(["BTC-USD", "MSTR", "XUSD"], {"XUSD": "stock", "MSTR": True})
    assert mask.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="MSTR"):
        asset_class_mask(["MSTR"], {"MSTR": "bond"})


def test_init_state_broadcasts():
    s = init_state(1000.0, jnp.ones((4, 3)))
    assert s.cash.shape == (4,) and s.inventory.shape == (4, 3) and float(s.inventory.sum()) == 0


def _one_asset(open_, high, low, close, volume=1e9):
    f = lambda x: jnp.array([[x]])  # noqa: E731
    return Bar(high=f(high), low=f(low), close=f(close), tradable=jnp.ones((1, 1)), days_elapsed=jnp.ones(1),
               open=f(open_), volume=f(volume))


def test_gap_fill_by_hand():
    # all cash 1000, stock at 100; bar gaps down to open 95: a buy limit at 99 fills at the open
    state = PortfolioState(cash=jnp.array([1000.0]), inventory=jnp.zeros((1, 1)), mark=jnp.array([[100.0]]))
    bar = _one_asset(95.0, 97.0, 94.0, 96.0)
    action = Action(jnp.array([[99.0]]), jnp.array([[101.0]]), jnp.array([[0.5]]), jnp.zeros((1, 1)))
    for gap, px in ((False, 99.0), (True, 95.0)):
        params = MarketParams(is_crypto=jnp.array([False]), gap_fill=gap)
        _, info = jstep(params, state, action, bar)
        qty = 0.5 * 2 * 1000 / (99.0 * 1.0008)  # half of the 2x room, sized at the limit
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


@settings(max_examples=15, deadline=None)
@given(seed=seeds)
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
    assert np.all(info.buy_qty[case["tradable"] == 0] == 0)
    crypto = case["is_crypto"]
    exec_px = np.minimum(case["buy_price"], opn)
    spent = info.buy_qty * exec_px * 1.0008
    assert np.all(np.sum(spent * ~crypto, -1) <= ref["room_stock"] * (1 + 1e-9) + 1e-9)
    assert np.all(np.sum(spent * crypto, -1) <= ref["room_crypto"] * (1 + 1e-9) + 1e-9)


def test_probe_mode_transitions():
    from ndjax.dynamics import init_state, probing
    from ndjax.sim import simulate

    # one crypto asset, hard fills: buy @100, sell @90 (loss), capped buy @100, sell @125 (win), full buy @100
    prices = [(100.0, 100.0), (90.0, 90.0), (100.0, 100.0), (125.0, 125.0), (100.0, 100.0)]
    T = len(prices)
    close = jnp.array([[c] for _, c in prices])
    bars = Bar(high=close, low=close, close=close, tradable=jnp.ones((T, 1)), days_elapsed=jnp.ones(T))
    buy = jnp.array([[1.0], [0.0], [1.0], [0.0], [1.0]])
    sell = 1.0 - buy
    actions = Action(buy_price=close, sell_price=close, buy_frac=buy, sell_frac=sell)
    params = MarketParams(is_crypto=jnp.array([True]), probe_notional=0.1)
    state0 = init_state(1000.0, jnp.array([100.0]), probe=True)
    final, infos = simulate(params, state0, actions, bars)
    spent = np.asarray(infos.buy_qty[:, 0] * close[:, 0] * 1.0008)
    equity_before = np.asarray(infos.prev_equity)
    np.testing.assert_allclose(spent[0], 1000.0, rtol=1e-5)  # no history: normal
    np.testing.assert_allclose(spent[2], 0.1 * equity_before[2], rtol=1e-5)  # after a loss: probe size
    np.testing.assert_allclose(spent[4], equity_before[4], rtol=1e-4)  # loss then a larger win: normal again
    assert int(final.probe.n_closed[0]) == 2 and not bool(probing(final.probe)[0])
    # without probe mode the same path buys in full after the loss
    _, plain = simulate(params.replace(probe_notional=None), init_state(1000.0, jnp.array([100.0])), actions, bars)
    assert float(plain.buy_qty[2, 0] * 100.0 * 1.0008) == pytest.approx(float(plain.prev_equity[2]), rel=1e-5)
    with pytest.raises(ValueError, match="probe"):
        simulate(params, init_state(1000.0, jnp.array([100.0])), actions, bars)


@settings(max_examples=15, deadline=None)
@given(seed=seeds)
def test_invariants_hold_in_probe_mode(seed):
    from ndjax.dynamics import ProbeState

    case = random_case(seed)
    rng = np.random.default_rng(seed)
    shape = case["mark"].shape
    memory = ProbeState(cost_basis=jnp.asarray(case["mark"] * rng.uniform(0.8, 1.2, shape)),
                        last=jnp.asarray(rng.normal(0, 0.05, shape)), previous=jnp.asarray(rng.normal(0, 0.05, shape)),
                        n_closed=jnp.asarray(rng.integers(0, 3, shape).astype(np.float64)))
    with jax.enable_x64(True):
        params, state, action, bar = to_jax(case, jnp.float64, probe_notional=0.05)
        new, info = jstep(params, state.replace(probe=memory), action, bar)
        new, info = jax.tree_util.tree_map(np.asarray, (new, info))
    ref = reference_step(**case)
    chex.assert_tree_all_finite((new, info))
    assert np.all(info.inventory >= 0) and np.all(info.buy_qty <= ref["xb"] * (1 + 1e-12) + 1e-15)
    assert np.all(new.probe.cost_basis >= 0)
