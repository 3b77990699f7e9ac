"""Running statistics of a simulated path: what one step adds to its sums, and `PathStats` from those sums.

One accumulator serves every consumer: `loss.return_sums` folds `add_return` over stored returns,
`metrics.path_stats` folds `add_step` over a stored `StepInfo`, and `sim.simulate_stats` folds it inside the
simulation scan, writing nothing per step. The same operations in the same time order give the same
floating-point sums, so an objective or a statistic does not depend on which way the returns reached it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ndjax.dynamics import StepInfo

EPS = 1e-6
"""Variance floor of Sortino and Sharpe: a 0.1 % per-period deviation, so a path with a few tiny
wins and no loss cannot score without bound (averaged over training windows it otherwise would)."""
WEALTH_FLOOR = 1e-6
"""Smallest growth factor `1 + r` a log takes, so a bust path stays finite."""


@struct.dataclass
class ReturnSums:
    """Sums of one return series per path, accumulated in time order. Fields `(...)`; `count ()`."""

    count: jax.Array  # periods added
    total: jax.Array  # sum r
    downside: jax.Array  # sum min(r, 0)^2
    log_growth: jax.Array  # sum log(max(1 + r, WEALTH_FLOOR))
    wealth: jax.Array  # prod (1 + r)
    peak: jax.Array  # running max of wealth, 1 included
    max_drawdown: jax.Array  # largest peak-to-trough loss of the wealth, a fraction
    centre: jax.Array  # running mean (Welford)
    spread: jax.Array  # sum of squared deviations from the running mean (Welford)

    @property
    def mean(self) -> jax.Array:
        return self.total / self.count

    @property
    def variance(self) -> jax.Array:
        """Population variance."""
        return self.spread / self.count

    def sortino(self, periods_per_year: float = 252, eps: float = EPS) -> jax.Array:
        """mean / sqrt(mean(min(r, 0)^2) + eps) * sqrt(P)."""
        return self.mean / jnp.sqrt(self.downside / self.count + eps) * jnp.sqrt(periods_per_year)

    def sharpe(self, periods_per_year: float = 252, eps: float = EPS) -> jax.Array:
        """mean / sqrt(var + eps) * sqrt(P)."""
        return self.mean / jnp.sqrt(self.variance + eps) * jnp.sqrt(periods_per_year)


def start_returns(shape: tuple[int, ...], dtype: Any) -> ReturnSums:
    """Sums of an empty series, fields of `shape`."""
    zero, one = jnp.zeros(shape, dtype), jnp.ones(shape, dtype)
    return ReturnSums(count=jnp.zeros((), dtype), total=zero, downside=zero, log_growth=zero, wealth=one, peak=one,
                      max_drawdown=zero, centre=zero, spread=zero)


def add_return(s: ReturnSums, r: jax.Array) -> ReturnSums:
    """`s` after one more period's returns `r (...)`."""
    count = s.count + 1
    wealth = s.wealth * (1 + r)
    peak = jnp.maximum(s.peak, wealth)
    delta = r - s.centre
    centre = s.centre + delta / count
    return ReturnSums(
        count=count, total=s.total + r, downside=s.downside + jnp.minimum(r, 0) ** 2,
        log_growth=s.log_growth + jnp.log(jnp.maximum(1 + r, WEALTH_FLOOR)), wealth=wealth, peak=peak,
        max_drawdown=jnp.maximum(s.max_drawdown, 1 - wealth / peak), centre=centre,
        spread=s.spread + delta * (r - centre),
    )


@struct.dataclass
class PathStats:
    """Statistics of a simulation reduced over time, per path: every field `(...)`."""

    initial_equity: Any
    final_equity: Any
    total_return: Any  # final / initial - 1 (0 for a bust start)
    sortino: Any
    sharpe: Any
    max_drawdown: Any  # fraction of the running peak, initial equity included
    mean_leverage: Any  # gross
    max_leverage: Any
    total_leverage_cost: Any
    total_fees: Any
    turnover: Any  # traded notional / mean equity
    buy_fill_rate: Any  # filled / placed buy orders
    sell_fill_rate: Any
    n_buys: Any  # asset-bars with an executed buy
    n_sells: Any
    margin_calls: Any  # bars with a maintenance call
    forced_notional: Any  # value force-sold in calls

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_host(self) -> PathStats:
        """The same statistics as NumPy arrays."""
        return jax.tree_util.tree_map(np.asarray, self)

    def as_dict(self) -> dict[str, Any]:
        """Field name -> value; scalars become Python floats (JSON-ready)."""
        out = {}
        for name in self.names():
            v = np.asarray(getattr(self, name))
            out[name] = float(v) if v.ndim == 0 else v.tolist()
        return out


@struct.dataclass
class PathSums:
    """Everything `PathStats` needs, accumulated step by step. Per-path fields `(...)`."""

    returns: ReturnSums
    initial: jax.Array  # E0 of the first step
    final: jax.Array  # E3 of the last step
    peak: jax.Array  # running max of equity, initial included
    max_drawdown: jax.Array
    leverage: jax.Array  # sum
    max_leverage: jax.Array
    leverage_cost: jax.Array
    fees: jax.Array
    traded: jax.Array
    equity: jax.Array  # sum
    buys_placed: jax.Array  # int: asset-bars with a buy order
    buys_filled: jax.Array  # sum of buy fills where a buy was placed
    sells_placed: jax.Array
    sells_filled: jax.Array
    n_buys: jax.Array  # int
    n_sells: jax.Array  # int
    margin_calls: jax.Array
    forced_notional: jax.Array


def start_path(shape: tuple[int, ...], dtype: Any) -> PathSums:
    """Sums of a path with no step yet, per-path fields of `shape`."""
    zero, count = jnp.zeros(shape, dtype), jnp.zeros(shape, jnp.int32)
    return PathSums(returns=start_returns(shape, dtype), initial=zero, final=zero, peak=zero, max_drawdown=zero,
                    leverage=zero, max_leverage=jnp.full(shape, -jnp.inf, zero.dtype), leverage_cost=zero, fees=zero,
                    traded=zero, equity=zero, buys_placed=count, buys_filled=zero, sells_placed=count,
                    sells_filled=zero, n_buys=count, n_sells=count, margin_calls=zero, forced_notional=zero)


def add_step(s: PathSums, info: StepInfo) -> PathSums:
    """`s` after one more step's `StepInfo` (per-path fields `(...)`, per-asset `(..., N)`)."""
    first = s.returns.count == 0
    eq = info.equity
    peak = jnp.maximum(jnp.where(first, info.prev_equity, s.peak), eq)
    drawdown = jnp.where(peak > 0, 1 - eq / jnp.where(peak > 0, peak, 1), 0)
    placed_b, placed_s = info.buy_order_qty > 0, info.sell_order_qty > 0
    return PathSums(
        returns=add_return(s.returns, info.returns),
        initial=jnp.where(first, info.prev_equity, s.initial), final=eq, peak=peak,
        max_drawdown=jnp.maximum(s.max_drawdown, drawdown),
        leverage=s.leverage + info.leverage, max_leverage=jnp.maximum(s.max_leverage, info.leverage),
        leverage_cost=s.leverage_cost + info.leverage_cost, fees=s.fees + info.fees,
        traded=s.traded + info.traded_notional, equity=s.equity + eq,
        buys_placed=s.buys_placed + jnp.sum(placed_b, axis=-1, dtype=jnp.int32),
        buys_filled=s.buys_filled + jnp.sum(jnp.where(placed_b, info.buy_fill, 0), axis=-1),
        sells_placed=s.sells_placed + jnp.sum(placed_s, axis=-1, dtype=jnp.int32),
        sells_filled=s.sells_filled + jnp.sum(jnp.where(placed_s, info.sell_fill, 0), axis=-1),
        n_buys=s.n_buys + jnp.sum(info.buy_qty > 0, axis=-1, dtype=jnp.int32),
        n_sells=s.n_sells + jnp.sum(info.sell_qty > 0, axis=-1, dtype=jnp.int32),
        margin_calls=s.margin_calls + info.margin_call, forced_notional=s.forced_notional + info.forced_notional,
    )


def finish_path(s: PathSums, periods_per_year: float = 252) -> PathStats:
    """`PathStats` of the accumulated sums, fields `(...)`."""
    n, initial, final = s.returns.count, s.initial, s.final
    return PathStats(
        initial_equity=initial,
        final_equity=final,
        total_return=jnp.where(initial > 0, final / jnp.where(initial > 0, initial, 1) - 1, 0),
        sortino=s.returns.sortino(periods_per_year),
        sharpe=s.returns.sharpe(periods_per_year),
        max_drawdown=s.max_drawdown,
        mean_leverage=s.leverage / n,
        max_leverage=s.max_leverage,
        total_leverage_cost=s.leverage_cost,
        total_fees=s.fees,
        turnover=s.traded / jnp.maximum(s.equity / n, 1e-12),
        buy_fill_rate=s.buys_filled / jnp.maximum(s.buys_placed, 1),
        sell_fill_rate=s.sells_filled / jnp.maximum(s.sells_placed, 1),
        n_buys=s.n_buys,
        n_sells=s.n_sells,
        margin_calls=s.margin_calls,
        forced_notional=s.forced_notional,
    )
