"""Synthetic daily markets with known statistical structure, as `MarketData`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ndjax.data.calendar import is_xnys_session, to_day
from ndjax.data.market import AssetSeries, MarketData, align
from ndjax.errors import ConfigError


def _student_t(rng: np.random.Generator, df: float, size: tuple[int, ...]) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(df, size=size) * np.sqrt((df - 2.0) / df)


def _bridge_extremes(
    rng: np.random.Generator, logo: np.ndarray, logc: np.ndarray, sigma: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Max and min `(D, N)` of a Brownian bridge from `logo` to `logc` with `steps` steps and day vol `sigma`.

    High and low are the extremes of one continuous intraday path through open and close, so a
    limit order that touches them buys or sells at a price the path really traded at, and the
    close is no more likely to lie above a touched buy limit than a martingale allows.
    """
    k = np.arange(steps + 1) / steps
    walk = np.concatenate([np.zeros(logo.shape + (1,)), np.cumsum(rng.standard_normal(logo.shape + (steps,)), -1)], -1)
    bridge = (walk - k * walk[..., -1:]) / np.sqrt(steps)
    path = logo[..., None] + k * (logc - logo)[..., None] + sigma[..., None] * bridge
    return path.max(-1), path.min(-1)


@dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """What the generator knows at each close: for row t and asset i, the conditional mean and standard deviation
    of the log return of the asset's next bar (its next session for a stock), given everything up to row t.
    Both `(T, N)`, aligned with the market's rows."""

    expected_log_return: np.ndarray
    vol: np.ndarray

    def expected_return(self) -> np.ndarray:
        """Conditional mean of the simple return `E[exp(r)] - 1`, with the lognormal correction.  (T, N)"""
        return np.expm1(self.expected_log_return + 0.5 * self.vol**2)


def synthetic_market(seed: int = 0, **options: Any) -> MarketData:
    """The market of `synthetic_market_with_truth(seed, **options)`, without its truth."""
    return synthetic_market_with_truth(seed, **options)[0]


def synthetic_market_with_truth(
    seed: int = 0,
    *,
    n_stocks: int = 4,
    n_crypto: int = 2,
    n_days: int = 750,
    start: str = "2021-01-04",
    signal_strength: float = 0.0,
    stock_vol: float = 0.02,
    crypto_vol: float = 0.04,
    market_beta: float = 0.5,
    df: float = 4.0,
    garch_alpha: float = 0.08,
    garch_beta: float = 0.90,
    drift: float = 0.0,
    intraday_steps: int = 24,
) -> tuple[MarketData, SyntheticTruth]:
    """A deterministic (per `seed`) market over `n_days` calendar days from `start`.

    Stocks `STK0..` have bars on XNYS sessions only, crypto `CRY0-USD..` every calendar day; the
    aligned calendar is their union (every day if `n_crypto > 0`). For each asset, bar by bar
    (its own bars, index t):

        r_t     = log(close_t / close_{t-1}) = drift + sigma_t * y_t
        y_t     = s * y_{t-1} + sqrt(1 - s^2) * eps_t,            s = signal_strength, y_{-1} = 0
        eps_t   = b * F_t + sqrt(1 - b^2) * e_t,                  b = market_beta
        sigma_t^2 = w + garch_alpha * sigma_{t-1}^2 * eps_{t-1}^2 + garch_beta * sigma_{t-1}^2,
        w = vol^2 * (1 - garch_alpha - garch_beta)                (vol = stock_vol or crypto_vol)

    `e_t` are unit-variance Student-t(`df`) draws; `F_t` is the common market factor: unit-variance
    Student-t draws per calendar day, summed over the days since the asset's previous bar and
    divided by sqrt(that count). So y = r / sigma (the standardized return) is AR(1) with lag-1
    autocorrelation exactly s, and E[r_t | past] = drift + s * sigma_t * y_{t-1}; s = 0 makes
    returns unpredictable from the past. Stocks open at close_{t-1} * exp(0.25 sigma_t g) (g normal),
    crypto at close_{t-1}; high/low are the max/min of a Brownian bridge from open to close
    (`intraday_steps` steps, volatility sigma_t over the day), so wicks are real path extremes;
    volume = base * exp(0.3 normal + 0.5 |eps_t|) > 0. Starting closes are 100 (stocks), 1000 (crypto).

    The truth: row t holds `E[r | past] = drift + s sigma y` and `std[r | past] = sigma sqrt(1 - s^2)` of each
    asset's next bar, with sigma and y as they stand after row t.
    """
    if not -1.0 < signal_strength < 1.0:
        raise ConfigError(f"signal_strength must be in (-1, 1), got {signal_strength}")
    if df <= 2.0:
        raise ConfigError(f"df must be > 2 for unit-variance Student-t, got {df}")
    if garch_alpha < 0 or garch_beta < 0 or garch_alpha + garch_beta >= 1.0:
        raise ConfigError("need garch_alpha, garch_beta >= 0 and garch_alpha + garch_beta < 1")
    if n_stocks < 0 or n_crypto < 0 or n_stocks + n_crypto == 0:
        raise ConfigError("need at least one asset")
    n = n_stocks + n_crypto
    days = to_day(start) + np.arange(n_days)
    is_crypto = np.r_[np.zeros(n_stocks, bool), np.ones(n_crypto, bool)]
    has_bar = np.where(is_crypto[None, :], True, is_xnys_session(days)[:, None])  # (D, N)

    rng = np.random.default_rng(seed)
    factor = _student_t(rng, df, (n_days,))
    idio = _student_t(rng, df, (n_days, n))
    gap, up, down, vnoise = rng.standard_normal((4, n_days, n))

    vol = np.where(is_crypto, crypto_vol, stock_vol)
    omega = vol**2 * (1.0 - garch_alpha - garch_beta)
    s, b = signal_strength, market_beta
    sigma2, y, logc = vol**2, np.zeros(n), np.log(np.where(is_crypto, 1000.0, 100.0))
    f_sum, f_cnt = np.zeros(n), np.zeros(n)
    out = np.zeros((6, n_days, n))  # open, high, low, close, |eps|, sigma (log prices for the first four)
    truth = np.zeros((2, n_days, n))  # conditional mean and std of the next bar's log return, after day d
    for d in range(n_days):
        act = has_bar[d]
        f_sum += factor[d]
        f_cnt += 1.0
        sigma = np.sqrt(sigma2)
        eps = b * f_sum / np.sqrt(f_cnt) + np.sqrt(1.0 - b * b) * idio[d]
        y_new = s * y + np.sqrt(1.0 - s * s) * eps
        logc_new = logc + drift + sigma * y_new
        logo = logc + np.where(is_crypto, 0.0, 0.25 * sigma * gap[d])
        out[0, d] = logo
        out[3, d] = logc_new
        out[4, d] = np.abs(eps)
        out[5, d] = sigma
        y = np.where(act, y_new, y)
        logc = np.where(act, logc_new, logc)
        sigma2 = np.where(act, omega + (garch_alpha * eps * eps + garch_beta) * sigma2, sigma2)
        f_sum = np.where(act, 0.0, f_sum)
        f_cnt = np.where(act, 0.0, f_cnt)
        truth[0, d] = drift + s * np.sqrt(sigma2) * y
        truth[1, d] = np.sqrt(sigma2 * (1.0 - s * s))
    out[1], out[2] = _bridge_extremes(rng, out[0], out[3], out[5], intraday_steps)
    ohlc = np.exp(out[:4])
    base = np.where(is_crypto, 1e4, 1e6)
    volume = base * np.exp(0.3 * vnoise + 0.5 * out[4])
    symbols = [f"STK{i}" for i in range(n_stocks)] + [f"CRY{i}-USD" for i in range(n_crypto)]
    series = []
    for j in range(n):
        rows = np.flatnonzero(has_bar[:, j])
        series.append(AssetSeries(days[rows], *(ohlc[k, rows, j] for k in range(4)), volume[rows, j]))
    market = align(symbols, series, is_crypto)
    at = np.searchsorted(days, market.dates)
    return market, SyntheticTruth(expected_log_return=truth[0, at], vol=truth[1, at])
