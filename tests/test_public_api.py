"""`import ndjax as nd` gives the public names, each the very object of its deep module, without import cycles."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import ndjax as nd


@pytest.mark.parametrize("name", nd.__all__)
def test_every_public_name_is_its_modules_object(name):
    module = importlib.import_module(nd._EXPORTS[name])
    assert getattr(nd, name) is getattr(module, name)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        nd.no_such_name  # noqa: B018


def test_every_library_error_is_an_ndjax_error():
    from ndjax.data.market import DataError, UnknownSymbolError
    from ndjax.paper.broker import BrokerError
    from ndjax.paper.ledger import LedgerError
    from ndjax.runs.folder import RunError
    from ndjax.train.checkpoints import CheckpointError

    for error in (DataError, UnknownSymbolError, BrokerError, LedgerError, RunError, CheckpointError, nd.ConfigError):
        assert issubclass(error, nd.NdjaxError) and issubclass(error, ValueError), error
    with pytest.raises(nd.NdjaxError, match="MarketParams.maker_fee"):
        nd.MarketParams(is_crypto=[False], maker_fee=-1.0)


def test_a_fresh_interpreter_imports_the_api_and_the_deep_modules_in_either_order():
    code = ("import ndjax.paper.cycle, ndjax as nd; from ndjax.dynamics import step; "
            "assert nd.step is step and nd.MarketParams is nd.market_rules.MarketParams; "
            "import ndjax.dynamics as d; assert d.MarketParams is nd.MarketParams")
    subprocess.run([sys.executable, "-c", code], check=True)
