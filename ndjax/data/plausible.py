"""The bound on a one-bar move, one definition for the CSV loader and the bar feeds: an open or close beyond
`max_move` times (or below one `max_move`-th of) the previous plausible close is not a real daily bar. NumPy only,
so the fetch script loads no JAX."""

from __future__ import annotations

import numpy as np

MAX_MOVE = 20.0
"""Default bound on a one-bar move: a bar whose open or close is more than this many times, or less than
one this-many-th of, the previous close is implausible (an error, or dropped with `repair=True`)."""


def implausible_moves(order: np.ndarray, o: np.ndarray, c: np.ndarray, max_move: float) -> list[tuple[int, int]]:
    """`(row, reference row)` for each row (in date `order`) whose open or close is beyond `max_move` times (or below
    one `max_move`-th of) the close of the last plausible row before it; a flagged row is not a reference. Wicks
    (high, low) are not bounded: limit orders fill at their limits, and real data holds flash-crash prints."""
    px = np.stack([o[order], c[order]])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = px[:, 1:] / c[order][:-1]
    if not np.any((ratio > max_move) | (ratio < 1 / max_move)):
        return []
    out, ref = [], None
    for i in order.tolist():
        if ref is not None:
            ratio = np.array([o[i], c[i]]) / c[ref]
            if np.any(ratio > max_move) or np.any(ratio < 1 / max_move):
                out.append((i, ref))
                continue
        ref = i
    return out


def move_problem(i: int, j: int, days: np.ndarray, o: np.ndarray, c: np.ndarray, max_move: float) -> str:
    """What is wrong with row `i` against its reference row `j` (an `implausible_moves` pair), for an error."""
    prices = {"open": o[i], "close": c[i]}
    name = max(prices, key=lambda k: max(prices[k] / c[j], c[j] / prices[k]))
    return (f"implausible one-bar move: {name} {prices[name]:g} against the previous close {c[j]:g} (data row "
            f"{j + 1}, {days[j]}), beyond x{max_move:g} or /{max_move:g} (max_move)")
