"""The Alpaca broker against a local server speaking the REST subset it uses: order mapping, idempotent
submission, read-back of status, positions and cash, refusals, asynchronous cancelling, crypto fees taken in the
coin, and ledger cycles on top (the account checked on the first day, two ledgers sharing one account)."""

from __future__ import annotations

import pytest

pytest.importorskip("alpaca")

import requests

from ndjax.paper.alpaca import AlpacaBroker
from ndjax.paper.broker import BrokerError, Order
from ndjax.paper.controls import Controls
from ndjax.paper.cycle import PaperConfig
from ndjax.paper.trade import open_session, paper_trade
from tests.fake_alpaca import FakeAlpaca

SYMBOLS, CRYPTO = ("STK0", "CRY0-USD"), (False, True)
CONFIG = PaperConfig(controls=Controls(ramp_days=0, halt_drawdown=1.0), status_wait=0.0)
DAY = 150  # a row of the tiny run's market


def _broker(fake: FakeAlpaca) -> AlpacaBroker:
    return AlpacaBroker(SYMBOLS, CRYPTO, url=fake.url, key="test-key", secret="test-secret")


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("APCA_API_KEY_ID", "k")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s")


def _session(run_dir, path, fake, config=CONFIG, **kw):
    return open_session(run_dir, path, broker="alpaca", config=config, alpaca={"url": fake.url}, **kw)


def test_order_mapping_idempotent_submit_and_read_back():
    orders = [Order("ndjax-a1-2026-11-24-STK0-b", "2026-11-24", "STK0", "buy", 101.23456, 3.5, "stock"),
              Order("ndjax-a1-2026-11-24-CRY0-USD-s", "2026-11-24", "CRY0-USD", "sell", 61234.56789, 0.0123, "crypto")]
    with FakeAlpaca(cash=25_000.0) as fake:
        broker = _broker(fake)
        placed = broker.submit(orders)
        assert [s.status for s in placed] == ["new", "new"] and all(s.broker_id for s in placed)
        bodies = [b for m, p, b, _ in fake.requests if m == "POST"]
        assert bodies[0] == {"symbol": "STK0", "qty": 3.5, "side": "buy", "type": "limit", "time_in_force": "day",
                             "client_order_id": "ndjax-a1-2026-11-24-STK0-b", "limit_price": 101.23}  # a cent, down
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
        other = broker.submit([Order("ndjax-b2-2026-11-24-STK0-b", "2026-11-24", "STK0", "buy", 100.0, 1.0,
                                     "stock")])  # another ledger's order on the same account
        assert sorted(broker.cancel_open("ndjax-a1-")) == sorted(o.client_id for o in orders)
        assert [s.status for s in broker.status([o.client_id for o in orders])] == ["pending_cancel"] * 2
        assert [s.status for s in broker.status([o.client_id for o in orders])] == ["canceled"] * 2
        assert broker.status([other[0].client_id])[0].status == "new"  # not this ledger's: left alone


def test_errors_name_the_problem():
    with FakeAlpaca() as fake:
        broker = _broker(fake)
        with pytest.raises(BrokerError, match="not trade"):
            broker.submit([Order("ndjax-a1-x", "2026-11-24", "AAPL", "buy", 1.0, 1.0, "stock")])
        fake.refuse["ndjax-a1-r"] = "insufficient buying power"
        refused, placed = broker.submit([Order("ndjax-a1-r", "2026-11-24", "STK0", "buy", 10.0, 1.0, "stock"),
                                         Order("ndjax-a1-p", "2026-11-24", "STK0", "sell", 10.0, 1.0, "stock")])
        assert refused.status == "rejected" and "HTTP 403" in refused.detail and "buying power" in refused.detail
        assert placed.status == "new"  # the next order still goes out

        def unreachable(request):
            raise requests.ConnectionError("connection refused")

        broker.client.submit_order = unreachable
        with pytest.raises(BrokerError, match=r"submitting order ndjax-a1-q \(buy 1 STK0 at 10\) could not reach"):
            broker.submit([Order("ndjax-a1-q", "2026-11-24", "STK0", "buy", 10.0, 1.0, "stock")])
        with pytest.raises(BrokerError, match="needs a ledger's client id prefix"):
            broker.cancel_open("ndjax-")
        fake.positions["ZZZ"] = 5.0
        with pytest.raises(BrokerError, match="ZZZ.*out of sync"):
            broker.account()
        with pytest.raises(BrokerError, match="reading order ndjax-missing failed with HTTP 404"):
            broker.status(["ndjax-missing"])
    with pytest.raises(BrokerError, match="APCA_API_KEY_ID"):
        AlpacaBroker(SYMBOLS, CRYPTO, url="http://127.0.0.1:9", key=None, secret=None)


def test_cycles_against_the_broker(run_dir, tmp_path, keys):
    """Day 1 submits; the broker fills a stock and a crypto buy; day 2 records the fills (the coin net of the fee
    Alpaca takes in it, no commission on the stock, the fees estimates until posted) and the broker's book; a position
    the ledger does not expect stops the next cycle with a message naming it."""
    with FakeAlpaca(cash=25_000.0) as fake:
        session = _session(run_dir, tmp_path / "live.db", fake, equity=25_000.0)
        dates = session.market.dates
        paper_trade(session, start=str(dates[DAY]), through=str(dates[DAY]))
        submitted = session.ledger.order_rows()
        assert submitted and {o["client_id"] for o in submitted} == {o["client_order_id"] for o in fake.orders.values()}
        assert all(o["client_id"].startswith(f"ndjax-{session.ledger.ledger_id}-{dates[DAY]}-") for o in submitted)
        buys = {o["asset_class"]: o for o in submitted if o["side"] == "buy"}
        for o in buys.values():
            fake.fill(o["client_id"])
        result = paper_trade(session, through=str(dates[DAY + 1]))
        assert result.recorded == 1
        fills = {f["symbol"]: f for f in session.ledger.fills()}
        assert set(fills) == {o["symbol"] for o in buys.values()} and all(f["side"] == "buy" for f in fills.values())
        stock, coin = buys["stock"], buys["crypto"]
        assert (fills[stock["symbol"]]["quantity"] == pytest.approx(stock["quantity"])
                and fills[stock["symbol"]]["fee"] == 0)
        fee = session.broker.fee_rate("crypto")
        assert fee == fake.crypto_fee > 0
        assert fills[coin["symbol"]]["quantity"] == pytest.approx(coin["quantity"] * (1 - fee), rel=1e-9)
        assert fills[coin["symbol"]]["fee"] == pytest.approx(fee * coin["quantity"] * fills[coin["symbol"]]["price"])
        book = session.ledger.book(str(dates[DAY + 1]))
        assert book.positions == {stock["symbol"]: pytest.approx(stock["quantity"]),
                                  coin["symbol"]: pytest.approx(coin["quantity"] * (1 - fee))}
        assert book.cash == pytest.approx(fake.cash)
        # the fill day's crypto fee waits for Alpaca's CFEE posting; the first day had no fill to wait for
        assert [d["fees_estimated"] for d in session.ledger.days()] == [0, 1] and "ESTIMATES" in result.text
        fake.positions["STK0"] = fake.positions.get("STK0", 0.0) + 7.0
        with pytest.raises(BrokerError, match="holds .* STK0, the ledger expects"):
            paper_trade(session, through=str(dates[DAY + 2]))
        assert session.ledger.last_date() == str(dates[DAY + 1])  # the failed day left nothing behind


def test_the_first_cycle_checks_the_broker_account(run_dir, tmp_path, keys):
    """Alpaca's paper account starts with $100,000: a ledger opened for 25,000 refuses it, naming both, unless told
    to adopt the broker's cash; positions held before the start are refused either way."""
    with FakeAlpaca() as fake:
        session = _session(run_dir, tmp_path / "a.db", fake, equity=25_000.0)
        day = str(session.market.dates[DAY])
        with pytest.raises(BrokerError, match=r"cash 100,000.00; the new ledger .* starts from --equity 25,000.00"):
            paper_trade(session, start=day, through=day)
        assert session.ledger.last_date() is None and not fake.orders
        fake.positions["STK0"] = 3.0
        adopting = _session(run_dir, tmp_path / "a.db", fake, adopt_account=True)
        with pytest.raises(BrokerError, match=r"cash 100,000.00 and positions \{'STK0': 3.0\}"):
            paper_trade(adopting, start=day, through=day)
        del fake.positions["STK0"]
        paper_trade(adopting, start=day, through=day)
        assert adopting.ledger.days()[0]["equity"] == 100_000.0 and adopting.ledger.events("adopt")
        assert adopting.ledger.identity.initial_equity == 100_000.0
        assert sum(o["notional"] for o in adopting.ledger.order_rows()) > 25_000.0  # sized on the broker's cash
        assert _session(run_dir, tmp_path / "a.db", fake).ledger.identity.initial_equity == 100_000.0


def test_a_fill_while_the_cancel_is_pending_is_recorded(run_dir, tmp_path, keys):
    """Cancelling is asynchronous: a fill that lands before the cancel completes is recorded, and an order still
    pending_cancel after the last read stays open in the ledger and is read again (its later fills too)."""
    with FakeAlpaca(cash=25_000.0, cancel_reads=3) as fake:
        session = _session(run_dir, tmp_path / "c.db", fake, PaperConfig(
            controls=CONFIG.controls, status_polls=2, status_wait=0.0), equity=25_000.0)
        dates = session.market.dates
        paper_trade(session, start=str(dates[DAY]), through=str(dates[DAY]))
        buy = next(o for o in session.ledger.order_rows() if o["side"] == "buy" and o["asset_class"] == "stock")
        fake.fill_on_cancel[buy["client_id"]] = (buy["quantity"] / 2, buy["limit_price"])
        paper_trade(session, through=str(dates[DAY + 1]))  # two reads: still pending_cancel
        row = next(o for o in session.ledger.order_rows() if o["client_id"] == buy["client_id"])
        assert (row["status"], row["filled_qty"]) == ("pending_cancel", pytest.approx(buy["quantity"] / 2))
        assert buy["client_id"] in {o.client_id for o in session.ledger.orders(open_only=True)}
        fake.fill(buy["client_id"], qty=buy["quantity"] / 4)  # lands while the cancel is still pending
        paper_trade(session, through=str(dates[DAY + 2]))
        row = next(o for o in session.ledger.order_rows() if o["client_id"] == buy["client_id"])
        assert (row["status"], row["filled_qty"]) == ("canceled", pytest.approx(buy["quantity"] * 3 / 4))
        fills = [f["quantity"] for f in session.ledger.fills() if f["client_id"] == buy["client_id"]]
        assert fills == pytest.approx([buy["quantity"] / 2, buy["quantity"] / 4])
        assert (session.ledger.book(str(dates[DAY + 2])).positions[buy["symbol"]]
                == pytest.approx(buy["quantity"] * 3 / 4))


def test_refused_and_small_orders(run_dir, tmp_path, keys):
    """An order the broker refuses is recorded "rejected" (with an event) and the others go out; orders below
    Alpaca's $1 minimum are not sent at all."""
    with FakeAlpaca(cash=25_000.0) as fake:
        session = _session(run_dir, tmp_path / "r.db", fake, equity=25_000.0)
        real = session.broker.submit

        def refusing(orders):
            fake.refuse[orders[0].client_id] = "insufficient buying power"
            return real(orders)

        session.broker.submit = refusing
        day = str(session.market.dates[DAY])
        paper_trade(session, start=day, through=day)
        rows = session.ledger.order_rows()
        assert [o["status"] for o in rows].count("rejected") == 1 and len(rows) > 1
        assert len(fake.orders) == len(rows) - 1
        (event,) = session.ledger.events("rejected")
        assert "HTTP 403" in event["detail"] and "buying power" in event["detail"]
        tiny = _session(run_dir, tmp_path / "t.db", fake, PaperConfig(controls=Controls(ramp_days=100_000),
                                                                      status_wait=0.0), equity=25_000.0)
        placed = len(fake.orders)
        paper_trade(tiny, start=day, through=day)
        assert "below the broker's minimum order value" in tiny.ledger.events("min_size")[0]["detail"]
        assert all(o["notional"] >= 1.0 for o in tiny.ledger.order_rows())
        assert len(fake.orders) - placed == len(tiny.ledger.order_rows())


def test_two_ledgers_share_one_account(run_dir, tmp_path, keys):
    """Client ids carry the ledger's id: two ledgers trading one account on the same day place their own orders,
    and a ledger's cycle cancels only its own."""
    with FakeAlpaca(cash=25_000.0) as fake:
        one = _session(run_dir, tmp_path / "one.db", fake, equity=25_000.0)
        two = _session(run_dir, tmp_path / "two.db", fake, equity=25_000.0)
        assert one.ledger.ledger_id != two.ledger.ledger_id
        dates = one.market.dates
        for session in (one, two):
            paper_trade(session, start=str(dates[DAY]), through=str(dates[DAY]))
        ids = [{o["client_id"] for o in s.ledger.order_rows()} for s in (one, two)]
        assert ids[0] and len(ids[1]) == len(ids[0]) and not ids[0] & ids[1]
        assert len(fake.orders) == len(ids[0]) + len(ids[1])
        paper_trade(two, through=str(dates[DAY + 1]))
        status = {o["client_order_id"]: o["status"] for o in fake.orders.values()}
        assert {status[c] for c in ids[0]} == {"new"} and "new" not in {status[c] for c in ids[1]}


def _posted_fees_session(run_dir, path, fake):
    """Day DAY submits; the broker fills the stock and crypto buys; day DAY+1 records them (fees estimated, the CFEE
    not posted yet). Returns the session and the two buys by asset class."""
    session = _session(run_dir, path, fake, equity=25_000.0)
    dates = session.market.dates
    paper_trade(session, start=str(dates[DAY]), through=str(dates[DAY]))
    buys = {o["asset_class"]: o for o in session.ledger.order_rows() if o["side"] == "buy"}
    assert set(buys) == {"stock", "crypto"}
    for o in buys.values():
        fake.fill(o["client_id"])
    paper_trade(session, through=str(dates[DAY + 1]))
    return session, buys


def test_posted_fees_replace_the_estimates_on_a_later_day(run_dir, tmp_path, keys):
    """The crypto fee stays an estimate until Alpaca posts its CFEE (a day later, in the coin); the next cycle puts
    the posted fee in place of the estimate on the day of the fill, the report shows both; reading the postings again
    changes nothing; a CFEE that matches no fill of the ledger is kept, reported once and applied nowhere."""
    from ndjax.paper.postings import reconcile_postings, stored

    with FakeAlpaca(cash=25_000.0) as fake:
        session, buys = _posted_fees_session(run_dir, tmp_path / "f.db", fake)
        ledger, dates = session.ledger, session.market.dates
        fill_day = str(dates[DAY + 1])
        day = {d["date"]: d for d in ledger.days()}
        estimate = sum(f["fee"] for f in ledger.fills() if f["date"] == fill_day)
        assert estimate > 0 and day[fill_day]["fees_estimated"] and day[fill_day]["fees"] == pytest.approx(estimate)
        assert not day[str(dates[DAY])]["fees_estimated"]  # no fill: nothing to wait for
        assert {r["kind"] for r in stored(ledger)} == {"FILL"} and len(stored(ledger)) == 2  # fills post at once
        (cfee,) = fake.pending_fees
        cfee["qty"] = repr(float(cfee["qty"]) * 1.1)  # the broker charged 10 % more than the schedule says
        posted = -float(cfee["qty"]) * float(cfee["price"])
        fake.post_fees()
        fake.activities.append({"id": "20261124000000000::unknown-order", "activity_type": "CFEE",
                                "date": "2026-11-24", "net_amount": "0", "qty": "-0.5", "price": "3.0",
                                "symbol": "ETHUSD", "description": "Coin Pair Transaction Fee (Non USD)"})
        result = paper_trade(session, through=str(dates[DAY + 2]))
        day = {d["date"]: d for d in ledger.days()}
        assert not day[fill_day]["fees_estimated"]
        assert day[fill_day]["fees"] == pytest.approx(posted, rel=1e-9)  # the stock fill's fee: 0, as posted
        assert posted == pytest.approx(estimate * 1.1, rel=1e-6)
        fee_row = next(line for line in result.text.splitlines() if line.startswith(fill_day) and "posted" in line)
        assert f"{estimate:.2f}" in fee_row and f"{posted:.2f}" in fee_row and fee_row.endswith("posted")
        (event,) = ledger.events("posting")
        assert "unknown-order" in event["detail"] and "ETHUSD" in event["detail"] and "kept, not applied" in (
            event["detail"])
        assert "UNMATCHED CFEE 20261124000000000::unknown-order" in result.text
        before = (ledger.days(), stored(ledger), ledger.events())
        assert reconcile_postings(ledger, session.broker, ledger.last_date()) == []  # read twice: stored once
        assert (ledger.days(), stored(ledger), ledger.events()) == before
        unknown = next(r for r in stored(ledger) if r["id"].endswith("unknown-order"))
        assert unknown["day"] is None and unknown["amount"] == pytest.approx(1.5)  # kept, not lost


def test_postings_page_through_and_name_a_bad_activity(keys):
    with FakeAlpaca() as fake:
        broker = _broker(fake)
        fake.activities = [{"id": f"20261101000000000::{i:04d}", "activity_type": "INT", "date": "2026-11-01",
                            "net_amount": "-0.25", "description": "margin interest"} for i in range(130)]
        got = broker.postings("2026-10-31")
        assert [p.id for p in got] == [a["id"] for a in fake.activities]  # two pages, in order
        assert all(p.kind == "INT" and p.amount == 0.25 for p in got)
        assert sum(1 for m, p, *_ in fake.requests if p == "/v2/account/activities") == 2
        assert broker.postings("2026-11-01") == []
        fake.activities = [{"id": "20261102000000000::bad", "activity_type": "FEE", "date": "2026-11-02",
                            "net_amount": "lots"}]
        with pytest.raises(BrokerError, match="account activity '20261102000000000::bad' could not be read"):
            broker.postings("2026-11-01")


def test_keys_never_reach_the_ledger_reports_or_logs(run_dir, tmp_path, monkeypatch, capfd):
    """With known fake keys in the environment, cycles that read orders, fills and postings leave them nowhere: not
    in the ledger, the report files or anything printed; every request carried them."""
    key, secret = "PKFEESKEY314159", "feesSecret271828qq"
    monkeypatch.setenv("APCA_API_KEY_ID", key)
    monkeypatch.setenv("APCA_API_SECRET_KEY", secret)
    with FakeAlpaca(cash=25_000.0) as fake:
        session, _ = _posted_fees_session(run_dir, tmp_path / "k.db", fake)
        fake.post_fees()
        paper_trade(session, through=str(session.market.dates[DAY + 2]))
        assert {k for *_, k in fake.requests} == {key}
        session.ledger.close()
    printed = "".join(capfd.readouterr())
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "paper_report.txt" for p in files) and any(p.name == "k.db" for p in files)
    for p in files:
        data = p.read_bytes()
        assert key.encode() not in data and secret.encode() not in data, p
    assert key not in printed and secret not in printed
