"""Reference strategies run through the same transition: all cash, and equal-weight buy and hold."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState, StepInfo, init_state
from ndjax.sim import rollout


def buy_and_hold_policy(_params: None, _obs: jax.Array, state: PortfolioState) -> Action:
    """Equal weight, bought once: each asset not yet held bids at the previous close with an outlay (fee included)
    of 1/N of the equity; nothing is sold. Meant for 1x caps, where the excess equity is the cash, so an asset
    whose market opens later (stocks after a weekend start) still gets its full share."""
    n = state.mark.shape[-1]
    missing = state.inventory <= 0
    equity = state.cash + jnp.sum(state.inventory * state.mark, axis=-1)
    share = equity / (n * jnp.maximum(state.cash, 1e-12 * jnp.abs(equity) + 1e-30))  # of the cash pool
    return Action(
        buy_price=state.mark,
        sell_price=state.mark * 1e6,
        buy_frac=jnp.where(missing, share[..., None], 0.0).astype(state.mark.dtype),
        sell_frac=jnp.zeros_like(state.mark),
    )


def cash_policy(_params: None, _obs: jax.Array, state: PortfolioState) -> Action:
    """Never trades."""
    zero = jnp.zeros_like(state.mark)
    return Action(buy_price=state.mark, sell_price=state.mark, buy_frac=zero, sell_frac=zero)


@jax.jit
def run_baselines(params: MarketParams, bars: Bar, initial_cash: jax.Array) -> dict[str, StepInfo]:
    """Simulate both baselines over `bars (T, N)`, starting from the close of row 0 (T-1 steps).

    Buy and hold runs with leverage caps of 1x (equal weight, fully invested, no margin).
    """
    state0 = init_state(initial_cash, bars.close[0])
    obs = jnp.zeros(bars.close.shape[0])
    one_x = params.replace(stock_max_leverage=1.0, crypto_max_leverage=1.0)
    _, (_, hold) = rollout(one_x, buy_and_hold_policy, None, state0, obs, bars)
    _, (_, cash) = rollout(params, cash_policy, None, state0, obs, bars)
    return {"buy_and_hold": hold, "cash": cash}
