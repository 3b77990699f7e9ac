"""The daily cycle of paper (or live) trading, one ledger transaction per day:

1. reconcile yesterday's orders against today's bar (simulated broker) or the broker: cancel what is still open,
   read the statuses until they are final, and take the fills from the final filled quantities;
2. update the book: interest, fills and margin calls; record fills, closed trades, positions and the day;
3. decide tomorrow's orders with the policy, on data up to today only (the data's last row included), and
4. size them with the transition's own sizing (`runs.plan.make_plan`), scaled by the ramp-up and kill switch;
5. record and submit them: orders below the broker's minimum value are not sent (an event lists them), and an
   order the broker refuses is recorded "rejected" (with an event) while the others go out.

The first cycle of a ledger at a real broker checks the account: the cash must be the ledger's starting equity
(or is adopted as it) and no positions may be held. After each cycle the fees a real broker posted replace the
estimates (`ndjax.paper.postings`). A replay runs the cycle for every row from the ledger's last day (or a start
date) through an end date, on history as if live; the report is written after the last cycle of each invocation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ndjax.data.calendar import row_at_or_after, row_at_or_before
from ndjax.data.market import MarketData
from ndjax.dynamics import overnight_interest
from ndjax.errors import ConfigError
from ndjax.paper.broker import (
    Book,
    Broker,
    BrokerError,
    Fill,
    Order,
    OrderStatus,
    Settlement,
    portfolio_state,
)
from ndjax.paper.controls import Controls, buy_scale, drawdown, halts, next_ramp, probe_note, still_halted
from ndjax.paper.ledger import Ledger, LedgerError
from ndjax.paper.postings import reconcile_postings
from ndjax.probe import remember_bar
from ndjax.runs.folder import Run, content_hash, run_arrays
from ndjax.runs.plan import OrderPlan, make_plan

POSITION_TOLERANCE = 1e-6
"""Relative difference between the ledger's and the broker's units that counts as out of sync."""
CASH_TOLERANCE = 0.01
"""Dollars by which a real broker's cash may differ from a new ledger's starting equity."""


@dataclass(frozen=True)
class PaperConfig:
    """Controls, probe mode (a probing symbol's position held to `min(probe_notional * equity, probe_max_outlay)`; both
    None = off; `ndjax.probe` holds the rule and its defaults), order rounding, the retraining hook, and how often and
    how long apart the cycle reads the status of orders being cancelled (`status_polls`, `status_wait` seconds)."""

    controls: Controls = field(default_factory=Controls)
    probe_notional: float | None = None
    probe_max_outlay: float | None = None
    whole_shares: bool = False
    max_stale_days: float = 5.0
    retrain: Callable[[PaperSession, int], None] | None = None  # called between cycles, before the day of row
    status_polls: int = 10
    status_wait: float = 1.0

    @property
    def probing(self) -> bool:
        return self.probe_notional is not None or self.probe_max_outlay is not None

    def __post_init__(self) -> None:
        if self.status_polls < 1 or self.status_wait < 0:
            raise ConfigError(f"PaperConfig: status_polls must be >= 1 and status_wait >= 0, got {self.status_polls} "
                             f"and {self.status_wait}")


@dataclass(frozen=True)
class Reconciled:
    """Step 1's result: the ledger's book before the bar (None on a ledger's first day), the broker's after it,
    and what the bar did (fills, interest, fees, the margin call)."""

    before: Book | None
    after: Book
    settlement: Settlement


NO_SETTLEMENT = Settlement(fills=(), interest=0.0, fees=0.0, margin_call=False, forced_notional=0.0)
"""A ledger's first day: nothing settled."""


@dataclass(frozen=True)
class DayControls:
    """The risk controls after a day: drawdown, halted (`halts_today`: tripped today), tomorrow's ramp."""

    drawdown: float
    halted: bool
    halts_today: bool
    ramp: float


def _float64(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


class PaperSession:
    """A ledger, a broker and the model trading, over one market's rows. `adopt_account`: a new ledger at a real
    broker starts from the broker's cash instead of refusing when that differs from its starting equity."""

    def __init__(self, run: Run, market: MarketData, ledger: Ledger, broker: Broker, config: PaperConfig,
                 out: str | Path, *, adopt_account: bool = False):
        if tuple(market.symbols) != ledger.identity.symbols:
            raise LedgerError(f"{ledger.path}: kept for {list(ledger.identity.symbols)}, the market holds "
                              f"{list(market.symbols)}")
        if adopt_account and broker.simulated:
            raise BrokerError(f"{broker.name} broker: adopting the broker's account needs a real broker; the "
                              "simulated account is the ledger's own")
        self.market, self.ledger, self.broker, self.config, self.out = market, ledger, broker, config, Path(out)
        self.adopt_account = adopt_account
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

    def _first_book(self, date: str) -> Book:
        """A new ledger's book: its starting equity in cash. At a real broker that is the account, which must hold
        that cash (to the cent; or the ledger adopts the broker's, with `adopt_account`) and no positions."""
        equity = self.ledger.identity.initial_equity
        if self.broker.simulated:
            return Book(cash=equity)
        account = self.broker.account()
        held = {s: q for s, q in account.positions.items() if q}
        if held or (abs(account.cash - equity) > CASH_TOLERANCE and not self.adopt_account):
            raise BrokerError(
                f"{self.broker.name} broker: the account holds cash {account.cash:,.2f}"
                + (f" and positions {held}" if held else "") + f"; the new ledger {self.ledger.path} starts from "
                f"--equity {equity:,.2f} in cash and no positions. "
                + ("Close the positions first. " if held else "")
                + f"Pass --equity {account.cash:.2f}, or --equity broker (adopt_account=True) to start from the "
                "broker's cash.")
        if abs(account.cash - equity) > CASH_TOLERANCE:
            self.ledger.adopt_equity(date, account.cash, f"starting equity {account.cash:,.2f}: the {self.broker.name} "
                                                         f"account's cash (the ledger was opened with {equity:,.2f})")
        return Book(cash=account.cash)

    def _final_statuses(self, client_ids: list[str]) -> list[OrderStatus]:
        """The orders' statuses, read again (`status_polls` times at most, `status_wait` apart) while any is still
        open, e.g. pending_cancel: a fill can land until the cancel completes."""
        statuses = self.broker.status(client_ids)
        for _ in range(self.config.status_polls - 1):
            if not any(st.is_open for st in statuses):
                break
            time.sleep(self.config.status_wait)
            statuses = self.broker.status(client_ids)
        return statuses

    def _order_fill(self, order: Order, status: OrderStatus, date: str) -> Fill | None:
        """What an order's filled quantity grew by since the ledger last read it, under the broker's fee rules."""
        old_qty, old_price = self.ledger.order_filled(order.client_id)
        gross = status.filled_qty - old_qty
        if gross <= 0:
            return None
        price = status.filled_price if old_qty <= 0 else (status.filled_price * status.filled_qty
                                                          - old_price * old_qty) / gross
        rate = self.broker.fee_rate(order.asset_class)
        units = gross * (1 - rate) if self.broker.fee_in_asset(order.asset_class, order.side) else gross
        return Fill(date, order.symbol, order.side, units, price, rate * gross * price, "order", order.client_id)

    def _reconcile(self, row: int, last: str) -> Reconciled:
        """Step 1: yesterday's book and open orders through today's bar: the fills and the broker's book after them.
        Open orders are cancelled first, then read until final; their statuses are recorded (one still open is
        read again next cycle)."""
        date = str(self.market.dates[row])
        book = self.ledger.book(last)
        open_orders = self.ledger.orders(open_only=True)
        self.broker.sync(book, open_orders)
        settlement = self.broker.settle(row)
        self.broker.cancel_open(self.ledger.client_prefix)
        statuses = self._final_statuses([o.client_id for o in open_orders])
        if settlement is None:  # a real broker: fills are what the orders' filled quantities grew by
            fills = [x for o, st in zip(open_orders, statuses) if (x := self._order_fill(o, st, date)) is not None]
            settlement = Settlement(fills=fills, interest=self._interest(book, row), fees=sum(x.fee for x in fills),
                                    margin_call=False, forced_notional=0.0)
        for st in statuses:
            self.ledger.update_order(st)
        account = self.broker.account()
        expected = dict(book.positions)
        for x in settlement.fills:
            expected[x.symbol] = expected.get(x.symbol, 0.0) + (x.quantity if x.side == "buy" else -x.quantity)
        for s in sorted(set(expected) | set(account.positions)):
            want, got = expected.get(s, 0.0), account.positions.get(s, 0.0)
            if abs(want - got) > POSITION_TOLERANCE * max(abs(want), abs(got), 1.0):
                raise BrokerError(f"{self.broker.name} broker holds {got:g} {s}, the ledger expects {want:g} after "
                                  f"{date}'s fills: positions out of sync with the broker")
        return Reconciled(before=book, after=Book(cash=account.cash, positions=dict(account.positions)),
                          settlement=settlement)

    def _interest(self, book: Book, row: int) -> float:
        """The transition's overnight interest on `book` for bar `row` (what a real broker's statement should show)."""
        state = portfolio_state(book, self.symbols, self.arrays.close[row - 1])
        return float(overnight_interest(self.params, state, self.arrays.days_elapsed[row]))

    def _basis_and_trades(self, last: str, book: Book, fills: Sequence[Fill]
                          ) -> tuple[dict[str, float], list[tuple[str, str, float]]]:
        """Average cost per unit after the fills, and a closed trade `(date, symbol, return)` for every sale (order or
        margin call), under the broker's fee rate per asset (a fee taken in the asset counts as a cash fee on the
        units received). Reads the ledger's trade memory; writes nothing."""
        n = len(self.symbols)
        f = np.array([self.broker.fee_rate("crypto" if c else "stock") for c in self.market.is_crypto])
        memory = _float64(self.ledger.memory(last))
        held = np.array([book.positions.get(s, 0.0) for s in self.symbols])
        legs = {}  # the bar's limit orders, then the close's forced sale: units and average price per side
        for kind in ("order", "margin_call"):
            bought, sold, buy_px, sell_px = np.zeros(n), np.zeros(n), np.ones(n), np.ones(n)
            for x in fills:
                if x.kind != kind:
                    continue
                i = self.index[x.symbol]
                if x.side == "buy":
                    bought[i], buy_px[i] = bought[i] + x.quantity, x.price
                else:
                    sold[i], sell_px[i] = sold[i] + x.quantity, x.price
            legs[kind] = bought, sold, buy_px, sell_px
        (bought, sold, buy_px, sell_px), (_, forced, _, forced_px) = legs["order"], legs["margin_call"]
        between = np.maximum(held + bought - sold, 0)
        steps = remember_bar(memory, held, between, np.maximum(between - forced, 0), bought, sold, buy_px, sell_px,
                             forced, forced_px, f)
        closed = [(fills[0].date, self.symbols[i], float(new.last[i]))
                  for new, leg in zip(steps, (sold, forced)) for i in np.flatnonzero(leg > 0)]
        memory = steps[1]
        return {s: float(memory.cost_basis[i]) for i, s in enumerate(self.symbols)}, closed

    # ------------------------------------------------------------------------------------------ steps 3-5

    def _controls(self, equity: float, last_day: dict | None) -> DayControls:
        """Today's drawdown (from the peak since the last resume), whether buys are halted (and whether today
        halts them), tomorrow's ramp. Reads the ledger; writes nothing."""
        resumed = [e["date"] for e in self.ledger.events("resume")]
        since = resumed[-1] if resumed else ""
        curve = [d["equity"] for d in self.ledger.days() if d["date"] >= since] + [equity]
        dd = drawdown(curve)
        halted = last_day is not None and still_halted(last_day["halted"], last_day["date"], resumed)
        halts_today = not halted and halts(dd, self.config.controls)
        ramp = next_ramp(None if last_day is None else last_day["ramp"], dd, self.config.controls)
        return DayControls(drawdown=dd, halted=halted or halts_today, halts_today=halts_today, ramp=ramp)

    def _decide(self, row: int, date: str, book: Book, controls: DayControls) -> OrderPlan:
        """Step 3-4: tomorrow's `OrderPlan` from one decision of the policy, its buys scaled by the ramp's share of
        the pool (from the plan's own equity after interest and requirement), none while halted. Writes nothing."""
        plan = make_plan(self.run, self.market, self.arrays, cash=book.cash, quantities=book.positions, row=row,
                         max_stale_days=self.config.max_stale_days,
                         share_unit=1.0 if self.config.whole_shares else 1e-6,
                         memory=self.ledger.memory(date) if self.config.probing else None,
                         probe_notional=self.config.probe_notional, probe_max_outlay=self.config.probe_max_outlay)
        scale = 0.0 if controls.halted else buy_scale(controls.ramp, plan.equity_after_interest,
                                                      plan.initial_requirement)
        return plan if scale == 1.0 else plan.scaled(scale)

    def _submit(self, date: str, plan: OrderPlan) -> None:
        """Step 5: record and send the plan's orders; those below the broker's minimum value are not sent (an event
        lists them), and a refused order is recorded "rejected" with an event."""
        orders, small = [], []
        for o in plan.orders():
            order = Order(f"{self.ledger.client_prefix}{date}-{o.symbol}-{o.side[0]}", date, o.symbol, o.side,
                          o.limit_price, o.quantity, o.asset_class)
            minimum = self.broker.min_notional.get(order.asset_class, 0.0)
            (small if order.notional < minimum else orders).append(order)
        if small:
            self.ledger.record_event(date, "min_size", "not sent, below the broker's minimum order value: " + "; ".join(
                f"{o.describe()}, ${o.notional:.2f} < ${self.broker.min_notional[o.asset_class]:g}" for o in small))
        for order, status in zip(orders, self.broker.submit(orders)):
            self.ledger.record_order(order, status)
            if status.status == "rejected":
                self.ledger.record_event(date, "rejected", f"{order.describe()}: {status.detail or 'no reason given'}")

    # ------------------------------------------------------------------------------------------ the cycle

    def cycle(self, row: int) -> bool:
        """Run the day of market row `row`; False (and nothing written) if the ledger already holds it."""
        date = str(self.market.dates[row])
        if self.ledger.has_day(date):
            return False
        last = self.ledger.last_date()
        if last is not None and self.row(last) != row - 1:
            following = self.row(last) + 1
            upcoming = self.market.dates[following] if following < self.market.n_days else "past the data"
            raise LedgerError(f"{self.ledger.path}: last recorded day is {last}; the next cycle is {upcoming}, "
                              f"not {date}")
        if self.config.retrain is not None and last is not None:
            self._retrain(row, date)
        trading = (self.run, self.arrays, self.params, self.model_id)
        try:
            self._cycle(row, date, last)
        except BaseException:  # the ledger rolled back: so does the model trading (first record, a promotion)
            self.run, self.arrays, self.params, self.model_id = trading
            raise
        reconcile_postings(self.ledger, self.broker, date)
        return True

    def _retrain(self, row: int, date: str) -> None:
        """Between cycles: the retrain hook decides, in its own transaction before the day's, whether a challenger
        replaces the model, so the day's cycle runs on one model from reconciliation to submission. A decision
        already recorded for `date` (the day's cycle failed after it) is not taken again."""
        if any(e["date"] == date for e in self.ledger.events("retrain")):
            return
        trading = (self.run, self.arrays, self.params, self.model_id)
        try:
            with self.ledger.cycle():
                self.config.retrain(self, row)
        except BaseException:  # the decision rolled back: so does a promotion
            self.run, self.arrays, self.params, self.model_id = trading
            raise

    def _cycle(self, row: int, date: str, last: str | None) -> None:
        """The cycle's writes, in one ledger transaction."""
        with self.ledger.cycle():
            if self.model_id is None:
                champion = self.ledger.champion()
                self.model_id = champion["id"] if champion else self.ledger.record_model(
                    date, str(Path(self.run.path).resolve()), self.run.step, content_hash(self.run), "promoted")
            if last is None:
                reconciled = Reconciled(before=None, after=self._first_book(date), settlement=NO_SETTLEMENT)
            else:
                reconciled = self._reconcile(row, last)
            controls = self._book(row, date, last, reconciled)
            plan = self._decide(row, date, reconciled.after, controls)  # the last row too: settled when its bar comes
            if plan.probe_cut is not None and (cut := plan.probe_cut * plan.active * (plan.buy_scale > 0)).any():
                self.ledger.record_event(date, "probe", probe_note(self.symbols, cut))
            self._submit(date, plan)

    def _book(self, row: int, date: str, last: str | None, reconciled: Reconciled) -> DayControls:
        """Step 2: record the day's fills, closed trades, controls, day figures and positions; returns the
        controls tomorrow's orders follow."""
        book, settlement = reconciled.after, reconciled.settlement
        basis, closed = ({}, []) if last is None else self._basis_and_trades(last, reconciled.before,
                                                                             settlement.fills)
        for trade in closed:
            self.ledger.record_closed_trade(*trade)
        for x in settlement.fills:
            self.ledger.record_fill(x)
        marks = np.asarray(self.arrays.close[row], np.float64)
        value = {s: q * marks[self.index[s]] for s, q in book.positions.items()}
        equity = book.cash + sum(value.values())
        controls = self._controls(equity, self.ledger.days()[-1] if last else None)
        if controls.halts_today:
            self.ledger.record_event(date, "halt", f"drawdown {controls.drawdown:.2%} reached "
                                                   f"{self.config.controls.halt_drawdown:.2%}:"
                                                   " new buys stop until a person resumes")
        self.ledger.record_day(date, equity=equity, cash=book.cash, gross=sum(value.values()),
                               leverage_cost=settlement.interest, fees=settlement.fees,
                               fees_estimated=self.broker.fees_estimated, margin_call=settlement.margin_call,
                               forced_notional=settlement.forced_notional, model=self.model_id, ramp=controls.ramp,
                               halted=controls.halted)
        self.ledger.record_positions(date, {s: (q, basis.get(s, 0.0)) for s, q in book.positions.items()})
        return controls

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
        if not self.ledger.halted():
            raise LedgerError(f"{self.ledger.path}: buys are not halted (last day {last}); nothing to resume")
        with self.ledger.cycle():
            self.ledger.record_event(last, "resume", note)
        return last
