"""What a simulated path earned and risked: `PathStats`, one name per number, reduced over time by `path_stats`."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ndjax.dynamics import StepInfo
from ndjax.loss import sharpe, sortino


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


def drawdown(equity: jax.Array, initial: jax.Array) -> jax.Array:
    """Drawdown path `(T, ...)` of an equity curve `(T, ...)` against its running peak, `initial (...)` included."""
    curve = jnp.concatenate([jnp.asarray(initial)[None], equity], axis=0)
    peak = jax.lax.cummax(curve, axis=0)
    safe = jnp.where(peak > 0, peak, 1)
    return jnp.where(peak > 0, 1 - curve / safe, 0)[1:]


def path_stats(infos: StepInfo, periods_per_year: float = 252) -> PathStats:
    """`PathStats` of `infos` with time on axis 0 (per-portfolio fields `(T, ...)`); jittable."""
    returns = jnp.moveaxis(infos.returns, 0, -1)
    initial, final = infos.prev_equity[0], infos.equity[-1]
    placed_b, placed_s = infos.buy_order_qty > 0, infos.sell_order_qty > 0
    filled_b = jnp.sum(jnp.where(placed_b, infos.buy_fill, 0), axis=(0, -1))
    filled_s = jnp.sum(jnp.where(placed_s, infos.sell_fill, 0), axis=(0, -1))
    return PathStats(
        initial_equity=initial,
        final_equity=final,
        total_return=jnp.where(initial > 0, final / jnp.where(initial > 0, initial, 1) - 1, 0),
        sortino=sortino(returns, periods_per_year),
        sharpe=sharpe(returns, periods_per_year),
        max_drawdown=jnp.max(drawdown(infos.equity, initial), axis=0),
        mean_leverage=jnp.mean(infos.leverage, axis=0),
        max_leverage=jnp.max(infos.leverage, axis=0),
        total_leverage_cost=jnp.sum(infos.leverage_cost, axis=0),
        total_fees=jnp.sum(infos.fees, axis=0),
        turnover=jnp.sum(infos.traded_notional, axis=0) / jnp.maximum(jnp.mean(infos.equity, axis=0), 1e-12),
        buy_fill_rate=filled_b / jnp.maximum(jnp.sum(placed_b, axis=(0, -1)), 1),
        sell_fill_rate=filled_s / jnp.maximum(jnp.sum(placed_s, axis=(0, -1)), 1),
        n_buys=jnp.sum(infos.buy_qty > 0, axis=(0, -1)),
        n_sells=jnp.sum(infos.sell_qty > 0, axis=(0, -1)),
        margin_calls=jnp.sum(infos.margin_call, axis=0),
        forced_notional=jnp.sum(infos.forced_notional, axis=0),
    )


def summary(infos: StepInfo, periods_per_year: float = 252) -> PathStats:
    """`path_stats` as host NumPy arrays, for reports."""
    return path_stats(infos, periods_per_year).to_host()
