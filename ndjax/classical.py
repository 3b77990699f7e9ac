"""Classical rules run through the same transition as a policy: time-series momentum with volatility targeting
(`trend`) and inverse-volatility weights (`inverse_vol`).

Both are target weights computed at each close from that close and earlier ones only (`classical_targets`,
host NumPy, `(T, N)`), held with a no-trade band and turned into limit orders at the previous close by
`targets.target_action`, so they pay the same fees, interest and margin calls and meet the same caps as a
policy. Their parameters were fixed from the literature before any walk-forward fold was run:

- `trend`, after Moskowitz, Ooi and Pedersen (2012), "Time series momentum", JFE 104(2): an asset is held when
  its trailing 12-month return is positive (their k = 12 look-back, *without* skipping the last month, as in
  their TSMOM factor), long-only (no shorting here), at weight `target_vol / (n sigma_i)` with `n` the assets
  that have 12 months of history at that close and `sigma_i` the asset's annualised volatility forecast;
  `target_vol` = 15 %/yr (per-asset 40 % in the paper, scaled so an average book runs near 15 %). The book is
  then scaled down together to fit the one-pool initial-margin budget (`targets.project_budget`).
- `inverse_vol`: weights proportional to `1 / sigma_i` over the assets with a bar, summing to 1 (1x gross), the
  naive risk-parity book (e.g. Maillard, Roncalli and Teiletche 2010, the equal-correlation case).
- `sigma_i`: the RiskMetrics (J.P. Morgan 1996) EWMA forecast with decay 0.94, the same one the features use
  (`features.vol_forecast`, on each asset's own bars), annualised with 252 bars a year for a stock and 365 for
  crypto.
- No-trade band: an asset trades back to its target only when its weight is more than `BAND` (25 %) of
  `max(target, held)` away from it; entering (from 0) and leaving (to 0) always trade.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.data.calendar import asset_periods_per_year
from ndjax.data.features import vol_forecast
from ndjax.data.market import MarketData
from ndjax.dynamics import Action, Bar, MarketParams, StepInfo, init_state
from ndjax.observation import Observation
from ndjax.sim import rollout
from ndjax.targets import banded, project_budget, target_action

TARGET_VOL = 0.15
"""Annualised volatility target of `trend`."""
LOOKBACK_DAYS = 365
"""Calendar days of the trend look-back (12 months, the last month included)."""
BAND = 0.25
"""Relative no-trade band of both rules (`targets.banded`)."""
CLASSICAL = ("trend", "inverse_vol")


def _own_rows(market: MarketData, j: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows with a bar of asset j, and for every row the index (into those) of its last bar at or before it
    (-1 before the first)."""
    idx = np.flatnonzero(market.tradable[:, j] > 0)
    return idx, np.searchsorted(idx, np.arange(market.n_days), side="right") - 1


def annual_vol(market: MarketData) -> np.ndarray:
    """Annualised EWMA vol forecasts `(T, N)` made at each row's close from bars at or before it (NaN before an
    asset's first bar)."""
    out = np.full(market.close.shape, np.nan)
    per_year = asset_periods_per_year(market.is_crypto)
    for j in range(market.n_assets):
        idx, pos = _own_rows(market, j)
        if idx.size == 0:
            continue
        c = market.close[idx, j].astype(np.float64)
        sigma = vol_forecast(np.r_[0.0, np.diff(np.log(c))])
        out[:, j] = np.where(pos >= 0, sigma[pos.clip(min=0)] * np.sqrt(per_year[j]), np.nan)
    return out


def trailing_return(market: MarketData, days: int = LOOKBACK_DAYS) -> np.ndarray:
    """Return `(T, N)` from each asset's last close at or before `date - days` to its last close at or before each
    row (NaN where the asset has no bar that old)."""
    out = np.full(market.close.shape, np.nan)
    back = np.searchsorted(market.dates, market.dates - np.timedelta64(days, "D"), side="right") - 1
    for j in range(market.n_assets):
        idx, pos = _own_rows(market, j)
        if idx.size == 0:
            continue
        then = np.where(back >= 0, pos[back.clip(min=0)], -1)
        ok = (then >= 0) & (pos >= 0)
        c = market.close[idx, j].astype(np.float64)
        out[:, j] = np.where(ok, c[pos.clip(min=0)] / c[then.clip(min=0)] - 1.0, np.nan)
    return out


def trend_targets(market: MarketData, target_vol: float = TARGET_VOL, days: int = LOOKBACK_DAYS,
                  vol: np.ndarray | None = None) -> np.ndarray:
    """`trend` target weights `(T, N)` before the margin budget: `target_vol / (n sigma)` where the trailing return
    is positive, 0 elsewhere; `n` the assets with a defined trailing return at that row. `vol`: `annual_vol(market)`
    when the caller has it."""
    ret, vol = trailing_return(market, days), annual_vol(market) if vol is None else vol
    known = np.isfinite(ret) & np.isfinite(vol)
    n = np.maximum(known.sum(axis=1, keepdims=True), 1)
    return np.where(known & (np.nan_to_num(ret) > 0), target_vol / (n * np.where(known, vol, 1.0)), 0.0)


def inverse_vol_targets(market: MarketData, vol: np.ndarray | None = None) -> np.ndarray:
    """`inverse_vol` target weights `(T, N)`: `1/sigma` over the assets with a bar at or before the row, summing
    to 1 (all 0 before any asset has one). `vol`: `annual_vol(market)` when the caller has it."""
    vol = annual_vol(market) if vol is None else vol
    inv = np.where(np.isfinite(vol), 1.0 / np.where(np.isfinite(vol), vol, 1.0), 0.0)
    total = inv.sum(axis=1, keepdims=True)
    return np.where(total > 0, inv / np.where(total > 0, total, 1.0), 0.0)


def classical_targets(market: MarketData, target_vol: float = TARGET_VOL) -> dict[str, np.ndarray]:
    """Both rules' target weights `(T, N)` float32, row t from closes at rows <= t."""
    vol = annual_vol(market)  # one EWMA pass over every asset, shared by both rules
    return {"trend": trend_targets(market, target_vol, vol=vol).astype(np.float32),
            "inverse_vol": inverse_vol_targets(market, vol).astype(np.float32)}


def target_policy(_params: None, obs: Observation) -> Action:
    """Orders toward the target weights in `obs.market (..., N)` (within the margin budget), with the band."""
    target = project_budget(jnp.maximum(obs.market, 0.0), obs.margin_rate)
    return target_action(banded(target, obs.book[..., 0], BAND), obs, obs.margin_rate, obs.maker_fee)


@jax.jit
def run_targets(params: MarketParams, bars: Bar, targets: dict[str, jax.Array],
                initial_cash: jax.Array) -> dict[str, StepInfo]:
    """Each rule of `targets` (name -> weights `(T, N)`, row t decided at the close of `bars` row t) over
    `bars (T, N)`, starting flat at the close of row 0 (T-1 steps each)."""
    state0 = init_state(initial_cash, bars.close[0])
    return {name: rollout(params, target_policy, None, state0, w, bars)[1][1] for name, w in targets.items()}
