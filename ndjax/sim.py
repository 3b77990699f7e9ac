"""Simulation: the `lax.scan` of the one transition, open loop (`simulate`) and closed loop (`rollout`,
`simulate_policy`)."""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from ndjax.data.arrays import MarketArrays
from ndjax.dynamics import (
    Action,
    Bar,
    MarketParams,
    PortfolioState,
    StepInfo,
    init_state,
    step,
)
from ndjax.observation import PolicyApply, observe
from ndjax.policy import encode, make_apply


@jax.jit
def simulate(
    params: MarketParams, state0: PortfolioState, actions: Action, bars: Bar
) -> tuple[PortfolioState, StepInfo]:
    """Open-loop simulation: `actions` and `bars` carry a leading time axis `(T, ..., N)`.

    Returns the final state and the per-step `StepInfo` stacked on axis 0.
    """

    def body(state, xs):
        action, bar = xs
        return step(params, state, action, bar)

    return jax.lax.scan(body, state0, (actions, bars))


def rollout(
    params: MarketParams,
    policy_apply: PolicyApply,
    policy_params: Any,
    state0: PortfolioState,
    market: Any,
    bars: Bar,
    *,
    lag: int = 1,
) -> tuple[PortfolioState, tuple[Action, StepInfo]]:
    """Closed loop: the policy decides bar t from `observe(market[t - lag], book after bar t-1)`.

    `market` is a pytree with leading axis T whose row t is computed from bars <= t (an embedding of
    `features.compute_features`, or a rule's inputs). The scan covers bars `lag .. T-1`, so `T - lag`
    steps; row t of the output describes bar `t + lag`. `policy_apply(policy_params, observation) -> Action`
    is called inside the scan; call `rollout` inside `jax.jit`.
    """
    n = jax.tree_util.tree_leaves(bars)[0].shape[0]
    if not 1 <= lag < n:
        raise ValueError(f"rollout: lag must be in [1, {n - 1}] for {n} bars, got {lag}")
    rows = jax.tree_util.tree_map(lambda x: x[: n - lag], market)
    future = jax.tree_util.tree_map(lambda x: x[lag:], bars)

    def body(state, xs):
        row, bar = xs
        action = policy_apply(policy_params, observe(row, state, params))
        state, info = step(params, state, action, bar)
        return state, (action, info)

    return jax.lax.scan(body, state0, (rows, future))


def simulate_policy(
    graphdef: nnx.GraphDef, params: Any, arrays: MarketArrays, mp: MarketParams, lookback: int,
    initial_cash: float = 1.0, lag: int = 1, probe: bool = False,
) -> tuple[Action, StepInfo]:
    """Roll a policy over `arrays` `(T, N)`, acting from row `lookback` on (the first rows are encoder context).

    `lag` > 1 delays decisions (a lookahead check); `probe` gives the state the trade memory that
    `MarketParams.probe_notional` needs.

    Returns `(actions, infos)` for bars `lookback + lag .. T-1`.
    """
    emb = encode(graphdef, params, arrays.features, arrays.valid)
    tail = jax.tree_util.tree_map(lambda x: x[lookback:], arrays.bars())
    state0 = init_state(initial_cash, arrays.close[lookback], probe=probe)
    _, (actions, infos) = rollout(mp, make_apply(graphdef), params, state0, emb[lookback:], tail, lag=lag)
    return actions, infos


simulate_policy_jit = jax.jit(simulate_policy, static_argnames=("graphdef", "lookback", "lag", "probe"))
"""`simulate_policy` compiled once per graph, shapes and static choices; arrays are arguments, not constants."""
