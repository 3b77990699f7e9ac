"""Simulation: `lax.scan` of the one transition, closed-loop rollouts, summaries and the text report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState, StepInfo, step

PolicyApply = Callable[[Any, Any, PortfolioState], Action]


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
    observations: Any,
    bars: Bar,
    *,
    lag: int = 1,
) -> tuple[PortfolioState, tuple[Action, StepInfo]]:
    """Closed loop: the policy decides bar t from `observations[t - lag]` and the book after bar t-1.

    `observations` is a pytree with leading axis T where row t is computed from bars <= t
    (for example `features.compute_features`). The scan covers bars `lag .. T-1`, so
    `T - lag` steps; row t of the output describes bar `t + lag`. `policy_apply(policy_params,
    obs_t, state) -> Action` is called inside the scan; call `rollout` inside `jax.jit`.
    """
    n = jax.tree_util.tree_leaves(bars)[0].shape[0]
    if not 1 <= lag < n:
        raise ValueError(f"rollout: lag must be in [1, {n - 1}] for {n} bars, got {lag}")
    obs = jax.tree_util.tree_map(lambda x: x[: n - lag], observations)
    future = jax.tree_util.tree_map(lambda x: x[lag:], bars)

    def body(state, xs):
        o, bar = xs
        action = policy_apply(policy_params, o, state)
        state, info = step(params, state, action, bar)
        return state, (action, info)

    return jax.lax.scan(body, state0, (obs, future))


def drawdown(equity: jax.Array, initial: jax.Array) -> jax.Array:
    """Drawdown path `(T, ...)` of an equity curve against its running peak (initial equity included)."""
    curve = jnp.concatenate([jnp.asarray(initial)[None], equity], axis=0)
    peak = jax.lax.cummax(curve, axis=0)
    safe = jnp.where(peak > 0, peak, 1)
    return jnp.where(peak > 0, 1 - curve / safe, 0)[1:]


def path_stats(infos: StepInfo, periods_per_year: float = 252) -> dict[str, jax.Array]:
    """Statistics of a simulation reduced over time (axis 0), per path `(...)`; jittable.

    Keys: initial_equity, final_equity, net_pnl, sortino, sharpe, max_drawdown, mean_leverage,
    max_leverage, total_leverage_cost, total_fees, turnover (traded notional / mean equity),
    buy_fill_rate and sell_fill_rate (filled / placed orders), n_buys, n_sells, margin_calls (days with a
    call), forced_notional (value force-sold).
    """
    from ndjax.loss import sharpe, sortino

    returns = jnp.moveaxis(infos.returns, 0, -1)
    initial = infos.prev_equity[0]
    final = infos.equity[-1]
    placed_b = infos.buy_order_qty > 0
    placed_s = infos.sell_order_qty > 0
    filled_b = jnp.sum(jnp.where(placed_b, infos.buy_fill, 0), axis=(0, -1))
    filled_s = jnp.sum(jnp.where(placed_s, infos.sell_fill, 0), axis=(0, -1))
    n_placed_b = jnp.sum(placed_b, axis=(0, -1))
    n_placed_s = jnp.sum(placed_s, axis=(0, -1))
    out = {
        "initial_equity": initial,
        "final_equity": final,
        "net_pnl": jnp.where(initial > 0, final / jnp.where(initial > 0, initial, 1) - 1, 0),
        "sortino": sortino(returns, periods_per_year),
        "sharpe": sharpe(returns, periods_per_year),
        "max_drawdown": jnp.max(drawdown(infos.equity, initial), axis=0),
        "mean_leverage": jnp.mean(infos.leverage, axis=0),
        "max_leverage": jnp.max(infos.leverage, axis=0),
        "total_leverage_cost": jnp.sum(infos.leverage_cost, axis=0),
        "total_fees": jnp.sum(infos.fees, axis=0),
        "turnover": jnp.sum(infos.traded_notional, axis=0) / jnp.maximum(jnp.mean(infos.equity, axis=0), 1e-12),
        "buy_fill_rate": filled_b / jnp.maximum(n_placed_b, 1),
        "sell_fill_rate": filled_s / jnp.maximum(n_placed_s, 1),
        "n_buys": jnp.sum(infos.buy_qty > 0, axis=(0, -1)),
        "n_sells": jnp.sum(infos.sell_qty > 0, axis=(0, -1)),
        "margin_calls": jnp.sum(infos.margin_call, axis=0),
        "forced_notional": jnp.sum(infos.forced_notional, axis=0),
    }
    return out


def summary(infos: StepInfo, periods_per_year: float = 252) -> dict[str, np.ndarray]:
    """`path_stats` as host NumPy arrays, for reports."""
    return {k: np.asarray(v) for k, v in path_stats(infos, periods_per_year).items()}


def format_summary(stats: dict[str, np.ndarray]) -> str:
    """The summary block of the SPEC report for one path."""
    f = {k: float(v) for k, v in stats.items()}
    lines = [
        f"Final Equity      : {f['final_equity']:.4f}",
        f"Net PnL           : {f['net_pnl'] * 100:+.2f}%",
        f"Sortino           : {f['sortino']:.3f}",
        f"Sharpe            : {f['sharpe']:.3f}",
        f"Max Drawdown      : {f['max_drawdown'] * 100:.2f}%",
        f"Max Leverage      : {f['max_leverage']:.2f}x",
        f"Total Lev. Costs  : {f['total_leverage_cost']:.6f}",
        f"Total Fees        : {f['total_fees']:.6f}",
        f"Turnover          : {f['turnover']:.2f}x",
        f"Buy Fill Rate     : {f['buy_fill_rate'] * 100:.1f}%",
        f"Sell Fill Rate    : {f['sell_fill_rate'] * 100:.1f}%",
        f"Margin Calls      : {f['margin_calls']:.0f}",
        f"Forced Sales      : {f['forced_notional']:.6f}",
    ]
    return "\n".join(lines)


def format_report(
    dates: Sequence[Any], infos: StepInfo, periods_per_year: float = 252, *, rows: bool = True
) -> str:
    """SPEC report for one path: a `Date Equity Cash Return Leverage LevCost` row per bar, then the summary.

    `dates` has one entry per step (T,); `infos` is unbatched (per-portfolio fields `(T,)`).
    """
    equity = np.asarray(infos.equity)
    if equity.ndim != 1:
        raise ValueError(f"format_report: expects one path, got equity of shape {equity.shape}")
    if len(dates) != equity.shape[0]:
        raise ValueError(f"format_report: {len(dates)} dates for {equity.shape[0]} steps")
    out = []
    if rows:
        out.append(f"{'Date':<18}{'Equity':>12}{'Cash':>13}{'Return':>11}{'Leverage':>11}{'LevCost':>11}")
        cash, ret = np.asarray(infos.cash), np.asarray(infos.returns)
        lev, cost = np.asarray(infos.leverage), np.asarray(infos.leverage_cost)
        for i, d in enumerate(dates):
            out.append(
                f"{str(d)[:10]:<18}{equity[i]:>12.4f}{cash[i]:>13.4f}{ret[i]:>11.4f}{lev[i]:>10.2f}x{cost[i]:>11.6f}"
            )
        out.append("")
    out.append(format_summary(summary(infos, periods_per_year)))
    return "\n".join(out)


COMPARISON_HEADER = (f"{'':<16}{'Return':>10}{'Sortino':>10}{'Sharpe':>9}{'MaxDD':>9}{'MaxLev':>8}{'Fees':>11}"
                     f"{'LevCost':>11}{'Turn':>9}{'Calls':>7}")


def format_comparison_line(name: str, stats: dict) -> str:
    """One row of `format_comparison` from a `summary` dict."""
    s = {k: float(v) for k, v in stats.items()}
    return (f"{name:<16}{s['net_pnl'] * 100:>9.2f}%{s['sortino']:>10.2f}{s['sharpe']:>9.2f}"
            f"{s['max_drawdown'] * 100:>8.2f}%{s['max_leverage']:>7.2f}x"
            f"{s['total_fees']:>11.5f}{s['total_leverage_cost']:>11.5f}{s['turnover']:>8.2f}x{s['margin_calls']:>7.0f}")


def format_comparison(stats: dict[str, dict]) -> str:
    """A table with one row per named `summary` dict (policy, baselines, variants)."""
    return "\n".join([COMPARISON_HEADER] + [format_comparison_line(k, v) for k, v in stats.items()])
