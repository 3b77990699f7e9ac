"""Classical rules: trend and inverse-vol weights against hand-computed ones on a market whose squared returns are
constant (so the EWMA forecast is exactly the return size), causality, and the rules run through the transition."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from ndjax.classical import annual_vol, classical_targets, run_targets, trailing_return
from ndjax.data.synthetic import synthetic_market
from ndjax.dynamics import Bar, MarketParams

A, C = 0.01, 0.03  # stock and crypto log-return sizes


def _market(n_days: int = 500):
    """Stocks: 0 rises (+a, +a, -a per three bars), 1 falls (-a, -a, +a); crypto 2 rises with size c."""
    m = synthetic_market(0, n_stocks=2, n_crypto=1, n_days=n_days)
    close = np.array(m.close, np.float64)
    for j, (size, sign) in enumerate([(A, 1), (A, -1), (C, 1)]):
        idx = np.flatnonzero(m.tradable[:, j] > 0)
        steps = sign * size * np.resize([1.0, 1.0, -1.0], idx.size - 1)
        close[idx, j] = 100 * np.exp(np.r_[0.0, np.cumsum(steps)])
    return dataclasses.replace(m, close=close, high=close * 1.001, low=close * 0.999, open=close)


def test_weights_equal_hand_computed_ones():
    m = _market()
    t = m.n_days - 1
    vol = annual_vol(m)
    np.testing.assert_allclose(vol[t], [A * np.sqrt(252), A * np.sqrt(252), C * np.sqrt(365)], rtol=1e-9)
    w = classical_targets(m)
    # trend: the two risers at 0.15 / (3 sigma), the faller flat
    np.testing.assert_allclose(w["trend"][t], [0.15 / (3 * A * np.sqrt(252)), 0.0, 0.15 / (3 * C * np.sqrt(365))],
                               rtol=1e-6)
    inv = np.array([1 / (A * np.sqrt(252)), 1 / (A * np.sqrt(252)), 1 / (C * np.sqrt(365))])
    np.testing.assert_allclose(w["inverse_vol"][t], inv / inv.sum(), rtol=1e-6)
    # the 12-month return: the asset's own closes 365 calendar days apart
    back = np.flatnonzero(m.dates <= m.dates[t] - 365)[-1]
    last_bar = np.flatnonzero(m.tradable[: back + 1, 0] > 0)[-1]
    now_bar = np.flatnonzero(m.tradable[: t + 1, 0] > 0)[-1]
    np.testing.assert_allclose(trailing_return(m)[t, 0], m.close[now_bar, 0] / m.close[last_bar, 0] - 1, rtol=1e-12)
    # no position before an asset has 12 months of history
    early = np.flatnonzero(m.dates < m.dates[0] + 365)
    assert np.all(w["trend"][early] == 0) and np.all(np.isnan(trailing_return(m)[early]))


def test_targets_are_causal():
    m = _market()
    cut = 420
    later = np.array(m.close)
    later[cut + 1:] *= np.exp(np.random.default_rng(1).normal(0, 0.05, later[cut + 1:].shape))
    w, w2 = classical_targets(m), classical_targets(dataclasses.replace(m, close=later))
    for name in w:
        np.testing.assert_array_equal(w[name][: cut + 1], w2[name][: cut + 1])
        assert not np.array_equal(w[name][cut + 1:], w2[name][cut + 1:])


def test_rules_through_the_transition_hold_their_targets_within_the_band():
    m = _market()
    start = 400
    bars = Bar(high=jnp.asarray(m.high[start:], jnp.float32), low=jnp.asarray(m.low[start:], jnp.float32),
               close=jnp.asarray(m.close[start:], jnp.float32), tradable=jnp.asarray(m.tradable[start:], jnp.float32),
               days_elapsed=jnp.asarray(m.days_elapsed[start:], jnp.float32))
    targets = {k: jnp.asarray(v[start:]) for k, v in classical_targets(m).items()}
    out = run_targets(MarketParams(is_crypto=jnp.asarray(m.is_crypto)), bars, targets, jnp.asarray(1.0))
    for name, info in out.items():
        assert float(jnp.sum(info.margin_call)) == 0 and bool(jnp.all(jnp.isfinite(info.equity)))
        held = np.asarray(info.inventory[-1]) * np.asarray(bars.close[-1]) / float(info.equity[-1])
        want = np.asarray(targets[name][-2])
        np.testing.assert_allclose(held, want, rtol=0.3, atol=1e-6)  # inside the 25 % band (plus one bar's drift)
        assert float(jnp.sum(info.fees)) > 0
    lev = out["inverse_vol"].leverage
    assert float(lev[-1]) > 0.95 and float(jnp.max(lev)) < 1.1  # 1x, up to the drift the band allows
    assert float(out["trend"].inventory[-1, 1]) == 0.0  # the falling stock is never held
