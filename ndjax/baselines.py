"""Reference strategies run through the same transition: all cash, and equal-weight buy and hold at 1x."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ndjax.dynamics import Action, Bar, MarketParams, StepInfo, init_state
from ndjax.observation import Observation
from ndjax.sim import rollout


def buy_and_hold_policy(_params: None, obs: Observation) -> Action:
    """Equal weight, bought once: each asset not yet held bids at the previous close with an outlay (fee included)
    of 1/N of the equity; nothing is sold. Meant for 1x caps, where the excess equity is the cash, so an asset
    whose market opens later (stocks after a weekend start) still gets its full share."""
    n = obs.mark.shape[-1]
    weight, cash = obs.book[..., 0], obs.book[..., 1]
    share = 1.0 / (n * jnp.maximum(cash, 1e-12))  # of the cash pool
    return Action(buy_price=obs.mark, sell_price=obs.mark * 1e6,
                  buy_frac=jnp.where(weight <= 0, share, 0.0).astype(obs.mark.dtype),
                  sell_frac=jnp.zeros_like(obs.mark))


def cash_policy(_params: None, obs: Observation) -> Action:
    """Never trades."""
    zero = jnp.zeros_like(obs.mark)
    return Action(buy_price=obs.mark, sell_price=obs.mark, buy_frac=zero, sell_frac=zero)


@jax.jit
def run_baselines(params: MarketParams, bars: Bar, initial_cash: jax.Array) -> dict[str, StepInfo]:
    """Both baselines over `bars (T, N)`, starting flat at the close of row 0 (T-1 steps each).

    Buy and hold runs with leverage caps of 1x (equal weight, fully invested, no margin).
    """
    state0 = init_state(initial_cash, bars.close[0])
    rows = jnp.zeros(bars.close.shape[0])
    one_x = params.replace(stock_max_leverage=1.0, crypto_max_leverage=1.0,
                           maintenance_margin=jnp.minimum(params.maintenance_margin, 1.0))  # 1x caps need mm <= 1
    _, (_, hold) = rollout(one_x, buy_and_hold_policy, None, state0, rows, bars)
    _, (_, cash) = rollout(params, cash_policy, None, state0, rows, bars)
    return {"buy_and_hold": hold, "cash": cash}

