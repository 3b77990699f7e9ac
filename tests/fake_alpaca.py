"""A local stand-in for the subset of Alpaca's trading REST API the Alpaca broker uses, answering with the
response shapes alpaca-py's models parse (ids are UUIDs, money fields strings, times ISO with Z). It binds to
127.0.0.1 only; the test decides when orders fill.

Like Alpaca: a new account holds $100,000 in cash; cancelling is asynchronous (the order shows pending_cancel for
`cancel_reads` reads, then canceled), and a fill can land meanwhile (`fill_on_cancel`); the crypto fee is taken in
the asset received (a buy of q coins adds q (1 - crypto_fee) to the position, a sale pays it in dollars); an order
in `refuse` is refused with HTTP 403.

Market data (stock and crypto daily bars, `bars` keyed by Alpaca's symbol: `STK0`, `CRY0/USD`): only bars that
have opened by `now` are answered (None: all), a bar in `partial` is answered with those values instead (a bar
still forming), `data_faults` answers the next data requests with those HTTP codes, one each, and `data_delay`
slows each data request.

Account activities (`GET /v2/account/activities`, filtered by `activity_types` and `after`, oldest first with
`direction=asc`, paged by `page_token`): every fill posts a FILL at once (at `now`, or `NOW`); a crypto fill's fee
waits in `pending_fees` until the test calls `post_fees()` (Alpaca posts CFEE at the end of the day), as a coin
amount with its price on a buy and in dollars on a sale; `activities` takes any other posting the test adds."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

NOW = "2026-11-24T21:00:00.000000Z"
TERMINAL = ("filled", "canceled", "expired", "rejected", "replaced")


class FakeAlpaca:
    """Account state, orders by id, and the requests seen (method, path, body)."""

    def __init__(self, cash: float = 100_000.0, crypto_fee: float = 0.0015, cancel_reads: int = 1):
        self.cash, self.positions, self.orders, self.requests = cash, {}, {}, []
        self.crypto_fee, self.cancel_reads = crypto_fee, cancel_reads
        self.fill_on_cancel: dict[str, tuple[float, float]] = {}  # client id -> (units, price) filled as it cancels
        self.refuse: dict[str, str] = {}  # client id -> the reason its submission is refused
        self.bars: dict[str, list[dict]] = {}  # Alpaca symbol -> [{"t", "o", "h", "l", "c", "v"}], oldest first
        self.now: str | None = None
        self.partial: dict[tuple[str, str], dict] = {}  # (symbol, t) -> the values answered while it forms
        self.data_faults: list[int] = []
        self.data_delay = 0.0  # seconds each data request waits before it is answered
        self.activities: list[dict] = []  # posted, in posting order
        self.pending_fees: list[dict] = []  # CFEE postings not yet made
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str):
                url = urlparse(self.path)
                if fake.data_delay and url.path.endswith("/bars"):
                    time.sleep(fake.data_delay)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with fake.lock:
                    fake.requests.append((method, url.path, body, self.headers.get("APCA-API-KEY-ID")))
                    code, out = fake.handle(method, url.path, parse_qs(url.query), body)
                self._send(code, out)

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def do_DELETE(self):
                self._route("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeAlpaca:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --------------------------------------------------------------------------------- the API subset

    def handle(self, method: str, path: str, query: dict, body: dict | None):
        if method == "GET" and path in ("/v2/stocks/bars", "/v1beta3/crypto/us/bars"):
            return self._bars(query)
        if method == "GET" and path == "/v2/account/activities":
            return self._activities(query)
        if method == "GET" and path == "/v2/account":
            return 200, {"id": str(uuid.uuid4()), "account_number": "PA0NDJAX", "status": "ACTIVE",
                         "currency": "USD", "cash": repr(self.cash), "equity": repr(self.cash)}
        if method == "GET" and path == "/v2/positions":
            return 200, [{"asset_id": str(uuid.uuid4()), "symbol": s, "exchange": "CRYPTO" if "USD" in s else "NASDAQ",
                          "asset_class": "crypto" if "USD" in s else "us_equity", "avg_entry_price": "1.0",
                          "qty": repr(q), "side": "long", "cost_basis": "1.0"} for s, q in self.positions.items() if q]
        if method == "POST" and path == "/v2/orders":
            if body["client_order_id"] in self.refuse:
                return 403, {"code": 40310000, "message": self.refuse[body["client_order_id"]]}
            if any(o["client_order_id"] == body["client_order_id"] for o in self.orders.values()):
                return 422, {"code": 40010001, "message": "client_order_id must be unique"}
            oid = str(uuid.uuid4())
            self.orders[oid] = {
                "id": oid, "client_order_id": body["client_order_id"], "created_at": NOW, "updated_at": NOW,
                "submitted_at": NOW, "time_in_force": body["time_in_force"], "status": "new", "extended_hours": False,
                "symbol": body["symbol"], "qty": str(body["qty"]), "filled_qty": "0", "filled_avg_price": None,
                "side": body["side"], "type": body["type"], "order_type": body["type"],
                "limit_price": str(body["limit_price"]), "order_class": "simple",
                "asset_class": "crypto" if "/" in body["symbol"] else "us_equity"}
            return 200, self.orders[oid]
        if method == "GET" and path == "/v2/orders:by_client_order_id":
            cid = query["client_order_id"][0]
            for o in self.orders.values():
                if o["client_order_id"] == cid:
                    return 200, self._read(o)
            return 404, {"code": 40410000, "message": "order not found"}
        if method == "GET" and path == "/v2/orders":
            wanted = query.get("status", ["open"])[0]
            chosen = [o for o in self.orders.values() if wanted == "all" or (o["status"] not in TERMINAL)
                      == (wanted == "open")]
            return 200, [{k: v for k, v in o.items() if not k.startswith("_")} for o in chosen]
        if method == "DELETE" and path.startswith("/v2/orders/"):
            o = self.orders.get(path.rsplit("/", 1)[1])
            if o is None:
                return 404, {"code": 40410000, "message": "order not found"}
            if o["status"] in TERMINAL or o["status"] == "pending_cancel":
                return 422, {"code": 42210000, "message": f"order is {o['status']}"}
            if o["client_order_id"] in self.fill_on_cancel:
                self._fill(o, *self.fill_on_cancel.pop(o["client_order_id"]))
            o["status"], o["_reads"] = "pending_cancel", 0
            return 204, None
        return 404, {"code": 40400000, "message": f"no route {method} {path}"}

    def _bars(self, query: dict):
        """Daily bars of the symbols asked for, from `start` through `end` (ISO times), as revealed by `now`."""
        if self.data_faults:
            code = self.data_faults.pop(0)
            return code, {"code": code * 100000, "message": f"fault {code} injected by the test"}
        if query.get("timeframe", [""])[0] != "1Day":
            return 422, {"code": 42210000, "message": "only 1Day bars here"}
        start, end = (_instant(query[k][0]) for k in ("start", "end"))
        now = _instant(self.now) if self.now else None
        out = {}
        for symbol in query["symbols"][0].split(","):
            chosen = [self.partial.get((symbol, b["t"]), b) for b in self.bars.get(symbol, [])
                      if start <= _instant(b["t"]) <= end and (now is None or _instant(b["t"]) <= now)]
            if chosen:
                out[symbol] = [{"n": 1, "vw": b["c"], **b} for b in chosen]
        return 200, {"bars": out, "next_page_token": None}

    def _activities(self, query: dict):
        """The postings of the types asked for, dated after `after`, oldest first, a page at a time."""
        kinds = query.get("activity_types", [",".join(a["activity_type"] for a in self.activities)])[0].split(",")
        after = query.get("after", ["0000-00-00"])[0][:10]
        if query.get("direction", ["desc"])[0] != "asc":
            return 422, {"code": 42210000, "message": "this stand-in answers direction=asc only"}
        chosen = [a for a in self.activities if a["activity_type"] in kinds
                  and (a.get("date") or a["transaction_time"])[:10] > after]
        token = query.get("page_token", [None])[0]
        if token is not None:
            chosen = chosen[[a["id"] for a in chosen].index(token) + 1:]
        return 200, chosen[: int(query.get("page_size", ["100"])[0])]

    def post_fees(self) -> None:
        """Post the crypto fees of the fills so far (CFEE, dated the day of each fill), as Alpaca does at day end."""
        with self.lock:
            self.activities += self.pending_fees
            self.pending_fees = []

    def _read(self, o: dict) -> dict:
        """An order as a read returns it: one being cancelled turns canceled after `cancel_reads` reads."""
        if o["status"] == "pending_cancel":
            o["_reads"] += 1
            if o["_reads"] > self.cancel_reads:
                o["status"] = "filled" if float(o["filled_qty"]) >= float(o["qty"]) else "canceled"
        return {k: v for k, v in o.items() if not k.startswith("_")}

    def _fill(self, o: dict, qty: float, price: float) -> None:
        """`qty` more units of order `o` at `price`; cash and units move as at Alpaca (crypto fees in the asset
        received)."""
        done = float(o["filled_qty"])
        average = (done * float(o["filled_avg_price"] or 0) + qty * price) / (done + qty)
        o.update(filled_qty=repr(done + qty), filled_avg_price=repr(average))
        if o["status"] != "pending_cancel":
            o["status"] = "filled" if done + qty >= float(o["qty"]) else "partially_filled"
        crypto, key = "/" in o["symbol"], o["symbol"].replace("/", "")
        fee = self.crypto_fee if crypto else 0.0
        at = self.now or NOW
        stamp = "".join(c for c in at[:10] if c.isdigit()) + "000000000"
        self.activities.append({
            "id": f"{stamp}::{uuid.uuid4()}", "activity_type": "FILL", "transaction_time": at,
            "type": "fill" if done + qty >= float(o["qty"]) else "partial_fill", "price": repr(price), "qty": repr(qty),
            "side": o["side"], "symbol": o["symbol"], "leaves_qty": repr(float(o["qty"]) - done - qty),
            "order_id": o["id"], "cum_qty": repr(done + qty), "order_status": o["status"]})
        if crypto:
            fee_posting = {"id": f"{stamp}::{uuid.uuid4()}", "activity_type": "CFEE", "date": at[:10],
                           "symbol": key, "status": "executed"}
            if o["side"] == "buy":
                fee_posting.update(net_amount="0", qty=repr(-qty * fee), price=repr(price),
                                   description="Coin Pair Transaction Fee (Non USD)")
            else:
                fee_posting.update(net_amount=repr(-qty * price * fee), description="Coin Pair Transaction Fee (USD)")
            self.pending_fees.append(fee_posting)
        if o["side"] == "buy":
            self.positions[key] = self.positions.get(key, 0.0) + qty * (1 - fee)
            self.cash -= qty * price
        else:
            self.positions[key] = self.positions.get(key, 0.0) - qty
            self.cash += qty * price * (1 - fee)

    def fill(self, client_id: str, qty: float | None = None, price: float | None = None) -> None:
        """Fill an order (all of it by default, at its limit) and move cash and units as Alpaca would."""
        with self.lock:
            o = next(o for o in self.orders.values() if o["client_order_id"] == client_id)
            qty = float(o["qty"]) - float(o["filled_qty"]) if qty is None else qty
            self._fill(o, qty, float(o["limit_price"]) if price is None else price)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
