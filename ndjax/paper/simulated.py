"""The simulated broker: the orders of day d filled against bar d+1 by the transition itself (`dynamics.step`),
interest and margin calls included, so paper trading with it is the simulation.

It keeps no state between cycles: each cycle hands it the ledger's book and open orders (`sync`), it turns the
orders back into the transition's `Action` (limit prices, and the fractions of the pool and of the holdings that
reproduce their quantities) and steps through the bar (`settle`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.data.arrays import MarketArrays
from ndjax.dynamics import (
    Action,
    MarketParams,
    PortfolioState,
    buy_fractions,
    execution_prices,
    overnight,
    sell_fractions,
    step,
)
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

_step = jax.jit(step)
_overnight = jax.jit(overnight)


class SimulatedBroker(Broker):
    """Fills orders with the transition over `arrays` (the market's rows), under the run's rules `params`."""

    name = "sim"
    simulated = True

    def __init__(self, arrays: MarketArrays, dates: np.ndarray, symbols: Sequence[str], params: MarketParams):
        self.arrays, self.dates, self.symbols = arrays, dates, tuple(symbols)
        self.params = params.replace(fill="hard", probe_notional=None, probe_max_outlay=None)  # capped when sizing
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self._book = Book(cash=0.0, positions={})
        self._orders: dict[str, Order] = {}
        self._status: dict[str, OrderStatus] = {}

    def sync(self, book: Book, open_orders: Sequence[Order]) -> None:
        unknown = sorted({o.symbol for o in open_orders} - set(self.index))
        if unknown:
            raise BrokerError(f"sim broker: orders in {unknown}, which the market does not hold")
        self._book = book
        self._orders = {o.client_id: o for o in open_orders}
        self._status = {o.client_id: OrderStatus(o.client_id, f"sim-{o.client_id}", "new") for o in open_orders}

    def fee_rate(self, asset_class: str) -> float:
        """The run's maker fee, on every fill (the transition's rule)."""
        return float(self.params.maker_fee)

    def account(self) -> Book:
        return Book(cash=self._book.cash, positions=dict(self._book.positions))

    def submit(self, orders: Sequence[Order]) -> list[OrderStatus]:
        for o in orders:
            if o.symbol not in self.index:
                raise BrokerError(f"sim broker: order {o.client_id} for {o.symbol!r}, which the market does not hold")
            if o.client_id not in self._orders:
                self._orders[o.client_id] = o
                self._status[o.client_id] = OrderStatus(o.client_id, f"sim-{o.client_id}", "new")
        return [self._status[o.client_id] for o in orders]

    def status(self, client_ids: Sequence[str]) -> list[OrderStatus]:
        missing = [c for c in client_ids if c not in self._status]
        if missing:
            raise BrokerError(f"sim broker: unknown orders {missing}")
        return [self._status[c] for c in client_ids]

    def cancel_open(self, prefix: str) -> list[str]:
        cancelled = [c for c, s in self._status.items() if s.is_open and c.startswith(prefix)]
        for c in cancelled:
            self._status[c] = OrderStatus(c, self._status[c].broker_id, "canceled", self._status[c].filled_qty,
                                          self._status[c].filled_price)
            self._orders.pop(c, None)
        return cancelled

    def _action(self, state: PortfolioState, row: int) -> Action:
        """The `Action` whose sizing reproduces the open orders' quantities."""
        n, dtype = len(self.symbols), state.mark.dtype
        buy_px, sell_px = np.asarray(state.mark, np.float64).copy(), np.asarray(state.mark, np.float64) * 2
        buy_qty, sell_qty = np.zeros(n), np.zeros(n)
        for o in self._orders.values():
            i = self.index[o.symbol]
            if o.side == "buy":
                buy_px[i], buy_qty[i] = o.limit_price, o.quantity
            else:
                sell_px[i], sell_qty[i] = o.limit_price, o.quantity
        excess = float(_overnight(self.params, state, self.arrays.days_elapsed[row]).excess)
        share = buy_fractions(self.params, buy_qty, buy_px, excess)
        sell_frac = sell_fractions(sell_qty, np.asarray(state.inventory, np.float64))
        return Action(buy_price=jnp.asarray(buy_px, dtype), sell_price=jnp.asarray(sell_px, dtype),
                      buy_frac=jnp.asarray(share, dtype), sell_frac=jnp.asarray(sell_frac, dtype))

    def settle(self, row: int) -> Settlement:
        """Step the book through bar `row` with the open orders; fills, statuses and the new book follow."""
        state = portfolio_state(self._book, self.symbols, self.arrays.close[row - 1])
        bar = jax.tree_util.tree_map(lambda x: x[row], self.arrays.bars())
        action = self._action(state, row)
        new, info = _step(self.params, state, action, bar)
        date, f = str(self.dates[row]), float(self.params.maker_fee)
        xb, xs = np.asarray(info.buy_qty, np.float64), np.asarray(info.sell_qty, np.float64)
        buy_px, sell_px = (np.asarray(x, np.float64) for x in execution_prices(self.params, action, bar))
        fills = []
        for o in list(self._orders.values()):
            i, old = self.index[o.symbol], self._status[o.client_id]
            qty, price = (float(xb[i]), float(buy_px[i])) if o.side == "buy" else (float(xs[i]), float(sell_px[i]))
            if qty > 0:
                fills.append(Fill(date, o.symbol, o.side, qty, price, f * qty * price, "order", o.client_id))
                status = "filled" if qty >= o.quantity * (1 - 1e-5) else "partially_filled"
            else:  # a stock day order expires; a GTC crypto order stays open until the cycle cancels it
                status = "new" if o.asset_class == "crypto" else "expired"
            self._status[o.client_id] = OrderStatus(o.client_id, old.broker_id, status, qty, price if qty else 0.0)
            if status in ("filled", "expired") or o.asset_class != "crypto":
                del self._orders[o.client_id]
        forced = np.asarray(info.forced_qty, np.float64)
        price = np.asarray(bar.close, np.float64) * (1 - float(self.params.liquidation_slippage))
        for i in np.flatnonzero(forced > 0):
            fills.append(Fill(date, self.symbols[i], "sell", float(forced[i]), float(price[i]),
                              f * float(forced[i] * price[i]), "margin_call"))
        units = np.asarray(new.inventory, np.float64)
        self._book = Book(cash=float(new.cash), positions={s: float(units[i]) for s, i in self.index.items()
                                                           if units[i] > 0})
        return Settlement(fills=fills, interest=float(info.leverage_cost), fees=float(info.fees),
                          margin_call=bool(info.margin_call > 0), forced_notional=float(info.forced_notional))
