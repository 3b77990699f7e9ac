"""Features: causality, values against a hand computation, NaN-freeness and the normaliser."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from ndjax.data.features import (
    ALL_FEATURES,
    EWMA_DECAY,
    EWMA_WARMUP,
    FEATURE_NAMES,
    PASSTHROUGH_FEATURES,
    REGIME_FEATURES,
    Normalizer,
    compute_features,
    vol_forecast,
)
from ndjax.data.market import MarketData
from ndjax.data.splits import split
from ndjax.data.synthetic import synthetic_market

IDX = {n: i for i, n in enumerate(FEATURE_NAMES)}


@pytest.fixture(scope="module")
def market() -> MarketData:
    return synthetic_market(3, n_stocks=3, n_crypto=2, n_days=200)


def perturb_after(m: MarketData, t: int, rng: np.random.Generator) -> MarketData:
    """Same market with every bar after row t replaced by different (valid) random bars."""
    scale = np.ones_like(m.close)
    scale[t + 1 :] = np.exp(rng.normal(0, 0.3, scale[t + 1 :].shape))
    vol = m.volume.copy()
    vol[t + 1 :] = vol[t + 1 :] * rng.uniform(0.1, 10, vol[t + 1 :].shape)
    return dataclasses.replace(
        m,
        open=m.open * scale,
        high=m.high * scale * np.where(scale != 1, 1.05, 1.0),
        low=m.low * scale,
        close=m.close * scale,
        volume=vol,
    )


def test_shape_dtype_nan_free(market: MarketData) -> None:
    f = compute_features(market)
    assert f.shape == (market.n_days, market.n_assets, len(FEATURE_NAMES))
    assert f.dtype == np.float32 and np.isfinite(f).all()


@pytest.mark.parametrize("t", [0, 5, 19, 20, 60, 150, 198])
def test_features_are_causal_bitwise(market: MarketData, t: int) -> None:
    base = compute_features(market)
    other = compute_features(perturb_after(market, t, np.random.default_rng(t)))
    np.testing.assert_array_equal(base[: t + 1], other[: t + 1])
    assert not np.array_equal(base[t + 1 :, :, :6], other[t + 1 :, :, :6])


def test_values_on_own_bars_and_carry_forward(market: MarketData) -> None:
    f = compute_features(market)
    j = 0  # a stock: weekends are non-tradable rows
    idx = np.flatnonzero(market.tradable[:, j])
    c = market.close[idx, j]
    r = np.log(c[1:] / c[:-1])
    sigma = vol_forecast(np.r_[0.0, r])  # float64 reference of the forecast, by hand below
    np.testing.assert_allclose(sigma[1], abs(r[0]))
    np.testing.assert_allclose(sigma[3], np.sqrt(np.mean(r[:3] ** 2)))
    s2 = np.mean(r[:EWMA_WARMUP] ** 2)
    for x in r[EWMA_WARMUP:EWMA_WARMUP + 5]:
        s2 = EWMA_DECAY * s2 + (1 - EWMA_DECAY) * x * x
    np.testing.assert_allclose(sigma[EWMA_WARMUP + 5], np.sqrt(s2), rtol=1e-10)
    before = np.r_[sigma[0], sigma[:-1]]
    np.testing.assert_allclose(f[idx[1:], j, IDX["z_1"]], r / before[1:], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(f[idx[5:], j, IDX["z_5"]], np.log(c[5:] / c[:-5]) / (before[5:] * np.sqrt(5)),
                               rtol=1e-4, atol=1e-6)
    assert f[idx[0], j, IDX["z_1"]] == 0 and np.all(f[idx[:20], j, IDX["z_20"]] == 0)
    np.testing.assert_allclose(f[idx, j, IDX["log_vol"]], np.log(sigma), rtol=1e-5)
    h, lo = market.high[idx, j], market.low[idx, j]
    np.testing.assert_allclose(f[idx, j, IDX["range_z"]], (h - lo) / c / before, rtol=1e-4)
    gaps = np.flatnonzero(market.tradable[:, j] == 0)
    gaps = gaps[gaps > idx[0]]
    assert gaps.size
    np.testing.assert_array_equal(f[gaps, j, :5], f[gaps - 1, j, :5])  # carried forward (weekend runs)
    np.testing.assert_array_equal(f[:, j, IDX["tradable"]], market.tradable[:, j])
    np.testing.assert_array_equal(f[:, :, IDX["is_crypto"]], np.broadcast_to(market.is_crypto, f.shape[:2]))


def test_calendar_features(market: MarketData) -> None:
    f = compute_features(market)
    weekday = (market.dates.astype(np.int64) + 3) % 7
    np.testing.assert_allclose(f[:, 0, IDX["dow_sin"]], np.sin(2 * np.pi * weekday / 7), atol=1e-6)
    np.testing.assert_array_equal(f[:, 1, IDX["stock_tradable_next"]], market.stock_tradable_next)
    fri = np.flatnonzero(weekday == 4)
    assert np.all(f[fri, 0, IDX["next_session_days"]] >= 2 / 3)


def test_normalizer_fit_on_train_only_and_roundtrip(market: MarketData) -> None:
    train, _, test = split(market, market.dates[119], market.dates[159])
    f_all = compute_features(market)
    f_train = f_all[: train.n_days]
    norm = Normalizer.fit(f_train, train.tradable)
    # same statistics as fitting on the training rows by hand: test rows do not leak in
    sel = f_train[train.tradable > 0].astype(np.float64)
    k = IDX["log_vol"]
    assert norm.mean[k] == pytest.approx(sel[:, k].mean()) and norm.std[k] == pytest.approx(sel[:, k].std())
    for name in PASSTHROUGH_FEATURES:
        assert norm.mean[IDX[name]] == 0 and norm.std[IDX[name]] == 1
    z = norm.apply(f_all[-test.n_days :])
    assert z.dtype == np.float32 and np.isfinite(z).all() and np.abs(z).max() <= norm.clip
    np.testing.assert_array_equal(z[..., IDX["is_crypto"]], f_all[-test.n_days :, :, IDX["is_crypto"]])
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(again.apply(f_all), norm.apply(f_all))
    assert again.names == FEATURE_NAMES


def test_normalizer_guards_constant_features() -> None:
    x = np.zeros((10, 2, 3), dtype=np.float32)
    x[..., 0] = 5.0
    x[..., 1] = np.arange(10)[:, None]
    norm = Normalizer.fit(x, clip=None)
    assert norm.std[0] == 1.0 and norm.std[2] == 1.0
    z = norm.apply(x)
    np.testing.assert_array_equal(z[..., 0], 0.0)
    assert abs(z[..., 1].std() - 1) < 1e-5
    with pytest.raises(ValueError):
        Normalizer.fit(x, np.zeros((10, 2)))


@pytest.fixture(scope="module")
def long_market() -> MarketData:
    return synthetic_market(5, n_stocks=2, n_crypto=1, n_days=560)


def test_regime_features_by_hand_and_causal(long_market: MarketData) -> None:
    m = long_market
    f = compute_features(m, ALL_FEATURES)
    assert f.shape == (m.n_days, m.n_assets, len(ALL_FEATURES)) and np.isfinite(f).all()
    np.testing.assert_array_equal(f[..., : len(FEATURE_NAMES)], compute_features(m))  # the base set is a prefix
    at = {n: i for i, n in enumerate(ALL_FEATURES)}
    for j in range(m.n_assets):
        idx = np.flatnonzero(m.tradable[:, j])
        c = m.close[idx, j].astype(np.float64)
        r = np.r_[0.0, np.log(c[1:] / c[:-1])]
        sigma = vol_forecast(r)
        before = np.r_[sigma[0], sigma[:-1]]
        k = idx.size - 5  # a bar with more than a year of bars behind it
        assert k > 260
        for lag in (60, 120, 250):
            assert f[idx[k], j, at[f"z_{lag}"]] == pytest.approx(np.log(c[k] / c[k - lag]) / (before[k] * np.sqrt(lag)),
                                                                rel=1e-4)
            assert np.all(f[idx[:lag], j, at[f"z_{lag}"]] == 0)
        high = np.log(c[k - 249 : k + 1]).max()
        assert f[idx[k], j, at["drawdown_250"]] == pytest.approx((np.log(c[k]) - high) / (before[k] * np.sqrt(250)),
                                                                 rel=1e-4, abs=1e-6)
        long_run = np.sqrt(np.mean(r[k - 249 : k + 1] ** 2))
        assert f[idx[k], j, at["vol_ratio"]] == pytest.approx(np.log(sigma[k] / long_run), rel=1e-4, abs=1e-6)
        assert np.all(f[idx, j, at["drawdown_250"]] <= 0)
        per_year = 365 if m.is_crypto[j] else 252
        assert f[idx[k], j, at["log_annual_vol"]] == pytest.approx(np.log(sigma[k] * np.sqrt(per_year)), rel=1e-5)
        assert np.all(f[: idx[0], j] == 0)  # nothing before the asset's first bar
    for t in (30, 260, 400):
        other = compute_features(perturb_after(m, t, np.random.default_rng(t)), ALL_FEATURES)
        np.testing.assert_array_equal(f[: t + 1], other[: t + 1])
    norm = Normalizer.fit(f, names=ALL_FEATURES)
    for name in (*REGIME_FEATURES, "log_annual_vol"):
        assert norm.mean[at[name]] == 0 and norm.std[at[name]] == 1
    with pytest.raises(ValueError, match="unknown feature"):
        compute_features(m, ("z_1", "z_999"))
