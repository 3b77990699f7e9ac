"""Probe mode's trade memory: per asset, the average cost of the units held and the last two closed trades.

After a losing trade (or two trades that sum to a loss) an asset is *probing*: it trades at probe size, its
position held to `min(probe_max_outlay, probe_notional * equity)`. A buy's outlay is capped at that size less the
value already held at the last close (`probe_cap`, `cap_probing_buys`: the one definition the transition,
evaluation, paper and live trading all use). The defaults follow the system ndjax replaces, which capped a probing
symbol's buy at min($300, 1 % of cash), a buy that opened from flat: `PROBE_FRACTION` of equity and
`PROBE_MAX_OUTLAY` in the account's currency. A book that rebalances every day buys in small increments, so a cap
on the day's buy alone would almost never bind; the cap on the position is the same rule for an entry from flat.
A sell closes a trade at its execution price; a forced sale in a margin call closes one at
`close * (1 - liquidation_slippage)`. Shapes: every field `(..., N)`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

PROBE_FRACTION = 0.01
"""Default probe cap relative to the equity after the night's interest (`E1`): 1 % (the replaced system's 1 % of
cash; equity, because a margin book's cash can be negative)."""
PROBE_MAX_OUTLAY = 300.0
"""Default absolute probe cap in the account's currency: $300, as in the replaced system. It binds once the equity
passes $30,000; in a simulation of unit starting equity (the training default) only the relative cap binds."""


@struct.dataclass
class ProbeState:
    """Per-asset trade memory `(..., N)`: average cost per unit held (fee included), the returns of the
    last two closed trades (`last` most recent) and how many trades have closed."""

    cost_basis: jax.Array
    last: jax.Array
    previous: jax.Array
    n_closed: jax.Array


def empty_memory(like: jax.Array) -> ProbeState:
    """No trades yet, shaped like `like (..., N)` (NumPy for a NumPy `like`)."""
    zeros = (jnp if isinstance(like, jax.Array) else np).zeros_like(like)
    return ProbeState(cost_basis=zeros, last=zeros, previous=zeros, n_closed=zeros)


def probing(memory: ProbeState) -> jax.Array:
    """`(..., N)` bool: the last closed trade lost, or the last two sum to <= 0."""
    return (((memory.n_closed >= 1) & (memory.last < 0))
            | ((memory.n_closed >= 2) & (memory.last + memory.previous <= 0)))


def parse_max_outlay(text: str) -> float | None:
    """A `--probe-max-outlay` flag's value: a positive amount, or "none" (no absolute cap)."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"--probe-max-outlay: expected a positive amount or 'none', got {text!r}")
    return value


def array_module(*xs: Any) -> Any:
    """`jnp` when any argument (or a leaf of one) is a JAX array or tracer, else `np` (host figures stay float64)."""
    return jnp if any(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(xs)) else np


def probe_cap(equity: Any, fraction: Any = PROBE_FRACTION, max_outlay: Any = PROBE_MAX_OUTLAY) -> Any:
    """The most a probing asset's buy may spend (fee included), `(...)`: `min(fraction * max(equity, 0),
    max_outlay)`; either cap may be None (not applied; both None: no cap, `inf`)."""
    xp = array_module(equity, fraction, max_outlay)
    cap = xp.full_like(xp.asarray(equity), xp.inf) if fraction is None else fraction * xp.maximum(equity, 0)
    return cap if max_outlay is None else xp.minimum(cap, max_outlay)


def cap_probing_buys(memory: ProbeState, outlay: Any, equity: Any, held_value: Any, fraction: Any = PROBE_FRACTION,
                     max_outlay: Any = PROBE_MAX_OUTLAY) -> tuple[Any, Any]:
    """Probe mode's rule: the buy `outlay (..., N)` of each probing asset capped at
    `max(probe_cap(equity (...)) - held_value (..., N), 0)`, `held_value` the value of the units held at the last
    close.
    Returns `(capped outlay, cut)`, `cut (..., N)` the outlay the cap removed (0 where it did not bind)."""
    xp = array_module(memory, outlay, equity, held_value, fraction, max_outlay)
    room = xp.maximum(probe_cap(equity, fraction, max_outlay)[..., None] - held_value, 0)
    capped = xp.where(probing(memory), xp.minimum(outlay, room), outlay)
    return capped, outlay - capped


def remember_trades(memory: ProbeState, held: jax.Array, bought: jax.Array, sold: jax.Array, buy_px: jax.Array,
                    sell_px: jax.Array, f: Any, held_after: jax.Array) -> ProbeState:
    """Sells close a trade at `sell_px (1 - f) / cost_basis - 1`; buys average into the cost basis.

    `held (..., N)` units before, `bought`/`sold` units executed at `buy_px`/`sell_px`, `held_after` units after.
    NumPy inputs stay NumPy (float64 bookkeeping on the host: the ledger, per-symbol attribution); any JAX array
    (or tracer) among them makes it JAX.
    """
    xp = array_module(memory, held, bought, sold, buy_px, sell_px, f, held_after)
    closing = sold > 0
    has_basis = memory.cost_basis > 0
    closed = xp.where(has_basis, sell_px * (1 - f) / xp.where(has_basis, memory.cost_basis, 1.0) - 1, 0.0)
    held_cost = xp.maximum(held - sold, 0) * memory.cost_basis + bought * buy_px * (1 + f)
    positive = held_after > 0
    basis = xp.where(positive, held_cost / xp.where(positive, held_after, 1.0), 0.0)
    return ProbeState(
        cost_basis=basis,
        last=xp.where(closing, closed, memory.last),
        previous=xp.where(closing, memory.last, memory.previous),
        n_closed=memory.n_closed + closing.astype(memory.n_closed.dtype),
    )


def remember_bar(memory: ProbeState, held: jax.Array, between: jax.Array, after: jax.Array, bought: jax.Array,
                 sold: jax.Array, buy_px: jax.Array, sell_px: jax.Array, forced: jax.Array, forced_px: jax.Array,
                 f: Any) -> tuple[ProbeState, ProbeState]:
    """One bar's trades in the transition's order: the limit orders (`bought`/`sold` units at their execution
    prices `buy_px`/`sell_px`) take `held` units to `between`, then the close's forced sale (`forced` units at
    `forced_px`) takes them to `after`; every argument `(..., N)` (`f` broadcasts).

    Returns the memory after the orders and the memory after the forced sale (a sale of each leg closes a trade:
    its `last`). NumPy stays NumPy, as in `remember_trades`.
    """
    after_orders = remember_trades(memory, held, bought, sold, buy_px, sell_px, f, between)
    none = (jnp if isinstance(forced, jax.Array) else np).zeros_like(forced)
    after_call = remember_trades(after_orders, between, none, forced, forced_px, forced_px, f, after)
    return after_orders, after_call


def binding(cut: Any) -> dict[str, float]:
    """How often the cap bound over a path, from `StepInfo.probe_cut (T, N)` (or `(T,)` per portfolio): the
    steps with any capped buy, the asset-steps capped, and the total outlay removed (before fills)."""
    cut = np.asarray(cut, np.float64)
    per_step = cut.reshape(cut.shape[0], -1) > 0
    return {"steps": int(per_step.any(axis=1).sum()), "asset_steps": int(per_step.sum()),
            "outlay_cut": float(cut.sum())}
