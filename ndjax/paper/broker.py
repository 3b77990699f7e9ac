"""The broker interface paper trading speaks: the account, limit orders, their status and fills, cancelling.

Orders carry a deterministic `client_id` per (ledger, day, symbol, side), so submitting the same day twice (a re-run
after a crash) finds the order already there instead of placing it again, and two ledgers on one account never
take each other's orders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from ndjax.dynamics import PortfolioState
from ndjax.errors import NdjaxError

TERMINAL_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})
"""Order statuses that never change again (alpaca-py's `OrderStatus` values). Every other status (new, accepted,
pending_new, partially_filled, pending_cancel, pending_replace, pending_review, accepted_for_bidding, held,
calculated, stopped, suspended, done_for_day) is open: the order may still fill."""
OPEN_ORDERS = "status NOT IN (" + ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES)) + ")"
"""The SQL condition of an open order (the ledger's `orders` table, and `--status` reading it)."""


class BrokerError(NdjaxError):
    """A broker that refused, failed or disagrees with the ledger; the message names the order or symbol."""


@dataclass(frozen=True)
class Order:
    """A limit order: `side` "buy"/"sell", `quantity` units at `limit_price`; stocks are day orders, crypto GTC."""

    client_id: str
    date: str  # the close it was decided at
    symbol: str
    side: str
    limit_price: float
    quantity: float
    asset_class: str  # "stock" | "crypto"

    @property
    def time_in_force(self) -> str:
        return "gtc" if self.asset_class == "crypto" else "day"

    @property
    def notional(self) -> float:
        return self.quantity * self.limit_price

    def describe(self) -> str:
        """`client_id (buy 1.5 SYM at 101.2)`, for messages."""
        return f"{self.client_id} ({self.side} {self.quantity:g} {self.symbol} at {self.limit_price:g})"


@dataclass(frozen=True)
class OrderStatus:
    """Where an order stands: `status` (new, filled, partially_filled, canceled, expired, rejected, ...), the units
    filled so far, their average price, and why a refused order was refused (`detail`)."""

    client_id: str
    broker_id: str
    status: str
    filled_qty: float = 0.0
    filled_price: float = 0.0
    detail: str = ""

    @property
    def is_open(self) -> bool:
        """Whether the order may still change (any status outside `TERMINAL_STATUSES`)."""
        return self.status not in TERMINAL_STATUSES


@dataclass(frozen=True)
class Fill:
    """Units that changed hands: an order's fill, or a forced sale of a margin call (`client_id` None).
    `quantity` is the units that reached (buy) or left (sell) the account, net of a fee taken in the asset."""

    date: str
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float
    kind: str = "order"  # "order" | "margin_call"
    client_id: str | None = None


@dataclass(frozen=True)
class Posting:
    """An account activity a real broker posted: a fill (`kind` "FILL", naming the broker's `order_id`), a fee
    ("CFEE": crypto, taken in the coin on a buy, in dollars on a sale; "FEE": regulatory fees), or interest ("INT").
    `amount` is the dollars it charged (> 0 a cost; a fee in the coin is valued at its `price`; a fill's is 0);
    `date` its day (a fill's: the UTC day of its execution); `symbol` the ledger's (None: none given, or one the
    ledger does not trade, named in `detail`)."""

    id: str
    kind: str
    date: str
    symbol: str | None
    amount: float
    qty: float = 0.0
    price: float = 0.0
    order_id: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Book:
    """Cash (negative = margin debt) and units held by symbol: the ledger's book at a close, or a broker's account."""

    cash: float
    positions: Mapping[str, float] = field(default_factory=dict)


def portfolio_state(book: Book, symbols: Sequence[str], mark: jnp.ndarray) -> PortfolioState:
    """The transition's `PortfolioState` of `book` over `symbols` (in order), marked at `mark (N,)`, in its dtype."""
    index = {s: i for i, s in enumerate(symbols)}
    q = np.zeros(len(index))
    for s, units in book.positions.items():
        q[index[s]] = units
    mark = jnp.asarray(mark)
    return PortfolioState(cash=jnp.asarray(book.cash, mark.dtype), inventory=jnp.asarray(q, mark.dtype), mark=mark)


@dataclass(frozen=True)
class Settlement:
    """What a simulated bar did besides the order fills: interest, forced sales, the call, the fees."""

    fills: Sequence[Fill]
    interest: float
    fees: float
    margin_call: bool
    forced_notional: float


class Broker(ABC):
    """Account, limit orders, status and fills, cancelling. `sync` and `settle` let a simulated broker follow the
    ledger and the bars; a real broker ignores both (the market fills its orders).

    `min_notional` is the smallest order value the broker takes per asset class (smaller orders are not sent);
    `fees_estimated` says that the fees the ledger records come from the broker's schedule (`fee_rate`,
    `fee_in_asset`), not from its statements; `posts_fees` that it posts the fees it charged later, as account
    activities (`postings`), which replace the estimates."""

    name: str = "broker"
    simulated: bool = False
    fees_estimated: bool = False
    min_notional: Mapping[str, float] = {}
    posts_fees: bool = False

    def sync(self, book: Book, open_orders: Sequence[Order]) -> None:  # noqa: B027
        """Adopt the ledger's book and the orders still open (a simulated broker keeps no state of its own)."""

    def settle(self, row: int) -> Settlement | None:
        """Let the market of `row` act on the open orders (simulated brokers only)."""
        return None

    def fee_rate(self, asset_class: str) -> float:
        """The fee per unit of notional on a fill of this asset class ("stock" or "crypto")."""
        return 0.0

    def fee_in_asset(self, asset_class: str, side: str) -> bool:
        """Whether the fee of such a fill is taken from the units received rather than in cash."""
        return False

    def postings(self, after: str) -> list[Posting]:
        """The fills, fees and interest the broker posted after the day `after` (ISO date), oldest first (a broker
        that posts nothing: none)."""
        return []

    @abstractmethod
    def account(self) -> Book:
        """The broker's cash and units held by (ledger) symbol."""

    @abstractmethod
    def submit(self, orders: Sequence[Order]) -> list[OrderStatus]:
        """Place `orders` (an order already placed under its client id is read back); a refused order comes back
        with status "rejected" and the reason in `detail`."""

    @abstractmethod
    def status(self, client_ids: Sequence[str]) -> list[OrderStatus]:
        """The current status of each order, in the order asked."""

    @abstractmethod
    def cancel_open(self, prefix: str) -> list[str]:
        """Ask to cancel every open order whose client id starts with `prefix`; returns their client ids.
        Cancelling may take effect later (status pending_cancel): read the status until it is terminal."""
