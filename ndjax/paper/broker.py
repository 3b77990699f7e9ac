"""The broker interface paper trading speaks: the account, limit orders, their status and fills, cancelling.

Orders carry a deterministic `client_id` per (day, symbol, side), so submitting the same day twice (a re-run
after a crash) finds the order already there instead of placing it again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

OPEN_STATUSES = ("new", "accepted", "pending_new", "partially_filled")


class BrokerError(ValueError):
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


@dataclass(frozen=True)
class OrderStatus:
    """Where an order stands: `status` (new, filled, partially_filled, canceled, expired, rejected, ...), the units
    filled so far and their average price."""

    client_id: str
    broker_id: str
    status: str
    filled_qty: float = 0.0
    filled_price: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class Fill:
    """Units that changed hands: an order's fill, or a forced sale of a margin call (`client_id` None)."""

    date: str
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float
    kind: str = "order"  # "order" | "margin_call"
    client_id: str | None = None


@dataclass(frozen=True)
class Account:
    """Cash (negative = margin debt) and units held by symbol."""

    cash: float
    positions: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Book:
    """The ledger's view of the account at a close: cash and units held by symbol."""

    cash: float
    positions: Mapping[str, float]


@dataclass(frozen=True)
class Settlement:
    """What a simulated bar did besides the order fills: interest, forced sales, the call, the fees."""

    fills: Sequence[Fill]
    interest: float
    fees: float
    margin_call: bool
    forced_notional: float
    info: Any = None  # the transition's StepInfo for this bar


class Broker(ABC):
    """Account, limit orders, status and fills, cancelling. `sync` and `settle` let a simulated broker follow the
    ledger and the bars; a real broker ignores both (the market fills its orders)."""

    name: str = "broker"

    def sync(self, book: Book, open_orders: Sequence[Order]) -> None:
        """Adopt the ledger's book and the orders still open (a simulated broker keeps no state of its own)."""

    def settle(self, row: int) -> Settlement | None:
        """Let the market of `row` act on the open orders (simulated brokers only)."""
        return None

    @abstractmethod
    def account(self) -> Account: ...

    @abstractmethod
    def submit(self, orders: Sequence[Order]) -> list[OrderStatus]: ...

    @abstractmethod
    def status(self, client_ids: Sequence[str]) -> list[OrderStatus]: ...

    @abstractmethod
    def cancel_open(self) -> list[str]: ...
