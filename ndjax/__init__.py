"""ndjax: neural daily trading policies trained through a differentiable market simulator.

    import ndjax as nd
    market = nd.synthetic_market(seed=0)
    params = nd.MarketParams(is_crypto=market.is_crypto)

The names below are the nouns and verbs a researcher uses; each is loaded on first use (PEP 562), so
`import ndjax` stays cheap and importing a deep module (`from ndjax.dynamics import step`) works as before.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # errors
    "NdjaxError": "ndjax.errors", "ConfigError": "ndjax.errors",
    # the market's rules and the transition
    "MarketParams": "ndjax.market_rules",
    "PortfolioState": "ndjax.dynamics", "Bar": "ndjax.dynamics", "Action": "ndjax.dynamics",
    "StepInfo": "ndjax.dynamics", "init_state": "ndjax.dynamics", "step": "ndjax.dynamics",
    "size_orders": "ndjax.dynamics", "maintenance_call": "ndjax.dynamics", "overnight": "ndjax.dynamics",
    "overnight_interest": "ndjax.dynamics", "excess_pool": "ndjax.dynamics",
    "initial_requirement": "ndjax.dynamics", "maintenance_requirement": "ndjax.dynamics",
    "initial_margin_rates": "ndjax.dynamics", "buy_fractions": "ndjax.dynamics",
    # data
    "MarketData": "ndjax.data.market", "DataError": "ndjax.data.market", "load_daily": "ndjax.data.loading",
    "synthetic_market": "ndjax.data.synthetic", "MarketSource": "ndjax.data.source",
    "MarketArrays": "ndjax.data.arrays", "prepare": "ndjax.data.arrays",
    # policies, simulation, objectives, statistics
    "Observation": "ndjax.observation", "observe": "ndjax.observation", "target_action": "ndjax.targets",
    "PolicyConfig": "ndjax.policy", "make_apply": "ndjax.policy", "Ensemble": "ndjax.ensemble",
    "simulate": "ndjax.sim", "rollout": "ndjax.sim", "simulate_policy": "ndjax.sim",
    "OBJECTIVES": "ndjax.loss", "get_objective": "ndjax.loss", "PathStats": "ndjax.metrics",
    "path_stats": "ndjax.metrics",
    # training
    "TrainConfig": "ndjax.train.config", "HParams": "ndjax.train.config", "make_train": "ndjax.train.trainer",
    "sweep": "ndjax.train.sweep", "grid": "ndjax.train.sweep", "random_search": "ndjax.train.sweep",
    # run folders
    "load_run": "ndjax.runs.folder", "RunConfig": "ndjax.runs.folder", "train_job": "ndjax.runs.job",
    "JobSpec": "ndjax.runs.job", "evaluate_run": "ndjax.runs.evaluate", "plan_next_day": "ndjax.runs.plan",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The public name `name`, imported from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ndjax' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
