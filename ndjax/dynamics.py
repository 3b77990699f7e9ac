"""The portfolio transition: one trading day of a shared-cash, long-only, Reg-T margin book.

`step` is the single source of truth for what a day does. Training differentiates it, simulation
scans it, the paper broker replays it; `docs/semantics.md` states every rule formula by formula.

Shapes: per-asset arrays are `(..., N)`, per-portfolio arrays `(...)`, where `...` is any number of
batch dimensions shared by state, action and bar.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from ndjax.errors import ConfigError
from ndjax.market_rules import (  # noqa: F401 - re-exported: the rules are imported from here too
    ALPACA_CRYPTO_MAKER_FEE,
    ALPACA_PRESET,
    FILL_MODES,
    INTEREST_MODES,
    MarketParams,
)
from ndjax.probe import ProbeState, array_module, cap_probing_buys, empty_memory, remember_bar

BUST_LEVERAGE = 1e3
"""Leverage reported for an account whose end-of-bar equity is <= 0 while it holds assets."""
DUST = 1e-12
"""Tradable value of one class below this fraction of the gross value (soft fills leave such residues) is
never force-sold: `y / St` would have a gradient through `St ** 2`, which underflows to 0 in float32."""
CALL_TOLERANCE = 1e-6
"""A margin call needs equity below maintenance by more than this fraction of the gross value: an account
that spent its whole excess on crypto (maintained at 100 %) holds cash of +-rounding, not a loan."""


@struct.dataclass
class PortfolioState:
    """End-of-bar book: `cash (...)` (negative = margin debt), `inventory (..., N)` units >= 0,
    `mark (..., N)` last close, and probe mode's trade memory (or None)."""

    cash: jax.Array
    inventory: jax.Array
    mark: jax.Array
    probe: ProbeState | None = None


@struct.dataclass
class Bar:
    """One daily bar per asset `(..., N)`; `days_elapsed (...)` calendar days since the previous bar."""

    high: jax.Array
    low: jax.Array
    close: jax.Array
    tradable: jax.Array
    days_elapsed: jax.Array
    open: jax.Array | None = None
    volume: jax.Array | None = None


@struct.dataclass
class Action:
    """Limit orders for one bar `(..., N)`: prices, and fractions clipped to [0, 1]."""

    buy_price: jax.Array
    sell_price: jax.Array
    buy_frac: jax.Array
    sell_frac: jax.Array


@struct.dataclass
class StepInfo:
    """What one step reports. Per-portfolio fields `(...)`, per-asset fields `(..., N)`."""

    equity: jax.Array  # E3, after any forced sale
    prev_equity: jax.Array  # E0
    cash: jax.Array  # c3
    returns: jax.Array  # E3 / E0 - 1, 0 where E0 <= 0
    leverage: jax.Array  # gross / E3
    leverage_cost: jax.Array  # I
    fees: jax.Array  # maker fees of the orders and of a forced sale
    traded_notional: jax.Array  # sum xb*buy_px + xs*sell_px + forced-sale notional
    margin_call: jax.Array  # 1.0 where the account fell below maintenance at the close, else 0.0
    forced_notional: jax.Array  # value force-sold, at the liquidation price close * (1 - sl)
    buy_fill: jax.Array  # (..., N) indicator or probability
    sell_fill: jax.Array  # (..., N)
    buy_order_qty: jax.Array  # (..., N) units ordered
    sell_order_qty: jax.Array  # (..., N)
    buy_qty: jax.Array  # (..., N) units executed
    sell_qty: jax.Array  # (..., N)
    forced_qty: jax.Array  # (..., N) units force-sold in a margin call
    inventory: jax.Array  # (..., N) after the bar
    probe_cut: jax.Array | None = None  # (..., N) buy outlay probe mode's cap removed before fills


def init_state(initial_cash: Any, mark: jax.Array, *, probe: bool = False) -> PortfolioState:
    """All-cash book; `mark (..., N)` sets the batch shape and dtype, `initial_cash` broadcasts to `(...)`.

    `probe=True` adds the empty trade memory that probe mode (`MarketParams.probe_notional`) needs.
    """
    mark = jnp.asarray(mark)
    cash = jnp.broadcast_to(jnp.asarray(initial_cash, dtype=mark.dtype), mark.shape[:-1])
    return PortfolioState(cash=cash, inventory=jnp.zeros_like(mark), mark=mark,
                          probe=empty_memory(mark) if probe else None)


def execution_prices(params: MarketParams, action: Action, bar: Bar) -> tuple[jax.Array, jax.Array]:
    """Where filled limits execute `(..., N)` each: at the limits, or with `gap_fill` at the open when the bar
    gapped through them (`min(limit, open)` for buys, `max(limit, open)` for sells)."""
    if not params.gap_fill:
        return action.buy_price, action.sell_price
    if bar.open is None:
        raise ConfigError("MarketParams.gap_fill needs Bar.open")
    return jnp.minimum(action.buy_price, bar.open), jnp.maximum(action.sell_price, bar.open)


@jax.custom_jvp
def _straight_through(hard: jax.Array, soft: jax.Array) -> jax.Array:
    """Forward value `hard` exactly; derivative that of `soft`."""
    return hard


@_straight_through.defjvp
def _straight_through_jvp(primals, tangents):
    hard, _ = primals
    _, soft_dot = tangents
    return hard, soft_dot


def _fills(params: MarketParams, action: Action, bar: Bar, mark: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Buy and sell fill indicators or probabilities `(..., N)` of the limits against the bar."""
    dtype = mark.dtype
    hard_b = (bar.low <= action.buy_price).astype(dtype)
    hard_s = (bar.high >= action.sell_price).astype(dtype)
    if params.fill == "hard":
        return hard_b, hard_s
    scale = mark * params.fill_temperature
    soft_b = jax.nn.sigmoid((action.buy_price - bar.low) / scale)
    soft_s = jax.nn.sigmoid((bar.high - action.sell_price) / scale)
    if params.fill == "soft":
        return soft_b, soft_s
    return _straight_through(hard_b, soft_b), _straight_through(hard_s, soft_s)


def _class_sum(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Sum over the assets of one class `(..., N) -> (...)`; a matmul, measured 1.7x faster in the gradient
    of a (1024 x 16) batch than a masked reduction."""
    return x @ mask.astype(x.dtype)


def _safe_div(a: jax.Array, b: jax.Array) -> jax.Array:
    """`a / b` where `b > 0`, else 0 (finite values and gradients on both sides)."""
    positive = b > 0
    return jnp.where(positive, a / jnp.where(positive, b, 1), 0)


def initial_margin_rates(params: MarketParams) -> jax.Array:
    """`(N,)` initial margin rate per asset: `1/stock_max_leverage` for stocks, `1/crypto_max_leverage` for crypto."""
    crypto = jnp.asarray(params.is_crypto, dtype=bool)
    return jnp.where(crypto, 1 / jnp.asarray(params.crypto_max_leverage), 1 / jnp.asarray(params.stock_max_leverage))


def class_values(params: MarketParams, value: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Stock and crypto value `(...)` each, of per-asset values `(..., N)`."""
    crypto = jnp.asarray(params.is_crypto, dtype=bool)
    return _class_sum(value, ~crypto), _class_sum(value, crypto)


def initial_requirement(margin_rate: jax.Array, value: jax.Array) -> jax.Array:
    """The initial margin requirement `IM = sum m v (...)` of per-asset values `(..., N)` at rates `(N,)`
    (`initial_margin_rates`; values may be weights, giving the requirement as a fraction of equity)."""
    return array_module(margin_rate, value).sum(margin_rate * value, axis=-1)


def maintenance_requirement(params: MarketParams, stock_value: jax.Array, crypto_value: jax.Array) -> jax.Array:
    """The maintenance requirement `mm S + C / crypto_max_leverage (...)` of the class values `(...)`."""
    return params.maintenance_margin * stock_value + 1 / params.crypto_max_leverage * crypto_value


def excess_pool(equity: jax.Array, requirement: jax.Array) -> jax.Array:
    """The pool of excess equity every buy is sized from, `X = max(E - IM, 0) (...)`."""
    return array_module(equity, requirement).maximum(equity - requirement, 0.0)


def pool_use(value: jax.Array, margin_rate: jax.Array, maker_fee: jax.Array) -> jax.Array:
    """The share of the pool a buy of `value (..., N)` at its limit uses: `(m + f) value`."""
    return value * (margin_rate + maker_fee)


def buy_fractions(params: MarketParams, buy_qty: jax.Array, buy_price: jax.Array, excess: jax.Array) -> jax.Array:
    """The inverse of sizing: the `Action.buy_frac (..., N)` whose sizing from the pool `excess (...)` buys
    `buy_qty` units at `buy_price (..., N)`, `(m + f) q p / X` (0 where the pool is empty)."""
    xp = array_module(buy_qty, buy_price, excess)
    dtype = xp.asarray(buy_price).dtype
    used = pool_use(buy_qty * buy_price, xp.asarray(initial_margin_rates(params), dtype=dtype),
                    xp.asarray(params.maker_fee, dtype=dtype))
    excess = xp.asarray(excess)[..., None]
    return xp.where(excess > 0, used / xp.where(excess > 0, excess, 1.0), 0.0)


def sell_fractions(sell_qty: jax.Array, inventory: jax.Array) -> jax.Array:
    """The inverse of a sale's sizing: the `Action.sell_frac (..., N)` that sells `sell_qty` of `inventory`
    (capped at 1; 0 where nothing is held)."""
    xp = array_module(sell_qty, inventory)
    held = inventory > 0
    return xp.where(held, xp.minimum(sell_qty / xp.where(held, inventory, 1.0), 1.0), 0.0)


def affordable_value(excess: jax.Array, margin_rate: jax.Array, maker_fee: jax.Array) -> jax.Array:
    """The value the whole pool `excess` buys of an asset at initial margin rate `margin_rate`: `X / (m + f)`."""
    return excess / (margin_rate + maker_fee)


def _interest(params: MarketParams, cash: jax.Array, stock_value: jax.Array, equity: jax.Array,
              days_elapsed: jax.Array) -> jax.Array:
    """`overnight_interest` from the book's cash, stock value and equity `(...)`."""
    if params.interest == "excess":
        borrowed = jnp.minimum(jnp.maximum(stock_value - equity, 0), jnp.maximum(equity, 0))
    else:
        borrowed = jnp.maximum(-cash, 0)
    return borrowed * params.leverage_fee_rate * days_elapsed / params.day_count


def overnight_interest(params: MarketParams, state: PortfolioState, days_elapsed: jax.Array) -> jax.Array:
    """The night's interest `I (...)` on the book `state` over `days_elapsed` calendar days (step 1): on the
    leveraged stock notional `min(max(S - E, 0), max(E, 0))` (`interest="excess"`) or on the debit balance
    `max(-cash, 0)` (`"debit"`), at `leverage_fee_rate` per `day_count` days."""
    S, C = class_values(params, state.inventory * state.mark)
    return _interest(params, state.cash, S, state.cash + S + C, days_elapsed)


@struct.dataclass
class Overnight:
    """Step 1 and the pool, for the book carried into a bar (per-portfolio `(...)`): what is known before the
    bar's prices and before any order."""

    prev_equity: jax.Array  # E0
    interest: jax.Array  # I
    cash: jax.Array  # c1
    equity: jax.Array  # E1
    initial_requirement: jax.Array  # IM of the book carried into the bar
    excess: jax.Array  # X = max(E1 - IM, 0)


def overnight(params: MarketParams, state: PortfolioState, days_elapsed: jax.Array) -> Overnight:
    """The night before a bar (step 1): interest, equity after it, the initial requirement and the pool."""
    value = state.inventory * state.mark
    S, C = class_values(params, value)
    E0 = state.cash + S + C
    interest = _interest(params, state.cash, S, E0, days_elapsed)
    c1 = state.cash - interest
    IM = initial_requirement(initial_margin_rates(params).astype(state.mark.dtype), value)
    E1 = c1 + S + C
    return Overnight(prev_equity=E0, interest=interest, cash=c1, equity=E1, initial_requirement=IM,
                     excess=excess_pool(E1, IM))


@struct.dataclass
class OrderSizes(Overnight):
    """Steps 1-2 of the transition for one bar: the `Overnight` figures `(...)` and the order quantities before
    fills `(..., N)`."""

    outlay: jax.Array  # (..., N) cash a filled buy spends, fee included
    buy_qty: jax.Array  # (..., N)
    sell_qty: jax.Array  # (..., N)
    probe_cut: jax.Array  # (..., N) outlay probe mode's cap removed (0: off, or not binding)


def size_orders(
    params: MarketParams, state: PortfolioState, action: Action, tradable: jax.Array, days_elapsed: jax.Array
) -> OrderSizes:
    """Overnight interest and order sizing (steps 1-2): everything decided before the bar's prices.

    All buys share one pool, the excess equity `X = max(E1 - IM, 0)`: asset i commits the share
    `a = w / max(1, sum w)` of it, which buys value `a X / (m + f)` at initial margin rate `m`.
    `step` calls this; order planners call it to size tomorrow's orders exactly as the simulator will
    (`buy_fractions` is its inverse).
    """
    f = params.maker_fee
    p, q = state.mark, state.inventory
    tradable = jnp.asarray(tradable).astype(p.dtype)
    night = overnight(params, state, days_elapsed)
    E1, X = night.equity, night.excess
    m = initial_margin_rates(params).astype(p.dtype)
    w = jnp.clip(action.buy_frac, 0, 1) * tradable
    pool = X[..., None] * (1 + f) / (m + f)  # outlay of a buy that takes the whole excess
    outlay = w / jnp.maximum(1, jnp.sum(w, axis=-1, keepdims=True)) * pool
    cut = jnp.zeros_like(outlay)
    if params.probe_notional is not None or params.probe_max_outlay is not None:
        if state.probe is None:
            raise ConfigError("MarketParams.probe_*: probe mode needs trade memory: init_state(..., probe=True)")
        outlay, cut = cap_probing_buys(state.probe, outlay, E1, q * p, params.probe_notional,
                                       params.probe_max_outlay)
    return OrderSizes(
        **{f.name: getattr(night, f.name) for f in dataclasses.fields(Overnight)},
        outlay=outlay, buy_qty=outlay / (action.buy_price * (1 + f)),
        sell_qty=jnp.clip(action.sell_frac, 0, 1) * q * tradable, probe_cut=cut,
    )


@struct.dataclass
class ForcedSale:
    """Step 6 for one bar: the margin call flag `(...)`, units sold `(..., N)`, and the book after the sale."""

    call: jax.Array  # (...) bool
    qty: jax.Array  # (..., N)
    notional: jax.Array  # (...) value sold at close * (1 - sl)
    fees: jax.Array  # (...)
    cash: jax.Array  # c3
    inventory: jax.Array  # q''


def maintenance_call(params: MarketParams, cash: jax.Array, inventory: jax.Array, close: jax.Array,
                     tradable: jax.Array) -> ForcedSale:
    """Maintenance check at the close and forced deleveraging (step 6).

    Below maintenance (`E < mm S + C / Lc`), tradable stocks are sold pro rata by value at
    `close (1 - sl)` with the maker fee until the account meets its initial requirement; tradable crypto
    is sold next only if stocks were not enough. An account with `E <= 0` is sold out of everything
    tradable. `cash (...)`, `inventory`, `close`, `tradable (..., N)`.
    """
    crypto = jnp.asarray(params.is_crypto, dtype=bool)
    f, sl = params.maker_fee, params.liquidation_slippage
    ms, mc = 1 / params.stock_max_leverage, 1 / params.crypto_max_leverage
    value = inventory * close
    if not params.margin_call:
        zero = jnp.zeros_like(cash)
        return ForcedSale(call=zero > 0, qty=jnp.zeros_like(value), notional=zero, fees=zero, cash=cash,
                          inventory=inventory)
    S, C = class_values(params, value)
    equity = cash + S + C
    requirement = ms * S + mc * C
    call = equity < maintenance_requirement(params, S, C) - CALL_TOLERANCE * (S + C)
    k = 1 - (1 - sl) * (1 - f)  # equity lost per unit of value force-sold
    sellable = value * jnp.asarray(tradable).astype(value.dtype)
    dust = DUST * (S + C) + 1e-15  # below this a class is not sold: its square would underflow in a gradient
    St, Ct = _class_sum(sellable, ~crypto), _class_sum(sellable, crypto)
    St, Ct = jnp.where(St > dust, St, 0), jnp.where(Ct > dust, Ct, 0)
    y = jnp.where(call, jnp.clip((requirement - equity) / (ms - k), 0, St), 0)
    z = jnp.where(call, jnp.clip((requirement - y * ms - (equity - k * y)) / (mc - k), 0, Ct), 0)
    share = jnp.where(crypto, _safe_div(z, Ct)[..., None], _safe_div(y, St)[..., None])
    sold = jnp.where(sellable > 0, inventory * share, 0)
    notional = (y + z) * (1 - sl)
    return ForcedSale(call=call, qty=sold, notional=notional, fees=f * notional,
                      cash=cash + notional * (1 - f), inventory=inventory - sold)


def step(params: MarketParams, state: PortfolioState, action: Action, bar: Bar) -> tuple[PortfolioState, StepInfo]:
    """Advance the book through one bar (steps 1-7): interest, sizing, fills, execution, marking, the
    maintenance call, the report.

    Returns the new state and a `StepInfo`. Pure, differentiable, any leading batch dims.
    """
    sizes = size_orders(params, state, action, bar.tradable, bar.days_elapsed)
    f = params.maker_fee
    p, q = state.mark, state.inventory
    E0, c1, interest = sizes.prev_equity, sizes.cash, sizes.interest
    buy_order, sell_order = sizes.buy_qty, sizes.sell_qty

    fb, fs = _fills(params, action, bar, p)
    xb = buy_order * fb
    xs = sell_order * fs
    if params.participation_cap is not None:
        if bar.volume is None:
            raise ConfigError("MarketParams.participation_cap needs Bar.volume")
        cap = params.participation_cap * bar.volume
        xb, xs = jnp.minimum(xb, cap), jnp.minimum(xs, cap)
    buy_px, sell_px = execution_prices(params, action, bar)
    buy_notional = jnp.sum(xb * buy_px, axis=-1)
    sell_notional = jnp.sum(xs * sell_px, axis=-1)
    c2 = c1 - jnp.sum(xb * buy_px * (1 + f), axis=-1) + jnp.sum(xs * sell_px * (1 - f), axis=-1)
    q2 = jnp.maximum(q + xb - xs, 0)

    forced = maintenance_call(params, c2, q2, bar.close, bar.tradable)
    q3, c3 = forced.inventory, forced.cash
    gross = jnp.sum(q3 * bar.close, axis=-1)
    E3 = c3 + gross
    returns = jnp.where(E0 > 0, _safe_div(E3, E0) - 1, 0)
    leverage = jnp.where(E3 > 0, _safe_div(gross, E3), jnp.where(gross > 0, BUST_LEVERAGE, 0).astype(p.dtype))

    memory = state.probe
    if memory is not None:
        _, memory = remember_bar(memory, q, q2, q3, xb, xs, buy_px, sell_px, forced.qty,
                                 bar.close * (1 - params.liquidation_slippage), f)
    new_state = PortfolioState(cash=c3, inventory=q3, mark=bar.close, probe=memory)
    return new_state, StepInfo(
        equity=E3, prev_equity=E0, cash=c3, returns=returns, leverage=leverage, leverage_cost=interest,
        fees=f * (buy_notional + sell_notional) + forced.fees,
        traded_notional=buy_notional + sell_notional + forced.notional,
        margin_call=forced.call.astype(p.dtype), forced_notional=forced.notional,
        buy_fill=fb, sell_fill=fs, buy_order_qty=buy_order, sell_order_qty=sell_order, buy_qty=xb, sell_qty=xs,
        forced_qty=forced.qty, inventory=q3, probe_cut=sizes.probe_cut)
