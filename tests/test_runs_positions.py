"""Positions files: CSV and JSON books, errors naming the file and row."""

from __future__ import annotations

import json

import pytest

from ndjax.runs.folder import RunError
from ndjax.runs.positions import read_positions


@pytest.mark.parametrize("body, needle", [
    ("symbol,quantity\nSTK0,10\nSTK1,abc\n", "row 2 (line 3): quantity 'abc' is not a number"),
    ("symbol,quantity\nSTK0,-1\n", "row 1 (line 2): quantity -1.0 is negative"),
    ("symbol,quantity\nNOPE,1\n", "row 1 (line 2): symbol 'NOPE' is not traded"),
    ("symbol,quantity\nSTK0,1\nSTK0,2\n", "row 2 (line 3): duplicate symbol 'STK0'"),
    ("sym,qty\nSTK0,1\n", "row 1 (header)"),
    ("symbol,quantity\nSTK0\n", "row 1 (line 2): expected 2 fields"),
])
def test_positions_errors_name_file_and_row(tmp_path, body, needle):
    path = tmp_path / "positions.csv"
    path.write_text(body)
    with pytest.raises(RunError) as e:
        read_positions(path, ["STK0", "STK1", "CRY0-USD"])
    assert str(path) in str(e.value) and needle in str(e.value)


def test_positions_formats(tmp_path):
    syms = ["STK0", "CRY0-USD"]
    p = tmp_path / "a.csv"
    p.write_text("quantity,symbol\n2.5,STK0\n,\n-100,cash\n")
    assert read_positions(p, syms) == ({"STK0": 2.5}, -100.0)
    j = tmp_path / "b.json"
    j.write_text(json.dumps({"cash": 10, "positions": [{"symbol": "CRY0-USD", "quantity": 0.1}]}))
    assert read_positions(j, syms) == ({"CRY0-USD": 0.1}, 10.0)
    j.write_text(json.dumps({"positions": {"STK0": 1}}))
    assert read_positions(j, syms) == ({"STK0": 1.0}, None)
    j.write_text(json.dumps({"positions": [{"symbol": "STK0"}]}))
    with pytest.raises(RunError, match=r"b\.json: positions entry 1"):
        read_positions(j, syms)
