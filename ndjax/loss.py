"""Objectives over return series, and the training objective that runs `simulate`.

Every objective takes `returns (..., P)` with time on the last axis and gives one
value per path `(...)`. Higher is better; training minimises the negative.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState, StepInfo
from ndjax.sim import simulate

EPS = 1e-6
"""Variance floor of Sortino and Sharpe: a 0.1 % per-period deviation, so a path with a few tiny
wins and no loss cannot score without bound (averaged over training windows it otherwise would)."""


def periods_per_year(is_crypto: np.ndarray | jax.Array) -> int:
    """252 for a stock-only book, 365 when any asset is crypto (crypto trades every calendar day)."""
    return 365 if bool(np.any(np.asarray(is_crypto))) else 252


def annualized_return(returns: jax.Array, periods_per_year: float = 252) -> jax.Array:
    """Arithmetic annualised return: mean(r) * P.  # (..., T) -> (...)"""
    return jnp.mean(returns, axis=-1) * periods_per_year


def sortino(returns: jax.Array, periods_per_year: float = 252, eps: float = EPS) -> jax.Array:
    """mean(r) / sqrt(mean(min(r, 0)^2) + eps) * sqrt(P).  # (..., T) -> (...)"""
    downside = jnp.mean(jnp.minimum(returns, 0) ** 2, axis=-1)
    return jnp.mean(returns, axis=-1) / jnp.sqrt(downside + eps) * jnp.sqrt(periods_per_year)


def sharpe(returns: jax.Array, periods_per_year: float = 252, eps: float = EPS) -> jax.Array:
    """mean(r) / sqrt(var(r) + eps) * sqrt(P).  # (..., T) -> (...)"""
    return jnp.mean(returns, axis=-1) / jnp.sqrt(jnp.var(returns, axis=-1) + eps) * jnp.sqrt(periods_per_year)


def score(
    returns: jax.Array, periods_per_year: float = 252, return_weight: float = 0.08, eps: float = EPS
) -> jax.Array:
    """Sortino + return_weight * annualised return.  # (..., T) -> (...)"""
    return sortino(returns, periods_per_year, eps) + return_weight * annualized_return(returns, periods_per_year)


def log_wealth(returns: jax.Array, periods_per_year: float = 252, floor: float = 1e-6) -> jax.Array:
    """sum(log(1 + r)), each growth factor floored at `floor` so a bust path stays finite.  # (..., T) -> (...)"""
    del periods_per_year
    return jnp.sum(jnp.log(jnp.maximum(1 + returns, floor)), axis=-1)


def max_drawdown(returns: jax.Array) -> jax.Array:
    """Largest peak-to-trough loss of the compounded wealth curve, a fraction in [0, 1].  # (..., T) -> (...)"""
    wealth = jnp.cumprod(1 + returns, axis=-1)
    wealth = jnp.concatenate([jnp.ones_like(wealth[..., :1]), wealth], axis=-1)
    peak = jax.lax.cummax(wealth, axis=wealth.ndim - 1)
    return jnp.max(1 - wealth / peak, axis=-1)


def calmar(returns: jax.Array, periods_per_year: float = 252, eps: float = 1e-4) -> jax.Array:
    """Annualised return / (max drawdown + eps).  # (..., T) -> (...)"""
    return annualized_return(returns, periods_per_year) / (max_drawdown(returns) + eps)


OBJECTIVES: dict[str, Callable[..., jax.Array]] = {
    "score": score,
    "sortino": sortino,
    "sharpe": sharpe,
    "log_wealth": log_wealth,
    "calmar": calmar,
}


def get_objective(name: str) -> Callable[..., jax.Array]:
    """Look up an objective by name; unknown names raise `ValueError` listing the choices."""
    if name not in OBJECTIVES:
        raise ValueError(f"objective: unknown {name!r}; expected one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


def evaluate_returns(
    returns: jax.Array, name: str = "score", periods_per_year: float = 252, return_weight: float = 0.08
) -> jax.Array:
    """The named objective of `returns (..., T)`; `return_weight` only applies to "score"."""
    if name == "score":
        return score(returns, periods_per_year, return_weight)
    return get_objective(name)(returns, periods_per_year)


def simulated_objective(
    params: MarketParams,
    state0: PortfolioState,
    actions: Action,
    bars: Bar,
    *,
    name: str = "score",
    periods_per_year: float = 252,
    return_weight: float = 0.08,
) -> tuple[jax.Array, tuple[PortfolioState, StepInfo]]:
    """Objective per path `(...)` of the returns `simulate` produces for `actions (T, ..., N)`.

    Training and simulation share this one code path, so its forward value equals
    the objective of the simulator's returns bit for bit.
    """
    final, infos = simulate(params, state0, actions, bars)
    value = evaluate_returns(jnp.moveaxis(infos.returns, 0, -1), name, periods_per_year, return_weight)
    return value, (final, infos)
