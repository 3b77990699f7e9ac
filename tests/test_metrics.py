"""Path statistics: one name per number, each checked against a direct NumPy computation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.metrics import PathStats, drawdown, path_stats, summary
from ndjax.sim import simulate
from tests.helpers import path_to_jax, random_path


def test_path_stats_by_hand():
    params, state0, actions, bars = path_to_jax(random_path(9, T=30, batch=2))
    _, infos = simulate(params, state0, actions, bars)
    stats = summary(infos, 365)
    assert isinstance(stats, PathStats) and np.shape(stats.sortino) == (2,)
    eq, fees, lev = (np.asarray(getattr(infos, k), np.float64) for k in ("equity", "fees", "leverage"))
    np.testing.assert_allclose(stats.final_equity, eq[-1])
    np.testing.assert_allclose(stats.total_return, eq[-1] / 10_000 - 1, rtol=1e-5)
    np.testing.assert_allclose(stats.total_fees, fees.sum(0), rtol=1e-5)
    np.testing.assert_allclose(stats.max_leverage, lev.max(0))
    np.testing.assert_allclose(stats.mean_leverage, lev.mean(0), rtol=1e-5)
    curve = np.concatenate([np.full((1, 2), 10_000.0), eq])
    np.testing.assert_allclose(stats.max_drawdown, np.max(1 - curve / np.maximum.accumulate(curve), 0), rtol=1e-4,
                               atol=1e-7)
    placed = np.asarray(infos.buy_order_qty) > 0
    np.testing.assert_allclose(stats.buy_fill_rate,
                               (np.asarray(infos.buy_fill) * placed).sum((0, 2)) / placed.sum((0, 2)), rtol=1e-6)
    np.testing.assert_array_equal(stats.margin_calls, np.asarray(infos.margin_call).sum(0))
    one = PathStats(**{k: np.asarray(getattr(stats, k))[0] for k in PathStats.names()}).as_dict()
    assert set(one) == set(PathStats.names()) and all(isinstance(v, float) for v in one.values())


def test_drawdown_and_bust_start():
    dd = drawdown(jnp.array([1.2, 0.9, 1.5, 0.0]), jnp.array(1.0))
    np.testing.assert_allclose(dd, [0.0, 0.25, 0.0, 1.0], rtol=1e-6)
    assert float(drawdown(jnp.array([0.5]), jnp.array(-1.0))[0]) == 0.0  # no positive peak yet
    params, state0, actions, bars = path_to_jax(random_path(3, T=8, batch=1), cash=-5.0)
    _, infos = simulate(params, state0, actions, bars)
    assert float(jax.jit(path_stats)(infos).total_return[0]) == 0.0
