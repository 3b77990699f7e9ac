"""Causal per-asset features from aligned daily bars, and a JSON-serialisable normaliser.

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
from numpy.lib.stride_tricks import sliding_window_view

from ndjax.data.market import MarketData

FEATURE_NAMES: tuple[str, ...] = (
    "logret_1",  # log(close / close 1 bar earlier)
    "logret_5",  # log(close / close 5 bars earlier)
    "logret_20",  # log(close / close 20 bars earlier)
    "range_pct",  # (high - low) / close
    "atr_pct_14",  # mean true range of the last 14 bars / close
    "volume_z_20",  # z-score of log1p(volume) within the last 20 bars
    "dow_sin",  # sin(2 pi weekday / 7), Monday = 0
    "dow_cos",  # cos(2 pi weekday / 7)
    "is_crypto",  # 0/1
    "stock_tradable_next",  # 0/1: the next row is an XNYS session
    "next_session_days",  # (calendar days to next XNYS session - 1) / 3
    "tradable",  # 0/1: the asset has a bar today
)
PASSTHROUGH_FEATURES: tuple[str, ...] = (
    "dow_sin",
    "dow_cos",
    "is_crypto",
    "stock_tradable_next",
    "next_session_days",
    "tradable",
)
"""Features the `Normalizer` leaves as they are (already bounded, categorical or calendar)."""

_RETURN_LAGS = (1, 5, 20)
_ATR_WINDOW = 14
_VOLUME_WINDOW = 20


def _asset_features(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Price/volume features `(n, 6)` for one asset's own bar sequence of length n."""
    n = c.size
    out = np.zeros((n, 6))
    logc = np.log(c)
    for k, lag in enumerate(_RETURN_LAGS):
        if n > lag:
            out[lag:, k] = logc[lag:] - logc[:-lag]
    out[:, 3] = (h - lo) / c
    prev = np.r_[c[0], c[:-1]]
    tr = np.maximum(h, prev) - np.minimum(lo, prev)
    tr[0] = h[0] - lo[0]
    if n >= _ATR_WINDOW:
        out[_ATR_WINDOW - 1 :, 4] = sliding_window_view(tr, _ATR_WINDOW).mean(axis=-1) / c[_ATR_WINDOW - 1 :]
    if n >= _VOLUME_WINDOW:
        w = sliding_window_view(np.log1p(v), _VOLUME_WINDOW)
        mean, std = w.mean(axis=-1), w.std(axis=-1)
        last = w[:, -1]
        ok = std > 1e-12
        out[_VOLUME_WINDOW - 1 :, 5] = np.where(ok, (last - mean) / np.where(ok, std, 1.0), 0.0)
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
        own = _asset_features(*(x[idx, j] for x in (market.open, market.high, market.low, market.close, market.volume)))
        pos = np.searchsorted(idx, rows, side="right") - 1  # last own bar at or before each row
        feats[:, j, :6] = np.where((pos >= 0)[:, None], own[pos.clip(min=0)], 0.0)
    dow = (market.dates.astype(np.int64) + 3) % 7
    angle = 2.0 * np.pi * dow / 7.0
    feats[:, :, 6] = np.sin(angle)[:, None]
    feats[:, :, 7] = np.cos(angle)[:, None]
    feats[:, :, 8] = market.is_crypto[None, :]
    feats[:, :, 9] = market.stock_tradable_next[:, None]
    feats[:, :, 10] = ((market.next_session_days - 1.0) / 3.0)[:, None]
    feats[:, :, 11] = market.tradable
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
