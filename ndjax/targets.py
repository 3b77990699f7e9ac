"""Target weights to limit orders: the orders that move a book toward target weights through the transition.

A target weight `w[i]` is the value of asset i, marked at the previous close, as a fraction of equity. With
current weights `h` (from the observation's book), the gap `w - h` becomes a buy of the units worth `(w - h)+`
of equity at the close, as a share of the pool of excess equity (a buy of value v at its limit uses
`(m + f) v` of the pool), and a sale of `(h - w)+ / h` of the units held. Sale proceeds do not back the same
bar's buys, so rotating from one asset to another takes two bars.
Shapes: every per-asset array `(..., N)`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ndjax.dynamics import Action, excess_pool, initial_requirement, pool_use
from ndjax.observation import Observation

MIN_POOL = 1e-6
"""Excess equity (as a fraction of equity) below which no buy is placed."""


def excess_fraction(weights: jax.Array, margin_rate: jax.Array) -> jax.Array:
    """The pool of excess equity as a fraction of equity, `max(1 - sum m h, 0)`, from weights `(..., N)`."""
    return excess_pool(1.0, initial_requirement(margin_rate, weights))


def project_budget(target: jax.Array, margin_rate: jax.Array) -> jax.Array:
    """Target weights `(..., N)` scaled down together so the book fits its initial margin: `sum m w <= 1`."""
    used = initial_requirement(margin_rate, target)[..., None]
    return target / jnp.maximum(used, 1.0)


def book_vol_capped(weight: jax.Array, sigma: jax.Array, cap: jax.Array | float) -> jax.Array:
    """Weights `(..., N)` scaled down together so that `sum_i w_i sigma_i <= cap` (left alone below it), with
    `sigma (..., N)` annualised vol forecasts: the book's vol if every pair of assets moved together."""
    bound = jnp.sum(weight * sigma, axis=-1, keepdims=True)
    return weight * jnp.minimum(cap / jnp.maximum(bound, 1e-12), 1.0)


def banded(target: jax.Array, held: jax.Array, band: float) -> jax.Array:
    """Where the book trades to under a relative no-trade band: `target` for assets more than
    `band x max(target, held)` away from it (entries and exits always), the held weight elsewhere. `(..., N)`."""
    move = jnp.abs(target - held) > band * jnp.maximum(target, held)
    return jnp.where(move | (target <= 0), target, held)


def target_action(target: jax.Array, obs: Observation, margin_rate: jax.Array, maker_fee: jax.Array,
                  buy_price: jax.Array | None = None, sell_price: jax.Array | None = None) -> Action:
    """The `Action` moving the book of `obs` toward `target` weights `(..., N)` (>= 0), with limits at
    `buy_price`/`sell_price` (default: the previous close). `margin_rate (N,)` initial margin rates."""
    held = obs.book[..., 0]
    pool = excess_fraction(held, margin_rate)[..., None]
    gap = target - held
    buy_price = obs.mark if buy_price is None else buy_price
    has_pool = pool > MIN_POOL
    need = pool_use(jnp.maximum(gap, 0.0) * (buy_price / obs.mark), margin_rate, maker_fee)  # of the missing units
    buy_frac = jnp.where(has_pool, need / jnp.where(has_pool, pool, 1.0), 0.0)
    holding = held > 0
    sell_frac = jnp.where(holding, jnp.maximum(-gap, 0.0) / jnp.where(holding, held, 1.0), 0.0)
    return Action(buy_price=buy_price,
                  sell_price=obs.mark if sell_price is None else sell_price,
                  buy_frac=jnp.clip(buy_frac, 0.0, 1.0), sell_frac=jnp.clip(sell_frac, 0.0, 1.0))
