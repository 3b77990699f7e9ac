"""Rule-based demo: buy 1 % under the previous close, sell 1 % over, on a seeded random-walk book.

4 stocks (weekdays only) and 2 crypto (every day), 250 calendar days, one shared-cash account,
hard fills; prints the SPEC report.

    python experiments/simulate_demo.py [--seed 0] [--days 250] [--no-rows]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState, init_state
from ndjax.loss import periods_per_year
from ndjax.sim import format_report, rollout


def random_walk_book(seed: int, n_days: int, n_stocks: int = 4, n_crypto: int = 2):
    """Dates `(T,)` and a `Bar` sequence `(T, N)` of a geometric random walk with OHLC ranges."""
    rng = np.random.default_rng(seed)
    n = n_stocks + n_crypto
    dates = np.arange(np.datetime64("2025-01-01"), np.datetime64("2025-01-01") + n_days)
    weekday = (dates.astype("datetime64[D]").view("int64") - 4) % 7  # 0 = Monday
    tradable = np.ones((n_days, n), np.float32)
    tradable[:, :n_stocks] = (weekday < 5)[:, None]
    vol = np.r_[np.full(n_stocks, 0.02), np.full(n_crypto, 0.035)]
    steps = rng.normal(0.0003, vol, (n_days, n)) * tradable
    close = 100.0 * np.exp(np.cumsum(steps, axis=0))
    opens = np.vstack([close[:1], close[:-1]])
    span = np.abs(rng.normal(0, vol, (n_days, n))) * tradable
    high = np.maximum(opens, close) * (1 + span)
    low = np.minimum(opens, close) * (1 - span)
    bars = Bar(
        high=jnp.asarray(high, jnp.float32),
        low=jnp.asarray(low, jnp.float32),
        close=jnp.asarray(close, jnp.float32),
        tradable=jnp.asarray(tradable),
        days_elapsed=jnp.ones(n_days, jnp.float32),
    )
    is_crypto = np.r_[np.zeros(n_stocks, bool), np.ones(n_crypto, bool)]
    return dates, bars, is_crypto


def band_policy(offset: float, _obs: jax.Array, state: PortfolioState) -> Action:
    """Buy `offset` under the previous close with a fair share of the room, sell half `offset` over."""
    ref = state.mark
    return Action(
        buy_price=ref * (1 - offset),
        sell_price=ref * (1 + offset),
        buy_frac=jnp.full_like(ref, 0.25),
        sell_frac=jnp.full_like(ref, 0.5),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--cash", type=float, default=10_000.0)
    parser.add_argument("--offset", type=float, default=0.01)
    parser.add_argument("--no-rows", action="store_true", help="print only the summary block")
    args = parser.parse_args()

    t0 = time.perf_counter()
    dates, bars, is_crypto = random_walk_book(args.seed, args.days + 1)
    params = MarketParams(is_crypto=jnp.asarray(is_crypto))
    state0 = init_state(args.cash, bars.close[0])
    run = jax.jit(lambda p, s, b: rollout(p, band_policy, args.offset, s, jnp.zeros(b.close.shape[0]), b))
    _, (_, infos) = run(params, state0, bars)
    report = format_report(dates[1:], infos, periods_per_year(is_crypto), rows=not args.no_rows)
    print(report)
    print(f"\n(wall time {time.perf_counter() - t0:.2f} s, including compilation)")


if __name__ == "__main__":
    main()
