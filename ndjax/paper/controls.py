"""Risk controls around the daily cycle: a ramp-up that trades a growing fraction of equity, and a kill switch
that stops new buys past a drawdown until a person resumes.

Ramp-up: on the first day the account trades as if its equity were `1 / ramp_days` of what it is; each day
whose drawdown stays under `ramp_drawdown` adds another `1 / ramp_days`, up to the whole equity; a day at or past
it holds the fraction where it is. "Trading as if the equity were r E" means the pool that backs new buys is
`max(r E - IM, 0)` instead of `max(E - IM, 0)`: positions already held count in full against it.

Kill switch: when the drawdown from the peak equity (since the last resume) reaches `halt_drawdown`, the account
stops buying (it may still sell) until `resume` is recorded. `halt_drawdown = 1` never halts.

Probe mode (the rule is `ndjax.probe.cap_probing_buys`, applied when the orders are sized): a day whose cap bound is
recorded as a "probe" event (`probe_note`), which the report counts (`probe_cuts`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ndjax.dynamics import excess_pool
from ndjax.errors import ConfigError

DEFAULT_RAMP_DAYS = 20
"""Days from the first trade to full size, when the flag is not given: about a trading month."""


@dataclass(frozen=True)
class Controls:
    """`ramp_days` (0: full size from day one), the drawdown under which the ramp grows, the halt drawdown."""

    ramp_days: int = DEFAULT_RAMP_DAYS
    ramp_drawdown: float = 0.05
    halt_drawdown: float = 1.0

    def __post_init__(self) -> None:
        if self.ramp_days < 0:
            raise ConfigError(f"Controls.ramp_days: must be >= 0, got {self.ramp_days}")
        if not 0 < self.ramp_drawdown <= 1:
            raise ConfigError(f"Controls.ramp_drawdown: must be in (0, 1], got {self.ramp_drawdown}")
        if not 0 < self.halt_drawdown <= 1:
            raise ConfigError(f"Controls.halt_drawdown: must be in (0, 1] (1 = never halt), got {self.halt_drawdown}")


def drawdown(equity: Sequence[float]) -> float:
    """Drop of the last value from the running peak of `equity` (a fraction; 0 for an empty or rising curve)."""
    if not equity:
        return 0.0
    peak = max(equity)
    return 0.0 if peak <= 0 else max(0.0, 1.0 - equity[-1] / peak)


def next_ramp(previous: float | None, dd: float, controls: Controls) -> float:
    """Tomorrow's fraction of equity traded, from today's (None before the first day) and today's drawdown."""
    if controls.ramp_days == 0:
        return 1.0
    step = 1.0 / controls.ramp_days
    if previous is None:
        return step
    return min(1.0, previous + step) if dd < controls.ramp_drawdown else previous


def halts(dd: float, controls: Controls) -> bool:
    """Whether a drawdown of `dd` trips the kill switch."""
    return controls.halt_drawdown < 1.0 and dd >= controls.halt_drawdown


def still_halted(day_halted: bool, day: str, resumes: Sequence[str]) -> bool:
    """Whether new buys are halted after a recorded `day` whose row says `day_halted`: a resume recorded on that day
    (`resumes`, the dates of the ledger's resume events) lifts the halt."""
    return bool(day_halted) and day not in resumes


def buy_scale(ramp: float, equity: float, requirement: float) -> float:
    """The share of the full pool `max(E - IM, 0)` that an account trading `ramp` of its equity may spend:
    `max(ramp E - IM, 0) / max(E - IM, 0)` (1 when the full pool is empty)."""
    full = float(excess_pool(equity, requirement))
    if full <= 0:
        return 1.0
    return min(float(excess_pool(ramp * equity, requirement)) / full, 1.0)


def probe_note(symbols: Sequence[str], cut: np.ndarray) -> str:
    """A "probe" event's text: each symbol whose buy the probe cap cut `(N,)` and by how much outlay."""
    return "probe cap bound: " + "; ".join(f"{symbols[j]} buy outlay cut by {cut[j]:.2f}"
                                           for j in np.flatnonzero(cut > 0))


def probe_cuts(details: Sequence[str]) -> list[tuple[str, float]]:
    """`(symbol, outlay cut)` of every capped buy in "probe" events' texts (`probe_note`)."""
    return [(m[1], float(m[2])) for d in details for m in re.finditer(r"(\S+) buy outlay cut by ([0-9.]+)", d)]
