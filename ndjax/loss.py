"""Objectives over return series, and the training objective that runs `simulate`.

Every objective takes `returns (..., P)` with time on the last axis and gives one value per path `(...)`.
Higher is better; training minimises the negative.

Time is always reduced in one fixed order, by a `lax.scan` that adds one period at a time. XLA may not
reorder a loop's iterations, so an objective fused into a training step's gradient program and the same
objective over the simulator's stored returns are the same floating-point sums, bit for bit (a plain
`jnp.mean` lets XLA pick a different summation order in each program).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState, StepInfo
from ndjax.errors import ConfigError
from ndjax.sim import simulate

EPS = 1e-6
RETURN_WEIGHT = 0.08
"""Default weight of the annualised return in "score" (`HParams.return_weight`)."""
RISK_AVERSION = 10.0
"""Default gamma of "mean_variance" (`HParams.risk_aversion`)."""
"""Variance floor of Sortino and Sharpe: a 0.1 % per-period deviation, so a path with a few tiny
wins and no loss cannot score without bound (averaged over training windows it otherwise would)."""
WEALTH_FLOOR = 1e-6
"""Smallest growth factor `1 + r` a log takes, so a bust path stays finite."""


@struct.dataclass
class ReturnSums:
    """Per-path sums of one return series, accumulated in time order.  Fields `(...)`."""

    n: int = struct.field(pytree_node=False)
    total: jax.Array  # sum r
    downside: jax.Array  # sum min(r, 0)^2
    log_growth: jax.Array  # sum log(max(1 + r, WEALTH_FLOOR))
    max_drawdown: jax.Array  # largest peak-to-trough loss of prod(1 + r), a fraction

    @property
    def mean(self) -> jax.Array:
        return self.total / self.n


def _time_major(returns: jax.Array) -> jax.Array:
    returns = jnp.asarray(returns)
    if returns.ndim == 0 or returns.shape[-1] == 0:
        raise ConfigError(f"objective: returns need a non-empty time axis (last), got shape {returns.shape}")
    return jnp.moveaxis(returns, -1, 0)


def return_sums(returns: jax.Array) -> ReturnSums:
    """The sums every objective is built from, in one ordered pass.  (..., T) -> fields (...)"""
    r = _time_major(returns)
    zero = jnp.zeros(r.shape[1:], r.dtype)
    one = jnp.ones(r.shape[1:], r.dtype)

    def add(carry, x):
        total, downside, log_growth, wealth, peak, worst = carry
        wealth = wealth * (1 + x)
        peak = jnp.maximum(peak, wealth)
        worst = jnp.maximum(worst, 1 - wealth / peak)
        return (total + x, downside + jnp.minimum(x, 0) ** 2, log_growth + jnp.log(jnp.maximum(1 + x, WEALTH_FLOOR)),
                wealth, peak, worst), None

    (total, downside, log_growth, _, _, worst), _ = jax.lax.scan(add, (zero, zero, zero, one, one, zero), r)
    return ReturnSums(n=r.shape[0], total=total, downside=downside, log_growth=log_growth, max_drawdown=worst)


def variance(returns: jax.Array) -> jax.Array:
    """Population variance over time, two ordered passes.  (..., T) -> (...)"""
    r = _time_major(returns)
    mean = return_sums(returns).mean
    squares, _ = jax.lax.scan(lambda c, x: (c + (x - mean) ** 2, None), jnp.zeros_like(mean), r)
    return squares / r.shape[0]


def annualized_return(returns: jax.Array, periods_per_year: float = 252) -> jax.Array:
    """Arithmetic annualised return: mean(r) * P.  (..., T) -> (...)"""
    return return_sums(returns).mean * periods_per_year


def _sortino(sums: ReturnSums, periods_per_year: float, eps: float) -> jax.Array:
    return sums.mean / jnp.sqrt(sums.downside / sums.n + eps) * jnp.sqrt(periods_per_year)


def sortino(returns: jax.Array, periods_per_year: float = 252, eps: float = EPS) -> jax.Array:
    """mean(r) / sqrt(mean(min(r, 0)^2) + eps) * sqrt(P).  (..., T) -> (...)"""
    return _sortino(return_sums(returns), periods_per_year, eps)


def sharpe(returns: jax.Array, periods_per_year: float = 252, eps: float = EPS) -> jax.Array:
    """mean(r) / sqrt(var(r) + eps) * sqrt(P).  (..., T) -> (...)"""
    return return_sums(returns).mean / jnp.sqrt(variance(returns) + eps) * jnp.sqrt(periods_per_year)


def score(
    returns: jax.Array, periods_per_year: float = 252, return_weight: float = RETURN_WEIGHT, eps: float = EPS
) -> jax.Array:
    """Sortino + return_weight * annualised return.  (..., T) -> (...)"""
    sums = return_sums(returns)
    return _sortino(sums, periods_per_year, eps) + return_weight * sums.mean * periods_per_year


def mean_variance(returns: jax.Array, periods_per_year: float = 252, risk_aversion: float = RISK_AVERSION
                  ) -> jax.Array:
    """(mean(r) - risk_aversion / 2 var(r)) * P: the certainty-equivalent return of a mean-variance investor.
    It grows with exposure while the edge pays for the risk, so unlike Sortino it says how much to hold.
    (..., T) -> (...)"""
    return (return_sums(returns).mean - 0.5 * risk_aversion * variance(returns)) * periods_per_year


def log_wealth(returns: jax.Array, periods_per_year: float = 252) -> jax.Array:
    """sum(log(1 + r)), each growth factor floored at `WEALTH_FLOOR` so a bust path stays finite.  (..., T) -> (...)"""
    del periods_per_year
    return return_sums(returns).log_growth


def max_drawdown(returns: jax.Array) -> jax.Array:
    """Largest peak-to-trough loss of the compounded wealth curve, a fraction in [0, 1].  (..., T) -> (...)"""
    return return_sums(returns).max_drawdown


def calmar(returns: jax.Array, periods_per_year: float = 252, eps: float = 1e-4) -> jax.Array:
    """Annualised return / (max drawdown + eps).  (..., T) -> (...)"""
    sums = return_sums(returns)
    return sums.mean * periods_per_year / (sums.max_drawdown + eps)


OBJECTIVES: dict[str, Callable[..., jax.Array]] = {
    "mean_variance": mean_variance,
    "score": score,
    "sortino": sortino,
    "sharpe": sharpe,
    "log_wealth": log_wealth,
    "calmar": calmar,
}


def get_objective(name: str) -> Callable[..., jax.Array]:
    """Look up an objective by name; unknown names raise `ConfigError` listing the choices."""
    if name not in OBJECTIVES:
        raise ConfigError(f"objective: unknown {name!r}; expected one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


def evaluate_returns(
    returns: jax.Array, name: str = "score", periods_per_year: float = 252, return_weight: float = RETURN_WEIGHT,
    risk_aversion: float = RISK_AVERSION,
) -> jax.Array:
    """The objective `OBJECTIVES[name]` of `returns (..., T)`, given the hyperparameters it takes by name
    (`return_weight` for "score", `risk_aversion` for "mean_variance")."""
    objective = get_objective(name)
    options = {"return_weight": return_weight, "risk_aversion": risk_aversion}
    taken = inspect.signature(objective).parameters
    return objective(returns, periods_per_year, **{k: v for k, v in options.items() if k in taken})


def simulated_objective(
    params: MarketParams,
    state0: PortfolioState,
    actions: Action,
    bars: Bar,
    *,
    name: str = "score",
    periods_per_year: float = 252,
    return_weight: float = RETURN_WEIGHT,
    risk_aversion: float = RISK_AVERSION,
) -> tuple[jax.Array, tuple[PortfolioState, StepInfo]]:
    """Objective per path `(...)` of the returns `simulate` produces for `actions (T, ..., N)`.

    Its forward value equals the objective of the simulator's returns bit for bit.
    """
    final, infos = simulate(params, state0, actions, bars)
    value = evaluate_returns(jnp.moveaxis(infos.returns, 0, -1), name, periods_per_year, return_weight, risk_aversion)
    return value, (final, infos)
