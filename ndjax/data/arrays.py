"""Device arrays of a market: normalised features and bars, as the policy and the transition consume them.

`prepare(market, train_rows)` is the one path from a `MarketData` to `MarketArrays`: features computed
causally, normalised with statistics of the training rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ndjax.data.calendar import CRYPTO_PERIODS_PER_YEAR, STOCK_PERIODS_PER_YEAR
from ndjax.data.features import FEATURE_NAMES, Normalizer, compute_features
from ndjax.data.market import MarketData
from ndjax.dynamics import Bar


@struct.dataclass
class MarketArrays:
    """Device arrays of one period: features `(T, N, F)` (normalised), bars `(T, N)`, `days_elapsed (T,)`,
    `valid (T, N)` (the asset has data at or before t) and `is_crypto (N,)`."""

    features: jax.Array
    high: jax.Array
    low: jax.Array
    close: jax.Array
    tradable: jax.Array
    days_elapsed: jax.Array
    valid: jax.Array
    is_crypto: jax.Array
    open: jax.Array | None = None
    volume: jax.Array | None = None

    @property
    def n_days(self) -> int:
        return self.close.shape[0]

    def rows(self, start: int, stop: int) -> MarketArrays:
        """Rows `start:stop` of the time axis (static bounds)."""
        return jax.tree_util.tree_map(lambda x: x[start:stop], self.replace(is_crypto=None)).replace(
            is_crypto=self.is_crypto)

    def bars(self) -> Bar:
        """The bars `(T, N)` as the transition reads them."""
        return Bar(high=self.high, low=self.low, close=self.close, tradable=self.tradable,
                   days_elapsed=self.days_elapsed, open=self.open, volume=self.volume)

    def window(self, start: jax.Array, length: int, assets: jax.Array) -> MarketArrays:
        """Rows `start .. start+length-1` (traced start, static length) of the assets `assets (K,)`."""
        per_asset = lambda x: None if x is None else jax.lax.dynamic_slice_in_dim(x, start, length, 0)[:, assets]  # noqa: E731
        return MarketArrays(
            features=per_asset(self.features), high=per_asset(self.high), low=per_asset(self.low),
            close=per_asset(self.close), tradable=per_asset(self.tradable),
            days_elapsed=jax.lax.dynamic_slice_in_dim(self.days_elapsed, start, length, 0),
            valid=per_asset(self.valid), is_crypto=self.is_crypto[assets], open=per_asset(self.open),
            volume=per_asset(self.volume),
        )


def sample_window(arrays: MarketArrays, key: jax.Array, length: int, n_assets: int) -> MarketArrays:
    """A uniformly random window of `length` rows over a uniformly random subset of `n_assets` assets (in a random
    order: the policy is permutation-equivariant, so the order carries no information)."""
    k_start, k_assets = jax.random.split(key)
    T, N = arrays.close.shape
    start = jax.random.randint(k_start, (), 0, T - length + 1)
    return arrays.window(start, length, jax.random.permutation(k_assets, N)[:n_assets])


def _grown(arrays: MarketArrays, log_drift: jax.Array) -> MarketArrays:
    """The same bars with each asset's prices scaled by `exp(log_drift k)` after its k-th bar (`log_drift (N,)` per
    bar); untradable rows carry the scale of the bar before them. Features are left as they are."""
    listed_before = jnp.concatenate([jnp.zeros_like(arrays.valid[:1]), arrays.valid[:-1]])
    bar = (arrays.tradable > 0) & arrays.valid & listed_before
    scale = jnp.exp(log_drift * jnp.cumsum(bar, axis=0))
    times = lambda x: None if x is None else x * scale  # noqa: E731
    return arrays.replace(high=times(arrays.high), low=times(arrays.low), close=times(arrays.close),
                          open=times(arrays.open))


def drift_free(arrays: MarketArrays) -> MarketArrays:
    """The same bars with each asset's average growth taken out: prices scaled by `exp(-d k)` after the asset's
    k-th bar, `d = mean + var / 2` of its bar-to-bar log returns, so its mean simple return is about zero. Training
    on drift-free bars gives no credit for holding what happened to rise over the training days, only for what the
    features predict. Features are left as they are. Shapes as `arrays`."""
    close = arrays.close
    prev = jnp.concatenate([close[:1], close[:-1]])
    listed_before = jnp.concatenate([jnp.zeros_like(arrays.valid[:1]), arrays.valid[:-1]])
    bar = (arrays.tradable > 0) & arrays.valid & listed_before
    r = jnp.where(bar, jnp.log(close / prev), 0.0)
    n = jnp.maximum(bar.sum(0), 1)
    mean = r.sum(0) / n
    var = jnp.where(bar, (r - mean) ** 2, 0.0).sum(0) / n
    return _grown(arrays, -(mean + 0.5 * var))


def drifted(arrays: MarketArrays, annual_drift: jax.Array) -> MarketArrays:
    """The same bars with an extra log growth of `annual_drift (N,)` a year on each asset (spread over its own bars:
    252 a year for a stock, 365 for crypto). Drift augmentation draws one per training window, so that holding
    what happened to rise does not always pay. Features are left as they are. Shapes as `arrays`."""
    bars_per_year = jnp.where(arrays.is_crypto, CRYPTO_PERIODS_PER_YEAR, STOCK_PERIODS_PER_YEAR)
    return _grown(arrays, annual_drift / bars_per_year)


def market_arrays(market: MarketData, features: np.ndarray, dtype: Any = jnp.float32) -> MarketArrays:
    """`MarketArrays` from a `MarketData` and its normalised features `(T, N, F)`."""
    tradable = np.asarray(market.tradable, np.float64)
    listed = np.maximum.accumulate(tradable > 0, axis=0)
    return MarketArrays(
        features=jnp.asarray(features, dtype), high=jnp.asarray(market.high, dtype), low=jnp.asarray(market.low, dtype),
        close=jnp.asarray(market.close, dtype), tradable=jnp.asarray(tradable, dtype),
        days_elapsed=jnp.asarray(market.days_elapsed, dtype), valid=jnp.asarray(listed),
        is_crypto=jnp.asarray(market.is_crypto, bool), open=jnp.asarray(market.open, dtype),
        volume=jnp.asarray(market.volume, dtype),
    )


def prepare(market: MarketData, train_rows: int, normalizer: Normalizer | None = None,
            names: Sequence[str] = FEATURE_NAMES) -> tuple[Normalizer, MarketArrays]:
    """The features `names` of every row normalised with statistics of the first `train_rows` rows only (or with a
    stored `normalizer`, whose own names are read), as device arrays."""
    names = (normalizer.names or FEATURE_NAMES) if normalizer is not None else tuple(names)
    raw = compute_features(market, names)
    normalizer = normalizer or Normalizer.fit(raw[:train_rows], names=names)
    return normalizer, market_arrays(market, normalizer.apply(raw))


def context_split(arrays: MarketArrays, start: int, stop: int, context: int) -> MarketArrays:
    """Rows `start:stop` with `context` rows of encoder context before `start` (clipped at row 0); `context` is
    `PolicyConfig.context`, the rows a decision reads."""
    return arrays.rows(max(start - context, 0), stop)
