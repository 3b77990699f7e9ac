"""The walk-forward design without its network: the untrained head's book under the book vol cap, per fold.

    python experiments/cap_structure.py                                  # ../shared/data/long, tests 2005 .. end
    python experiments/cap_structure.py --caps 0.1,0.15,0.2 --data-dir ../shared/data/daily --first-test 2022

At initialisation the walk-forward policy (`PolicyConfig.w_per_asset`, head kernel 0) holds `1 / (N + 1)` of
equity in each of its N assets; the book vol cap (`targets.book_vol_capped`) then scales the book down to
`sum_i w_i sigma_i <= cap`, and the 25 % band holds it (`classical.run_targets`, the transition, limits at the
previous close). This runs that book in the walk-forward's folds (each fold flat at its test start, over the
symbols listed before it, chained) for each cap, beside buy and hold, so the network's contribution can be read
off against it. "nested" picks, in each fold, the cap with the best Sortino of the same book over every bar before
the fold's test (no test bar is looked at). Each fold starts flat at the close of its first test day, as the
walk-forward's `runs.evaluate.held_out` does, so buy and hold here equals the walk-forward's.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.baselines import run_baselines
from ndjax.classical import annual_vol, run_targets
from ndjax.data.loading import listed_symbols
from ndjax.data.source import MarketSource
from ndjax.metrics import summary
from ndjax.runs.chain import chain_paths, rows_per_year
from ndjax.runs.folds import make_folds, yearly_tests
from ndjax.targets import book_vol_capped
from ndjax.train.config import HParams, market_params


def capped_books(n_assets: int, vol: np.ndarray, caps: list[float]) -> dict[str, np.ndarray]:
    """Target weights `(T, N)` of the untrained head's book under each cap (0 before an asset's first bar)."""
    known = np.isfinite(vol)
    weight = np.where(known, 1.0 / (n_assets + 1), 0.0)
    sigma = np.where(known, vol, 0.0)
    return {f"{c:g}": np.asarray(book_vol_capped(weight, sigma, c), np.float32) for c in caps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data/long")
    p.add_argument("--first-test", type=int, default=2005)
    p.add_argument("--val-days", type=int, default=180)
    p.add_argument("--caps", default="0.1,0.15,0.2", help="comma list of book vol caps")
    args = p.parse_args()
    caps = [float(c) for c in args.caps.split(",")]
    dates = MarketSource(data_dir=args.data_dir).load().dates
    folds = make_folds(dates, yearly_tests(dates, args.first_test, args.val_days), args.val_days)
    names = [f"{c:g}" for c in caps]
    pieces: dict[str, list] = {k: [] for k in ["buy_and_hold", *names, "nested"]}
    tested = []
    for fold in folds:
        symbols = tuple(listed_symbols(args.data_dir, fold.val_end))
        market = MarketSource(data_dir=args.data_dir, symbols=symbols, end=fold.test_end).load()
        books = capped_books(market.n_assets, annual_vol(market), caps)
        start = int(np.searchsorted(market.dates, np.datetime64(fold.test_start)))  # flat at its close, as held_out
        first = int(np.argmax(market.tradable.any(axis=1)))
        mp = market_params(HParams(), jnp.asarray(market.is_crypto), "hard")
        cash, bars = jnp.asarray(1.0, jnp.float32), market.bars()
        rows = lambda lo, hi: jax.tree_util.tree_map(lambda x: x[lo:hi], bars)  # noqa: E731
        before = run_targets(mp, rows(first, start), {k: w[first:start] for k, w in books.items()}, cash)
        scores = {k: float(summary(v, rows_per_year(market.dates[first + 1:start])).sortino)
                  for k, v in before.items()}
        test = run_targets(mp, rows(start, None), {k: w[start:] for k, w in books.items()}, cash)
        for k in names:
            pieces[k].append((symbols, test[k]))
        best = max(names, key=lambda k: scores[k])
        pieces["nested"].append((symbols, test[best]))
        pieces["buy_and_hold"].append((symbols, run_baselines(mp, rows(start, None), cash)["buy_and_hold"]))
        tested.append(market.dates[start + 1:])
        print(f"{fold.name}: Sortino before the test " + ", ".join(f"cap {k} {v:.3f}" for k, v in scores.items())
              + f"; nested picks {best}", flush=True)
    per_year = rows_per_year(np.concatenate(tested))
    print(f"\n{'chained':<14}{'return':>9}{'Sortino':>9}{'MaxDD':>8}{'gross':>7}")
    for k, ps in pieces.items():
        s = summary(chain_paths(ps)[1], per_year)
        label = k if k in ("buy_and_hold", "nested") else f"cap {k}"
        print(f"{label:<14}{float(s.total_return):>8.1%}{float(s.sortino):>9.3f}{float(s.max_drawdown):>8.1%}"
              f"{float(s.mean_leverage):>6.2f}x")


if __name__ == "__main__":
    main()
