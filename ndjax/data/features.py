"""Causal per-asset features from aligned daily bars, standardised by each asset's own vol forecast, and a
JSON-serialisable normaliser.

Row t of `compute_features` uses bars at rows <= t only (plus the exchange calendar, which is
scheduled in advance). Price/volume features are computed on each asset's own bar sequence
(its tradable rows) and carried forward over its non-tradable rows; before an asset's first bar
and during warm-up they are 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ndjax.data.calendar import asset_periods_per_year
from ndjax.data.market import MarketData

FEATURE_NAMES: tuple[str, ...] = (
    "z_1",  # log return of the last bar / the vol forecast made before it: the standardised return
    "z_5",  # log return over 5 bars / (that forecast x sqrt 5)
    "z_20",  # log return over 20 bars / (that forecast x sqrt 20)
    "log_vol",  # log of the vol forecast for the next bar
    "range_z",  # (high - low) / close of the last bar / that bar's forecast
    "dow_sin",  # sin(2 pi weekday / 7), Monday = 0
    "dow_cos",  # cos(2 pi weekday / 7)
    "is_crypto",  # 0/1
    "stock_tradable_next",  # 0/1: the next row is an XNYS session
    "next_session_days",  # (calendar days to next XNYS session - 1) / 3
    "tradable",  # 0/1: the asset has a bar today
)
REGIME_FEATURES: tuple[str, ...] = (
    "z_60",  # log return over 60 bars / (the forecast made before the last bar x sqrt 60)
    "z_120",  # the same over 120 bars
    "z_250",  # the same over 250 bars (a year of sessions): the trend a time-series momentum rule reads
    "drawdown_250",  # log(close / highest close of the last 250 bars) / (that forecast x sqrt 250), <= 0
    "vol_ratio",  # log(vol forecast / root mean square return of the last 250 bars): vol against its own norm
)
"""Longer horizons, for a policy that should see which regime it is in; in vol units (passthrough)."""
ANNUAL_VOL = "log_annual_vol"
"""Log of the vol forecast annualised (252 bars a year for a stock, 365 for crypto), left raw: what a risk-budget
head divides by (`PolicyConfig.vol_target`)."""
FEATURE_SETS: dict[str, tuple[str, ...]] = {"base": FEATURE_NAMES, "regime": FEATURE_NAMES + REGIME_FEATURES,
                                            "regime_vol": FEATURE_NAMES + REGIME_FEATURES + (ANNUAL_VOL,)}
"""The feature sets a policy can read (`PolicyConfig.features`), each a list of `ALL_FEATURES` names."""
ALL_FEATURES: tuple[str, ...] = FEATURE_SETS["regime_vol"]
PASSTHROUGH_FEATURES: tuple[str, ...] = (
    "z_1",
    "z_5",
    "z_20",
    "range_z",
    "dow_sin",
    "dow_cos",
    "is_crypto",
    "stock_tradable_next",
    "next_session_days",
    "tradable",
)
"""Features the `Normalizer` leaves as they are (already standardised by the vol forecast, bounded, categorical or
calendar): their scale means the same for every asset, so a model trades symbols it was not trained on. The
`REGIME_FEATURES` and `ANNUAL_VOL` are left as they are too."""

_RETURN_LAGS = (1, 5, 20)
_REGIME_LAGS = (60, 120, 250)
YEAR_BARS = 250
"""Bars behind the drawdown and the long-run vol of `REGIME_FEATURES`."""
_OWN_BAR_FEATURES = ("z_1", "z_5", "z_20", "log_vol", "range_z", *REGIME_FEATURES)
EWMA_DECAY = 0.94
"""RiskMetrics decay of the squared-return average behind the vol forecast."""
EWMA_WARMUP = 20
"""Returns averaged with equal weights before the decay takes over."""
DEFAULT_VOL = 0.02
"""Forecast of an asset at its first bar (no return seen yet)."""
MIN_VOL = 1e-4
"""Floor of the forecast, so a run of unchanged closes cannot divide by zero."""


def vol_forecast(logret: np.ndarray) -> np.ndarray:
    """Causal vol forecasts `(n,)` of one asset's log returns `(n,)` (`logret[0]` = 0: no bar before it):
    `out[k]` forecasts bar k+1 at the close of bar k, from returns up to k only: `DEFAULT_VOL` before any
    return is seen, an equal-weight mean of squares over the first `EWMA_WARMUP` returns, then an EWMA with
    `EWMA_DECAY`; never below `MIN_VOL`."""
    out = np.full(logret.size, DEFAULT_VOL)
    s2 = 0.0
    for k in range(1, logret.size):
        r2 = logret[k] ** 2
        s2 = r2 if k == 1 else (s2 + (r2 - s2) / k if k <= EWMA_WARMUP else EWMA_DECAY * s2 + (1 - EWMA_DECAY) * r2)
        out[k] = np.sqrt(s2)
    return np.maximum(out, MIN_VOL)


def _trailing_max(x: np.ndarray, width: int) -> np.ndarray:
    """Max of `x[max(k - width + 1, 0) .. k]` for every k.  (n,) -> (n,)"""
    pad = np.r_[np.full(width - 1, -np.inf), x]
    return np.lib.stride_tricks.sliding_window_view(pad, width).max(axis=1)


def _asset_features(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Own-bar features `(n, len(_OWN_BAR_FEATURES))` for one asset's own bar sequence of length n."""
    n = c.size
    out = np.zeros((n, len(_OWN_BAR_FEATURES)))
    col = {name: k for k, name in enumerate(_OWN_BAR_FEATURES)}
    logc = np.log(c)
    logret = np.r_[0.0, np.diff(logc)]
    sigma = vol_forecast(logret)
    before = np.r_[sigma[0], sigma[:-1]]  # the forecast each bar was made with
    for lag in _RETURN_LAGS + _REGIME_LAGS:
        if n > lag:
            out[lag:, col[f"z_{lag}"]] = (logc[lag:] - logc[:-lag]) / (before[lag:] * np.sqrt(lag))
    out[:, col["log_vol"]] = np.log(sigma)
    out[:, col["range_z"]] = (h - lo) / c / before
    out[:, col["drawdown_250"]] = (logc - _trailing_max(logc, YEAR_BARS)) / (before * np.sqrt(YEAR_BARS))
    seen = np.minimum(np.arange(n), YEAR_BARS)  # returns inside the last YEAR_BARS bars (none at bar 0)
    sq = np.cumsum(logret**2)
    long_run = np.sqrt((sq - np.r_[np.zeros(YEAR_BARS), sq[:-YEAR_BARS]][:n]) / np.maximum(seen, 1))
    out[:, col["vol_ratio"]] = np.where(seen >= EWMA_WARMUP, np.log(sigma / np.maximum(long_run, MIN_VOL)), 0.0)
    return out


def compute_features(market: MarketData, names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """Features `(T, N, len(names))` float32, NaN-free, in the order of `names` (a subset of `ALL_FEATURES`,
    default `FEATURE_NAMES`); row t uses rows <= t only."""
    unknown = [x for x in names if x not in ALL_FEATURES]
    if unknown:
        raise ValueError(f"compute_features: unknown feature(s) {unknown}; known: {', '.join(ALL_FEATURES)}")
    t, n = market.n_days, market.n_assets
    own = np.zeros((t, n, len(_OWN_BAR_FEATURES)))
    rows = np.arange(t)
    for j in range(n):
        idx = np.flatnonzero(market.tradable[:, j] > 0)
        if idx.size == 0:
            continue
        bars = _asset_features(*(x[idx, j] for x in (market.high, market.low, market.close)))
        pos = np.searchsorted(idx, rows, side="right") - 1  # last own bar at or before each row
        own[:, j] = np.where((pos >= 0)[:, None], bars[pos.clip(min=0)], 0.0)
    angle = 2.0 * np.pi * ((market.dates.astype(np.int64) + 3) % 7) / 7.0
    shared = {
        "dow_sin": np.sin(angle)[:, None],
        "dow_cos": np.cos(angle)[:, None],
        "is_crypto": market.is_crypto[None, :],
        "stock_tradable_next": market.stock_tradable_next[:, None],
        "next_session_days": ((market.next_session_days - 1.0) / 3.0)[:, None],
        "tradable": market.tradable,
        ANNUAL_VOL: np.where(np.maximum.accumulate(market.tradable > 0, axis=0),
                             own[:, :, _OWN_BAR_FEATURES.index("log_vol")]
                             + 0.5 * np.log(asset_periods_per_year(market.is_crypto))[None, :], 0.0),
    }
    feats = np.zeros((t, n, len(names)))
    for k, name in enumerate(names):
        feats[:, :, k] = own[:, :, _OWN_BAR_FEATURES.index(name)] if name in _OWN_BAR_FEATURES else shared[name]
    return np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Normalizer:
    """Per-feature standardisation `clip((x - mean) / std)`; `mean, std (F,)`, passthrough features have 0/1."""

    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)
    clip: float | None = 10.0
    names: tuple[str, ...] | None = None

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        passthrough: Sequence[str | int] | None = None,
        clip: float | None = 10.0,
        names: Sequence[str] | None = None,
    ) -> Normalizer:
        """Fit on `features (..., F)` (the training split only), over entries where `mask (...)` is nonzero.

        `passthrough` (names or indices) get mean 0, std 1; default `PASSTHROUGH_FEATURES`,
        `REGIME_FEATURES` and `ANNUAL_VOL` when the features follow a `FEATURE_SETS` list (`names`, or found by the
        width). A std below 1e-8 is replaced by 1.
        """
        x = np.asarray(features, dtype=np.float64)
        f = x.shape[-1]
        if names is None:
            names = next((v for v in FEATURE_SETS.values() if len(v) == f), None)
        if passthrough is None:
            raw = (*PASSTHROUGH_FEATURES, *REGIME_FEATURES, ANNUAL_VOL)
            passthrough = [x for x in raw if x in names] if names is not None else ()
        flat = x.reshape(-1, f)
        if mask is not None:
            m = np.broadcast_to(np.asarray(mask), x.shape[:-1]).reshape(-1) > 0
            flat = flat[m]
        if flat.shape[0] == 0:
            raise ValueError("Normalizer.fit: no entries selected by mask")
        mean, std = flat.mean(axis=0), flat.std(axis=0)
        std = np.where(std < 1e-8, 1.0, std)
        for p in passthrough:
            i = p if isinstance(p, (int, np.integer)) else list(names or ()).index(p)
            mean[i], std[i] = 0.0, 1.0
        return cls(mean=mean, std=std, clip=clip, names=None if names is None else tuple(names))

    def apply(self, features: Any) -> Any:
        """Normalised `features (..., F)` as float32 (numpy in, numpy out; jax arrays also work)."""
        z = (features - self.mean.astype(np.float32)) / self.std.astype(np.float32)
        if self.clip is not None:
            z = z.clip(-self.clip, self.clip)
        return z.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "clip": self.clip,
            "names": None if self.names is None else list(self.names),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normalizer:
        """Inverse of `to_dict`."""
        mean, std = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64)
        if mean.shape != std.shape or mean.ndim != 1:
            raise ValueError(f"Normalizer.from_dict: mean {mean.shape} and std {std.shape} must be equal 1-D shapes")
        names = d.get("names")
        return cls(mean=mean, std=std, clip=d.get("clip"), names=None if names is None else tuple(names))
