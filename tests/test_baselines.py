"""Baselines: buy and hold invests equal weights at 1x and keeps them, even when stocks open after crypto."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ndjax.baselines import run_baselines
from ndjax.dynamics import MarketParams
from tests.helpers import small_arrays


def test_buy_and_hold_is_equal_weight_at_one_x_and_cash_is_flat():
    m, arr, _, _ = small_arrays(2, n_days=60)
    start = next(i for i in range(m.n_days) if m.stock_tradable_next[i] == 0)  # a Friday: stocks open Monday
    bars = arr.rows(start, start + 20).bars()
    out = run_baselines(MarketParams(is_crypto=arr.is_crypto), bars, jnp.asarray(1.0))
    hold, cash = out["buy_and_hold"], out["cash"]
    assert float(jnp.max(hold.leverage)) <= 1.0 + 1e-6 and float(jnp.sum(hold.margin_call)) == 0
    value = np.asarray(hold.inventory[4]) * np.asarray(bars.close[5])  # after the weekend everything is held
    assert np.all(value > 0)
    np.testing.assert_allclose(value / value.sum(), 1 / value.size, rtol=0.15)  # equal weight up to price drift
    assert float(hold.cash[4]) >= -1e-6  # no borrowing
    np.testing.assert_array_equal(np.asarray(cash.equity), 1.0)
