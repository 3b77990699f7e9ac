"""The paper-trading ledger: one SQLite file holding which model traded, what was ordered, what filled, the book
and how the account did, day by day.

Each daily cycle writes inside one transaction (`Ledger.cycle()`): a crash mid-cycle leaves the ledger at the
previous day, and a day already recorded is never written again. Opening a file that is not an SQLite database,
or one without this schema, or one kept for other symbols, another broker or another starting equity, raises
`LedgerError` saying so; so does a file another process holds locked, or one that cannot be written.

A ledger gets a short random id when it is created (`meta.ledger_id`); its orders' client ids start with
`ndjax-{ledger_id}-`, so two ledgers trading one account never read or cancel each other's orders.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ndjax.data.calendar import check_reaches, row_at_or_after, to_day
from ndjax.errors import ConfigError, NdjaxError
from ndjax.files import FileLocked, lock, unlock
from ndjax.paper.broker import OPEN_ORDERS, Book, Fill, Order, OrderStatus
from ndjax.paper.controls import still_halted
from ndjax.probe import ProbeState

FORMAT = "ndjax-ledger/2"
DEFAULT_EQUITY = 25_000.0
"""Starting equity of a new ledger when none is given."""
BUSY_TIMEOUT = 5.0
"""Seconds a cycle waits for another process's lock on the file before giving up with a `LedgerError`."""
SCHEMA = {
    "meta": "key TEXT PRIMARY KEY, value TEXT NOT NULL",
    "models": ("id INTEGER PRIMARY KEY, date TEXT NOT NULL, run TEXT NOT NULL, checkpoint_step INTEGER NOT NULL, "
               "content_hash TEXT NOT NULL, promoted_at TEXT, decision TEXT NOT NULL, champion_score REAL, "
               "challenger_score REAL"),
    "account_days": ("date TEXT PRIMARY KEY, equity REAL NOT NULL, cash REAL NOT NULL, gross REAL NOT NULL, "
                     "leverage_cost REAL NOT NULL, fees REAL NOT NULL, fees_estimated INTEGER NOT NULL, "
                     "margin_call INTEGER NOT NULL, forced_notional REAL NOT NULL, "
                     "model INTEGER REFERENCES models(id), "
                     "ramp REAL NOT NULL, halted INTEGER NOT NULL"),
    "orders": ("client_id TEXT PRIMARY KEY, date TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, "
               "limit_price REAL NOT NULL, quantity REAL NOT NULL, notional REAL NOT NULL, asset_class TEXT NOT NULL, "
               "status TEXT NOT NULL, broker_id TEXT, filled_qty REAL NOT NULL, filled_price REAL NOT NULL"),
    "fills": ("id INTEGER PRIMARY KEY, date TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, "
              "quantity REAL NOT NULL, price REAL NOT NULL, fee REAL NOT NULL, kind TEXT NOT NULL, client_id TEXT"),
    "positions": ("date TEXT NOT NULL, symbol TEXT NOT NULL, quantity REAL NOT NULL, cost_basis REAL NOT NULL, "
                  "PRIMARY KEY (date, symbol)"),
    "closed_trades": "id INTEGER PRIMARY KEY, date TEXT NOT NULL, symbol TEXT NOT NULL, return REAL NOT NULL",
    "events": "id INTEGER PRIMARY KEY, date TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL",
}


class LedgerError(NdjaxError):
    """A ledger file that is corrupt, foreign, locked, read-only or kept for another account; the message names
    the file."""


@dataclass(frozen=True)
class LedgerIdentity:
    """What a ledger is kept for: the symbols (in order), their asset classes, the broker and the starting equity
    (None: the stored one, or `DEFAULT_EQUITY` for a new ledger)."""

    symbols: tuple[str, ...]
    is_crypto: tuple[bool, ...]
    broker: str
    initial_equity: float | None = None

    def __post_init__(self) -> None:
        e = self.initial_equity
        if e is not None and not (np.isfinite(e) and e > 0):
            raise LedgerError(f"--equity: a ledger's starting equity must be a positive amount, got {e:g}")

    def as_meta(self) -> dict[str, str]:
        equity = DEFAULT_EQUITY if self.initial_equity is None else self.initial_equity
        return {"format": FORMAT, "symbols": json.dumps(list(self.symbols)),
                "is_crypto": json.dumps([bool(x) for x in self.is_crypto]), "broker": self.broker,
                "initial_equity": repr(float(equity)), "ledger_id": secrets.token_hex(3)}


def _stored(meta: dict[str, str]) -> LedgerIdentity:
    return LedgerIdentity(tuple(json.loads(meta["symbols"])), tuple(json.loads(meta["is_crypto"])), meta["broker"],
                          float(meta["initial_equity"]))


class Ledger:
    """An open ledger file. Reads work anywhere; writes belong inside `with ledger.cycle():`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, identity: LedgerIdentity, ledger_id: str):
        self.path, self.conn, self.identity, self.ledger_id = path, conn, identity, ledger_id

    @classmethod
    def open(cls, path: str | Path, identity: LedgerIdentity, *, new: bool | None = None) -> Ledger:
        """Open `path`, creating it for `identity` if it does not exist or is empty (0 bytes); `new` True: it must be
        such a file (or a ledger with no day yet), False: it must be a ledger already, None: either;
        an existing ledger must match it (a starting equity of None matches any; a ledger with no day recorded yet
        takes the one given). The file stays locked against other processes until `close()`; one another process
        holds, or one that is corrupt, raises `LedgerError` naming it."""
        path = Path(path)
        fresh = not path.exists() or path.stat().st_size == 0
        if fresh and new is False:
            raise LedgerError(f"{path}: {'no such ledger' if not path.exists() else 'an empty (0-byte) file'}; pass "
                              "--new to start a ledger there")
        try:
            lock(path)
        except FileLocked as e:
            raise LedgerError(f"{path}: {e} (another paper.py on this ledger?); wait for it to finish, or stop it"
                              ) from None
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT)
            conn.execute("PRAGMA foreign_keys = ON")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            damage = [] if fresh else [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
        except sqlite3.OperationalError as e:
            unlock(path)
            raise _error(path, e) from None
        except sqlite3.DatabaseError as e:
            unlock(path)
            raise LedgerError(f"{path}: not an SQLite database, or a corrupt one ({e}); restore it from a backup or "
                              "use another ledger file") from None
        ledger = cls(path, conn, identity, "")
        try:
            if damage != ["ok"] and not fresh:
                raise LedgerError(f"{path}: corrupt ledger ({'; '.join(damage)}); restore it from a backup or use "
                                  "another ledger file")
            ledger._check(None if fresh else tables, identity)
            if new and ledger.last_date() is not None:
                raise LedgerError(f"{path}: --new, but this ledger holds days {ledger.days()[0]['date']} .. "
                                  f"{ledger.last_date()}; leave --new out to continue it, or use another file")
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _check(self, tables: set[str] | None, identity: LedgerIdentity) -> None:
        """Create the schema for `identity` (a new file, `tables` None or empty), or check the stored ledger
        against it; then read what is stored."""
        if not tables:
            with self._transaction():
                for name, columns in SCHEMA.items():
                    self._sql(f"CREATE TABLE {name} ({columns})")
                for item in identity.as_meta().items():
                    self._sql("INSERT INTO meta VALUES (?, ?)", item)
            self._reload()
            return
        missing = sorted(set(SCHEMA) - tables)
        if missing:
            raise LedgerError(f"{self.path}: not an ndjax ledger (missing tables {missing}; found {sorted(tables)})")
        meta = dict(self._sql("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT:
            raise LedgerError(f"{self.path}: ledger format {meta.get('format')!r}, expected {FORMAT!r}")
        stored = _stored(meta)
        for name in ("symbols", "is_crypto", "broker", "initial_equity"):
            want = getattr(identity, name)
            if want is None or getattr(stored, name) == want:
                continue
            if name == "initial_equity" and self.last_date() is None:  # nothing traded yet: take the new one
                with self._transaction():
                    self._sql("UPDATE meta SET value = ? WHERE key = 'initial_equity'", (repr(float(want)),))
                continue
            raise LedgerError(f"{self.path}: kept for {name} {getattr(stored, name)!r}, not {want!r}; use another "
                              "ledger file" + (" (or leave the equity out)" if name == "initial_equity" else ""))
        self._reload()

    def _reload(self) -> None:
        meta = dict(self._sql("SELECT key, value FROM meta").fetchall())
        self.identity, self.ledger_id = _stored(meta), meta["ledger_id"]

    @property
    def client_prefix(self) -> str:
        """The start of every client order id this ledger places: `ndjax-{ledger_id}-`."""
        return f"ndjax-{self.ledger_id}-"

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            unlock(self.path)

    def _sql(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        """`conn.execute`, with a locked, read-only or corrupt file reported as a `LedgerError` naming it."""
        try:
            return self.conn.execute(sql, args)
        except sqlite3.OperationalError as e:
            raise _error(self.path, e) from None
        except sqlite3.IntegrityError as e:
            raise LedgerError(f"{self.path}: {e}: the ledger was written by something else meanwhile") from None
        except sqlite3.DatabaseError as e:
            raise LedgerError(f"{self.path}: corrupt ledger ({e}); restore it from a backup") from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._sql("BEGIN IMMEDIATE")
        try:
            yield
            self._sql("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    @contextmanager
    def cycle(self) -> Iterator[Ledger]:
        """One day's writes as one transaction: committed together or not at all."""
        identity = self.identity
        try:
            with self._transaction():
                yield self
        except BaseException:
            self.identity = identity  # an adopted starting equity was rolled back too
            raise

    # ------------------------------------------------------------------------------------------ reads

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self._sql(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def last_date(self) -> str | None:
        return self._sql("SELECT MAX(date) FROM account_days").fetchone()[0]

    def has_day(self, date: str) -> bool:
        return self._sql("SELECT 1 FROM account_days WHERE date = ?", (date,)).fetchone() is not None

    def halted(self) -> bool:
        """Whether new buys are halted: the last day recorded a halt and no resume came after it."""
        last = self.last_date()
        if last is None:
            return False
        day_halted = self._sql("SELECT halted FROM account_days WHERE date = ?", (last,)).fetchone()[0]
        return still_halted(day_halted, last, [e["date"] for e in self.events("resume")])

    def check_replay(self, dates: np.ndarray, start: Any = None, through: Any = None) -> None:
        """Refuse, naming the dates, a replay over market `dates (T,)` that would not do what is asked: `start`
        after `through`, or a `start` on a ledger that already began another day."""
        if start is not None and through is not None and to_day(start, "--start") > to_day(through, "--through"):
            raise LedgerError(f"{self.path}: --start {start} is after --through {through}")
        days = self.days()
        if start is None or not days:
            return
        row = row_at_or_after(dates, start)
        asked = str(dates[row]) if row < len(dates) else f"{to_day(start)} (past the data)"
        if asked != days[0]["date"]:
            raise LedgerError(f"{self.path}: started on {days[0]['date']} (recorded through {days[-1]['date']}), so "
                              f"--start {start} (the bar of {asked}) cannot apply; leave --start out to continue it, "
                              "or use another ledger file")

    def check_progress(self, dates: np.ndarray, any_crypto: bool, through: Any, recorded: int) -> None:
        """After a replay over market `dates (T,)`: refuse, naming the dates, one that could not reach `through`
        (the data stops before it) or, without `through`, one that found no new row to record."""
        last = self.last_date()
        if through is not None:
            want = to_day(through, "--through")
            try:
                check_reaches(dates, any_crypto, want, "--through")
            except ConfigError:
                raise LedgerError(f"{self.path}: --through {want}, but the data ends on {dates[-1]} (recorded "
                                  f"{recorded} day(s); the ledger is at {last}); newer data is needed") from None
        elif recorded == 0:
            raise LedgerError(f"{self.path}: no new rows: the ledger is at {last} and the data ends on {dates[-1]}; "
                              "nothing was recorded")

    def days(self) -> list[dict[str, Any]]:
        """Every recorded day, oldest first (the `account_days` columns)."""
        return self._rows("SELECT * FROM account_days ORDER BY date")

    def book(self, date: str) -> Book:
        cash = self._sql("SELECT cash FROM account_days WHERE date = ?", (date,)).fetchone()
        if cash is None:
            raise LedgerError(f"{self.path}: no account day {date}")
        held = {r["symbol"]: r["quantity"] for r in self._rows("SELECT symbol, quantity FROM positions WHERE date = ?",
                                                                (date,))}
        return Book(cash=float(cash[0]), positions=held)

    def cost_basis(self, date: str) -> dict[str, float]:
        return {r["symbol"]: r["cost_basis"] for r in self._rows(
            "SELECT symbol, cost_basis FROM positions WHERE date = ?", (date,))}

    def orders(self, date: str | None = None, open_only: bool = False) -> list[Order]:
        where, args = [], []
        if date is not None:
            where.append("date = ?")
            args.append(date)
        if open_only:
            where.append(OPEN_ORDERS)
        sql = "SELECT * FROM orders" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY client_id"
        return [Order(r["client_id"], r["date"], r["symbol"], r["side"], r["limit_price"], r["quantity"],
                      r["asset_class"]) for r in self._rows(sql, args)]

    def order_filled(self, client_id: str) -> tuple[float, float]:
        """Units of an order filled so far as last read from the broker, and their average price (0, 0 if none)."""
        row = self._sql("SELECT filled_qty, filled_price FROM orders WHERE client_id = ?", (client_id,)).fetchone()
        return (float(row[0]), float(row[1])) if row else (0.0, 0.0)

    def order_rows(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM orders ORDER BY date, client_id")

    def fills(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM fills ORDER BY id")

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if kind is None:
            return self._rows("SELECT * FROM events ORDER BY id")
        return self._rows("SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,))

    def models(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM models ORDER BY id")

    def champion(self) -> dict[str, Any] | None:
        """The model trading now: the last one promoted."""
        rows = self._rows("SELECT * FROM models WHERE decision = 'promoted' ORDER BY id DESC LIMIT 1")
        return rows[0] if rows else None

    def memory(self, date: str) -> ProbeState:
        """Probe mode's trade memory per symbol (the identity's order), from the positions and closed trades."""
        n = len(self.identity.symbols)
        basis, last, previous, count = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        held = self.cost_basis(date)
        for i, s in enumerate(self.identity.symbols):
            basis[i] = held.get(s, 0.0)
            trades = [r["return"] for r in self._rows(
                "SELECT return FROM closed_trades WHERE symbol = ? AND date <= ? ORDER BY id DESC LIMIT 2", (s, date))]
            count[i] = self._sql("SELECT COUNT(*) FROM closed_trades WHERE symbol = ? AND date <= ?",
                                         (s, date)).fetchone()[0]
            last[i] = trades[0] if trades else 0.0
            previous[i] = trades[1] if len(trades) > 1 else 0.0
        return ProbeState(cost_basis=basis, last=last, previous=previous, n_closed=count)

    # ----------------------------------------------------------------------------------------- writes

    def record_day(self, date: str, *, equity: float, cash: float, gross: float, leverage_cost: float, fees: float,
                   fees_estimated: bool, margin_call: bool, forced_notional: float, model: int | None, ramp: float,
                   halted: bool) -> None:
        """The account at `date`'s close; `fees_estimated`: the fees come from the broker's schedule, not its
        statements."""
        self._sql("INSERT INTO account_days VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                  (date, equity, cash, gross, leverage_cost, fees, int(fees_estimated), int(margin_call),
                   forced_notional, model, ramp, int(halted)))

    def adopt_equity(self, date: str, cash: float, detail: str) -> None:
        """Make the broker's `cash` the starting equity (before the first day is recorded), noting why."""
        if self.last_date() is not None:
            raise LedgerError(f"{self.path}: trading since {self.days()[0]['date']}; its starting equity stays")
        self._sql("UPDATE meta SET value = ? WHERE key = 'initial_equity'", (repr(float(cash)),))
        self.identity = replace(self.identity, initial_equity=float(cash))
        self.record_event(date, "adopt", detail)

    def record_positions(self, date: str, held: dict[str, tuple[float, float]]) -> None:
        """Units and average cost (fees included) per symbol held at `date`'s close."""
        for s, (q, basis) in sorted(held.items()):
            if q > 0:
                self._sql("INSERT INTO positions VALUES (?,?,?,?)", (date, s, q, basis))

    def record_order(self, order: Order, status: OrderStatus) -> None:
        self._sql("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                          (order.client_id, order.date, order.symbol, order.side, order.limit_price, order.quantity,
                           order.notional, order.asset_class, status.status, status.broker_id, status.filled_qty,
                           status.filled_price))

    def update_order(self, status: OrderStatus) -> None:
        self._sql("UPDATE orders SET status = ?, broker_id = ?, filled_qty = ?, filled_price = ? "
                          "WHERE client_id = ?", (status.status, status.broker_id, status.filled_qty,
                                                  status.filled_price, status.client_id))

    def record_fill(self, fill: Fill) -> None:
        self._sql("INSERT INTO fills (date, symbol, side, quantity, price, fee, kind, client_id) "
                          "VALUES (?,?,?,?,?,?,?,?)", (fill.date, fill.symbol, fill.side, fill.quantity, fill.price,
                                                       fill.fee, fill.kind, fill.client_id))

    def record_closed_trade(self, date: str, symbol: str, trade_return: float) -> None:
        self._sql("INSERT INTO closed_trades (date, symbol, return) VALUES (?,?,?)",
                          (date, symbol, trade_return))

    def record_event(self, date: str, kind: str, detail: str) -> None:
        self._sql("INSERT INTO events (date, kind, detail) VALUES (?,?,?)", (date, kind, detail))

    def record_model(self, date: str, run: str, step: int, content_hash: str, decision: str,
                     champion_score: float | None = None, challenger_score: float | None = None) -> int:
        """A model decision ("promoted" or "rejected"); returns its id."""
        cur = self._sql(
            "INSERT INTO models (date, run, checkpoint_step, content_hash, promoted_at, decision, champion_score, "
            "challenger_score) VALUES (?,?,?,?,?,?,?,?)",
            (date, run, step, content_hash, date if decision == "promoted" else None, decision, champion_score,
             challenger_score))
        return int(cur.lastrowid)


def _error(path: Path, e: sqlite3.OperationalError) -> LedgerError:
    hint = ("another process holds it (wait for it, or stop it)" if "locked" in str(e) or "busy" in str(e)
            else "check that the file and its folder can be written" if "readonly" in str(e) or "read-only" in str(e)
            else "the file could not be read or written")
    return LedgerError(f"{path}: {e}: {hint}")
