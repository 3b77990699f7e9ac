"""Out-of-sample paths of consecutive walk-forward folds chained into one path, so the statistics that count are
those of the chained daily returns, not a mean of per-fold figures.

Each fold's path starts at its own initial equity; chaining scales every money field and every quantity of
fold k by the chain's equity at the end of fold k-1 over fold k's initial equity (the book is carried over as
if re-invested, which leaves each day's return unchanged), and lays the per-asset fields out on the union of
the folds' symbols (0 where a fold did not trade a symbol).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ndjax.dynamics import StepInfo
from ndjax.errors import ConfigError

SCALED = ("equity", "prev_equity", "cash", "leverage_cost", "fees", "traded_notional", "forced_notional",
          "buy_order_qty", "sell_order_qty", "buy_qty", "sell_qty", "forced_qty", "inventory", "probe_cut")
"""`StepInfo` fields in units of money (or of units of an asset, which scale with the money)."""
PER_ASSET = ("buy_fill", "sell_fill", "buy_order_qty", "sell_order_qty", "buy_qty", "sell_qty", "forced_qty",
             "inventory", "probe_cut")


def chain_paths(pieces: Sequence[tuple[Sequence[str], StepInfo]]) -> tuple[tuple[str, ...], StepInfo]:
    """Chain `(symbols, path)` pieces (time on axis 0, per-asset fields `(T_k, N_k)`) into one path `(sum T_k, U)`
    over the union `U` of their symbols (sorted); returns `(union, path)` as NumPy float64."""
    if not pieces:
        raise ConfigError("chain_paths: no paths to chain")
    union = tuple(sorted({s for symbols, _ in pieces for s in symbols}))
    col = {s: i for i, s in enumerate(union)}
    parts: dict[str, list[np.ndarray]] = {f: [] for f in StepInfo.__dataclass_fields__
                                           if all(getattr(info, f) is not None for _, info in pieces)}
    level = None
    for symbols, info in pieces:
        first = float(np.asarray(info.prev_equity)[0])
        scale = 1.0 if level is None else (level / first if first > 0 else 0.0)
        for name in parts:
            x = np.asarray(getattr(info, name), np.float64)
            if name in SCALED:
                x = x * scale
            if name in PER_ASSET:
                wide = np.zeros((x.shape[0], len(union)))
                wide[:, [col[s] for s in symbols]] = x
                x = wide
            parts[name].append(x)
        level = float(parts["equity"][-1][-1])
    return union, StepInfo(**{name: np.concatenate(xs, axis=0) for name, xs in parts.items()})


def rows_per_year(dates: np.ndarray) -> float:
    """Rows per year of a chained path's dates `(T,)` (252 for XNYS sessions, 365 for every day, and between where
    folds without crypto precede folds with it), to annualise its statistics."""
    span = (dates[-1] - dates[0]).astype("timedelta64[D]").astype(np.float64) + 1.0
    return float(len(dates) * 365.25 / span)
