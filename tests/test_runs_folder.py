"""The run folder: the typed configuration written and read by one module, and errors naming the file."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from ndjax.dynamics import MarketParams
from ndjax.runs.folder import (
    RunConfig,
    RunError,
    load_config,
    load_market,
    load_run,
    run_arrays,
    save_config,
)
from ndjax.train.config import MARKET_RULES


def test_config_round_trip(run_dir, tmp_path):
    config = load_config(run_dir)
    save_config(tmp_path, config)
    again = load_config(tmp_path)
    assert again.to_dict() == config.to_dict() and isinstance(again, RunConfig)
    assert again.train.policy.lookback == 8 and again.symbols == config.symbols
    np.testing.assert_array_equal(again.normalizer.mean, config.normalizer.mean)


def test_a_run_carries_alpacas_rules(run_dir):
    """Every rule of the Alpaca preset (ACT/360 debit interest included) can be a run's rules."""
    config = load_config(run_dir)
    mask = np.asarray(config.is_crypto, bool)
    want = MarketParams.alpaca(mask)
    hparams = config.hparams.replace(**{k: getattr(want, k) for k in MARKET_RULES})
    run = dataclasses.replace(config, hparams=hparams, train=dataclasses.replace(config.train, interest=want.interest))
    again = RunConfig.from_dict(json.loads(json.dumps(run.to_dict())))
    got = again.market_params("hard")
    for name in (*MARKET_RULES, "interest", "margin_call"):
        assert np.asarray(getattr(got, name)) == pytest.approx(np.asarray(getattr(want, name))), name
    assert float(got.day_count) == 360.0 and got.interest == "debit"


@pytest.mark.parametrize("text, needle", [
    ("{not json", "not JSON"),
    (json.dumps({"config": {}, "hparams": {}}), "not a ndjax-run/2"),
    (json.dumps({"format": "ndjax-run/2", "source": {}}), "unreadable run configuration"),
])
def test_bad_config_files_name_the_file(tmp_path, text, needle):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(RunError, match=needle) as e:
        load_config(tmp_path)
    assert str(tmp_path / "config.json") in str(e.value)
    with pytest.raises(RunError, match="not found"):
        load_config(tmp_path / "elsewhere")


def test_load_run_market_and_checkpoint_choice(run_dir, tmp_path):
    run = load_run(run_dir)
    market = load_market(run)
    assert market.symbols == run.symbols and run_arrays(run, market).features.shape[-1] == len(
        run.config.feature_names)
    assert load_run(run_dir, step=run.step).step == run.step
    with pytest.raises(RunError, match="no checkpoint at step 999"):
        load_run(run_dir, step=999)
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    shutil.rmtree(broken / "checkpoints")
    with pytest.raises(RunError, match="no checkpoint folder"):
        load_run(broken)


def test_all_symbols_of_newer_data_leave_out_a_delisted_file(run_dir, tmp_path, capsys):
    """A run trained from 2024 on, given a folder where one file ends in 2018: `symbols="all"` trades the others
    and names it (the load stopped with `no rows between start=... and end=...`)."""
    from tests.helpers import OLD_WEEK, WEEK, days, write, yahoo

    write(tmp_path / "AAA.csv", yahoo(WEEK))
    write(tmp_path / "BTC-USD.csv", yahoo(days("2024-07-01", 9)))
    write(tmp_path / "OLD.csv", yahoo(OLD_WEEK))
    run = load_run(run_dir)
    source = dataclasses.replace(run.config.source, data_dir=str(tmp_path), start="2024-01-01")
    run = dataclasses.replace(run, config=dataclasses.replace(run.config, source=source))
    assert load_market(run, str(tmp_path), symbols="all").symbols == ("AAA", "BTC-USD")
    assert "left out OLD" in capsys.readouterr().err
    assert load_market(run, str(tmp_path), symbols="all", period=("2024-07-08", None)).n_days == 9
