"""Fixtures shared by the run-folder tests: one tiny trained run, built once per session through the library."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

from ndjax.data.source import MarketSource
from ndjax.policy import PolicyConfig
from ndjax.runs.job import JobSpec, train_job
from ndjax.train.config import TrainConfig

# The suite's programs are small and most compile once, so XLA's backend (LLVM) optimisation runs at level 2 for
# them instead of the library's default 3 (and for the scripts they start as subprocesses), set before the backend
# starts. Measured on 2 cores, the whole suite, same day, same code: level 3 731 s wall (1331 s CPU), level 2 591 s
# (1029 s), level 0 567-605 s (989-1094 s, but the learning guard ran 274 s against 179 s). It changes how XLA
# builds machine code, not the program. `XLA_FLAGS=--xla_backend_optimization_level=3 python3 -m pytest` runs the
# suite as the library runs; the benchmarks and scripts never set it.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=2"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="ndjax-tests-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE  # for the scripts the tests run as subprocesses
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
"""One XLA compilation cache per test session (fresh, deleted at the end; subprocesses share it): a program compiled
again with the same HLO (every `train_job` of `TINY_JOB`, each test's own `jax.jit(trainer.train)`) is loaded, not
recompiled. It changes no traced or compiled program, only whether XLA's output is built or read back."""

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


def pytest_unconfigure(config) -> None:
    if _CACHE is not None:
        shutil.rmtree(_CACHE, ignore_errors=True)
