"""The market's rules as data: `MarketParams` (fees, margins, interest, fill and call modes), their validation,
and the Alpaca preset. The transition that applies them is `ndjax.dynamics` (which re-exports these names).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ndjax.errors import ConfigError

FILL_MODES = ("hard", "soft", "ste")
INTEREST_MODES = ("excess", "debit")
_POSITIVE = ("stock_max_leverage", "crypto_max_leverage", "day_count", "fill_temperature", "maintenance_margin",
             "participation_cap", "probe_max_outlay")
_NON_NEGATIVE = ("maker_fee", "leverage_fee_rate", "liquidation_slippage", "probe_notional")


def _rule(default: Any, help: str, *, hparam: bool = True) -> Any:
    """A traced rule field: its default, its help text, and whether it is also a training hyperparameter
    (`HParams` takes the fields marked `hparam` with these defaults)."""
    return struct.field(pytree_node=True, default=default, metadata={"help": help, "hparam": hparam})


@struct.dataclass
class MarketParams:
    """Market rules. Numeric fields are traced leaves (vmap-able); `fill`, `interest`, `margin_call` and
    `gap_fill` are static. `is_crypto (N,)` bool; every other asset is a stock.

    Stocks need an initial margin of `1 / stock_max_leverage` and a maintenance margin of
    `maintenance_margin` of their value; crypto needs `1 / crypto_max_leverage` for both. A margin call
    (`margin_call=True`) force-sells at `close * (1 - liquidation_slippage)` back to the initial requirement.
    Probe mode (`probe_notional=x` and/or `probe_max_outlay=a`, a state from `init_state(..., probe=True)`):
    after losing trades a symbol's position is held to `min(x * E1, a)`: its buy outlay is capped at that less
    the value held at the last close (`ndjax.probe.cap_probing_buys`; the defaults callers pass are
    `probe.PROBE_FRACTION` and `PROBE_MAX_OUTLAY`). Broker realism: `gap_fill` executes a limit through the
    open at the open; `participation_cap` limits each executed quantity to that fraction of the bar's volume.
    Bad values raise `ConfigError` (a `ValueError`) naming the field.
    """

    is_crypto: jax.Array
    maker_fee: Any = _rule(0.0008, "fee on both legs, a fraction of the notional")
    stock_max_leverage: Any = _rule(2.0, "stock initial margin = 1 / this")
    crypto_max_leverage: Any = _rule(1.0, "crypto initial and maintenance margin = 1 / this")
    leverage_fee_rate: Any = _rule(0.065, "annual interest on leverage")
    day_count: Any = _rule(365.0, "days per year of that rate (360 at Alpaca)")
    fill_temperature: Any = _rule(5e-4, "soft-fill scale, a fraction of the previous close", hparam=False)
    maintenance_margin: Any = _rule(0.30, "stock maintenance margin")
    liquidation_slippage: Any = _rule(0.001, "price concession of a forced sale")
    participation_cap: Any = _rule(None, "max fraction of the bar's volume one fill may take (None: off)", hparam=False)
    probe_notional: Any = _rule(None, "probe mode: position cap after losing trades, a fraction of "
                                "equity (None: none)", hparam=False)
    probe_max_outlay: Any = _rule(None, "probe mode: absolute position cap after losing trades, in the "
                                  "account's currency (None: none)", hparam=False)
    fill: str = struct.field(pytree_node=False, default="hard", metadata={"help": "fills: hard, soft or ste"})
    interest: str = struct.field(pytree_node=False, default="excess",
                                 metadata={"help": "leverage interest rule: excess (leveraged stock) or debit"})
    margin_call: bool = struct.field(pytree_node=False, default=True, metadata={"help": "maintenance calls"})
    gap_fill: bool = struct.field(pytree_node=False, default=False,
                                  metadata={"help": "a limit the open gapped through fills at the open"})

    def __post_init__(self) -> None:
        if self.fill not in FILL_MODES:
            raise ConfigError(f"MarketParams.fill: unknown fill mode {self.fill!r}; expected one of {FILL_MODES}")
        if self.interest not in INTEREST_MODES:
            raise ConfigError(f"MarketParams.interest: unknown mode {self.interest!r}; expected one of "
                              f"{INTEREST_MODES}")
        values = {name: _concrete(getattr(self, name)) for name in _POSITIVE + _NON_NEGATIVE}
        for name, value in ((k, v) for k, v in values.items() if v is not None):
            if not np.all(np.isfinite(value)):
                raise ConfigError(f"MarketParams.{name}: must be finite, got {value}")
            if name in _POSITIVE and np.any(value <= 0):
                raise ConfigError(f"MarketParams.{name}: must be > 0, got {value}")
            if np.any(value < 0):
                raise ConfigError(f"MarketParams.{name}: must be >= 0, got {value}")
        ls, lc, mm = values["stock_max_leverage"], values["crypto_max_leverage"], values["maintenance_margin"]
        f, sl = values["maker_fee"], values["liquidation_slippage"]
        if ls is not None and mm is not None and np.any(mm > 1 / ls):
            raise ConfigError(f"MarketParams.maintenance_margin: {mm} exceeds the initial margin 1/stock_max_leverage"
                             f" = {1 / ls}")
        if None not in (ls, lc, f, sl) and np.any(sl + f >= np.minimum(1 / ls, 1 / lc)):
            raise ConfigError(f"MarketParams.liquidation_slippage: {sl} + maker_fee {f} must stay below "
                             f"min(1/stock_max_leverage, 1/crypto_max_leverage) = {np.minimum(1 / ls, 1 / lc)}, "
                             "or a forced sale would not free any requirement")

    @classmethod
    def alpaca(cls, is_crypto: Any, **overrides: Any) -> MarketParams:
        """The rules Alpaca applies to an overnight Reg-T margin account (sources in docs/semantics.md).

        50 % initial margin on stocks (2x overnight), crypto cash only, 30 % maintenance on long stocks,
        interest on the debit balance over a 360-day year. Stocks pay no commission and crypto a 15 bp maker
        fee (first volume tier); the contract has one `maker_fee`, so a book with any crypto pays 15 bp on
        every fill and a stock-only book pays 0. No current Alpaca margin rate was found, so the rate stays
        6.5 %; pass `leverage_fee_rate` (and any other field) to override.
        """
        mask = jnp.asarray(is_crypto, bool)
        preset = dict(ALPACA_PRESET, maker_fee=ALPACA_CRYPTO_MAKER_FEE if bool(np.any(np.asarray(mask))) else 0.0)
        preset.update(overrides)
        return cls(is_crypto=mask, **preset)


ALPACA_CRYPTO_MAKER_FEE = 0.0015
ALPACA_PRESET: dict[str, Any] = dict(stock_max_leverage=2.0, crypto_max_leverage=1.0, maintenance_margin=0.30,
                                     interest="debit", day_count=360.0, leverage_fee_rate=0.065)  # docs: sources


def _concrete(value: Any) -> np.ndarray | None:
    """The numeric value of a param if it is known now (not a tracer or placeholder)."""
    if isinstance(value, (bool, int, float, np.ndarray, np.generic)):
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer):
        try:
            return np.asarray(value, dtype=np.float64)
        except Exception:  # noqa: BLE001 - abstract or deleted arrays are simply not checked
            return None
    return None
