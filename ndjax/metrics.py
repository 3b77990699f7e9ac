"""What a simulated path earned and risked: `PathStats` (defined in `stats_scan`), one name per number, reduced
over a stored path by `path_stats`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ndjax.dynamics import StepInfo
from ndjax.stats_scan import PathStats, add_step, finish_path, start_path


def drawdown(equity: jax.Array, initial: jax.Array) -> jax.Array:
    """Drawdown path `(T, ...)` of an equity curve `(T, ...)` against its running peak, `initial (...)` included."""
    curve = jnp.concatenate([jnp.asarray(initial)[None], equity], axis=0)
    peak = jax.lax.cummax(curve, axis=0)
    safe = jnp.where(peak > 0, peak, 1)
    return jnp.where(peak > 0, 1 - curve / safe, 0)[1:]


def path_stats(infos: StepInfo, periods_per_year: float = 252) -> PathStats:
    """`PathStats` of `infos` with time on axis 0 (per-portfolio fields `(T, ...)`); jittable.

    Folds `stats_scan.add_step` over the stored steps in time order: the sums `sim.simulate_stats` carries
    while it simulates."""
    first = infos.equity[0]
    sums, _ = jax.lax.scan(lambda s, info: (add_step(s, info), None), start_path(first.shape, first.dtype), infos)
    return finish_path(sums, periods_per_year)


def summary(infos: StepInfo, periods_per_year: float = 252) -> PathStats:
    """`path_stats` as host NumPy arrays, for reports."""
    return path_stats(infos, periods_per_year).to_host()
