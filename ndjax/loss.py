"""Objectives over return series (or their accumulated `ReturnSums`), and the training objective that runs the
simulator.

Every objective is defined once, on the `ReturnSums` of a path (`OBJECTIVES`); the forms that take
`returns (..., P)` with time on the last axis fold them into sums first and give one value per path `(...)`.
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

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState
from ndjax.errors import ConfigError
from ndjax.sim import simulate_return_sums
from ndjax.stats_scan import EPS, WEALTH_FLOOR, ReturnSums, add_return, start_returns  # noqa: F401 (EPS, WEALTH_FLOOR)

RETURN_WEIGHT = 0.08
"""Default weight of the annualised return in "score" (`HParams.return_weight`)."""
RISK_AVERSION = 10.0
"""Default gamma of "mean_variance" (`HParams.risk_aversion`)."""
DRAWDOWN_WEIGHT = 0.1
"""Default weight of the maximum drawdown in "mean_variance_drawdown" (`HParams.drawdown_weight`)."""
OBJECTIVE_WEIGHTS = ("return_weight", "risk_aversion", "drawdown_weight")
"""The hyperparameters the objectives take by name: keywords of `evaluate_sums` / `evaluate_returns` and fields of
`HParams`."""
CALMAR_EPS = 1e-4
"""Drawdown floor of "calmar"."""


def _time_major(returns: jax.Array) -> jax.Array:
    returns = jnp.asarray(returns)
    if returns.ndim == 0 or returns.shape[-1] == 0:
        raise ConfigError(f"objective: returns need a non-empty time axis (last), got shape {returns.shape}")
    return jnp.moveaxis(returns, -1, 0)


def return_sums(returns: jax.Array) -> ReturnSums:
    """The sums every objective is built from, in one ordered pass (`stats_scan.add_return`).  (..., T) -> (...)"""
    r = _time_major(returns)
    sums, _ = jax.lax.scan(lambda s, x: (add_return(s, x), None), start_returns(r.shape[1:], r.dtype), r)
    return sums


def _score(sums: ReturnSums, periods_per_year: float, return_weight: float = RETURN_WEIGHT) -> jax.Array:
    return sums.sortino(periods_per_year) + return_weight * sums.mean * periods_per_year


def _mean_variance(sums: ReturnSums, periods_per_year: float, risk_aversion: float = RISK_AVERSION) -> jax.Array:
    return (sums.mean - 0.5 * risk_aversion * sums.variance) * periods_per_year


def _mean_variance_drawdown(sums: ReturnSums, periods_per_year: float, risk_aversion: float = RISK_AVERSION,
                            drawdown_weight: float = DRAWDOWN_WEIGHT) -> jax.Array:
    return _mean_variance(sums, periods_per_year, risk_aversion) - drawdown_weight * sums.max_drawdown


def _calmar(sums: ReturnSums, periods_per_year: float) -> jax.Array:
    return sums.mean * periods_per_year / (sums.max_drawdown + CALMAR_EPS)


OBJECTIVES: dict[str, Callable[..., jax.Array]] = {
    "mean_variance": _mean_variance,
    "mean_variance_drawdown": _mean_variance_drawdown,
    "score": _score,
    "sortino": lambda sums, periods_per_year: sums.sortino(periods_per_year),
    "sharpe": lambda sums, periods_per_year: sums.sharpe(periods_per_year),
    "log_wealth": lambda sums, periods_per_year: sums.log_growth,
    "calmar": _calmar,
}
"""Each objective as a function of a path's `ReturnSums`, the periods per year and the hyperparameters it takes by
name (`OBJECTIVE_WEIGHTS`)."""


def get_objective(name: str) -> Callable[..., jax.Array]:
    """Look up an objective by name; unknown names raise `ConfigError` listing the choices."""
    if name not in OBJECTIVES:
        raise ConfigError(f"objective: unknown {name!r}; expected one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


def evaluate_sums(
    sums: ReturnSums, name: str = "score", periods_per_year: float = 252, return_weight: float = RETURN_WEIGHT,
    risk_aversion: float = RISK_AVERSION, drawdown_weight: float = DRAWDOWN_WEIGHT,
) -> jax.Array:
    """The objective `OBJECTIVES[name]` of accumulated `ReturnSums` (fields `(...)`), given the hyperparameters it
    takes by name: the value `evaluate_returns` gives for the returns they were accumulated from, bit for bit."""
    objective = get_objective(name)
    options = dict(zip(OBJECTIVE_WEIGHTS, (return_weight, risk_aversion, drawdown_weight), strict=True))
    taken = inspect.signature(objective).parameters
    return objective(sums, periods_per_year, **{k: v for k, v in options.items() if k in taken})


def evaluate_returns(
    returns: jax.Array, name: str = "score", periods_per_year: float = 252, return_weight: float = RETURN_WEIGHT,
    risk_aversion: float = RISK_AVERSION, drawdown_weight: float = DRAWDOWN_WEIGHT,
) -> jax.Array:
    """The objective `OBJECTIVES[name]` of `returns (..., T)`."""
    get_objective(name)
    return evaluate_sums(return_sums(returns), name, periods_per_year, return_weight, risk_aversion, drawdown_weight)


def variance(returns: jax.Array) -> jax.Array:
    """Population variance over time, one ordered (Welford) pass.  (..., T) -> (...)"""
    return return_sums(returns).variance


def annualized_return(returns: jax.Array, periods_per_year: float = 252) -> jax.Array:
    """Arithmetic annualised return: mean(r) * P.  (..., T) -> (...)"""
    return return_sums(returns).mean * periods_per_year


def sortino(returns: jax.Array, periods_per_year: float = 252, eps: float = EPS) -> jax.Array:
    """mean(r) / sqrt(mean(min(r, 0)^2) + eps) * sqrt(P).  (..., T) -> (...)"""
    return return_sums(returns).sortino(periods_per_year, eps)


def sharpe(returns: jax.Array, periods_per_year: float = 252, eps: float = EPS) -> jax.Array:
    """mean(r) / sqrt(var(r) + eps) * sqrt(P).  (..., T) -> (...)"""
    return return_sums(returns).sharpe(periods_per_year, eps)


def score(returns: jax.Array, periods_per_year: float = 252, return_weight: float = RETURN_WEIGHT) -> jax.Array:
    """Sortino + return_weight * annualised return.  (..., T) -> (...)"""
    return _score(return_sums(returns), periods_per_year, return_weight)


def mean_variance(returns: jax.Array, periods_per_year: float = 252, risk_aversion: float = RISK_AVERSION
                  ) -> jax.Array:
    """(mean(r) - risk_aversion / 2 var(r)) * P: the certainty-equivalent return of a mean-variance investor.
    It grows with exposure while the edge pays for the risk, so unlike Sortino it says how much to hold.
    (..., T) -> (...)"""
    return _mean_variance(return_sums(returns), periods_per_year, risk_aversion)


def log_wealth(returns: jax.Array, periods_per_year: float = 252) -> jax.Array:
    """sum(log(1 + r)), each growth factor floored at `WEALTH_FLOOR` so a bust path stays finite.  (..., T) -> (...)"""
    del periods_per_year
    return return_sums(returns).log_growth


def max_drawdown(returns: jax.Array) -> jax.Array:
    """Largest peak-to-trough loss of the compounded wealth curve, a fraction in [0, 1].  (..., T) -> (...)"""
    return return_sums(returns).max_drawdown


def calmar(returns: jax.Array, periods_per_year: float = 252) -> jax.Array:
    """Annualised return / (max drawdown + 1e-4).  (..., T) -> (...)"""
    return _calmar(return_sums(returns), periods_per_year)


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
    drawdown_weight: float = DRAWDOWN_WEIGHT,
) -> tuple[jax.Array, tuple[PortfolioState, ReturnSums]]:
    """Objective per path `(...)` of the returns `simulate` produces for `actions (T, ..., N)`.

    One scan: the return sums are accumulated inside the simulation (`sim.simulate_return_sums`), nothing is stored
    per step. The sums are the ones `return_sums` folds over `simulate`'s stored returns (one accumulator,
    `stats_scan.add_return`, the same time order), so the forward value equals the objective of the simulator's
    returns bit for bit. Returns `(value, (final state, sums))`.
    """
    get_objective(name)
    final, sums = simulate_return_sums(params, state0, actions, bars)
    return evaluate_sums(sums, name, periods_per_year, return_weight, risk_aversion, drawdown_weight), (final, sums)
