"""The Alpaca broker against a local server speaking the REST subset it uses: order mapping, idempotent
submission, read-back of status, positions and cash, cancelling, and a ledger cycle on top."""

from __future__ import annotations

import pytest

pytest.importorskip("alpaca")

from ndjax.paper.alpaca import AlpacaBroker  # noqa: E402
from ndjax.paper.broker import BrokerError, Order  # noqa: E402
from ndjax.paper.controls import Controls  # noqa: E402
from ndjax.paper.cycle import PaperConfig  # noqa: E402
from ndjax.paper.trade import open_session, paper_trade  # noqa: E402
from tests.fake_alpaca import FakeAlpaca  # noqa: E402

SYMBOLS, CRYPTO = ("STK0", "CRY0-USD"), (False, True)


def _broker(fake: FakeAlpaca) -> AlpacaBroker:
    return AlpacaBroker(SYMBOLS, CRYPTO, url=fake.url, key="test-key", secret="test-secret")


def test_order_mapping_idempotent_submit_and_read_back():
    orders = [Order("ndjax-2026-11-24-STK0-b", "2026-11-24", "STK0", "buy", 101.23456, 3.5, "stock"),
              Order("ndjax-2026-11-24-CRY0-USD-s", "2026-11-24", "CRY0-USD", "sell", 61234.56789, 0.0123, "crypto")]
    with FakeAlpaca() as fake:
        broker = _broker(fake)
        placed = broker.submit(orders)
        assert [s.status for s in placed] == ["new", "new"] and all(s.broker_id for s in placed)
        bodies = [b for m, p, b, _ in fake.requests if m == "POST"]
        assert bodies[0] == {"symbol": "STK0", "qty": 3.5, "side": "buy", "type": "limit", "time_in_force": "day",
                             "client_order_id": "ndjax-2026-11-24-STK0-b", "limit_price": 101.23}  # a cent, down
        assert bodies[1]["symbol"] == "CRY0/USD" and bodies[1]["time_in_force"] == "gtc"
        assert bodies[1]["limit_price"] == pytest.approx(61234.6)  # 6 significant digits, up for a sale
        assert all(key == "test-key" for *_, key in fake.requests)
        again = broker.submit(orders)  # a re-run of the cycle: the broker already holds both
        assert [s.broker_id for s in again] == [s.broker_id for s in placed]
        assert len([1 for m, p, *_ in fake.requests if m == "POST"]) == 4 and len(fake.orders) == 2
        fake.fill(orders[0].client_id, qty=2.0, price=101.0)
        status = broker.status([o.client_id for o in orders])
        assert (status[0].status, status[0].filled_qty, status[0].filled_price) == ("partially_filled", 2.0, 101.0)
        account = broker.account()
        assert account.positions == {"STK0": 2.0} and account.cash == pytest.approx(25_000 - 202.0)
        assert sorted(broker.cancel_open()) == sorted(o.client_id for o in orders)
        assert all(o["status"] == "canceled" for o in fake.orders.values())


def test_errors_name_the_problem():
    with FakeAlpaca() as fake:
        broker = _broker(fake)
        with pytest.raises(BrokerError, match="not trade"):
            broker.submit([Order("ndjax-x", "2026-11-24", "AAPL", "buy", 1.0, 1.0, "stock")])
        fake.positions["ZZZ"] = 5.0
        with pytest.raises(BrokerError, match="ZZZ.*out of sync"):
            broker.account()
        with pytest.raises(BrokerError, match="reading order ndjax-missing failed with HTTP 404"):
            broker.status(["ndjax-missing"])
    with pytest.raises(BrokerError, match="APCA_API_KEY_ID"):
        AlpacaBroker(SYMBOLS, CRYPTO, url="http://127.0.0.1:9", key=None, secret=None)


def test_cycles_against_the_broker(run_dir, tmp_path, monkeypatch):
    """Day 1 submits; the broker fills one order; day 2 records the fill and the broker's book; a position the
    ledger does not expect stops the next cycle with a message naming it."""
    monkeypatch.setenv("APCA_API_KEY_ID", "k")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s")
    config = PaperConfig(controls=Controls(ramp_days=0, halt_drawdown=1.0))
    with FakeAlpaca(cash=25_000.0) as fake:
        session = open_session(run_dir, tmp_path / "live.db", broker="alpaca", equity=25_000.0, config=config,
                               alpaca={"url": fake.url})
        dates = session.market.dates
        paper_trade(session, start=str(dates[150]), through=str(dates[150]))
        submitted = session.ledger.order_rows()
        assert submitted and {o["client_id"] for o in submitted} == {o["client_order_id"] for o in fake.orders.values()}
        buy = next(o for o in submitted if o["side"] == "buy")
        fake.fill(buy["client_id"])
        result = paper_trade(session, through=str(dates[151]))
        assert result.recorded == 1
        fills = session.ledger.fills()
        assert [(f["symbol"], f["side"], f["client_id"]) for f in fills] == [(buy["symbol"], "buy", buy["client_id"])]
        book = session.ledger.book(str(dates[151]))
        assert book.positions == {buy["symbol"]: pytest.approx(buy["quantity"])} and book.cash == pytest.approx(fake.cash)
        fake.positions["STK0"] = fake.positions.get("STK0", 0.0) + 7.0
        with pytest.raises(BrokerError, match="holds .* STK0, the ledger expects"):
            paper_trade(session, through=str(dates[152]))
        assert session.ledger.last_date() == str(dates[151])  # the failed day left nothing behind
