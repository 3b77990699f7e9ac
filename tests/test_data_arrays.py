"""Device arrays: the one window sampler keeps every field (open and volume too), prepare normalises on the
training rows only, context splits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.data.arrays import context_split, drift_free, drifted, prepare, sample_window
from ndjax.data.features import compute_features
from tests.helpers import small_arrays


def test_sample_window_keeps_every_field_and_the_asset_classes():
    m, arr, _, _ = small_arrays(0, n_days=120)
    win = jax.jit(sample_window, static_argnums=(2, 3))(arr, jax.random.PRNGKey(3), 20, 3)
    assert win.close.shape == (20, 3) and win.open.shape == (20, 3) and win.volume.shape == (20, 3)
    assert win.days_elapsed.shape == (20,) and win.is_crypto.shape == (3,)
    # the window is a real slice: find its start and assets in the full arrays
    close = np.asarray(arr.close)
    for j in range(3):
        hits = [(i, s) for i in range(close.shape[1]) for s in range(close.shape[0] - 19)
                if np.array_equal(close[s:s + 20, i], np.asarray(win.close[:, j]))]
        assert hits, j
        i, s = hits[0]
        np.testing.assert_array_equal(np.asarray(win.volume[:, j]), np.asarray(arr.volume[s:s + 20, i]))
        assert bool(win.is_crypto[j]) == bool(arr.is_crypto[i])


def test_prepare_normalises_with_training_rows_only():
    m, arr, a, _ = small_arrays(1, n_days=150)
    normalizer, again = prepare(m, a)
    raw = compute_features(m)
    np.testing.assert_allclose(np.asarray(again.features), normalizer.apply(raw))
    shifted = prepare(m, a, normalizer)[1]  # a stored normaliser is reused as it is
    np.testing.assert_array_equal(np.asarray(shifted.features), np.asarray(again.features))
    ctx = context_split(arr, 50, 80, 8)
    assert ctx.n_days == 38 and np.array_equal(np.asarray(ctx.close), np.asarray(arr.close[42:80]))
    assert context_split(arr, 3, 10, 8).n_days == 10


def test_drift_free_bars_keep_their_shape_and_lose_their_growth():
    """Each asset's bar-to-bar log returns shift by one constant, chosen so their mean simple return is ~0;
    the bar's range in log terms and untradable rows' carried prices are kept."""
    _, arr, _, _ = small_arrays(3, 0.0, n_days=600, n_stocks=2, n_crypto=2)
    flat = jax.jit(drift_free)(arr)
    t = np.asarray(arr.tradable) > 0
    for j in range(arr.close.shape[1]):
        idx = np.flatnonzero(t[:, j])
        before = np.diff(np.log(np.asarray(arr.close, np.float64)[idx, j]))
        after = np.diff(np.log(np.asarray(flat.close, np.float64)[idx, j]))
        shift = before - after
        np.testing.assert_allclose(shift, shift.mean(), atol=2e-6)
        assert abs(np.mean(np.expm1(after))) < 1e-3 * np.std(after)
        assert abs(shift.mean() - (before.mean() + before.var() / 2)) < 1e-6
    for name in ("high", "low", "open"):
        np.testing.assert_allclose(np.log(getattr(flat, name) / flat.close), np.log(getattr(arr, name) / arr.close),
                                   atol=1e-5)
    np.testing.assert_array_equal(flat.features, arr.features)


def test_a_drifted_window_grows_by_its_drift_on_each_asset_s_own_bars():
    """Every bar-to-bar log return of an asset gains drift / bars a year (252 for a stock, 365 for crypto); the
    bar's range, the carried prices of untradable rows and the features are kept; a zero drift changes nothing."""
    _, arr, _, _ = small_arrays(4, 0.0, n_days=300, n_stocks=2, n_crypto=2)
    drift = jnp.asarray([0.3, -0.2, 0.5, -0.4])
    grown = jax.jit(drifted)(arr, drift)
    t = np.asarray(arr.tradable) > 0
    crypto = np.asarray(arr.is_crypto)
    for j in range(arr.close.shape[1]):
        idx = np.flatnonzero(t[:, j])
        gain = np.diff(np.log(np.asarray(grown.close, np.float64)[idx, j])) - np.diff(
            np.log(np.asarray(arr.close, np.float64)[idx, j]))
        np.testing.assert_allclose(gain, float(drift[j]) / (365 if crypto[j] else 252), atol=3e-6)
        scale = np.asarray(grown.close, np.float64)[:, j] / np.asarray(arr.close, np.float64)[:, j]
        carried = np.flatnonzero(~t[1:, j]) + 1  # an untradable row keeps the scale of the row before it
        np.testing.assert_allclose(scale[carried], scale[carried - 1], rtol=1e-6)
    for name in ("high", "low", "open"):
        np.testing.assert_allclose(np.log(getattr(grown, name) / grown.close), np.log(getattr(arr, name) / arr.close),
                                   atol=1e-5)
    np.testing.assert_array_equal(grown.features, arr.features)
    same = jax.jit(drifted)(arr, jnp.zeros(4))
    for name in ("high", "low", "close", "open"):
        np.testing.assert_array_equal(getattr(same, name), getattr(arr, name))
