"""Next-day planning: orders sized by the transition's own sizing, inside the pool of excess equity, skipping
closed markets, from a positions file."""

from __future__ import annotations

import csv
import dataclasses
import json

import jax
import numpy as np
import pytest

from ndjax.dynamics import size_orders
from ndjax.policy import create
from ndjax.report.tables import format_plan
from ndjax.runs.evaluate import held_out
from ndjax.runs.folder import RunError, load_market, load_run, run_arrays
from ndjax.runs.plan import ORDER_COLUMNS, plan_next_day, plan_orders
from tests.helpers import random_case, to_jax
from tests.reference import reference_step

_sizes = jax.jit(size_orders)


@pytest.mark.parametrize("interest", ["excess", "debit"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_order_sizes_equal_the_reference(seed, interest):
    """The plan's sizing (`size_orders`) against the independent float64 reading of steps 1-2."""
    case = random_case(seed)
    params, state, action, bar = to_jax(case, interest=interest)
    sizes = _sizes(params, state, action, bar.tradable, bar.days_elapsed)
    ref = reference_step(**case, interest=interest)
    np.testing.assert_allclose(sizes.buy_qty, ref["buy_order"], rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(sizes.sell_qty, ref["sell_order"], rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(sizes.interest, ref["interest"], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(sizes.excess, ref["X"], rtol=2e-5, atol=1e-3)


def test_plan_decides_as_the_evaluation_for_a_deep_transformer(run_dir):
    """A two-layer transformer reads `n_layers·(lookback−1)+1` rows: the plan at a row sizes the same orders as the
    evaluation's first decision from that row (both see the whole receptive field)."""
    run = load_run(run_dir)
    policy = dataclasses.replace(run.config.train.policy, model="transformer", n_layers=2, lookback=6)
    config = dataclasses.replace(run.config, train=dataclasses.replace(run.config.train, policy=policy))
    graphdef, params = create(policy, jax.random.PRNGKey(3))
    params = jax.tree_util.tree_map(lambda x: x * 3.0, params)  # a sharper policy than the zero-initialised head
    deep = dataclasses.replace(run, config=config, graphdef=graphdef, params=params)
    assert deep.context == 11
    market = load_market(deep)
    arrays = run_arrays(deep, market)
    start, cash = market.n_days - 30, 1e6
    assert not np.asarray(market.is_crypto).all() and float(market.stock_tradable_next[start]) > 0
    result = held_out(graphdef, params, arrays, start, deep.context, config.market_params("hard"),
                      initial_cash=cash)
    plan = plan_orders(deep, market, arrays, cash=cash, quantities={}, row=start, share_unit=1e-9)
    fractions = {o["symbol"]: o["fraction"] for o in plan["orders"] if o["side"] == "buy"}
    assert fractions
    expected = np.asarray(result.actions.buy_frac[0], np.float64)
    for symbol, fraction in fractions.items():
        assert fraction == pytest.approx(expected[run.symbols.index(symbol)], rel=1e-5, abs=1e-7), symbol


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


def test_plan_all_cash_respects_caps(run_dir, tmp_path):
    plan = plan_next_day(load_run(run_dir), tmp_path, equity=25000)
    assert "Symbol" in format_plan(plan)
    assert plan["equity"] == pytest.approx(25000) and plan["excess"] == pytest.approx(25000, rel=1e-6)
    assert plan["buying_power_stock"] == pytest.approx(25000 / 0.5008, rel=1e-6)
    assert plan["buying_power_crypto"] == pytest.approx(25000 / 1.0008, rel=1e-6)
    _check_caps(plan)
    with open(tmp_path / "plan.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(ORDER_COLUMNS)
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
    plan = plan_next_day(run, tmp_path, positions=pos, as_of=market.dates[row], whole_shares=True)
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
    plan = plan_next_day(run, tmp_path, positions=pos, as_of=market.dates[row2])
    assert market.stock_tradable_next[row2] == 1 and not plan["skipped"]
    assert plan["excess"] == 0 and plan["initial_requirement"] > plan["equity"]
    assert not [o for o in plan["orders"] if o["side"] == "buy"]
    _check_caps(plan)


def test_plan_needs_equity_or_cash(run_dir, tmp_path):
    with pytest.raises(RunError, match="equity"):
        plan_next_day(load_run(run_dir), tmp_path)
