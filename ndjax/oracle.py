"""The oracle: a policy that knows the synthetic market's process and trades it through the same transition.

At each close it reads the truth for every asset's next bar (`SyntheticTruth`: conditional mean and volatility)
and holds the mean-variance weights of the best of two books:
- unlevered: `max sum w mu - gamma/2 sum w^2 var` over `w >= 0`, `sum w <= 1`;
- levered: the same with `sum m w <= 1` (the one-pool margin budget) and the daily interest rate taken off
  each stock's expected return (stock value above equity is what interest is charged on).

Trading costs enter as a no-trade band: moving a weight costs `TRADE_COST` per unit, so the oracle only trades
where the edge pays for it; one asset's weight is capped at `CAP`. It reaches its weights with limit orders at
the previous close (`targets.target_action`), pays the same fees, interest and margin calls as any policy and is
bound by the same caps: a fair ceiling. It is not an optimum: it ignores the correlation between assets and the
chance that a limit at the close does not fill, and it is myopic (one bar ahead).
Shapes: truth rows `(..., N, 2)` (mean and variance of the simple return), weights `(..., N)`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ndjax.data.synthetic import SyntheticTruth
from ndjax.dynamics import (
    Action,
    Bar,
    MarketParams,
    StepInfo,
    init_state,
    initial_margin_rates,
)
from ndjax.observation import Observation
from ndjax.sim import rollout
from ndjax.targets import target_action

RISK_AVERSION = 2.0
"""gamma of the oracle's mean-variance weights: half Kelly."""
TRADE_COST = 0.003
"""Cost per unit of weight traded in the oracle's utility: the width of its no-trade band. Calibrated on market
seeds 100-102 (never used by the benchmark): among 0 to 0.006 it gave the best mean Sortino over signals +-0.3
and 0.1 on both books (4.9 against 2.4 with no band), by trading about half as much."""
CAP = 1.0
"""Largest weight the oracle gives one asset (a fraction of equity)."""


@struct.dataclass
class OracleParams:
    """Margin rates `(N,)`, the maker fee, the daily interest rate on borrowed money, gamma, a stock mask `(N,)`,
    the cost per unit of weight traded (the no-trade band) and the cap on one asset's weight."""

    margin_rate: jax.Array
    maker_fee: jax.Array
    daily_rate: jax.Array
    risk_aversion: jax.Array
    is_stock: jax.Array
    trade_cost: jax.Array
    cap: jax.Array


def _budgeted(mu: jax.Array, var: jax.Array, rate: jax.Array, p: OracleParams, held: jax.Array) -> jax.Array:
    """argmax sum w mu - gamma/2 sum w^2 var - tc sum |w - held| over 0 <= w <= cap with sum rate * w <= 1
    (bisection on the budget's multiplier; the cost is a no-trade band around the weights held)."""
    gamma, tc = p.risk_aversion, p.trade_cost

    def weights(lam):
        up = (mu - tc - lam[..., None] * rate) / (gamma * var)
        down = (mu + tc - lam[..., None] * rate) / (gamma * var)
        return jnp.clip(jnp.clip(held, up, down), 0.0, p.cap)

    used = lambda lam: jnp.sum(rate * weights(lam), axis=-1)  # noqa: E731
    hi = jnp.max((jnp.maximum(mu, 0.0) + tc) / rate, axis=-1) + 1e-12
    lo = jnp.zeros_like(hi)

    def halve(bounds, _):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        over = used(mid) > 1.0
        return (jnp.where(over, mid, lo), jnp.where(over, hi, mid)), None

    (lo, hi), _ = jax.lax.scan(halve, (lo, hi), None, length=40)
    return jnp.where((used(jnp.zeros_like(hi)) <= 1.0)[..., None], weights(jnp.zeros_like(hi)), weights(hi))


def _utility(w: jax.Array, mu: jax.Array, var: jax.Array, p: OracleParams, held: jax.Array) -> jax.Array:
    return jnp.sum(w * mu - 0.5 * p.risk_aversion * w * w * var - p.trade_cost * jnp.abs(w - held), axis=-1)


def oracle_weights(mu: jax.Array, var: jax.Array, p: OracleParams, held: jax.Array | None = None) -> jax.Array:
    """Target weights `(..., N)` from next-bar expected simple returns `mu` and variances `var`, given the weights
    `held` now (default: none)."""
    held = jnp.zeros_like(mu) if held is None else held
    flat = _budgeted(mu, var, jnp.ones_like(mu), p, held)
    net = mu - p.daily_rate * p.is_stock
    levered = _budgeted(net, var, p.margin_rate, p, held)
    better = (_utility(levered, net, var, p, held) > _utility(flat, mu, var, p, held))[..., None]
    return jnp.where(better, levered, flat)


def oracle_policy(p: OracleParams, obs: Observation) -> Action:
    """Limit orders at the previous close toward `oracle_weights` of the truth row `obs.market (N, 2)`."""
    target = oracle_weights(obs.market[..., 0], obs.market[..., 1], p, obs.book[..., 0])
    return target_action(target, obs, p.margin_rate, p.maker_fee)


def oracle_params(params: MarketParams, risk_aversion: float = RISK_AVERSION, trade_cost: float = TRADE_COST,
                  cap: float = CAP) -> OracleParams:
    """The oracle's view of the market rules `params`."""
    crypto = jnp.asarray(params.is_crypto, bool)
    return OracleParams(margin_rate=initial_margin_rates(params), maker_fee=jnp.asarray(params.maker_fee),
                        daily_rate=jnp.asarray(params.leverage_fee_rate) / jnp.asarray(params.day_count),
                        risk_aversion=jnp.asarray(risk_aversion), is_stock=(~crypto).astype(jnp.float32),
                        trade_cost=jnp.asarray(trade_cost), cap=jnp.asarray(cap))


def truth_rows(truth: SyntheticTruth, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows `start:stop` of the truth as the oracle reads them: mean and variance of the simple return.  (T, N, 2)"""
    mean = truth.expected_return()[start:stop]
    var = np.expm1(truth.vol[start:stop] ** 2) * (1 + mean) ** 2
    return np.stack([mean, var], axis=-1).astype(np.float32)


@jax.jit
def run_oracle(params: MarketParams, bars: Bar, truth: jax.Array, initial_cash: jax.Array,
               risk_aversion: jax.Array = RISK_AVERSION, trade_cost: jax.Array = TRADE_COST,
               cap: jax.Array = CAP) -> StepInfo:
    """The oracle over `bars (T, N)` from flat at the close of row 0, deciding bar t from `truth[t - 1]`
    `(T, N, 2)`. Returns T-1 steps."""
    state0 = init_state(initial_cash, bars.close[0])
    _, (_, infos) = rollout(params, oracle_policy, oracle_params(params, risk_aversion, trade_cost, cap), state0,
                            truth, bars)
    return infos
