"""Held-out evaluation: the policy beside its baselines on the same bars, per-symbol attribution, the lag check,
realism and probe variants, and the files `experiments/evaluate.py` writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ndjax.baselines import run_baselines
from ndjax.classical import classical_targets, run_targets
from ndjax.data.arrays import MarketArrays, context_split
from ndjax.data.calendar import check_reaches, row_at_or_after, row_at_or_before
from ndjax.data.synthetic import SyntheticTruth
from ndjax.dynamics import Action, Bar, MarketParams, StepInfo, execution_prices
from ndjax.errors import ConfigError
from ndjax.metrics import PathStats, summary
from ndjax.oracle import run_oracle, truth_rows
from ndjax.probe import binding, empty_memory, probe_cap, remember_bar
from ndjax.report.tables import evaluation_sections
from ndjax.report.writers import write_period_report, write_rows
from ndjax.runs.folder import Run, RunError, check_equity, load_market, run_arrays
from ndjax.sim import simulate_policy_jit

VARIANTS = {
    "probe": ("probe mode: after losing trades a symbol's position held to {probe_notional:g} of equity, "
              "absolute cap {probe_max_outlay}", lambda o: dict(probe=True, probe_notional=o["probe_notional"],
                                                   probe_max_outlay=o.get("probe_max_outlay"))),
    "realistic": ("realistic: gap fills at the open, participation cap {participation:g} of volume, debit interest",
                  lambda o: dict(gap_fill=True, participation_cap=o["participation"], interest="debit")),
}
"""Policy variants `evaluate_run` can add: a label and the `simulate_run` overrides built from the options."""


@dataclass(frozen=True)
class HeldOut:
    """The policy's actions `(T, N)`, the bars they met `(T, N)` and the paths (`policy`, `buy_and_hold`, `cash`),
    time on axis 0."""

    actions: Action
    paths: dict[str, StepInfo]
    bars: Bar


def simulate_window(graphdef: nnx.GraphDef, params: Any, arrays: MarketArrays, start: int, stop: int, context: int,
                    mp: MarketParams, initial_cash: float, *, lag: int = 1, probe: bool = False,
                    label: str = "period rows") -> tuple[Action, StepInfo, MarketArrays]:
    """The one simulation entry point of evaluation: the policy flat at the close of row `start`, its encoder
    reading `context` rows before it, deciding with `lag` bars of delay over bars `start + lag .. stop - 1`.

    Returns `(actions, infos, ctx)`: time on axis 0 (`stop - start - lag` steps) and the rows simulated with their
    context (`data.arrays.context_split`). `RunError` (its message starting with `label`) if the rows do not fit.
    """
    if not context <= start < stop - lag:
        raise RunError(f"{label} [{start}, {stop}): the start needs {context} rows of encoder context before it "
                       f"and at least {lag} bar(s) after it")
    ctx = context_split(arrays, start, stop, context)
    actions, infos = simulate_policy_jit(graphdef, params, ctx, mp, context, initial_cash, lag=lag, probe=probe)
    return actions, infos, ctx


def held_out(graphdef: nnx.GraphDef, params: Any, arrays: MarketArrays, start: int, context: int,
             mp: MarketParams, stop: int | None = None, initial_cash: float = 1.0,
             truth: SyntheticTruth | None = None, classical: Mapping[str, Any] | None = None) -> HeldOut:
    """The policy and the baselines over bars `start+1 .. stop-1`, all flat at the close of row `start`; the
    policy's encoder reads `context` rows before `start` (`PolicyConfig.context`). `stop - start - 1` steps each.
    With the synthetic market's `truth` (rows of `arrays`), the oracle's path is added under "oracle"; with the
    classical rules' target weights `(T, N)` per name over the rows of `arrays` (`classical.classical_targets` of
    the market), their paths under "trend" and "inverse_vol"."""
    stop = arrays.n_days if stop is None else stop
    actions, policy, ctx = simulate_window(graphdef, params, arrays, start, stop, context, mp, initial_cash,
                                           label="held-out rows")
    bars = jax.tree_util.tree_map(lambda x: x[context:], ctx.bars())
    cash = jnp.asarray(initial_cash, bars.close.dtype)
    paths = {"policy": policy, **run_baselines(mp, bars, cash)}
    if classical is not None:
        paths.update(run_targets(mp, bars, {k: jnp.asarray(v[start:stop]) for k, v in classical.items()}, cash))
    if truth is not None:
        paths["oracle"] = run_oracle(mp, bars, jnp.asarray(truth_rows(truth, start, stop)), cash)
    return HeldOut(actions=actions, paths=paths, bars=jax.tree_util.tree_map(lambda x: x[1:], bars))


def captured_share(stats: Mapping[str, PathStats]) -> float | None:
    """Policy Sortino / oracle Sortino (None without an oracle path or with an oracle Sortino <= 0)."""
    if "oracle" not in stats or float(stats["oracle"].sortino) <= 0:
        return None
    return float(stats["policy"].sortino) / float(stats["oracle"].sortino)


def simulate_run(run: Run, arrays: MarketArrays, start: int, stop: int, *, lag: int = 1,
                 initial_cash: float | None = None, fill: str = "hard", probe: bool = False,
                 **market_overrides: Any) -> tuple[Action, StepInfo]:
    """`simulate_window` for a run: its policy and rules (`fill`; `market_overrides` replace `MarketParams`
    fields: `gap_fill=True`, `participation_cap=0.01`, `interest="debit"`, `probe_notional=0.05`, ...; `probe`
    adds the trade memory), its starting cash unless `initial_cash` is given. Returns `(actions, infos)`."""
    mp = run.config.market_params(fill, is_crypto=arrays.is_crypto).replace(**market_overrides)
    cash = float(run.config.train.initial_cash if initial_cash is None else initial_cash)
    actions, infos, _ = simulate_window(run.graphdef, run.params, arrays, start, stop, run.context, mp, cash,
                                        lag=lag, probe=probe)
    return actions, infos


def per_symbol(infos: Any, actions: Action, closes: Any, is_crypto: Any, maker_fee: float,
               symbols: Sequence[str], liquidation_slippage: float = 0.001, *,
               execution: tuple[Any, Any] | None = None) -> list[dict[str, Any]]:
    """Per-asset attribution of one path: its executions (`StepInfo.buy_qty`, `sell_qty`, `forced_qty`) at their
    execution prices `execution = (buy_px, sell_px)` `(T, N)` each (`dynamics.execution_prices` of the path's
    rules, actions and bars: the open where a `gap_fill` bar gapped through a limit; default the limits of
    `actions`, a path without gap fills), forced sales at `close * (1 - liquidation_slippage)`.

    `infos`/`actions` `(T, N)` from a rollout starting flat; `closes (T + 1, N)` the marks: the close before
    the first bar, then each bar's close.
    PnL = realised (sells against the average cost, fees included) + unrealised (units held at the last
    close against their average cost) - interest; a bar's interest is allocated to the stocks in
    proportion to the stock value carried into it. The average cost follows the transition's order of the bar's
    trades (`probe.remember_bar`). The PnLs sum to the path's final - initial equity.
    """
    f = float(maker_fee)
    xb, xs = np.asarray(infos.buy_qty, np.float64), np.asarray(infos.sell_qty, np.float64)
    bp, sp = (actions.buy_price, actions.sell_price) if execution is None else execution
    bp, sp = np.asarray(bp, np.float64), np.asarray(sp, np.float64)
    inv = np.asarray(infos.inventory, np.float64)
    T, N = xb.shape
    marks = np.asarray(closes, np.float64)
    if marks.shape != (T + 1, N):
        raise ConfigError(f"per_symbol: closes of shape {marks.shape}, expected {(T + 1, N)}")
    q_before = np.concatenate([np.zeros((1, N)), inv[:-1]], 0)
    stock_value = np.where(np.asarray(is_crypto, bool), 0.0, q_before * marks[:-1])
    total = stock_value.sum(-1, keepdims=True)
    cost = np.asarray(infos.leverage_cost, np.float64)[:, None]
    interest = np.where(total > 0, cost * stock_value / np.where(total > 0, total, 1), 0).sum(0)
    held = np.zeros(N)
    memory = empty_memory(held)  # the average cost per unit
    realised = np.zeros(N)
    forced = np.asarray(infos.forced_qty, np.float64)
    forced_px = marks[1:] * (1 - float(liquidation_slippage))
    for t in range(T):
        sold = np.minimum(xs[t], held)
        between = held - sold + xb[t]
        called = np.minimum(forced[t], between)  # a margin call sells at the close after the bar's own trades
        after_orders, after_call = remember_bar(memory, held, between, inv[t], xb[t], sold, bp[t], sp[t], called,
                                                forced_px[t], f)
        realised += sold * (sp[t] * (1 - f) - memory.cost_basis)
        realised += called * (forced_px[t] * (1 - f) - after_orders.cost_basis)
        memory, held = after_call, inv[t]
    last = marks[-1]
    unrealised = held * (last - memory.cost_basis)
    fees = f * ((xb * bp).sum(0) + (xs * sp).sum(0) + (forced * forced_px).sum(0))
    placed_b, placed_s = np.asarray(infos.buy_order_qty) > 0, np.asarray(infos.sell_order_qty) > 0
    fb, fs = np.asarray(infos.buy_fill, np.float64), np.asarray(infos.sell_fill, np.float64)
    rows = []
    for i, s in enumerate(symbols):
        rows.append({
            "symbol": s, "asset_class": "crypto" if bool(np.asarray(is_crypto)[i]) else "stock",
            "pnl": float(realised[i] + unrealised[i] - interest[i]), "realised": float(realised[i]),
            "unrealised": float(unrealised[i]), "interest": float(interest[i]), "fees": float(fees[i]),
            "buys": int((xb[:, i] > 0).sum()), "sells": int((xs[:, i] > 0).sum()),
            "forced_sales": int((forced[:, i] > 0).sum()),
            "trades": int((xb[:, i] > 0).sum() + (xs[:, i] > 0).sum()),
            "buy_fill_rate": float(np.where(placed_b[:, i], fb[:, i], 0).sum() / max(placed_b[:, i].sum(), 1)),
            "sell_fill_rate": float(np.where(placed_s[:, i], fs[:, i], 0).sum() / max(placed_s[:, i].sum(), 1)),
            "final_quantity": float(held[i]), "final_value": float(held[i] * last[i]),
        })
    return rows


def lag_check(stats_1: PathStats, stats_2: PathStats, *, sortino_gap: float = 1.0,
              return_gap: float = 0.5, min_return_gap: float = 0.005) -> tuple[bool, list[str]]:
    """Compare the `PathStats` of the policy at lag 1 and lag 2. Flags a lookahead smell when one bar of extra
    delay costs more than `sortino_gap` of Sortino, or more than `return_gap` x |return at lag 1| of net
    return (and at least `min_return_gap`). Returns `(flagged, reasons)`."""
    s1, s2 = float(stats_1.sortino), float(stats_2.sortino)
    r1, r2 = float(stats_1.total_return), float(stats_2.total_return)
    reasons = []
    if s1 - s2 > sortino_gap:
        reasons.append(f"Sortino drops by {s1 - s2:.2f} (> {sortino_gap:g}) with one more bar of delay")
    if r1 - r2 > max(return_gap * abs(r1), min_return_gap):
        reasons.append(f"net return drops by {(r1 - r2) * 100:.2f} pp (> {return_gap:.0%} of |{r1 * 100:.2f}%|)")
    return bool(reasons), reasons


def period_rows(run: Run, dates: np.ndarray, start: Any = None, end: Any = None, *, newer_data: bool = False
                ) -> tuple[int, int]:
    """Rows `[start, stop)` of a period: from `start` (default: the run's test split) to `end` (default: the test
    split's end, or the data's last row with `newer_data` or an explicit `start`)."""
    test = run.config.split.get("test")
    first = start or (test[0] if test else None)
    if first is None:
        raise RunError(f"{run.path / 'config.json'}: no test split stored; give a start date")
    last = end or (test[1] if test and not (newer_data or start) else None)
    lo = row_at_or_after(dates, first)
    hi = row_at_or_before(dates, last) + 1 if last else len(dates)
    if lo >= len(dates) or hi - lo < 3:
        raise RunError(f"period {first} .. {last or dates[-1]}: fewer than 3 rows in the data "
                       f"({dates[0]} .. {dates[-1]})")
    return lo, hi


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` simulated: the held-out paths over rows `[start_row, stop_row)` of the market (`dates (T,)`
    the bars simulated, `start_date` the close the book starts flat at with `cash`), the policy's stats at lag 1 and
    lag 2 with the lag check's verdict, each variant's label and stats, the per-symbol rows, and how often a
    variant's cap bound (`probe.binding`, with the traded notional before and after)."""

    held_out: HeldOut
    dates: np.ndarray
    start_date: np.datetime64
    start_row: int
    stop_row: int
    cash: float
    periods_per_year: int
    policy: PathStats
    lag2: PathStats
    lag_flagged: bool
    lag_reasons: list[str]
    variants: dict[str, tuple[str, PathStats]]
    symbols: list[dict[str, Any]]
    bindings: dict[str, dict[str, Any]]


def unreachable_cap(options: Mapping[str, Any], peak_equity: float, cash: float) -> str | None:
    """A warning when probe mode's absolute cap `options["probe_max_outlay"]` (account currency) is above the
    relative cap `probe_notional` x `peak_equity` all along the path, so only the relative cap could bind (a run
    at unit starting `cash`, the training default); None when the absolute cap can bind or is off."""
    cap, fraction = options.get("probe_max_outlay"), options.get("probe_notional")
    if cap is None or fraction is None or cap < probe_cap(peak_equity, fraction, None):
        return None
    return (f"the absolute cap {cap:g} is above {fraction:g} of the peak equity ({peak_equity:.4g}): at starting cash "
            f"{cash:g} only the relative cap can bind; --initial-cash sets the account size")


def evaluate(run: Run, *, data_dir: str | None = None, symbols: Any = None, start: Any = None, end: Any = None,
             initial_cash: float | None = None, variants: Mapping[str, Mapping[str, float]] | None = None,
             sortino_gap: float = 1.0, return_gap: float = 0.5, repair: bool | None = None) -> Evaluation:
    """Simulate the run's policy with hard fills over a period beside the baselines, at lag 2 (a lookahead check)
    and in the named `variants` (`VARIANTS` keys mapped to their options); attribute its PnL per symbol.

    The data is read to its last row (or `end`, which it must reach); `repair` drops bad rows with a warning.
    Writes nothing.
    """
    check_equity(initial_cash, "--initial-cash")
    unknown = sorted(set(variants or {}) - set(VARIANTS))
    if unknown:
        raise RunError(f"evaluate: unknown variant {unknown[0]!r}; expected one of {sorted(VARIANTS)}")
    test = run.config.split.get("test")
    market = load_market(run, data_dir, symbols=symbols, repair=repair,
                         period=(start or (test[0] if test else None), end))
    if end is not None:
        check_reaches(market.dates, bool(market.is_crypto.any()), end, "--end")
    arrays = run_arrays(run, market)
    lo, hi = period_rows(run, market.dates, start, end, newer_data=data_dir is not None)
    P = market.periods_per_year
    cash = float(run.config.train.initial_cash if initial_cash is None else initial_cash)
    own = data_dir is None and tuple(market.symbols) == run.symbols
    truth = run.config.source.truth(market) if own else None
    mp = run.config.market_params("hard", is_crypto=market.is_crypto)
    result = held_out(run.graphdef, run.params, arrays, lo, run.context, mp, hi, cash, truth,
                      classical_targets(market))
    _, lag2_path = simulate_run(run, arrays, lo, hi, lag=2, initial_cash=cash)
    lag2 = summary(lag2_path, P)
    policy = summary(result.paths["policy"], P)
    flagged, reasons = lag_check(policy, lag2, sortino_gap=sortino_gap, return_gap=return_gap)
    hp = run.config.hparams
    rows = per_symbol(result.paths["policy"], result.actions, np.asarray(arrays.close[lo:hi]), market.is_crypto,
                      float(hp.maker_fee), market.symbols, float(hp.liquidation_slippage),
                      execution=execution_prices(mp, result.actions, result.bars))
    done, bindings = {}, {}
    for name, options in (variants or {}).items():
        label, overrides = VARIANTS[name]
        options = {"probe_max_outlay": None, **options} if name == "probe" else options  # absent: no absolute cap
        _, infos = simulate_run(run, arrays, lo, hi, initial_cash=cash, **overrides(options))
        done[name] = (label.format(**{k: "none" if v is None else v for k, v in options.items()}), summary(infos, P))
        if name == "probe":
            traded = [float(np.asarray(x.traded_notional).sum()) for x in (result.paths["policy"], infos)]
            bindings[name] = {**binding(infos.probe_cut), "traded_notional": traded,
                              "note": unreachable_cap(options, float(np.max(np.asarray(infos.equity))), cash)}
    return Evaluation(held_out=result, dates=market.dates[lo + 1: hi], start_date=market.dates[lo], start_row=lo,
                      stop_row=hi, cash=cash, periods_per_year=P, policy=policy, lag2=lag2, lag_flagged=flagged,
                      lag_reasons=reasons, variants=done, symbols=rows, bindings=bindings)


def evaluate_run(run: Run, out: str | Path, *, data_dir: str | None = None, symbols: Any = None,
                 start: Any = None, end: Any = None,
                 initial_cash: float | None = None, variants: Mapping[str, Mapping[str, float]] | None = None,
                 rows: bool = True, sortino_gap: float = 1.0, return_gap: float = 0.5,
                 repair: bool | None = None) -> dict[str, Any]:
    """`evaluate`, then its report (`report.tables.evaluation_sections`): `evaluate_report.txt`,
    `evaluate_daily.csv`, `evaluate_summary.json`, `evaluate_symbols.csv` and `equity.png` into `out`.

    Returns the summary dict (also in `evaluate_summary.json`) with `text`, the report.
    """
    ev = evaluate(run, data_dir=data_dir, symbols=symbols, start=start, end=end, initial_cash=initial_cash,
                  variants=variants, sortino_gap=sortino_gap, return_gap=return_gap, repair=repair)
    title, sections = evaluation_sections(
        step=run.step, score=float(run.checkpoint_meta.get("score", np.nan)), dates=ev.dates,
        start_date=ev.start_date, cash=ev.cash, symbols=ev.symbols, policy=ev.policy, lag2=ev.lag2,
        lag_flagged=ev.lag_flagged, lag_reasons=ev.lag_reasons, variants=ev.variants,
        bindings=ev.bindings)
    extra = {"policy_lag2": ev.lag2, **{name: stats for name, (_, stats) in ev.variants.items()}}
    summary_extra = {"start_row": ev.start_row, "stop_row": ev.stop_row, "checkpoint_step": run.step,
                     "lag_check": {"flagged": ev.lag_flagged, "reasons": ev.lag_reasons}, "symbols": ev.symbols,
                     **{f"{name}_binding": bound for name, bound in ev.bindings.items()}}
    out = Path(out)
    text, stats = write_period_report(out, "evaluate", title, ev.dates, ev.held_out.paths, ev.periods_per_year,
                                      rows=rows, extra_sections=sections, extra_stats=extra,
                                      summary_extra=summary_extra)
    write_rows(out / "evaluate_symbols.csv", ev.symbols)
    return dict(summary_extra, text=text, period=[str(ev.dates[0]), str(ev.dates[-1])],
                summary={k: v.as_dict() for k, v in stats.items()})
