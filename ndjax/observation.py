"""What a policy sees: a causal market row per asset, the book, the previous closes, and the rules orders are
sized under. `sim.rollout` builds one `Observation` per bar with `observe`; a policy is any
`PolicyApply(params, observation) -> Action`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from ndjax.dynamics import Action, MarketParams, PortfolioState, initial_margin_rates

BOOK_FEATURES = 3  # position weight, cash fraction, gross leverage
BOOK_BOUND = 10.0  # book features are clipped to +-this (a nearly bust account has huge ratios)


@struct.dataclass
class Observation:
    """What a policy sees before deciding bar t, all from bars up to t-1.

    `market (..., N, D)`: one causal row per asset (an embedding, features, or a rule's inputs);
    `book (..., N, BOOK_FEATURES)`: position weight, cash fraction and gross leverage of the book after t-1
    (0 where equity <= 0); `mark (..., N)`: the previous close, the price limits are set against;
    `margin_rate (N,)` and `maker_fee`: the rules an order is sized under (None when not given).
    """

    market: Any
    book: jax.Array
    mark: jax.Array
    margin_rate: jax.Array | None = None
    maker_fee: Any = None


def observe(market: Any, state: PortfolioState, params: MarketParams | None = None) -> Observation:
    """The `Observation` of a market row `(..., N, D)` and the book `state` after the previous bar, under the
    market rules `params` (their margin rates and fee)."""
    value = state.inventory * state.mark
    equity = state.cash + jnp.sum(value, axis=-1)
    solvent = equity > 0
    safe = jnp.where(solvent, equity, 1.0)
    bounded = lambda x: jnp.clip(jnp.where(solvent[..., None], x, 0.0), -BOOK_BOUND, BOOK_BOUND)  # noqa: E731
    weight = bounded(value / safe[..., None])
    cash = jnp.broadcast_to(bounded((state.cash / safe)[..., None]), weight.shape)
    gross = jnp.broadcast_to(bounded((jnp.sum(value, axis=-1) / safe)[..., None]), weight.shape)
    book = jnp.stack([weight, cash, gross], axis=-1).astype(state.mark.dtype)
    if params is None:
        return Observation(market=market, book=book, mark=state.mark)
    return Observation(market=market, book=book, mark=state.mark, margin_rate=initial_margin_rates(params),
                       maker_fee=params.maker_fee)


PolicyApply = Callable[[Any, Observation], Action]
"""`apply(policy_params, observation) -> Action`, called inside the rollout's scan."""
