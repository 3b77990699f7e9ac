"""experiments/evaluate.py and experiments/plan.py on a tiny trained run, and the sizing they rely on."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from ndjax.dynamics import step
from ndjax.dynamics import size_orders
from ndjax.runs.folder import (RunError, lag_check, load_market, load_run,  read_positions, run_arrays,
                        simulate_run)
from ndjax.sim import summary
from tests.conftest import random_case, to_jax

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_ndjax_exp_{name}", ROOT / "experiments" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    _script("train").main(["--steps", "2", "--eval-every", "2", "--synthetic-days", "200", "--window", "16",
                           "--batch", "2", "--lookback", "8", "--d-model", "8", "--no-rows", "--out", str(out)])
    return out


@pytest.mark.parametrize("interest", ["excess", "debit"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_order_sizes_equal_step(seed, interest):
    params, state, action, bar = to_jax(random_case(seed), interest=interest)
    _, info = step(params, state, action, bar)
    sizes = size_orders(params, state, action, bar.tradable, bar.days_elapsed)
    np.testing.assert_allclose(sizes.buy_qty, info.buy_order_qty, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sizes.sell_qty, info.sell_order_qty, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sizes.interest, info.leverage_cost, rtol=1e-6, atol=1e-9)


def test_evaluate_outputs_match_summary(run_dir, tmp_path, capsys):
    result = _script("evaluate").main(["--run", str(run_dir), "--out", str(tmp_path), "--no-rows"])
    text = capsys.readouterr().out
    for needle in ("Final Equity", "Per symbol", "Equal-weight buy and hold", "All cash", "Lag check", "lag 2"):
        assert needle in text
    for name in ("equity.png", "evaluate_daily.csv", "evaluate_symbols.csv", "evaluate_summary.json",
                 "evaluate_report.txt"):
        assert (tmp_path / name).is_file(), name
    with open(tmp_path / "evaluate_daily.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["date", "equity", "cash", "return", "leverage", "leverage_cost", "fees",
                             "traded_notional", "margin_call", "forced_notional"]

    # recompute independently through the library: the numbers are `summary`'s
    run = load_run(run_dir)
    market = load_market(run)
    arrays = run_arrays(run, market)
    start, stop = result["start_row"], result["stop_row"]
    assert str(market.dates[start]) == run.meta["split"]["test"][0]
    _, infos = simulate_run(run, arrays, start, stop)
    stats = summary(infos, run.periods_per_year)
    for key, value in result["summary"]["policy"].items():
        assert value == pytest.approx(float(stats[key]), rel=1e-6, abs=1e-9), key
    assert len(rows) == infos.equity.shape[0] == stop - start - 1
    assert float(rows[-1]["equity"]) == pytest.approx(float(stats["final_equity"]), rel=1e-6)
    assert sum(float(r["fees"]) for r in rows) == pytest.approx(float(stats["total_fees"]), rel=1e-5, abs=1e-9)
    # per-symbol PnL adds up to the account's, fees and interest to the totals
    sym = result["symbols"]
    assert [s["symbol"] for s in sym] == list(run.symbols)
    pnl = float(stats["final_equity"] - stats["initial_equity"])
    assert sum(s["pnl"] for s in sym) == pytest.approx(pnl, abs=1e-5)
    assert sum(s["fees"] for s in sym) == pytest.approx(float(stats["total_fees"]), rel=1e-4, abs=1e-8)
    assert sum(s["interest"] for s in sym) == pytest.approx(float(stats["total_leverage_cost"]), rel=1e-4, abs=1e-8)
    assert set(result["summary"]) == {"policy", "policy_lag2", "buy_and_hold", "cash"}
    assert result["summary"]["cash"]["final_equity"] == pytest.approx(1.0)


def _check_caps(plan: dict) -> None:
    """The plan's buys fit the one pool of excess equity, as the transition sizes them."""
    buys = [o for o in plan["orders"] if o["side"] == "buy"]
    rate = {"stock": 1 / plan["stock_max_leverage"], "crypto": 1 / plan["crypto_max_leverage"]}
    used = sum((rate[o["asset_class"]] + plan["maker_fee"]) * o["notional"] for o in buys)
    E = plan["equity_after_interest"]
    requirement = 0.5 * plan["stock_value"] + plan["crypto_value"]
    assert plan["initial_requirement"] == pytest.approx(requirement, rel=1e-5, abs=1e-6)
    assert plan["excess"] == pytest.approx(max(E - requirement, 0), rel=1e-5, abs=1e-6)
    assert used <= plan["excess"] * (1 + 1e-6) + 1e-9
    for o in plan["orders"]:
        assert o["quantity"] > 0 and o["limit_price"] > 0
        if o["side"] == "sell":
            assert o["quantity"] <= plan["positions"].get(o["symbol"], 0)


def test_plan_all_cash_respects_caps(run_dir, tmp_path, capsys):
    plan = _script("plan").main(["--run", str(run_dir), "--equity", "25000", "--out", str(tmp_path)])
    assert "Symbol" in capsys.readouterr().out
    assert plan["equity"] == pytest.approx(25000) and plan["excess"] == pytest.approx(25000, rel=1e-6)
    assert plan["buying_power_stock"] == pytest.approx(25000 / 0.5008, rel=1e-6)
    assert plan["buying_power_crypto"] == pytest.approx(25000 / 1.0008, rel=1e-6)
    _check_caps(plan)
    with open(tmp_path / "plan.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["symbol", "asset_class", "side", "limit_price", "quantity", "notional", "fee", "mark",
                             "limit_vs_mark", "fraction"]
    assert len(rows) == len(plan["orders"]) and all(r["side"] == "buy" for r in rows)  # nothing held to sell
    assert json.loads((tmp_path / "plan.json").read_text())["orders"] == plan["orders"]


def test_plan_closed_market_and_positions(run_dir, tmp_path):
    run = load_run(run_dir)
    market = load_market(run)
    # a Friday: the next row (Saturday) is no NYSE session
    fridays = [i for i, d in enumerate(market.dates) if d.astype("datetime64[D]").item().weekday() == 4]
    row = fridays[-2]  # leaves the following Monday inside the data
    assert market.stock_tradable_next[row] == 0
    pos = tmp_path / "book.csv"
    stock, coin = run.symbols[0], run.symbols[-1]
    pos.write_text(f"symbol,quantity\n{stock},40\n{coin},3\nCASH,-500\n")
    plan = _script("plan").main(["--run", str(run_dir), "--positions", str(pos), "--as-of", str(market.dates[row]),
                                 "--out", str(tmp_path), "--whole-shares"])
    stocks = [s for s, c in zip(run.symbols, run.is_crypto) if not c]
    assert sorted(s["symbol"] for s in plan["skipped"]) == sorted(stocks)
    assert all("closed" in s["reason"] for s in plan["skipped"])
    assert not [o for o in plan["orders"] if o["symbol"] in stocks]
    assert plan["cash"] == -500 and plan["positions"] == {stock: 40.0, coin: 3.0}
    _check_caps(plan)

    # the next (open) session with leverage above the cap: no stock buys at all
    row2 = row + 3  # Monday
    marks = np.asarray(market.close[row2])
    big = 3 * 10_000 / marks[0]
    pos.write_text(f"symbol,quantity\n{stock},{big}\nCASH,-20000\n")
    plan = _script("plan").main(["--run", str(run_dir), "--positions", str(pos), "--as-of",
                                 str(market.dates[row2]), "--out", str(tmp_path)])
    assert market.stock_tradable_next[row2] == 1 and not plan["skipped"]
    assert plan["excess"] == 0 and plan["initial_requirement"] > plan["equity"]
    assert not [o for o in plan["orders"] if o["side"] == "buy"]
    _check_caps(plan)


@pytest.mark.parametrize("body, needle", [
    ("symbol,quantity\nSTK0,10\nSTK1,abc\n", "row 2 (line 3): quantity 'abc' is not a number"),
    ("symbol,quantity\nSTK0,-1\n", "row 1 (line 2): quantity -1.0 is negative"),
    ("symbol,quantity\nNOPE,1\n", "row 1 (line 2): symbol 'NOPE' is not traded"),
    ("symbol,quantity\nSTK0,1\nSTK0,2\n", "row 2 (line 3): duplicate symbol 'STK0'"),
    ("sym,qty\nSTK0,1\n", "row 1 (header)"),
    ("symbol,quantity\nSTK0\n", "row 1 (line 2): expected 2 fields"),
])
def test_positions_errors_name_file_and_row(tmp_path, body, needle):
    path = tmp_path / "positions.csv"
    path.write_text(body)
    with pytest.raises(RunError) as e:
        read_positions(path, ["STK0", "STK1", "CRY0-USD"])
    assert str(path) in str(e.value) and needle in str(e.value)


def test_positions_formats(tmp_path):
    syms = ["STK0", "CRY0-USD"]
    p = tmp_path / "a.csv"
    p.write_text("quantity,symbol\n2.5,STK0\n,\n-100,cash\n")
    assert read_positions(p, syms) == ({"STK0": 2.5}, -100.0)
    j = tmp_path / "b.json"
    j.write_text(json.dumps({"cash": 10, "positions": [{"symbol": "CRY0-USD", "quantity": 0.1}]}))
    assert read_positions(j, syms) == ({"CRY0-USD": 0.1}, 10.0)
    j.write_text(json.dumps({"positions": {"STK0": 1}}))
    assert read_positions(j, syms) == ({"STK0": 1.0}, None)
    j.write_text(json.dumps({"positions": [{"symbol": "STK0"}]}))
    with pytest.raises(RunError, match=r"b\.json: positions entry 1"):
        read_positions(j, syms)


def test_lag_check_flags_large_drops():
    base = {"sortino": 2.0, "net_pnl": 0.20}
    assert lag_check(base, {"sortino": 1.5, "net_pnl": 0.15}) == (False, [])
    flagged, reasons = lag_check(base, {"sortino": 0.5, "net_pnl": 0.15})
    assert flagged and "Sortino" in reasons[0]
    flagged, reasons = lag_check(base, {"sortino": 1.8, "net_pnl": 0.05})
    assert flagged and "net return" in reasons[0]
    assert not lag_check({"sortino": 0.0, "net_pnl": 0.001}, {"sortino": 0.0, "net_pnl": -0.001})[0]


def test_evaluate_compare_probe_and_realistic(run_dir, tmp_path, capsys):
    result = _script("evaluate").main(["--run", str(run_dir), "--out", str(tmp_path / "ev"), "--no-rows", "--compare-probe",
                            "--realistic", "--participation", "0.5"])
    text = capsys.readouterr().out
    assert "probe mode" in text and "realistic (gap fills" in text
    assert {"probe", "realistic"} <= set(result["summary"])
    for name in ("probe", "realistic"):
        assert np.isfinite(result["summary"][name]["final_equity"])
