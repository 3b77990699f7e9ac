"""Tests for ndjax.synthetic: determinism, OHLC consistency, calendars and the planted signal."""

from __future__ import annotations

import numpy as np
import pytest

from ndjax.data.calendar import is_xnys_session
from ndjax.data.features import FEATURE_NAMES, compute_features
from ndjax.data.synthetic import synthetic_market


def test_deterministic_per_seed() -> None:
    a, b, c = synthetic_market(7), synthetic_market(7), synthetic_market(8)
    for k in ("open", "high", "low", "close", "volume", "tradable"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert not np.array_equal(a.close, c.close)


def test_shapes_symbols_and_ohlc_consistency() -> None:
    m = synthetic_market(1, n_stocks=3, n_crypto=2, n_days=400)
    assert m.symbols == ("STK0", "STK1", "STK2", "CRY0-USD", "CRY1-USD")
    assert m.is_crypto.tolist() == [False, False, False, True, True] and m.periods_per_year == 365
    assert m.close.shape == (400, 5)
    assert np.all(m.low <= np.minimum(m.open, m.close)) and np.all(np.maximum(m.open, m.close) <= m.high)
    assert np.all(m.low > 0) and np.all(np.isfinite(m.high))
    live = m.tradable > 0
    assert np.all(m.volume[live] > 0) and np.all(m.volume[~live] == 0)


def test_calendars() -> None:
    m = synthetic_market(0, n_days=30, start="2024-06-24")
    np.testing.assert_array_equal(m.dates, np.datetime64("2024-06-24") + np.arange(30))
    np.testing.assert_array_equal(m.days_elapsed, 1)
    sessions = is_xnys_session(m.dates)
    assert not sessions[np.flatnonzero(m.dates == np.datetime64("2024-07-04"))[0]]
    np.testing.assert_array_equal(m.tradable[:, :4], np.repeat(sessions[:, None], 4, axis=1).astype(float))
    np.testing.assert_array_equal(m.tradable[:, 4:], 1)
    s = synthetic_market(0, n_stocks=2, n_crypto=0, n_days=30, start="2024-06-24")
    assert s.periods_per_year == 252 and np.all(s.tradable == 1)
    assert s.n_days == int(sessions.sum()) and s.days_elapsed.max() == 3


def standardized_lag1_corr(m, j: int) -> float:
    """Lag-1 autocorrelation of an asset's own-bar returns divided by a trailing 20-bar vol estimate."""
    idx = np.flatnonzero(m.tradable[:, j])
    r = np.diff(np.log(m.close[idx, j]))
    vol = np.sqrt(np.convolve(r**2, np.ones(20) / 20, mode="valid"))[:-1]  # bars t-20..t-1
    z = r[20:] / vol
    return float(np.corrcoef(z[1:], z[:-1])[0, 1])


@pytest.mark.parametrize("strength", [0.0, 0.25, -0.25])
def test_planted_signal_is_measurable(strength: float) -> None:
    m = synthetic_market(11, n_stocks=2, n_crypto=2, n_days=6000, signal_strength=strength)
    corrs = [standardized_lag1_corr(m, j) for j in range(4)]
    assert np.mean(corrs) == pytest.approx(strength, abs=0.06)
    # and it is visible through the standardised 1-day return feature at consecutive own bars
    f = compute_features(m)[:, :, FEATURE_NAMES.index("z_1")]
    j = 3
    x = f[:, j][40:]
    assert np.sign(np.corrcoef(x[1:], x[:-1])[0, 1]) == np.sign(strength) or strength == 0


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        synthetic_market(signal_strength=1.0)
    with pytest.raises(ValueError):
        synthetic_market(df=2.0)
    with pytest.raises(ValueError):
        synthetic_market(n_stocks=0, n_crypto=0)


@pytest.mark.parametrize("strength", [0.3, -0.3, 0.0])
def test_truth_predicts_the_next_bar_as_planted(strength: float) -> None:
    """The truth's sign agrees with each asset's next realised log return above chance when a signal is planted
    (about 60 % at |0.3|, over ~5,000 bars: chance is 50 +- 0.7 %), and at chance without one (with a drift, so
    the truth is a constant that predicts the base rate of up days only)."""
    from ndjax.data.synthetic import synthetic_market_with_truth

    drift = 0.0 if strength else 0.0005
    m, truth = synthetic_market_with_truth(4, n_days=1100, signal_strength=strength, drift=drift)
    agree, base, n = 0, 0, 0
    for j in range(m.n_assets):
        rows = np.flatnonzero(m.tradable[:, j] > 0)
        realised = np.diff(np.log(m.close[rows, j]))
        predicted = truth.expected_log_return[rows[:-1], j]
        agree += int(np.sum(np.sign(predicted) == np.sign(realised)))
        base += int(np.sum(realised > 0))
        n += realised.size
    rate, chance = agree / n, base / n
    if strength:
        assert rate > 0.57, rate
    else:
        np.testing.assert_allclose(truth.expected_log_return, drift)
        assert abs(rate - chance) < 1e-9 and abs(chance - 0.5) < 0.03, (rate, chance)
    assert np.all(truth.vol > 0) and truth.vol.shape == m.close.shape
