"""Evaluation of a trained run: the report and its files agree with the library's numbers, per-symbol attribution
adds up, the lag check, the probe and realism variants."""

from __future__ import annotations

import csv

import jax
import numpy as np
import pytest

from ndjax.metrics import PathStats, summary
from ndjax.report.writers import DAILY_COLUMNS
from ndjax.runs.evaluate import evaluate_run, lag_check, per_symbol, simulate_run
from ndjax.runs.folder import load_market, load_run, run_arrays
from ndjax.sim import simulate
from tests.test_dynamics_margin import _harsh_path


def test_evaluate_outputs_match_summary(run_dir, tmp_path):
    result = evaluate_run(load_run(run_dir), tmp_path, rows=False)
    text = result["text"]
    for needle in ("Final Equity", "Per symbol", "buy_and_hold", "cash", "Lag check", "lag 2"):
        assert needle in text
    for name in ("equity.png", "evaluate_daily.csv", "evaluate_symbols.csv", "evaluate_summary.json",
                 "evaluate_report.txt"):
        assert (tmp_path / name).is_file(), name
    with open(tmp_path / "evaluate_daily.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(DAILY_COLUMNS)

    # recompute independently through the library: the numbers are `summary`'s
    run = load_run(run_dir)
    market = load_market(run)
    arrays = run_arrays(run, market)
    start, stop = result["start_row"], result["stop_row"]
    assert str(market.dates[start]) == run.config.split["test"][0]
    _, infos = simulate_run(run, arrays, start, stop)
    stats = summary(infos, run.config.periods_per_year)
    for key, value in result["summary"]["policy"].items():
        assert value == pytest.approx(float(getattr(stats, key)), rel=1e-6, abs=1e-9), key
    assert len(rows) == infos.equity.shape[0] == stop - start - 1
    assert float(rows[-1]["equity"]) == pytest.approx(float(stats.final_equity), rel=1e-6)
    assert sum(float(r["fees"]) for r in rows) == pytest.approx(float(stats.total_fees), rel=1e-5, abs=1e-9)
    # per-symbol PnL adds up to the account's, fees and interest to the totals
    sym = result["symbols"]
    assert [s["symbol"] for s in sym] == list(run.symbols)
    pnl = float(stats.final_equity - stats.initial_equity)
    assert sum(s["pnl"] for s in sym) == pytest.approx(pnl, abs=1e-5)
    assert sum(s["fees"] for s in sym) == pytest.approx(float(stats.total_fees), rel=1e-4, abs=1e-8)
    assert sum(s["interest"] for s in sym) == pytest.approx(float(stats.total_leverage_cost), rel=1e-4, abs=1e-8)
    assert set(result["summary"]) == {"policy", "policy_lag2", "buy_and_hold", "cash", "trend", "inverse_vol", "oracle"}
    assert sum(s["forced_sales"] for s in sym) == int(np.sum(np.asarray(infos.forced_qty) > 0))
    assert result["summary"]["cash"]["final_equity"] == pytest.approx(1.0)


def _stats(sortino: float, total_return: float) -> PathStats:
    return PathStats(**{name: 0.0 for name in PathStats.names()}).replace(sortino=sortino, total_return=total_return)


def test_lag_check_flags_large_drops():
    base = _stats(2.0, 0.20)
    assert lag_check(base, _stats(1.5, 0.15)) == (False, [])
    flagged, reasons = lag_check(base, _stats(0.5, 0.15))
    assert flagged and "Sortino" in reasons[0]
    flagged, reasons = lag_check(base, _stats(1.8, 0.05))
    assert flagged and "net return" in reasons[0]
    assert not lag_check(_stats(0.0, 0.001), _stats(0.0, -0.001))[0]


def test_evaluate_compare_probe_and_realistic(run_dir, tmp_path):
    result = evaluate_run(load_run(run_dir), tmp_path / "ev", rows=False,
                          variants={"probe": {"probe_notional": 0.05}, "realistic": {"participation": 0.5}})
    text = result["text"]
    assert "probe mode" in text and "realistic: gap fills" in text
    assert {"probe", "realistic"} <= set(result["summary"])
    for name in ("probe", "realistic"):
        assert np.isfinite(result["summary"][name]["final_equity"])


def test_a_run_trades_a_universe_it_was_not_trained_on(run_dir, tmp_path):
    """The tiny run (4 synthetic assets) evaluated and planned on a folder of 3 other symbols, one of them crypto:
    features through the run's normaliser, asset classes from the new symbols."""
    from ndjax.data.synthetic import synthetic_market
    from ndjax.runs.folder import RunError
    from ndjax.runs.plan import plan_next_day

    other = synthetic_market(9, n_stocks=2, n_crypto=1, n_days=120)
    folder = tmp_path / "other"
    folder.mkdir()
    for j, name in enumerate(["AAA", "BBB", "ZZZ-USD"]):
        rows = np.flatnonzero(other.tradable[:, j] > 0)
        lines = ["Date,Open,High,Low,Close,Volume"] + [
            f"{other.dates[i]},{other.open[i, j]},{other.high[i, j]},{other.low[i, j]},{other.close[i, j]},"
            f"{other.volume[i, j]}" for i in rows]
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    run = load_run(run_dir)
    with pytest.raises(RunError, match="symbols 'all'"):
        evaluate_run(run, tmp_path / "x", data_dir=str(folder), start=str(other.dates[40]))
    result = evaluate_run(run, tmp_path / "ev", data_dir=str(folder), symbols="all", start=str(other.dates[40]),
                          rows=False)
    assert [s["symbol"] for s in result["symbols"]] == ["AAA", "BBB", "ZZZ-USD"]
    assert [s["asset_class"] for s in result["symbols"]] == ["stock", "stock", "crypto"]
    assert "oracle" not in result["summary"] and np.isfinite(result["summary"]["policy"]["final_equity"])
    plan = plan_next_day(run, tmp_path / "pl", data_dir=str(folder), symbols=["AAA", "ZZZ-USD"], equity=10_000)
    assert {o["symbol"] for o in plan["orders"]} <= {"AAA", "ZZZ-USD"} and plan["orders"]
    assert {o["asset_class"] for o in plan["orders"] if o["symbol"] == "ZZZ-USD"} == {"crypto"}


@pytest.mark.parametrize("seed", [0, 1])
def test_per_symbol_adds_up_through_margin_calls(seed):
    """On a violent path with forced sales, each asset's PnL (sales and forced sales against the average cost,
    what is held at the last close, its share of interest) sums to the account's equity change, fees too."""
    with jax.enable_x64(True):
        params, state0, actions, bars = _harsh_path(seed, T=300, B=8)
        _, infos = simulate(params, state0, actions, bars)
    b = int(np.argmax(np.asarray(infos.margin_call).sum(0)))  # the portfolio with the most calls
    take = lambda tree: jax.tree_util.tree_map(lambda x: np.asarray(x)[:, b], tree)  # noqa: E731
    path, acts = take(infos), take(actions)
    assert path.margin_call.sum() > 3 and (path.forced_qty > 0).sum() > 3
    closes = np.concatenate([np.asarray(state0.mark)[b:b + 1], np.asarray(bars.close)[:, b]])
    rows = per_symbol(path, acts, closes, np.asarray(params.is_crypto), float(params.maker_fee), list("ABCDE"),
                      float(params.liquidation_slippage))
    change = float(path.equity[-1]) - float(np.asarray(state0.cash)[b])
    assert sum(r["pnl"] for r in rows) == pytest.approx(change, rel=1e-9, abs=1e-6)
    assert sum(r["fees"] for r in rows) == pytest.approx(float(path.fees.sum()), rel=1e-9)
    assert sum(r["interest"] for r in rows) == pytest.approx(float(path.leverage_cost.sum()), rel=1e-9)
    assert sum(r["forced_sales"] for r in rows) == int((path.forced_qty > 0).sum())
    assert [r["final_quantity"] for r in rows] == pytest.approx(list(path.inventory[-1]))


def test_per_symbol_counts_gap_fills():
    """With `gap_fill`, a limit the open gapped through executes at the open: per-symbol PnL and fees read the
    transition's execution prices, so they still sum to the account's (they were read at the limits)."""
    from ndjax.dynamics import execution_prices

    with jax.enable_x64(True):
        params, state0, actions, bars = _harsh_path(2, T=200, B=4)
        prev = np.concatenate([np.asarray(state0.mark)[None], np.asarray(bars.close)[:-1]])
        opens = prev + np.random.default_rng(5).uniform(0, 1, prev.shape) * (np.asarray(bars.close) - prev)
        params, bars = params.replace(gap_fill=True), bars.replace(open=jax.numpy.asarray(opens))
        _, infos = simulate(params, state0, actions, bars)
        execution = execution_prices(params, actions, bars)
    b = 0
    take = lambda tree: jax.tree_util.tree_map(lambda x: np.asarray(x)[:, b], tree)  # noqa: E731
    path, acts, (buy_px, sell_px) = take(infos), take(actions), take(execution)
    assert ((path.buy_qty > 0) & (buy_px < acts.buy_price)).sum() > 10  # the path really gaps through limits
    closes = np.concatenate([np.asarray(state0.mark)[b:b + 1], np.asarray(bars.close)[:, b]])
    rows = per_symbol(path, acts, closes, np.asarray(params.is_crypto), float(params.maker_fee), list("ABCDE"),
                      float(params.liquidation_slippage), execution=(buy_px, sell_px))
    change = float(path.equity[-1]) - float(np.asarray(state0.cash)[b])
    assert sum(r["pnl"] for r in rows) == pytest.approx(change, rel=1e-9, abs=1e-6)
    assert sum(r["fees"] for r in rows) == pytest.approx(float(path.fees.sum()), rel=1e-9)
