"""Equity plots for reports (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def plot_equity(path: str | Path, dates: Sequence[Any], curves: Mapping[str, np.ndarray], drawdown: np.ndarray,
                leverage: np.ndarray, margin_call: np.ndarray | None = None) -> None:
    """Three panels over `dates (T,)`: equity curves by name, the first curve's drawdown (fraction), its leverage
    with the days of a margin call marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(dates).astype("datetime64[D]").astype(object)
    fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(10, 8), sharex=True, height_ratios=[3, 1, 1])
    for name, eq in curves.items():
        a1.plot(x, eq, label=name)
    a1.set_ylabel("equity")
    a1.legend()
    a2.fill_between(x, -np.asarray(drawdown) * 100, 0, color="tab:red", alpha=0.4)
    a2.set_ylabel("drawdown %")
    a3.plot(x, leverage, color="tab:purple")
    if margin_call is not None and np.any(np.asarray(margin_call) > 0):
        called = np.asarray(margin_call) > 0
        a3.scatter(np.asarray(x)[called], np.asarray(leverage)[called], color="tab:red", marker="v", zorder=3,
                   label=f"margin call ({int(called.sum())})")
        a3.legend(loc="upper left")
    a3.set_ylabel("leverage")
    for a in (a1, a2, a3):
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
