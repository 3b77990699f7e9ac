"""The oracle: a policy that knows the synthetic market's process and trades it through the same transition.

At each close it reads the truth for every asset's next bar (`SyntheticTruth`: conditional mean and volatility)
and holds the mean-variance weights of the best of two books:
- unlevered: `max sum w mu - gamma/2 sum w^2 var` over `w >= 0`, `sum w <= 1`;
- levered: the same with `sum m w <= 1` (the one-pool margin budget) and the daily interest rate taken off
  each stock's expected return (stock value above equity is what interest is charged on).

It reaches those weights with limit orders at the previous close (`targets.target_action`). It pays the same
fees, interest and margin calls as any policy and is bound by the same caps, so it is a fair ceiling. It is not
an optimum: it ignores the correlation between assets, the fees of turning the book over, and the chance that
a limit at the close does not fill. A learned policy can beat it by trading less.
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
from ndjax.policy import Observation
from ndjax.sim import rollout
from ndjax.targets import target_action

RISK_AVERSION = 2.0
"""gamma of the oracle's mean-variance weights: half Kelly."""


@struct.dataclass
class OracleParams:
    """Margin rates `(N,)`, the maker fee, the daily interest rate on borrowed money, gamma, a stock mask `(N,)`."""

    margin_rate: jax.Array
    maker_fee: jax.Array
    daily_rate: jax.Array
    risk_aversion: jax.Array
    is_stock: jax.Array


def _budgeted(mu: jax.Array, var: jax.Array, rate: jax.Array, gamma: jax.Array) -> jax.Array:
    """argmax sum w mu - gamma/2 sum w^2 var over w >= 0 with sum rate * w <= 1 (bisection on the multiplier)."""
    weights = lambda lam: jnp.maximum(mu - lam[..., None] * rate, 0.0) / (gamma * var)  # noqa: E731
    used = lambda lam: jnp.sum(rate * weights(lam), axis=-1)  # noqa: E731
    hi = jnp.max(jnp.maximum(mu, 0.0) / rate, axis=-1) + 1e-12
    lo = jnp.zeros_like(hi)

    def halve(bounds, _):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        over = used(mid) > 1.0
        return (jnp.where(over, mid, lo), jnp.where(over, hi, mid)), None

    (lo, hi), _ = jax.lax.scan(halve, (lo, hi), None, length=40)
    return jnp.where((used(jnp.zeros_like(hi)) <= 1.0)[..., None], weights(jnp.zeros_like(hi)), weights(hi))


def _utility(w: jax.Array, mu: jax.Array, var: jax.Array, gamma: jax.Array) -> jax.Array:
    return jnp.sum(w * mu - 0.5 * gamma * w * w * var, axis=-1)


def oracle_weights(mu: jax.Array, var: jax.Array, p: OracleParams) -> jax.Array:
    """Target weights `(..., N)` from next-bar expected simple returns `mu` and variances `var`."""
    flat = _budgeted(mu, var, jnp.ones_like(mu), p.risk_aversion)
    net = mu - p.daily_rate * p.is_stock
    levered = _budgeted(net, var, p.margin_rate, p.risk_aversion)
    better = (_utility(levered, net, var, p.risk_aversion) > _utility(flat, mu, var, p.risk_aversion))[..., None]
    return jnp.where(better, levered, flat)


def oracle_policy(p: OracleParams, obs: Observation) -> Action:
    """Limit orders at the previous close toward `oracle_weights` of the truth row `obs.market (N, 2)`."""
    target = oracle_weights(obs.market[..., 0], obs.market[..., 1], p)
    return target_action(target, obs, p.margin_rate, p.maker_fee)


def oracle_params(params: MarketParams, risk_aversion: float = RISK_AVERSION) -> OracleParams:
    """The oracle's view of the market rules `params`."""
    crypto = jnp.asarray(params.is_crypto, bool)
    return OracleParams(margin_rate=initial_margin_rates(params), maker_fee=jnp.asarray(params.maker_fee),
                        daily_rate=jnp.asarray(params.leverage_fee_rate) / jnp.asarray(params.day_count),
                        risk_aversion=jnp.asarray(risk_aversion), is_stock=(~crypto).astype(jnp.float32))


def truth_rows(truth: SyntheticTruth, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows `start:stop` of the truth as the oracle reads them: mean and variance of the simple return.  (T, N, 2)"""
    mean = truth.expected_return()[start:stop]
    var = np.expm1(truth.vol[start:stop] ** 2) * (1 + mean) ** 2
    return np.stack([mean, var], axis=-1).astype(np.float32)


@jax.jit
def run_oracle(params: MarketParams, bars: Bar, truth: jax.Array, initial_cash: jax.Array,
               risk_aversion: jax.Array = RISK_AVERSION) -> StepInfo:
    """The oracle over `bars (T, N)` from flat at the close of row 0, deciding bar t from `truth[t - 1]`
    `(T, N, 2)`. Returns T-1 steps."""
    state0 = init_state(initial_cash, bars.close[0])
    _, (_, infos) = rollout(params, oracle_policy, oracle_params(params, risk_aversion), state0, truth, bars)
    return infos
