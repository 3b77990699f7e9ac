"""Flags built from the dataclasses: one name, type and default per field; grid values parse or name the flag."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from ndjax.cli import add_fields, add_grid_fields, from_fields, grid_values
from ndjax.data.source import MarketSource
from ndjax.policy import PolicyConfig
from ndjax.train.config import HParams, TrainConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_fields(p, MarketSource)
    add_fields(p, PolicyConfig, skip={"n_features"})
    add_fields(p, TrainConfig, skip={"policy", "periods_per_year"})
    add_fields(p, HParams)
    return p


def test_defaults_are_the_dataclass_defaults():
    args = _parser().parse_args([])
    assert from_fields(HParams, args) == HParams()
    assert from_fields(MarketSource, args) == MarketSource()
    assert from_fields(TrainConfig, args, policy=from_fields(PolicyConfig, args)) == TrainConfig()


def test_flags_set_fields_with_their_types():
    args = _parser().parse_args(["--learning-rate", "1e-2", "--window", "32", "--no-margin-call", "--symbols", "A,B",
                                 "--model", "transformer", "--n-assets", "3"])
    hp = from_fields(HParams, args)
    cfg = from_fields(TrainConfig, args, policy=from_fields(PolicyConfig, args))
    assert hp.learning_rate == 1e-2 and cfg.window == 32 and cfg.margin_call is False and cfg.n_assets == 3
    assert cfg.policy.model == "transformer" and from_fields(MarketSource, args).symbols == ("A", "B")
    with pytest.raises(SystemExit):
        _parser().parse_args(["--window", "wide"])


def test_grid_flags():
    p = argparse.ArgumentParser()
    add_grid_fields(p, HParams)
    args = p.parse_args(["--learning-rate", "1e-3,3e-3", "--maker-fee", "0:0.001"])
    assert grid_values(args.learning_rate, "learning_rate") == [1e-3, 3e-3]
    assert grid_values(args.maker_fee, "maker_fee") == (0.0, 0.001)
    assert grid_values(args.return_weight, "return_weight") == [HParams().return_weight]
    with pytest.raises(ValueError, match="--maker-fee"):
        grid_values("cheap", "maker_fee")
    assert {f.name for f in dataclasses.fields(HParams)} <= set(vars(args))
