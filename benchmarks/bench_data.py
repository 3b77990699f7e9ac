"""Benchmark `load_daily`: the real data folder and a generated 50-symbol x 6-year folder.

Usage: python benchmarks/bench_data.py [--data-dir ../shared/data/daily] [--repeats 5]
Prints figures only; nothing is asserted (target: under 2 s per load on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ndjax.data.calendar import xnys_sessions
from ndjax.data.loading import load_daily
from ndjax.data.market import MarketData

REPO = Path(__file__).resolve().parents[1]


def write_generated(folder: Path, n_stocks: int = 40, n_crypto: int = 10, years: int = 6, seed: int = 0) -> None:
    """Yahoo-format stock files (XNYS sessions) and Unix-ms crypto files (daily, CRLF, extra columns)."""
    rng = np.random.default_rng(seed)
    first, last = np.datetime64("2019-01-01"), np.datetime64(f"{2019 + years - 1}-12-31")
    all_days = np.arange(first, last + 1)
    sessions = xnys_sessions(first, last)
    sessions = sessions[(sessions >= first) & (sessions <= last)]

    def bars(n: int) -> dict[str, np.ndarray]:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        open_ = close * np.exp(rng.normal(0, 0.005, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
        return {"open": open_, "high": high, "low": low, "close": close, "volume": rng.integers(1_000, 1_000_000, n)}

    for i in range(n_stocks):
        listed = sessions[rng.integers(0, 300) if i % 4 == 0 else 0 :]
        b = bars(listed.size)
        df = pd.DataFrame({"Date": listed.astype(str), **{k: b[k] for k in ("close", "high", "low", "open", "volume")}})
        df.to_csv(folder / f"S{i:02d}.csv", index=False)
    for i in range(n_crypto):
        b = bars(all_days.size)
        ms = all_days.astype(np.int64) * 86_400_000
        df = pd.DataFrame({"open_time": ms, **b, "close_time": ms + 86_399_999, "trades": 7})
        df.to_csv(folder / f"C{i}-USD.csv", index=False, lineterminator="\r\n" if i % 2 else "\n")


def time_load(path: Path, repeats: int) -> tuple[MarketData, float, float]:
    """(market, first-call seconds, best of `repeats` seconds)."""
    t0 = time.perf_counter()
    m = load_daily(path)
    cold = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        m = load_daily(path)
        best = min(best, time.perf_counter() - t0)
    return m, cold, best


def report(name: str, m: MarketData, cold: float, best: float) -> None:
    """Print one benchmark's figures."""
    stocks, crypto = ~m.is_crypto, m.is_crypto
    frac = lambda cols: float(m.tradable[:, cols].mean()) if cols.any() else float("nan")  # noqa: E731
    print(f"[{name}] {m.n_assets} symbols ({int(stocks.sum())} stock, {int(crypto.sum())} crypto)")
    print(f"  dates {m.dates[0]} .. {m.dates[-1]}  T={m.n_days}  periods_per_year={m.periods_per_year}")
    print(f"  tradable fraction: stocks {frac(stocks):.3f}  crypto {frac(crypto):.3f}")
    print(f"  load+align: first call {cold:.3f} s, best of repeats {best:.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(REPO / "../shared/data/daily"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    data_dir = Path(args.data_dir)
    if data_dir.is_dir():
        report(f"real: {data_dir.resolve()}", *time_load(data_dir, args.repeats))
    else:
        print(f"[real] {data_dir} not found; skipped")
    with tempfile.TemporaryDirectory() as tmp:
        write_generated(Path(tmp))
        report("generated 50 symbols x 6 years", *time_load(Path(tmp), args.repeats))


if __name__ == "__main__":
    main()
