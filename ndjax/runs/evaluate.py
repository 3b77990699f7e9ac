"""Held-out evaluation: the policy and both baselines over the same bars, with hard fills."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ndjax.baselines import run_baselines
from ndjax.dynamics import MarketParams, StepInfo
from ndjax.train.trainer import MarketArrays, context_split, simulate_policy_jit


def held_out(
    graphdef: nnx.GraphDef, params: Any, arrays: MarketArrays, start: int, lookback: int, mp: MarketParams,
    stop: int | None = None,
) -> dict[str, StepInfo]:
    """Simulate `policy`, `buy_and_hold` and `cash` over bars `start+1 .. stop-1`, all starting flat at the
    close of row `start`. The policy's encoder reads up to `lookback` rows of context before `start`.

    Returns `StepInfo`s with time on axis 0, `stop - start - 1` steps each.
    """
    stop = arrays.n_days if stop is None else stop
    if not lookback <= start < stop - 1:
        raise ValueError(f"held_out: start row {start} needs {lookback} context rows and at least one bar after it")
    ctx = context_split(arrays, start, stop, lookback)
    _, policy = simulate_policy_jit(graphdef, params, ctx, mp, lookback)
    bars = jax.tree_util.tree_map(lambda x: x[lookback:], ctx.bars())
    return {"policy": policy, **run_baselines(mp, bars, jnp.asarray(1.0, bars.close.dtype))}
