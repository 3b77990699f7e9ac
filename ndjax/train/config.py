"""Training configuration: the static `TrainConfig` (shapes and modes) and the traced `HParams` (numbers that
sweeps vmap over), and the transition's `MarketParams` built from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from flax import struct

from ndjax.dynamics import INTEREST_MODES, MarketParams
from ndjax.policy import PolicyConfig

_MARKET = {f.name: f.default for f in dataclasses.fields(MarketParams)}
MARKET_RULES = ("maker_fee", "stock_max_leverage", "crypto_max_leverage", "leverage_fee_rate", "day_count",
                "maintenance_margin", "liquidation_slippage")
"""`HParams` fields that are market rules: their defaults are `MarketParams`'s."""


@struct.dataclass
class HParams:
    """Numeric hyperparameters, traced so sweeps can vmap over them. The market rules default to `MarketParams`;
    `fill_temperature` is the scale of the soft fills whose gradient training follows (the forward values stay
    exactly hard), wider than the transition's 5e-4 so that limits a few tenths of a percent from the bar still
    get a gradient."""

    learning_rate: Any = 3e-3
    return_weight: Any = 0.08  # weight of the annualised return in the "score" objective
    risk_aversion: Any = 10.0  # gamma of the "mean_variance" objective
    feature_noise: Any = 0.5  # sd of Gaussian noise added to the normalised features of training windows
    fill_temperature: Any = 5e-3
    maker_fee: Any = _MARKET["maker_fee"]
    stock_max_leverage: Any = _MARKET["stock_max_leverage"]
    crypto_max_leverage: Any = _MARKET["crypto_max_leverage"]
    leverage_fee_rate: Any = _MARKET["leverage_fee_rate"]
    day_count: Any = _MARKET["day_count"]  # days per year of the interest rate (360 at Alpaca)
    maintenance_margin: Any = _MARKET["maintenance_margin"]
    liquidation_slippage: Any = _MARKET["liquidation_slippage"]

    def check(self) -> HParams:
        """Raise `ValueError` naming the field if the market rules are invalid (for every entry of a stacked sweep)."""
        if np.any(np.asarray(self.maker_fee) >= 1):
            raise ValueError(f"HParams.maker_fee (--maker-fee): {self.maker_fee} is 100 % or more of the notional; "
                             "must be < 1")
        MarketParams(is_crypto=np.zeros(1, bool), fill_temperature=self.fill_temperature,
                     **{k: np.asarray(getattr(self, k), np.float64) for k in MARKET_RULES})
        if np.any(np.asarray(self.learning_rate) <= 0):
            raise ValueError(f"HParams.learning_rate: must be > 0, got {self.learning_rate}")
        if np.any(np.asarray(self.feature_noise) < 0):
            raise ValueError(f"HParams.feature_noise: must be >= 0, got {self.feature_noise}")
        return self


@dataclass(frozen=True)
class TrainConfig:
    """Static, shape-setting training choices."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    window: int = 96
    batch_size: int = 16
    n_assets: int | None = None  # random asset subset per window; None = all
    steps: int = 400
    eval_every: int = 50
    fill: str = "ste"
    interest: str = "excess"
    margin_call: bool = True
    objective: str = "mean_variance"
    warmup_steps: int = 20
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    periods_per_year: int = 365
    initial_cash: float = 1.0
    pool_batch: bool = True  # objective of the batch's pooled daily returns, not the mean over windows
    drift_free: bool = False  # train on bars with each asset's training-period growth taken out

    def __post_init__(self) -> None:
        if self.fill not in ("soft", "ste", "hard"):
            raise ValueError(f"TrainConfig.fill: unknown {self.fill!r}; train with 'soft' or 'ste'")
        if self.interest not in INTEREST_MODES:
            raise ValueError(f"TrainConfig.interest: unknown {self.interest!r}; expected one of {INTEREST_MODES}")
        for name in ("steps", "eval_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} (--{name.replace('_', '-')}): must be a whole number >= 1, "
                                 f"got {getattr(self, name)}")
        if not np.isfinite(self.initial_cash) or self.initial_cash <= 0:
            raise ValueError(f"TrainConfig.initial_cash (--initial-cash): must be > 0, got {self.initial_cash}")
        if self.steps % self.eval_every:
            raise ValueError(f"TrainConfig.steps: {self.steps} is not a multiple of eval_every={self.eval_every}")
        if self.window < 2 or self.batch_size < 1:
            raise ValueError("TrainConfig.window must be >= 2 and batch_size >= 1")

    @property
    def n_evals(self) -> int:
        return self.steps // self.eval_every


def market_params(hp: HParams, is_crypto: jax.Array, fill: str, interest: str = "excess",
                  margin_call: bool = True) -> MarketParams:
    """The transition's params for these hyperparameters, `is_crypto (N,)`, and the static modes."""
    return MarketParams(
        is_crypto=is_crypto, maker_fee=hp.maker_fee, stock_max_leverage=hp.stock_max_leverage,
        crypto_max_leverage=hp.crypto_max_leverage, leverage_fee_rate=hp.leverage_fee_rate, day_count=hp.day_count,
        fill_temperature=hp.fill_temperature, maintenance_margin=hp.maintenance_margin,
        liquidation_slippage=hp.liquidation_slippage, fill=fill, interest=interest, margin_call=margin_call,
    )
