"""Command-line flags built from the configuration dataclasses, so a flag's name, type, default and help are the
field's (its annotation, its default, its `metadata["help"]`): `--learning-rate` is `HParams.learning_rate`,
`--window` is `TrainConfig.window`. Scripts that want other defaults say so with `parser.set_defaults`; nothing
here exits the process."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any

from ndjax.errors import ConfigError


def flag_name(name: str) -> str:
    """The flag of a field: `learning_rate` -> `--learning-rate`."""
    return "--" + name.replace("_", "-")


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return None


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _help(field: dataclasses.Field) -> str:
    """The field's help text, with its default unless the text already names it."""
    text = field.metadata.get("help")
    if text is None:
        raise ConfigError(f"{field.name}: a flag needs help text; give the field metadata={{'help': ...}}")
    return text if "default" in text else f"{text} (default: {_default(field)})"


def _parse_type(hint: Any) -> Any:
    """The flag type of an annotation: the one type of `X | None`, `Any` (traced numbers) as float, and a
    comma list for tuples."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if hint is Any:
        return float
    if hint is tuple or typing.get_origin(hint) is tuple:
        return _comma_list
    return hint


def add_fields(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
               skip: Iterable[str] = ()) -> None:
    """One flag per field of the dataclass `cls` (except `skip`): typed by the field's annotation, defaulted by
    its default, described by its `metadata["help"]`."""
    skip = set(skip)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip or not field.init:
            continue
        kind, default = _parse_type(hints[field.name]), _default(field)
        if kind is bool:
            parser.add_argument(flag_name(field.name), default=default, action=argparse.BooleanOptionalAction,
                                help=_help(field))
        else:
            parser.add_argument(flag_name(field.name), type=kind, default=default, help=_help(field))


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
        parser.add_argument(flag_name(field.name), default=str(default),
                            help=f"{field.metadata['help']}: comma list or lo:hi (default: {default})")


def grid_values(text: str, name: str) -> list[float] | tuple[float, float]:
    """A flag of `add_grid_fields`: `[v, ...]` for a comma list, `(lo, hi)` for a range; `ValueError` names it."""
    try:
        if ":" in text:
            lo, hi = text.split(":")
            return float(lo), float(hi)
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag_name(name)}: expected numbers as a comma list or lo:hi, got {text!r}") from None
    if not values:
        raise ConfigError(f"{flag_name(name)}: no values in {text!r}")
    return values


def add_run_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, run_help: str = "") -> None:
    """`--run`, `--data-dir`, `--symbols` and `--repair`, the flags of every script that reads a trained run
    (evaluate, plan, paper); `run_help` adds to `--run`'s help. Read `--symbols` with `parse_symbols`."""
    parser.add_argument("--run", required=True, help="run folder written by experiments/train.py, or a sweep's folder "
                                                     "(experiments/sweep.py --out: its best run)" + run_help)
    parser.add_argument("--data-dir", help="folder of daily CSVs (default: the run's data, or its synthetic market)")
    parser.add_argument("--symbols", help="the universe traded: comma list, or 'all' (every file of --data-dir with "
                                          "a bar in the period; those left out are named); default: the run's symbols")
    from ndjax.data.source import MarketSource  # here: the scripts that only fetch bars load no JAX

    repair = next(f for f in dataclasses.fields(MarketSource) if f.name == "repair")
    parser.add_argument("--repair", action="store_true", default=None,
                        help=repair.metadata["help"] + " (default: the run's own setting)")


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
