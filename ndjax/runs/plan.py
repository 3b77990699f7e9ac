"""The next trading day's orders from a run's policy and a book, sized exactly as the transition sizes them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ndjax.data.arrays import MarketArrays
from ndjax.data.calendar import check_reaches, row_at_or_before
from ndjax.data.market import MarketData
from ndjax.dynamics import (
    Action,
    MarketParams,
    OrderSizes,
    PortfolioState,
    affordable_value,
    maintenance_requirement,
    size_orders,
)
from ndjax.observation import observe
from ndjax.policy import encode, make_apply
from ndjax.probe import ProbeState
from ndjax.report.writers import write_json, write_rows
from ndjax.runs.folder import Run, RunError, check_equity, load_market, run_arrays
from ndjax.runs.positions import read_positions


@partial(jax.jit, static_argnames="graphdef")
def _decide(graphdef: nnx.GraphDef, params: Any, feats: jax.Array, valid: jax.Array, state: PortfolioState,
            mp: MarketParams, tradable: jax.Array, days: jax.Array) -> tuple[Action, OrderSizes]:
    """The policy's action from the last embedding row of `feats (L, N, F)` and the book, and its sizes."""
    emb = encode(graphdef, params, feats, valid)[-1]
    action = make_apply(graphdef)(params, observe(emb, state, mp))
    return action, size_orders(mp, state, action, tradable, days)


def _floor(x: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """Round quantities down to multiples of `unit`, after shaving 1e-6 relative (float32 sizing slack),
    so a rounded order never spends more than its share of the excess nor sells more than is held."""
    return np.floor(np.maximum(x, 0) * (1 - 1e-6) / unit + 1e-9) * unit


@dataclass(frozen=True)
class PlannedOrder:
    """One limit order of a plan: `quantity` units of `symbol` at `limit_price`, its value and fee at the limit,
    the close it was decided at, and the policy's fraction (of the pool for a buy, of the holding for a sale)."""

    symbol: str
    asset_class: str  # "stock" | "crypto"
    side: str  # "buy" | "sell"
    limit_price: float
    quantity: float
    notional: float
    fee: float
    mark: float
    limit_vs_mark: float
    fraction: float


ORDER_COLUMNS = tuple(f.name for f in dataclasses.fields(PlannedOrder))
"""The columns of plan.csv: the fields of `PlannedOrder`."""


@dataclass(frozen=True)
class OrderPlan:
    """The next bar's orders from one decision: per-asset `(N,)` limits, the policy's fractions, the transition's
    buy quantities before rounding (`sized_buy`) and the rounded quantities sent, plus the book's figures
    before the bar (interest, requirements, pool, buying power) and the rules they were sized under.

    `scaled(s)` is the same decision with every buy scaled by `s` (paper trading's ramp-up and kill switch);
    `orders()` lists the orders worth sending; `to_dict()` is the plan.json form."""

    symbols: tuple[str, ...]
    is_crypto: np.ndarray
    active: np.ndarray  # (N,) bool: open on the next bar with a recent bar
    mark: np.ndarray
    buy_price: np.ndarray
    sell_price: np.ndarray
    buy_frac: np.ndarray
    sell_frac: np.ndarray
    sized_buy: np.ndarray  # units, before the buy scale and rounding
    unit: np.ndarray  # rounding unit per asset
    buy_qty: np.ndarray
    sell_qty: np.ndarray
    as_of: str
    next_day: str
    days_elapsed: float
    equity: float
    cash: float
    stock_value: float
    crypto_value: float
    interest: float
    equity_after_interest: float
    initial_requirement: float
    excess: float
    buying_power_stock: float
    buying_power_crypto: float
    maintenance_requirement: float
    maker_fee: float
    stock_max_leverage: float
    crypto_max_leverage: float
    maintenance_margin: float
    positions: dict[str, float]
    buy_scale: float
    skipped: tuple[dict[str, str], ...]
    run: str
    checkpoint_step: int
    probe_cut: np.ndarray | None = None  # (N,) buy outlay probe mode's cap removed (None: probe mode off)

    def scaled(self, buy_scale: float) -> OrderPlan:
        """This decision with every buy scaled by `buy_scale` in [0, 1] and rounded down again."""
        if not 0 <= buy_scale <= 1:
            raise RunError(f"plan: buy_scale must be in [0, 1], got {buy_scale}")
        return dataclasses.replace(self, buy_scale=float(buy_scale),
                                   buy_qty=_floor(self.sized_buy * buy_scale, self.unit))

    def orders(self) -> list[PlannedOrder]:
        """The orders to send, by symbol (buy before sell): active assets with a positive rounded quantity."""
        out = []
        for j in np.flatnonzero(self.active):
            cls = "crypto" if self.is_crypto[j] else "stock"
            for side, qty, price, frac in (("buy", self.buy_qty[j], self.buy_price[j], self.buy_frac[j]),
                                           ("sell", self.sell_qty[j], self.sell_price[j], self.sell_frac[j])):
                if qty <= 0:
                    continue
                notional = float(qty * price)
                out.append(PlannedOrder(self.symbols[j], cls, side, float(price), round(float(qty), 10), notional,
                                        notional * self.maker_fee, float(self.mark[j]),
                                        float(price / self.mark[j] - 1), float(frac)))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain values (plan.json, the printed plan): the figures, the orders and the skipped."""
        arrays = {"symbols", "is_crypto", "active", "mark", "buy_price", "sell_price", "buy_frac", "sell_frac",
                  "sized_buy", "unit", "buy_qty", "sell_qty", "probe_cut"}
        out = {}
        for name in (f.name for f in dataclasses.fields(self) if f.name not in arrays):
            if name == "skipped":
                out["orders"] = [dataclasses.asdict(o) for o in self.orders()]
            out[name] = list(self.skipped) if name == "skipped" else getattr(self, name)
        return out


def make_plan(run: Run, market: MarketData, arrays: MarketArrays, *, cash: float,
              quantities: Mapping[str, float] | None = None, row: int | None = None,
              max_stale_days: float = 5.0, share_unit: float = 1e-6, crypto_unit: float = 1e-8,
              memory: ProbeState | None = None, probe_notional: float | None = None,
              probe_max_outlay: float | None = None, buy_scale: float = 1.0) -> OrderPlan:
    """The `OrderPlan` for the bar after row `row` (default: the last row) from the run's policy and a book of
    `cash` and `quantities` (units by symbol) marked at the row's closes.

    Sizing is `dynamics.size_orders` (the transition's steps 1-2: the next bar's interest, then all buys from one
    pool of excess equity) with `tradable` = the assets whose market is open on the next bar and that have a bar
    within `max_stale_days` calendar days; the others are listed under `skipped` with a reason. With
    `probe_notional` and/or `probe_max_outlay` and the trade `memory` (per symbol, in the run's order), probe mode
    caps buys after losing trades (`probe_cut`: the outlay it removed); `buy_scale` in [0, 1] scales every buy (see
    `OrderPlan.scaled`).
    Quantities are rounded down to `share_unit` (stocks; 1 = whole shares) and `crypto_unit`.
    """
    T = market.n_days
    row = T - 1 if row is None else int(row)
    if not 0 <= row < T:
        raise RunError(f"plan: row {row} outside the {T} rows of the market")
    quantities = dict(quantities or {})
    symbols, N = tuple(market.symbols), market.n_assets
    is_crypto = np.asarray(market.is_crypto, bool)
    unknown = sorted(set(quantities) - set(symbols))
    if unknown:
        raise RunError(f"plan: positions in {unknown}, which are not in the market's symbols {list(symbols)}")
    date = market.dates[row]

    # which markets trade on the next bar, and which symbols have a recent bar
    has_bar = np.asarray(market.tradable[: row + 1] > 0)
    last_bar = np.full(N, -1)
    for j in range(N):
        idx = np.flatnonzero(has_bar[:, j])
        if idx.size:
            last_bar[j] = idx[-1]
    stale = np.where(last_bar >= 0, (date - market.dates[np.maximum(last_bar, 0)]).astype(np.int64), np.inf)
    stock_open = float(market.stock_tradable_next[row]) > 0
    open_next = np.where(is_crypto, True, stock_open)
    recent = stale <= max_stale_days
    active = open_next & recent
    if row + 1 < T:
        days = float(market.days_elapsed[row + 1])
    else:
        days = 1.0 if is_crypto.any() else float(market.next_session_days[row])
    next_day = date + np.timedelta64(int(days), "D")
    skipped = []
    for j in np.flatnonzero(~active):
        cls = "crypto" if is_crypto[j] else "stock"
        if not recent[j]:
            why = ("no bar yet" if last_bar[j] < 0
                   else f"no recent bar (last {market.dates[last_bar[j]]}, {int(stale[j])} days old)")
        else:
            why = f"market closed on {next_day}"
        skipped.append({"symbol": symbols[j], "asset_class": cls, "reason": why})

    # the policy's action: embedding of row `row` (its whole receptive field), the book
    n_ctx = min(row + 1, run.context)
    feats = arrays.features[row + 1 - n_ctx: row + 1]
    valid = arrays.valid[row + 1 - n_ctx: row + 1]
    mark = arrays.close[row]
    q = np.asarray([float(quantities.get(s, 0.0)) for s in symbols])
    state = PortfolioState(cash=jnp.asarray(cash, mark.dtype), inventory=jnp.asarray(q, mark.dtype), mark=mark,
                           probe=None if memory is None else jax.tree_util.tree_map(
                               lambda x: jnp.asarray(x, mark.dtype), memory))
    mp = run.config.market_params("hard", is_crypto=is_crypto).replace(probe_notional=probe_notional,
                                                                     probe_max_outlay=probe_max_outlay)
    action, sizes = _decide(run.graphdef, run.params, feats, valid, state, mp, jnp.asarray(active, mark.dtype),
                            jnp.asarray(days, mark.dtype))
    hp = run.config.hparams
    f = float(hp.maker_fee)
    ls, lc, mm = float(hp.stock_max_leverage), float(hp.crypto_max_leverage), float(hp.maintenance_margin)
    unit = np.where(is_crypto, crypto_unit, share_unit)
    marks = np.asarray(mark, np.float64)
    value = q * marks
    excess = float(sizes.excess)
    plan = OrderPlan(
        symbols=symbols, is_crypto=is_crypto, active=active, mark=marks,
        buy_price=np.asarray(action.buy_price, np.float64), sell_price=np.asarray(action.sell_price, np.float64),
        buy_frac=np.asarray(action.buy_frac, np.float64), sell_frac=np.asarray(action.sell_frac, np.float64),
        sized_buy=np.asarray(sizes.buy_qty, np.float64), unit=unit, buy_qty=np.zeros(N),
        sell_qty=np.minimum(_floor(np.asarray(sizes.sell_qty, np.float64), unit), q), buy_scale=1.0,
        skipped=tuple(skipped), as_of=str(date), next_day=str(next_day), days_elapsed=days,
        equity=float(cash + value.sum()), cash=float(cash),
        stock_value=float(value[~is_crypto].sum()), crypto_value=float(value[is_crypto].sum()),
        interest=float(sizes.interest), equity_after_interest=float(sizes.equity),
        initial_requirement=float(sizes.initial_requirement), excess=excess,
        buying_power_stock=float(affordable_value(excess, 1 / ls, f)),  # value the whole excess buys, per class
        buying_power_crypto=float(affordable_value(excess, 1 / lc, f)),
        maintenance_requirement=float(maintenance_requirement(mp, value[~is_crypto].sum(), value[is_crypto].sum())),
        maker_fee=f, stock_max_leverage=ls, crypto_max_leverage=lc, maintenance_margin=mm,
        positions={s: float(x) for s, x in zip(symbols, q) if x > 0}, run=str(run.path), checkpoint_step=run.step,
        probe_cut=None if memory is None else np.asarray(sizes.probe_cut, np.float64),
    )
    return plan.scaled(buy_scale)


def plan_orders(run: Run, market: MarketData, arrays: MarketArrays, **kwargs: Any) -> dict[str, Any]:
    """`make_plan(run, market, arrays, **kwargs).to_dict()`: the plan as plain values."""
    return make_plan(run, market, arrays, **kwargs).to_dict()


def plan_next_day(run: Run, out: str | Path, *, data_dir: str | None = None, symbols: Any = None,
                  equity: float | None = None,
                  positions: str | Path | None = None, as_of: Any = None, max_stale_days: float = 5.0,
                  whole_shares: bool = False, repair: bool | None = None) -> dict[str, Any]:
    """Plan the bar after `as_of` (default: the data's last row) for a book given by a positions file and/or
    `equity` (all cash, or cash = equity - holdings when the file has no CASH row); write `plan.csv` and
    `plan.json` into `out`. The data is read to its last row; an `as_of` the data does not reach raises naming both
    dates. `repair` drops bad rows with a warning. Returns the plan."""
    check_equity(equity, "--equity")
    market = load_market(run, data_dir, symbols=symbols, repair=repair, period=(None, as_of))
    if as_of:
        check_reaches(market.dates, bool(market.is_crypto.any()), as_of, "--as-of")
    arrays = run_arrays(run, market)
    row = row_at_or_before(market.dates, as_of) if as_of else market.n_days - 1
    if row < 0:
        raise RunError(f"as-of {as_of}: before the first row {market.dates[0]}")
    quantities, cash = read_positions(positions, market.symbols) if positions else ({}, None)
    if cash is None:
        if equity is None:
            raise RunError("plan: give the equity (or a CASH entry in the positions file)")
        marks = np.asarray(arrays.close[row], np.float64)
        cash = float(equity) - float(sum(q * marks[market.symbols.index(s)] for s, q in quantities.items()))
    result = plan_orders(run, market, arrays, cash=cash, quantities=quantities, row=row, max_stale_days=max_stale_days,
                         share_unit=1.0 if whole_shares else 1e-6)
    write_rows(Path(out) / "plan.csv", result["orders"], ORDER_COLUMNS)
    write_json(Path(out) / "plan.json", result)
    return result

