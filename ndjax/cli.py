"""Command-line flags built from the configuration dataclasses, so a flag's name, type and default are the
field's: `--learning-rate` is `HParams.learning_rate`, `--window` is `TrainConfig.window`. Scripts that want
other defaults say so with `parser.set_defaults`; nothing here exits the process."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

HELP: Mapping[str, str] = {
    "data_dir": "folder of daily CSVs, one per symbol (default: the built-in synthetic market)",
    "symbols": "comma-separated symbols to load (default: every file)",
    "start": "first date loaded", "end": "last date loaded",
    "synthetic_seed": "seed of the synthetic market", "synthetic_days": "calendar days of the synthetic market",
    "signal": "planted signal strength of the synthetic market (AR(1) of standardised returns; < 0 reverts)",
    "n_stocks": "stocks in the synthetic market", "n_crypto": "crypto assets in the synthetic market",
    "model": "policy encoder", "d_model": "embedding width", "n_heads": "attention heads", "n_layers": "encoder layers",
    "lookback": "days of history the encoder reads", "hidden": "hidden width of MLP blocks and the order head",
    "offset": "limit band: prices within ref * (1 +- 2 offset)", "min_gap": "least sell/buy limit gap",
    "window": "days per training window", "batch_size": "windows per update",
    "n_assets": "random asset subset per window (default: all)", "steps": "updates", "eval_every":
    "updates between validations", "fill": "training fills (ste: hard forward, soft gradient)",
    "interest": "leverage interest rule", "margin_call": "maintenance calls", "objective": "training objective",
    "warmup_steps": "learning-rate warmup", "weight_decay": "AdamW decay", "grad_clip": "global-norm clip",
    "initial_cash": "starting equity of a simulated account", "pool_batch": "objective of the pooled batch returns",
    "drift_free": "train on bars with each asset's training-period growth taken out",
    "learning_rate": "peak learning rate", "return_weight": "weight of the annualised return in 'score'",
    "risk_aversion": "gamma of 'mean_variance' (mean - gamma/2 variance)",
    "feature_noise": "sd of Gaussian noise on the normalised features of training windows (0 = none)",
    "fill_temperature": "soft-fill scale of training gradients", "maker_fee": "fee on both legs",
    "stock_max_leverage": "stock initial margin = 1 / this", "crypto_max_leverage": "crypto margin = 1 / this",
    "leverage_fee_rate": "annual interest on leverage", "day_count": "days per year of that rate (360 at Alpaca)",
    "maintenance_margin": "stock maintenance margin",
    "liquidation_slippage": "price concession of a forced sale",
    "repair": "drop bad rows of the data (listed in a warning) instead of stopping at the first",
    "max_move": "an open or close beyond this many times (or below 1/this of) the previous close is a bad row",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def add_fields(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
               skip: Iterable[str] = ()) -> None:
    """One flag per field of the dataclass `cls` (except `skip`), typed and defaulted by the field."""
    skip = set(skip)
    for field in dataclasses.fields(cls):
        if field.name in skip or not field.init:
            continue
        default = _default(field)
        help_text = f"{HELP.get(field.name, field.name.replace('_', ' '))} (default: {default})"
        if isinstance(default, bool):
            parser.add_argument(_flag(field.name), default=default, action=argparse.BooleanOptionalAction,
                                help=help_text)
        elif isinstance(default, (int, float)):
            parser.add_argument(_flag(field.name), type=type(default), default=default, help=help_text)
        elif isinstance(default, tuple) or field.name == "symbols":
            parser.add_argument(_flag(field.name), type=_comma_list, default=default, help=help_text)
        elif field.name == "n_assets":
            parser.add_argument(_flag(field.name), type=int, default=default, help=help_text)
        else:
            parser.add_argument(_flag(field.name), default=default, help=help_text)


def from_fields(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """An instance of `cls` from the flags `add_fields` made (missing flags keep the field's default), with
    `fixed` values taking precedence."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.init and hasattr(args, f.name)}
    values.update(fixed)
    return cls(**values)


def add_grid_fields(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type) -> None:
    """One flag per numeric field of `cls` taking a comma list (grid values, or choices) or `lo:hi` (a range
    for a random search); the default is the field's default."""
    for field in dataclasses.fields(cls):
        default = _default(field)
        parser.add_argument(_flag(field.name), default=str(default),
                            help=f"{HELP.get(field.name, field.name)}: comma list or lo:hi (default: {default})")


def grid_values(text: str, name: str) -> list[float] | tuple[float, float]:
    """A flag of `add_grid_fields`: `[v, ...]` for a comma list, `(lo, hi)` for a range; `ValueError` names it."""
    try:
        if ":" in text:
            lo, hi = text.split(":")
            return float(lo), float(hi)
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{_flag(name)}: expected numbers as a comma list or lo:hi, got {text!r}") from None
    if not values:
        raise ValueError(f"{_flag(name)}: no values in {text!r}")
    return values


def parse_symbols(text: str | None) -> list[str] | str | None:
    """A `--symbols` flag: None (the run's own), "all" (every file of the folder), or a comma list."""
    if text is None or text.strip() == "all":
        return None if text is None else "all"
    return [s.strip() for s in text.split(",") if s.strip()]



def given_flags(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> dict[str, Any]:
    """The flags written on the command line `argv` (default `sys.argv[1:]`), dest -> parsed value, without the
    defaults of those left out (what `--resume` compares with a stored run)."""
    actions = [(a, a.default) for a in parser._actions]
    defaults = dict(parser._defaults)
    try:
        for a, _ in actions:
            a.default = argparse.SUPPRESS
        parser._defaults.clear()
        return vars(parser.parse_args(argv))
    finally:
        for a, default in actions:
            a.default = default
        parser._defaults.update(defaults)
