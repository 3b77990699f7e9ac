"""Fixtures shared by the run-folder tests: one tiny trained run, built once per session through the library."""

from __future__ import annotations

from pathlib import Path

import pytest

from ndjax.data.source import MarketSource
from ndjax.policy import PolicyConfig
from ndjax.runs.job import JobSpec, train_job
from ndjax.train.config import TrainConfig

TINY_JOB = JobSpec(source=MarketSource(synthetic_days=200),
                   train=TrainConfig(policy=PolicyConfig(lookback=8, d_model=8, hidden=16, n_heads=2,
                                                          w_per_asset=False, w_bias=-1.5), window=16,
                                     batch_size=2, steps=2, eval_every=2))
"""A two-update run: enough to exercise every file a run folder holds. Its head starts every asset at
sigmoid(-1.5) = 18 % of equity (the design before `w_per_asset`), so the untrained book borrows and paper trading
meets margin calls."""


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train_job(TINY_JOB, out, rows=False, progress=False)
    return out
