"""Training configuration: the static `TrainConfig` (shapes and modes) and the traced `HParams` (numbers that
sweeps vmap over), and the transition's `MarketParams` built from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from flax import struct

from ndjax.errors import ConfigError
from ndjax.loss import DRAWDOWN_WEIGHT, OBJECTIVE_WEIGHTS, OBJECTIVES, RETURN_WEIGHT, RISK_AVERSION, get_objective
from ndjax.market_rules import INTEREST_MODES, MarketParams
from ndjax.policy import PolicyConfig

MARKET_RULES = tuple(f.name for f in dataclasses.fields(MarketParams) if f.metadata.get("hparam"))
"""`HParams` fields that are market rules: the `MarketParams` fields marked `hparam`, with their defaults and help."""


def _hparam(default: Any, help: str) -> Any:
    return struct.field(default=default, metadata={"help": help})


def _market_rule(name: str) -> Any:
    """The `HParams` field of the market rule `name`: `MarketParams`'s default and help."""
    rule = next(f for f in dataclasses.fields(MarketParams) if f.name == name)
    return struct.field(default=rule.default, metadata=dict(rule.metadata))


@struct.dataclass
class HParams:
    """Numeric hyperparameters, traced so sweeps can vmap over them. The market rules are `MarketParams`'s
    (`MARKET_RULES`); `fill_temperature` is the scale of the soft fills whose gradient training follows (the
    forward values stay exactly hard), wider than the transition's 5e-4 so that limits a few tenths of a percent
    from the bar still get a gradient."""

    learning_rate: Any = _hparam(3e-3, "peak learning rate")
    return_weight: Any = _hparam(RETURN_WEIGHT, "weight of the annualised return in the 'score' objective")
    risk_aversion: Any = _hparam(RISK_AVERSION, "gamma of the 'mean_variance' objective (mean - gamma/2 variance)")
    drawdown_weight: Any = _hparam(DRAWDOWN_WEIGHT, "weight of the maximum drawdown in the 'mean_variance_drawdown' "
                                                    "objective (mean - gamma/2 variance - weight * max drawdown)")
    feature_noise: Any = _hparam(0.5, "sd of Gaussian noise on the normalised features of training windows (0: none)")
    drift_sd: Any = _hparam(0.0, "sd of a random annual log drift added to each asset of each training window "
                                 "(drift augmentation; 0: none)")
    fill_temperature: Any = _hparam(5e-3, "soft-fill scale of the training gradients, a fraction of the close")
    maker_fee: Any = _market_rule("maker_fee")
    stock_max_leverage: Any = _market_rule("stock_max_leverage")
    crypto_max_leverage: Any = _market_rule("crypto_max_leverage")
    leverage_fee_rate: Any = _market_rule("leverage_fee_rate")
    day_count: Any = _market_rule("day_count")
    maintenance_margin: Any = _market_rule("maintenance_margin")
    liquidation_slippage: Any = _market_rule("liquidation_slippage")

    def check(self) -> HParams:
        """Raise `ConfigError` naming the field if the market rules are invalid (for every entry of a stacked sweep)."""
        if np.any(np.asarray(self.maker_fee) >= 1):
            raise ConfigError(f"HParams.maker_fee (--maker-fee): {self.maker_fee} is 100 % or more of the notional; "
                             "must be < 1")
        MarketParams(is_crypto=np.zeros(1, bool), fill_temperature=self.fill_temperature,
                     **{k: np.asarray(getattr(self, k), np.float64) for k in MARKET_RULES})
        if np.any(np.asarray(self.learning_rate) <= 0):
            raise ConfigError(f"HParams.learning_rate: must be > 0, got {self.learning_rate}")
        for name in ("feature_noise", "drift_sd"):
            if np.any(np.asarray(getattr(self, name)) < 0):
                raise ConfigError(f"HParams.{name} (--{name.replace('_', '-')}): must be >= 0, got "
                                  f"{getattr(self, name)}")
        return self


def _option(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Static, shape-setting training choices."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    window: int = _option(96, "days per training window")
    batch_size: int = _option(16, "windows per update")
    n_assets: int | None = _option(None, "random asset subset per window (default: all)")
    steps: int = _option(400, "updates")
    eval_every: int = _option(50, "updates between validations")
    fill: str = _option("ste", "training fills: ste (hard forward, soft gradient) or soft")
    interest: str = _option("excess", "leverage interest rule: excess (leveraged stock notional) or debit")
    margin_call: bool = _option(True, "maintenance calls")
    objective: str = _option("mean_variance", f"training objective, one of {', '.join(OBJECTIVES)}")
    warmup_steps: int = _option(20, "learning-rate warmup updates")
    weight_decay: float = _option(1e-4, "AdamW weight decay")
    anchor_decay: float = _option(0.0, "decoupled decay toward the run's initial parameters (L2-SP), per unit of "
                                       "learning rate; 0: none")
    grad_clip: float = _option(1.0, "global-norm gradient clip")
    periods_per_year: int = _option(365, "periods per year that annualise returns")
    initial_cash: float = _option(1.0, "starting equity of a simulated account")
    pool_batch: bool = _option(True, "objective of the batch's pooled daily returns, not the mean over windows")
    drift_free: bool = _option(False, "train on bars with each asset's training-period growth taken out")
    prior_checkpoint: bool = _option(False, "score the initial parameters on validation as checkpoint step 0, so "
                                            "a run keeps its start unless training beats it there")

    def __post_init__(self) -> None:
        if self.fill not in ("soft", "ste", "hard"):
            raise ConfigError(f"TrainConfig.fill: unknown {self.fill!r}; train with 'soft' or 'ste'")
        get_objective(self.objective)
        if self.interest not in INTEREST_MODES:
            raise ConfigError(f"TrainConfig.interest: unknown {self.interest!r}; expected one of {INTEREST_MODES}")
        for name in ("steps", "eval_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} (--{name.replace('_', '-')}): must be a whole number >= 1, "
                                  f"got {getattr(self, name)}")
        if not np.isfinite(self.initial_cash) or self.initial_cash <= 0:
            raise ConfigError(f"TrainConfig.initial_cash (--initial-cash): must be > 0, got {self.initial_cash}")
        if self.steps % self.eval_every:
            raise ConfigError(f"TrainConfig.steps: {self.steps} is not a multiple of eval_every={self.eval_every}")
        if not np.isfinite(self.anchor_decay) or self.anchor_decay < 0:
            raise ConfigError(f"TrainConfig.anchor_decay (--anchor-decay): must be >= 0, got {self.anchor_decay}")
        if self.window < 2 or self.batch_size < 1:
            raise ConfigError("TrainConfig.window must be >= 2 and batch_size >= 1")

    @property
    def n_evals(self) -> int:
        return self.steps // self.eval_every


def market_params(hp: HParams, is_crypto: jax.Array, fill: str, interest: str = "excess",
                  margin_call: bool = True) -> MarketParams:
    """The transition's params for these hyperparameters (`MARKET_RULES` and `fill_temperature`), `is_crypto (N,)`,
    and the static modes."""
    return MarketParams(is_crypto=is_crypto, fill_temperature=hp.fill_temperature,
                        **{name: getattr(hp, name) for name in MARKET_RULES}, fill=fill, interest=interest,
                        margin_call=margin_call)


def objective_weights(hp: HParams) -> dict[str, Any]:
    """The objectives' weights of `hp` by name, as keywords of `loss.evaluate_returns` / `loss.evaluate_sums`."""
    return {name: getattr(hp, name) for name in OBJECTIVE_WEIGHTS}
