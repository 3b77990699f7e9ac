"""The daily cycle of paper (or live) trading, one ledger transaction per day:

1. reconcile yesterday's orders against today's bar (simulated broker) or the broker;
2. update the book: interest, fills and margin calls; record fills, closed trades, positions and the day;
3. decide tomorrow's orders with the policy, on data up to today only;
4. size them with the transition's own sizing (`runs.plan.plan_orders`), scaled by the ramp-up and kill switch;
5. record and submit them.

A replay runs the cycle for every row from the ledger's last day (or a start date) through an end date, on
history as if live; the report (step 6) is written after the last cycle of each invocation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ndjax.data.calendar import row_at_or_after, row_at_or_before
from ndjax.data.market import MarketData
from ndjax.dynamics import Action, PortfolioState, initial_margin_rates, size_orders
from ndjax.paper.broker import Book, Broker, BrokerError, Fill, Order
from ndjax.paper.controls import Controls, buy_scale, drawdown, halts, next_ramp
from ndjax.paper.ledger import Ledger, LedgerError
from ndjax.probe import remember_trades
from ndjax.runs.folder import Run, run_arrays
from ndjax.runs.plan import plan_orders

POSITION_TOLERANCE = 1e-6
"""Relative difference between the ledger's and the broker's units that counts as out of sync."""


@dataclass(frozen=True)
class PaperConfig:
    """Controls, probe mode (`probe_notional`, None = off), order rounding, and the retraining hook."""

    controls: Controls = field(default_factory=Controls)
    probe_notional: float | None = None
    whole_shares: bool = False
    max_stale_days: float = 5.0
    retrain: Callable[[PaperSession, int], None] | None = None


def content_hash(run: Run) -> str:
    """A short hash of the model's parameters: the same bytes, the same model."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(run.params):
        h.update(np.asarray(leaf).tobytes())
    return h.hexdigest()[:16]


class PaperSession:
    """A ledger, a broker and the model trading, over one market's rows."""

    def __init__(self, run: Run, market: MarketData, ledger: Ledger, broker: Broker, config: PaperConfig,
                 out: str | Path):
        if tuple(market.symbols) != ledger.identity.symbols:
            raise LedgerError(f"{ledger.path}: kept for {list(ledger.identity.symbols)}, the market holds "
                              f"{list(market.symbols)}")
        self.market, self.ledger, self.broker, self.config, self.out = market, ledger, broker, config, Path(out)
        self.symbols = tuple(market.symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.model_id: int | None = None
        self.use(run)

    def use(self, run: Run, model_id: int | None = None) -> None:
        """Trade with `run` from now on (its normaliser features the market)."""
        self.run, self.arrays, self.model_id = run, run_arrays(run, self.market), model_id
        self.params = run.config.market_params("hard", is_crypto=self.market.is_crypto)

    def row(self, date: str) -> int:
        return row_at_or_before(self.market.dates, date)

    # ------------------------------------------------------------------------------------------ steps 1-2

    def _reconcile(self, row: int, last: str) -> tuple[Book, dict[str, float], list[Fill], dict[str, Any]]:
        """Yesterday's book and open orders through today's bar: fills, the new book, cost basis, day figures."""
        book = self.ledger.book(last)
        open_orders = self.ledger.orders(open_only=True)
        self.broker.sync(book, open_orders)
        settlement = self.broker.settle(row)
        before = {o.client_id: r for o, r in zip(open_orders, [self._filled(o.client_id) for o in open_orders])}
        statuses = self.broker.status([o.client_id for o in open_orders])
        f = float(self.params.maker_fee)
        if settlement is not None:
            fills = list(settlement.fills)
            extra = dict(interest=settlement.interest, fees=settlement.fees, margin_call=settlement.margin_call,
                         forced_notional=settlement.forced_notional)
        else:  # a real broker: fills are what the orders' filled quantities grew by
            fills = []
            by_id = {o.client_id: o for o in open_orders}
            for st in statuses:
                o, new = by_id[st.client_id], st.filled_qty - before[st.client_id]
                if new > 0:
                    fills.append(Fill(str(self.market.dates[row]), o.symbol, o.side, new, st.filled_price,
                                      f * new * st.filled_price, "order", o.client_id))
            extra = dict(interest=self._interest(book, row), fees=sum(x.fee for x in fills), margin_call=False,
                         forced_notional=0.0)
        for st in statuses:
            self.ledger.update_order(st)
        for st in self.broker.status([c for c in self.broker.cancel_open()]):
            self.ledger.update_order(st)
        account = self.broker.account()
        expected = dict(book.positions)
        for x in fills:
            expected[x.symbol] = expected.get(x.symbol, 0.0) + (x.quantity if x.side == "buy" else -x.quantity)
        for s in sorted(set(expected) | set(account.positions)):
            want, got = expected.get(s, 0.0), account.positions.get(s, 0.0)
            if abs(want - got) > POSITION_TOLERANCE * max(abs(want), abs(got), 1.0):
                raise BrokerError(f"{self.broker.name} broker holds {got:g} {s}, the ledger expects {want:g} after "
                                  f"{self.market.dates[row]}'s fills: positions out of sync with the broker")
        basis = self._basis_and_trades(last, book, fills)
        return Book(cash=account.cash, positions=dict(account.positions)), basis, fills, extra

    def _filled(self, client_id: str) -> float:
        row = self.ledger.conn.execute("SELECT filled_qty FROM orders WHERE client_id = ?", (client_id,)).fetchone()
        return float(row[0]) if row else 0.0

    def _interest(self, book: Book, row: int) -> float:
        """The transition's overnight interest on `book` for bar `row` (what a real broker's statement should show)."""
        state = self._state(book, row - 1)
        zero = np.zeros(len(self.symbols), np.float32)
        sizes = size_orders(self.params, state, Action(zero, zero, zero, zero), self.arrays.tradable[row],
                            self.arrays.days_elapsed[row])
        return float(sizes.interest)

    def _state(self, book: Book, row: int) -> PortfolioState:
        q = np.zeros(len(self.symbols), np.float32)
        for s, units in book.positions.items():
            q[self.index[s]] = units
        mark = self.arrays.close[row]
        return PortfolioState(cash=np.float32(book.cash), inventory=q, mark=mark)

    def _basis_and_trades(self, last: str, book: Book, fills: list[Fill]) -> dict[str, float]:
        """Average cost per unit after the fills, and a closed trade for every sale (order or margin call)."""
        n, f = len(self.symbols), float(self.params.maker_fee)
        as_numpy = lambda tree: jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)  # noqa: E731
        memory = as_numpy(self.ledger.memory(last))
        held = np.array([book.positions.get(s, 0.0) for s in self.symbols])
        for kind in ("order", "margin_call"):  # the bar's limit orders, then the close's forced sale
            bought, sold, buy_px, sell_px = np.zeros(n), np.zeros(n), np.ones(n), np.ones(n)
            for x in fills:
                if x.kind != kind:
                    continue
                i = self.index[x.symbol]
                if x.side == "buy":
                    bought[i], buy_px[i] = bought[i] + x.quantity, x.price
                else:
                    sold[i], sell_px[i] = sold[i] + x.quantity, x.price
            after = np.maximum(held + bought - sold, 0)
            new = remember_trades(memory, held, bought, sold, buy_px, sell_px, f, after)
            for i in np.flatnonzero(sold > 0):
                self.ledger.record_closed_trade(fills[0].date, self.symbols[i], float(new.last[i]))
            memory, held = as_numpy(new), after
        return {s: float(memory.cost_basis[i]) for i, s in enumerate(self.symbols)}

    # ------------------------------------------------------------------------------------------ steps 3-5

    def _controls(self, date: str, equity: float, last_day: dict | None) -> tuple[float, bool, float]:
        """Today's drawdown (from the peak since the last resume), whether buys are halted, tomorrow's ramp."""
        resumed = [e["date"] for e in self.ledger.events("resume")]
        since = resumed[-1] if resumed else ""
        curve = [d["equity"] for d in self.ledger.days() if d["date"] >= since] + [equity]
        dd = drawdown(curve)
        halted = bool(last_day and last_day["halted"]) and not (resumed and resumed[-1] == last_day["date"])
        if not halted and halts(dd, self.config.controls):
            halted = True
            self.ledger.record_event(date, "halt", f"drawdown {dd:.2%} reached {self.config.controls.halt_drawdown:.2%}:"
                                                   " new buys stop until a person resumes")
        ramp = next_ramp(None if last_day is None else last_day["ramp"], dd, self.config.controls)
        return dd, halted, ramp

    def _decide(self, row: int, date: str, book: Book, ramp: float, halted: bool) -> None:
        marks = np.asarray(self.arrays.close[row], np.float64)
        held = np.array([book.positions.get(s, 0.0) for s in self.symbols])
        equity = book.cash + float(held @ marks)
        requirement = float(np.asarray(initial_margin_rates(self.params), np.float64) @ (held * marks))
        scale = 0.0 if halted else buy_scale(ramp, equity, requirement)
        memory = self.ledger.memory(date) if self.config.probe_notional is not None else None
        plan = plan_orders(self.run, self.market, self.arrays, cash=book.cash, quantities=book.positions, row=row,
                           max_stale_days=self.config.max_stale_days, share_unit=1.0 if self.config.whole_shares
                           else 1e-6, memory=memory, probe_notional=self.config.probe_notional, buy_scale=scale)
        orders = [Order(f"ndjax-{date}-{o['symbol']}-{o['side'][0]}", date, o["symbol"], o["side"], o["limit_price"],
                        o["quantity"], o["asset_class"]) for o in plan["orders"]]
        for order, status in zip(orders, self.broker.submit(orders)):
            self.ledger.record_order(order, status)

    # ------------------------------------------------------------------------------------------ the cycle

    def cycle(self, row: int) -> bool:
        """Run the day of market row `row`; False (and nothing written) if the ledger already holds it."""
        date = str(self.market.dates[row])
        if self.ledger.has_day(date):
            return False
        last = self.ledger.last_date()
        if last is not None and self.row(last) != row - 1:
            raise LedgerError(f"{self.ledger.path}: last recorded day is {last}; the next cycle is "
                              f"{self.market.dates[self.row(last) + 1] if self.row(last) + 1 < len(self.market.dates) else 'past the data'}, not {date}")
        with self.ledger.cycle():
            if self.model_id is None:
                champion = self.ledger.champion()
                self.model_id = champion["id"] if champion else self.ledger.record_model(
                    date, str(self.run.path), self.run.step, content_hash(self.run), "promoted")
            if last is None:
                book, basis, fills = Book(cash=self.ledger.identity.initial_equity, positions={}), {}, []
                extra = dict(interest=0.0, fees=0.0, margin_call=False, forced_notional=0.0)
            else:
                book, basis, fills, extra = self._reconcile(row, last)
            for x in fills:
                self.ledger.record_fill(x)
            marks = np.asarray(self.arrays.close[row], np.float64)
            value = {s: q * marks[self.index[s]] for s, q in book.positions.items()}
            equity = book.cash + sum(value.values())
            last_day = self.ledger.days()[-1] if last else None
            _, halted, ramp = self._controls(date, equity, last_day)
            self.ledger.record_day(date, equity=equity, cash=book.cash, gross=sum(value.values()),
                                   leverage_cost=extra["interest"], fees=extra["fees"], margin_call=extra["margin_call"],
                                   forced_notional=extra["forced_notional"], model=self.model_id, ramp=ramp,
                                   halted=halted)
            self.ledger.record_positions(date, {s: (q, basis.get(s, 0.0)) for s, q in book.positions.items()})
            if self.config.retrain is not None:
                self.config.retrain(self, row)
            if row + 1 < self.market.n_days or self.broker.name != "sim":
                self._decide(row, date, book, ramp, halted)
        return True

    def replay(self, start: Any = None, through: Any = None, progress: Callable[[str], None] | None = None) -> int:
        """Cycle every row from the day after the ledger's last (or `start`) through `through`; returns the number
        of days recorded. Days already recorded are skipped, so stopping half-way and running again gives the
        same ledger as one run."""
        dates = self.market.dates
        last = self.ledger.last_date()
        first = self.row(last) + 1 if last is not None else (row_at_or_after(dates, start) if start else None)
        if first is None:
            raise LedgerError(f"{self.ledger.path}: an empty ledger needs a start date")
        end = row_at_or_before(dates, through) if through else len(dates) - 1
        done = 0
        for row in range(first, end + 1):
            done += self.cycle(row)
            if progress is not None:
                progress(str(dates[row]))
        return done

    def resume_buys(self, note: str = "resumed by a person") -> str:
        """Lift the kill switch from the ledger's last day on (the drawdown is measured from here again)."""
        last = self.ledger.last_date()
        if last is None:
            raise LedgerError(f"{self.ledger.path}: nothing to resume: the ledger is empty")
        with self.ledger.cycle():
            self.ledger.record_event(last, "resume", note)
        return last
