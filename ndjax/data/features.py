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
calendar): their scale means the same for every asset, so a model trades symbols it was not trained on."""

_RETURN_LAGS = (1, 5, 20)
_PRICE_FEATURES = 5
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


def _asset_features(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Price features `(n, 5)` for one asset's own bar sequence of length n."""
    n = c.size
    out = np.zeros((n, _PRICE_FEATURES))
    logc = np.log(c)
    sigma = vol_forecast(np.r_[0.0, np.diff(logc)])
    before = np.r_[sigma[0], sigma[:-1]]  # the forecast each bar was made with
    for k, lag in enumerate(_RETURN_LAGS):
        if n > lag:
            out[lag:, k] = (logc[lag:] - logc[:-lag]) / (before[lag:] * np.sqrt(lag))
    out[:, 3] = np.log(sigma)
    out[:, 4] = (h - lo) / c / before
    return out


def compute_features(market: MarketData) -> np.ndarray:
    """Features `(T, N, F)` float32, NaN-free, in `FEATURE_NAMES` order; row t uses rows <= t only."""
    t, n = market.n_days, market.n_assets
    feats = np.zeros((t, n, len(FEATURE_NAMES)))
    rows = np.arange(t)
    for j in range(n):
        idx = np.flatnonzero(market.tradable[:, j] > 0)
        if idx.size == 0:
            continue
        own = _asset_features(*(x[idx, j] for x in (market.high, market.low, market.close)))
        pos = np.searchsorted(idx, rows, side="right") - 1  # last own bar at or before each row
        feats[:, j, :_PRICE_FEATURES] = np.where((pos >= 0)[:, None], own[pos.clip(min=0)], 0.0)
    dow = (market.dates.astype(np.int64) + 3) % 7
    angle = 2.0 * np.pi * dow / 7.0
    k = _PRICE_FEATURES
    feats[:, :, k] = np.sin(angle)[:, None]
    feats[:, :, k + 1] = np.cos(angle)[:, None]
    feats[:, :, k + 2] = market.is_crypto[None, :]
    feats[:, :, k + 3] = market.stock_tradable_next[:, None]
    feats[:, :, k + 4] = ((market.next_session_days - 1.0) / 3.0)[:, None]
    feats[:, :, k + 5] = market.tradable
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

        `passthrough` (names or indices) get mean 0, std 1; default `PASSTHROUGH_FEATURES` when the
        features follow `FEATURE_NAMES`. A std below 1e-8 is replaced by 1.
        """
        x = np.asarray(features, dtype=np.float64)
        f = x.shape[-1]
        if names is None and f == len(FEATURE_NAMES):
            names = FEATURE_NAMES
        if passthrough is None:
            passthrough = PASSTHROUGH_FEATURES if names is not None else ()
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
