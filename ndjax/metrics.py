"""What a simulated path earned and risked: `PathStats` (defined in `stats_scan`), one name per number, reduced
over a stored path by `path_stats`; `DailyPath`, the per-day series a report reads, from a simulated `StepInfo`
path or from a ledger's rows."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from ndjax.dynamics import StepInfo
from ndjax.stats_scan import PathStats, add_step, finish_path, start_path


@struct.dataclass
class DailyPath:
    """The per-day series of one or more paths that the reports read (`path_stats`, the daily table, `equity.png`).

    Per-portfolio fields `(T, ...)`, per-asset fields `(T, ..., N)`, with the meaning of the `StepInfo` field of the
    same name. `from_steps` takes them from a simulated path; `paper.report.ledger_path` builds them from ledger rows.
    """

    equity: jax.Array
    prev_equity: jax.Array
    cash: jax.Array
    returns: jax.Array
    leverage: jax.Array
    leverage_cost: jax.Array
    fees: jax.Array
    traded_notional: jax.Array
    margin_call: jax.Array
    forced_notional: jax.Array
    buy_order_qty: jax.Array  # (T, ..., N) units ordered
    sell_order_qty: jax.Array
    buy_fill: jax.Array  # (T, ..., N) fill indicator or probability
    sell_fill: jax.Array
    buy_qty: jax.Array  # (T, ..., N) units executed
    sell_qty: jax.Array

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_steps(cls, infos: StepInfo | DailyPath) -> DailyPath:
        """The series of a `StepInfo` path (the same arrays, no copy)."""
        if isinstance(infos, DailyPath):
            return infos
        return cls(**{name: getattr(infos, name) for name in cls.names()})

    @classmethod
    def from_host(cls, **series: Any) -> DailyPath:
        """From host arrays (a ledger's rows), as JAX arrays of the default dtype, like a simulated path."""
        return cls(**{name: jnp.asarray(series[name]) for name in cls.names()})


def drawdown(equity: jax.Array, initial: jax.Array) -> jax.Array:
    """Drawdown path `(T, ...)` of an equity curve `(T, ...)` against its running peak, `initial (...)` included."""
    curve = jnp.concatenate([jnp.asarray(initial)[None], equity], axis=0)
    peak = jax.lax.cummax(curve, axis=0)
    safe = jnp.where(peak > 0, peak, 1)
    return jnp.where(peak > 0, 1 - curve / safe, 0)[1:]


def path_stats(infos: StepInfo | DailyPath, periods_per_year: float = 252) -> PathStats:
    """`PathStats` of `infos` with time on axis 0 (per-portfolio fields `(T, ...)`); jittable.

    Folds `stats_scan.add_step` over the stored steps in time order: the sums `sim.simulate_stats` carries
    while it simulates."""
    first = jnp.asarray(infos.equity[0])  # host float64 paths take JAX's default float
    sums, _ = jax.lax.scan(lambda s, info: (add_step(s, info), None), start_path(first.shape, first.dtype), infos)
    return finish_path(sums, periods_per_year)


def summary(infos: StepInfo | DailyPath, periods_per_year: float = 252) -> PathStats:
    """`path_stats` as host NumPy arrays, for reports."""
    return path_stats(infos, periods_per_year).to_host()
