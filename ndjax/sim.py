"""Simulation: the `lax.scan` of the one transition, open loop (`simulate`) and closed loop (`rollout`,
`simulate_policy`), each also in a summary form (`simulate_stats`, `simulate_policy_stats`) that carries only
the running sums of `stats_scan` and writes nothing per step."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
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
from ndjax.errors import ConfigError
from ndjax.observation import PolicyApply, observe
from ndjax.policy import encode, make_apply
from ndjax.stats_scan import (
    PathStats,
    PathSums,
    ReturnSums,
    add_return,
    add_step,
    finish_path,
    start_path,
    start_returns,
)

RECORDABLE: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(StepInfo))


def _recorder(record: tuple[str, ...] | None) -> Callable[[StepInfo], StepInfo]:
    """What the scan stacks per step: the whole `StepInfo`, or only the `record` fields (the others None)."""
    if record is None:
        return lambda info: info
    unknown = sorted(set(record) - set(RECORDABLE))
    if unknown:
        raise ConfigError(f"simulate: record names unknown StepInfo fields {unknown}; expected some of {RECORDABLE}")
    return lambda info: StepInfo(**{name: getattr(info, name) if name in record else None for name in RECORDABLE})


@functools.partial(jax.jit, static_argnames=("record",))
def simulate(
    params: MarketParams, state0: PortfolioState, actions: Action, bars: Bar, record: tuple[str, ...] | None = None
) -> tuple[PortfolioState, StepInfo]:
    """Open-loop simulation: `actions` and `bars` carry a leading time axis `(T, ..., N)`.

    Returns the final state and the per-step `StepInfo` stacked on axis 0; with `record` (a tuple of field
    names) only those fields are stacked and the others are None.
    """
    keep = _recorder(None if record is None else (record,) if isinstance(record, str) else tuple(record))

    def body(state, xs):
        action, bar = xs
        state, info = step(params, state, action, bar)
        return state, keep(info)

    return jax.lax.scan(body, state0, (actions, bars))


def _start(state0: PortfolioState) -> PathSums:
    return start_path(state0.cash.shape, state0.cash.dtype)


def _fold(params: MarketParams, state0: PortfolioState, actions: Action, bars: Bar, start: Any,
          add: Callable[[Any, StepInfo], Any]) -> tuple[PortfolioState, Any]:
    """Scan `step` carrying `add(acc, info)` from `start` instead of stacking the `StepInfo`s."""

    def body(carry, xs):
        state, acc = carry
        state, info = step(params, state, *xs)
        return (state, add(acc, info)), None

    return jax.lax.scan(body, (state0, start), (actions, bars))[0]


def simulate_sums(params: MarketParams, state0: PortfolioState, actions: Action, bars: Bar
                  ) -> tuple[PortfolioState, PathSums]:
    """`simulate` that carries only the running `PathSums` (`stats_scan.add_step`) and writes nothing per step.

    Returns the final state and the sums, per-path fields `(...)`. Jittable, vmappable, differentiable.
    """
    return _fold(params, state0, actions, bars, _start(state0), add_step)


def simulate_return_sums(params: MarketParams, state0: PortfolioState, actions: Action, bars: Bar
                         ) -> tuple[PortfolioState, ReturnSums]:
    """`simulate` that carries only the `ReturnSums` of the returns (what an objective needs), fields `(...)`."""
    start = start_returns(state0.cash.shape, state0.cash.dtype)
    return _fold(params, state0, actions, bars, start, lambda s, info: add_return(s, info.returns))


@functools.partial(jax.jit, static_argnames=("periods_per_year",))
def simulate_stats(params: MarketParams, state0: PortfolioState, actions: Action, bars: Bar,
                   periods_per_year: float = 252) -> PathStats:
    """`metrics.path_stats(simulate(...)[1])` without storing the path: `actions`, `bars` `(T, ..., N)` ->
    `PathStats` fields `(...)`. Memory does not grow with T."""
    return finish_path(simulate_sums(params, state0, actions, bars)[1], periods_per_year)


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
    state, _, outs = _closed_loop(params, policy_apply, policy_params, state0, market, bars, lag, None,
                                  lambda acc, action, info: (acc, (action, info)))
    return state, outs


def _closed_loop(params: MarketParams, policy_apply: PolicyApply, policy_params: Any, state0: PortfolioState,
                 market: Any, bars: Bar, lag: int, start: Any, add: Callable[[Any, Action, StepInfo], tuple[Any, Any]]
                 ) -> tuple[PortfolioState, Any, Any]:
    """The closed-loop scan of `rollout`: `add(acc, action, info) -> (acc, out)` carries `acc` from `start` and
    stacks `out`. Returns the final state, the final `acc` and the stacked outputs."""

    def body(carry, xs):
        state, acc = carry
        row, bar = xs
        action = policy_apply(policy_params, observe(row, state, params))
        state, info = step(params, state, action, bar)
        acc, out = add(acc, action, info)
        return (state, acc), out

    (state, acc), outs = jax.lax.scan(body, (state0, start), _closed_loop_inputs(market, bars, lag))
    return state, acc, outs


def _closed_loop_inputs(market: Any, bars: Bar, lag: int) -> tuple[Any, Bar]:
    """Rows `0 .. T-lag-1` of `market` beside bars `lag .. T-1`."""
    n = jax.tree_util.tree_leaves(bars)[0].shape[0]
    if not 1 <= lag < n:
        raise ConfigError(f"rollout: lag must be in [1, {n - 1}] for {n} bars, got {lag}")
    return (jax.tree_util.tree_map(lambda x: x[: n - lag], market), jax.tree_util.tree_map(lambda x: x[lag:], bars))


def rollout_sums(params: MarketParams, policy_apply: PolicyApply, policy_params: Any, state0: PortfolioState,
                 market: Any, bars: Bar, *, lag: int = 1) -> tuple[PortfolioState, PathSums]:
    """`rollout` that carries only the running `PathSums` of its `T - lag` steps, writing nothing per step."""
    state, sums, _ = _closed_loop(params, policy_apply, policy_params, state0, market, bars, lag, _start(state0),
                                  lambda acc, action, info: (add_step(acc, info), None))
    return state, sums


def simulate_policy(
    graphdef: nnx.GraphDef, params: Any, arrays: MarketArrays, mp: MarketParams, lookback: int,
    initial_cash: float = 1.0, lag: int = 1, probe: bool = False,
) -> tuple[Action, StepInfo]:
    """Roll a policy over `arrays` `(T, N)`, acting from row `lookback` on (the first rows are encoder context).

    `lag` > 1 delays decisions (a lookahead check); `probe` gives the state the trade memory that
    `MarketParams.probe_notional` needs.

    Returns `(actions, infos)` for bars `lookback + lag .. T-1`.
    """
    _, (actions, infos) = rollout(mp, make_apply(graphdef), params, *_policy_inputs(graphdef, params, arrays,
                                                                                        lookback, initial_cash, probe),
                                  lag=lag)
    return actions, infos


def _policy_inputs(graphdef: nnx.GraphDef, params: Any, arrays: MarketArrays, lookback: int, initial_cash: float,
                   probe: bool) -> tuple[PortfolioState, Any, Bar]:
    """The start state, the encoder rows and the bars a policy simulation from row `lookback` scans."""
    emb = encode(graphdef, params, arrays.features, arrays.valid)
    tail = jax.tree_util.tree_map(lambda x: x[lookback:], arrays.bars())
    return init_state(initial_cash, arrays.close[lookback], probe=probe), emb[lookback:], tail


def simulate_policy_sums(
    graphdef: nnx.GraphDef, params: Any, arrays: MarketArrays, mp: MarketParams, lookback: int,
    initial_cash: float = 1.0, lag: int = 1, probe: bool = False,
) -> PathSums:
    """`simulate_policy` carrying only the running `PathSums` (per-path fields `()`), nothing stored per step."""
    return rollout_sums(mp, make_apply(graphdef), params,
                        *_policy_inputs(graphdef, params, arrays, lookback, initial_cash, probe), lag=lag)[1]


def simulate_policy_stats(
    graphdef: nnx.GraphDef, params: Any, arrays: MarketArrays, mp: MarketParams, lookback: int,
    initial_cash: float = 1.0, lag: int = 1, probe: bool = False, periods_per_year: float = 252,
) -> PathStats:
    """`metrics.path_stats` of `simulate_policy(...)[1]` without storing the path (fields `()`)."""
    return finish_path(simulate_policy_sums(graphdef, params, arrays, mp, lookback, initial_cash, lag, probe),
                       periods_per_year)


simulate_policy_jit = jax.jit(simulate_policy, static_argnames=("graphdef", "lookback", "lag", "probe"))
"""`simulate_policy` compiled once per graph, shapes and static choices; arrays are arguments, not constants."""
