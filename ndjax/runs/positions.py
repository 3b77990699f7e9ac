"""Reading a book from a positions file: quantities by symbol and an optional cash balance."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ndjax.runs.folder import RunError


def read_positions(path: str | Path, symbols: Sequence[str]) -> tuple[dict[str, float], float | None]:
    """Read a positions file: `(quantities by symbol, cash or None)`.

    CSV: a header `symbol,quantity` and one row per holding; the row whose symbol is `CASH`
    (any case) gives the cash balance (negative = margin debt). JSON: either
    `{"cash": 1234.5, "positions": {"AAPL": 10, ...}}` or `{"cash": ..., "positions":
    [{"symbol": "AAPL", "quantity": 10}, ...]}`. Quantities must be finite and >= 0 (long only);
    symbols must belong to the run. Errors raise `RunError` naming the file and row.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: positions file not found")
    known = set(symbols)
    quantities: dict[str, float] = {}
    cash: float | None = None

    def number(text: Any, where: str, what: str) -> float:
        try:
            x = float(text)
        except (TypeError, ValueError):
            raise RunError(f"{path}: {where}: {what} {text!r} is not a number") from None
        if not np.isfinite(x):
            raise RunError(f"{path}: {where}: {what} {text!r} is not finite")
        return x

    def add(symbol: Any, qty: Any, where: str) -> None:
        nonlocal cash
        sym = str(symbol or "").strip()
        if not sym:
            raise RunError(f"{path}: {where}: empty symbol")
        if sym.upper() == "CASH":
            if cash is not None:
                raise RunError(f"{path}: {where}: cash given twice")
            cash = number(qty, where, "cash")
            return
        if sym not in known:
            raise RunError(f"{path}: {where}: symbol {sym!r} is not traded by this run (symbols: {sorted(known)})")
        if sym in quantities:
            raise RunError(f"{path}: {where}: duplicate symbol {sym!r}")
        x = number(qty, where, "quantity")
        if x < 0:
            raise RunError(f"{path}: {where}: quantity {x} is negative (the book is long only)")
        quantities[sym] = x

    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise RunError(f"{path}: invalid JSON ({e})") from None
        if not isinstance(doc, dict):
            raise RunError(f"{path}: expected an object with 'cash' and 'positions'")
        if doc.get("cash") is not None:
            add("CASH", doc["cash"], "key 'cash'")
        pos = doc.get("positions", {})
        if isinstance(pos, dict):
            for sym, qty in pos.items():
                add(sym, qty, f"position {sym!r}")
        elif isinstance(pos, list):
            for i, item in enumerate(pos, 1):
                if not isinstance(item, dict) or "symbol" not in item or "quantity" not in item:
                    raise RunError(f"{path}: positions entry {i}: expected {{'symbol': ..., 'quantity': ...}}")
                add(item["symbol"], item["quantity"], f"positions entry {i}")
        else:
            raise RunError(f"{path}: 'positions' must be an object or a list")
        return quantities, cash

    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise RunError(f"{path}: empty file; expected a header 'symbol,quantity'")
        cols = [h.strip().lower() for h in header]
        if "symbol" not in cols or "quantity" not in cols:
            raise RunError(f"{path}: row 1 (header): expected columns 'symbol' and 'quantity', got {header}")
        i_sym, i_qty = cols.index("symbol"), cols.index("quantity")
        for n, row in enumerate(reader, 1):
            if not row or all(not c.strip() for c in row):
                continue
            where = f"row {n} (line {reader.line_num})"
            if len(row) <= max(i_sym, i_qty):
                raise RunError(f"{path}: {where}: expected {len(cols)} fields, got {len(row)}: {row}")
            add(row[i_sym], row[i_qty].strip(), where)
    return quantities, cash
