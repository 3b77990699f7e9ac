"""An Alpaca broker on `alpaca-py` (the optional extra: `pip install -e ".[alpaca]"`).

Keys come from `APCA_API_KEY_ID` and `APCA_API_SECRET_KEY`; the paper endpoint is the default and the live one
needs `live=True`. Stocks go out as day limit orders and crypto as GTC limit orders (cancelled at the next cycle),
each with the ledger's deterministic client order id: a re-run finds the order already placed instead of placing
it twice. An order Alpaca refuses comes back "rejected" with the reason; the others still go out. Symbols are the
ledger's (`BTC-USD`); Alpaca's `BTC/USD` (orders) and `BTCUSD` (positions) are mapped at this boundary. Limit
prices are rounded to the venue's tick, down for buys and up for sells.

Fees follow Alpaca's schedule at the fill (estimates): no commission on stocks, `crypto_fee` on crypto, which
Alpaca takes in the asset received: a crypto buy of q units adds q (1 - crypto_fee) to the position. Alpaca posts
what it charged later as account activities (`GET /v2/account/activities`; alpaca-py's `TradingClient` has no
method for it, so `postings` calls the endpoint through the client's own session): FILL (with the order id), CFEE
(crypto fees, end of day, in the coin with its price), FEE (regulatory fees on stock sales) and INT (interest);
the cycle replaces the estimates with them (`ndjax.paper.postings`).

Tried against a local server that answers the REST subset used here with alpaca-py's response shapes; never
against Alpaca itself (no network from the machines this was built on).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

from ndjax.dynamics import ALPACA_CRYPTO_MAKER_FEE
from ndjax.feeds.bars import alpaca_pair
from ndjax.paper.broker import Book, Broker, BrokerError, Order, OrderStatus, Posting

MIN_NOTIONAL = {"stock": 1.0, "crypto": 1.0}
"""Alpaca's smallest order value in dollars: $1 for fractional stock orders and for crypto (from Alpaca's
fractional-trading and crypto pages, as the brief for this module states them; not checked against the API)."""
ACTIVITY_TYPES = ("FILL", "CFEE", "FEE", "INT")
"""The account activities read: fills, crypto fees, regulatory fees, interest (alpaca-py's `ActivityType` names)."""
MAX_CLIENT_ID = 48
"""Longest client order id Alpaca's (older) documentation allows."""


def _pair(symbol: str) -> str:
    """`BTC-USD` -> `BTC/USD` (`ndjax.feeds.bars.alpaca_pair`), a `BrokerError` if it has no pair."""
    try:
        return alpaca_pair(symbol)
    except ValueError as e:
        raise BrokerError(f"alpaca: {e}") from None


def _tick(price: float, crypto: bool) -> float:
    """Alpaca's price increment: a cent for stocks at $1 or more (0.0001 below), 6 significant digits for crypto."""
    if not crypto:
        return 0.01 if price >= 1 else 0.0001
    return 10 ** (math.floor(math.log10(abs(price))) - 5) if price > 0 else 1e-8


class AlpacaBroker(Broker):
    """Alpaca's trading API for the ledger's `symbols` (`is_crypto` per symbol)."""

    name = "alpaca"
    fees_estimated = True
    posts_fees = True
    min_notional = MIN_NOTIONAL

    def __init__(self, symbols: Sequence[str], is_crypto: Sequence[bool], *, live: bool = False,
                 url: str | None = None, key: str | None = None, secret: str | None = None, timeout: float = 20.0,
                 crypto_fee: float = ALPACA_CRYPTO_MAKER_FEE):
        try:
            from alpaca.trading.client import TradingClient
        except ImportError:
            raise BrokerError('alpaca: alpaca-py is not installed; pip install -e ".[alpaca]"') from None
        key = key or os.environ.get("APCA_API_KEY_ID")
        secret = secret or os.environ.get("APCA_API_SECRET_KEY")
        if not key or not secret:
            raise BrokerError("alpaca: set APCA_API_KEY_ID and APCA_API_SECRET_KEY (the paper account's keys)")
        self.client = TradingClient(key, secret, paper=not live, url_override=url)
        session = self.client._session  # alpaca-py sets no timeout; a hung request must not hang the cycle
        session.request = functools.partial(session.request, timeout=timeout)
        self.crypto = {s: bool(c) for s, c in zip(symbols, is_crypto)}
        self.to_ledger = {}
        for s, c in self.crypto.items():
            self.to_ledger[s] = s
            if c:
                self.to_ledger[_pair(s)] = s
                self.to_ledger[_pair(s).replace("/", "")] = s
        self.live, self.crypto_fee = live, float(crypto_fee)

    def fee_rate(self, asset_class: str) -> float:
        """No commission on stocks; `crypto_fee` (the first tier's maker fee by default) on crypto."""
        return self.crypto_fee if asset_class == "crypto" else 0.0

    def fee_in_asset(self, asset_class: str, side: str) -> bool:
        """Alpaca takes a crypto fee in the asset received: the coin on a buy, dollars on a sale."""
        return asset_class == "crypto" and side == "buy"

    def _call(self, what: str, fn, *args, refused=None):
        """`fn(*args)`; a refusal (HTTP error) goes to `refused(error)` if given, else both it and a network
        failure raise a `BrokerError` naming `what`."""
        from alpaca.common.exceptions import APIError

        try:
            return fn(*args)
        except APIError as e:
            if refused is not None:
                return refused(e)
            raise BrokerError(f"alpaca: {what} failed with HTTP {e.status_code}: {_text(e)}") from None
        except OSError as e:
            raise BrokerError(f"alpaca: {what} could not reach the broker ({type(e).__name__}: {e})") from None

    def _status(self, order) -> OrderStatus:
        status = getattr(order.status, "value", order.status)
        return OrderStatus(client_id=order.client_order_id, broker_id=str(order.id), status=str(status),
                           filled_qty=float(order.filled_qty or 0), filled_price=float(order.filled_avg_price or 0))

    def account(self) -> Book:
        acc = self._call("reading the account", self.client.get_account)
        held = {}
        for p in self._call("reading the positions", self.client.get_all_positions):
            if p.symbol not in self.to_ledger:
                raise BrokerError(f"alpaca: the account holds {p.qty} {p.symbol}, which the ledger does not trade: "
                                  "positions out of sync with the broker")
            held[self.to_ledger[p.symbol]] = float(p.qty)
        return Book(cash=float(acc.cash), positions=held)

    def postings(self, after: str) -> list[Posting]:
        """FILL, CFEE, FEE and INT activities after the day `after`, oldest first, every page."""
        out, token = [], None
        while True:
            query = {"activity_types": ",".join(ACTIVITY_TYPES), "after": after, "direction": "asc",
                     "page_size": 100, **({"page_token": token} if token else {})}
            page = self._call("reading the account activities", self.client.get, "/account/activities", query)
            if not isinstance(page, list):
                raise BrokerError(f"alpaca: the account activities came back as {type(page).__name__}, not a list")
            out += [self._posting(a) for a in page]
            if len(page) < 100:
                return out
            token = page[-1].get("id")

    def _posting(self, a: dict) -> Posting:
        """One activity as a `Posting`; a malformed one raises a `BrokerError` naming it."""
        try:
            kind, raw = a["activity_type"], a.get("symbol")
            symbol = self.to_ledger.get(raw) if raw else None
            detail = "" if symbol or not raw else f"symbol {raw}, which the ledger does not trade"
            qty, price = float(a.get("qty") or 0), float(a.get("price") or 0)
            if kind == "FILL":
                return Posting(a["id"], kind, a["transaction_time"][:10], symbol, 0.0, qty, price,
                               str(a["order_id"]), detail or a.get("side", ""))
            net = float(a.get("net_amount") or 0)
            amount = -net if net or kind != "CFEE" else -qty * price  # a coin fee: net_amount 0, qty < 0
            return Posting(a["id"], kind, a["date"][:10], symbol, amount, qty, price, None,
                           detail or a.get("description", ""))
        except (KeyError, TypeError, ValueError) as e:
            raise BrokerError(f"alpaca: account activity {a.get('id', a)!r} could not be read ({type(e).__name__}: "
                              f"{e})") from None

    def submit(self, orders: Sequence[Order]) -> list[OrderStatus]:
        from alpaca.common.exceptions import APIError
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import LimitOrderRequest

        out = []
        for o in orders:
            crypto = self.crypto.get(o.symbol)
            if crypto is None:
                raise BrokerError(f"alpaca: order {o.client_id} for {o.symbol!r}, which the ledger does not trade")
            if len(o.client_id) > MAX_CLIENT_ID:
                raise BrokerError(f"alpaca: client order id {o.client_id!r} is longer than {MAX_CLIENT_ID} characters")
            tick = _tick(o.limit_price, crypto)
            price = (math.floor if o.side == "buy" else math.ceil)(o.limit_price / tick) * tick
            request = LimitOrderRequest(
                symbol=_pair(o.symbol) if crypto else o.symbol, qty=o.quantity, limit_price=round(price, 10),
                side=OrderSide.BUY if o.side == "buy" else OrderSide.SELL, client_order_id=o.client_id,
                time_in_force=TimeInForce.GTC if crypto else TimeInForce.DAY)
            what = f"submitting order {o.describe()}"
            placed = self._call(what, self.client.submit_order, request, refused=lambda e: e)
            if isinstance(placed, APIError):  # refused: placed by an earlier run of this cycle, or not at all
                error = placed
                placed = self._call(f"reading back order {o.client_id}", self.client.get_order_by_client_id,
                                    o.client_id, refused=lambda e: None)
                if placed is None:
                    out.append(OrderStatus(o.client_id, "", "rejected", detail=f"refused with HTTP "
                                           f"{error.status_code}: {_text(error)}"))
                    continue
            out.append(self._status(placed))
        return out

    def status(self, client_ids: Sequence[str]) -> list[OrderStatus]:
        return [self._status(self._call(f"reading order {c}", self.client.get_order_by_client_id, c))
                for c in client_ids]

    def cancel_open(self, prefix: str) -> list[str]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        if not prefix.startswith("ndjax-") or len(prefix) <= len("ndjax-"):
            raise BrokerError(f"alpaca: cancelling needs a ledger's client id prefix, got {prefix!r}")
        open_orders = self._call("listing open orders", self.client.get_orders,
                                 GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500))
        cancelled = []
        for order in open_orders:
            if not order.client_order_id.startswith(prefix):
                continue
            if getattr(order.status, "value", order.status) != "pending_cancel":  # asked already
                self._call(f"cancelling {order.client_order_id}", self.client.cancel_order_by_id, order.id)
            cancelled.append(order.client_order_id)
        return cancelled


def _text(error) -> str:
    """An Alpaca error's message on one line, cut at 300 characters."""
    return " ".join(str(error).split())[:300]
