"""Rule-based demo: buy 1 % under the previous close, sell 1 % over, on a seeded random-walk book.

The book is `ndjax.synthetic.synthetic_market` with no planted signal (a GARCH random walk): 4 stocks
on the NYSE calendar and 2 crypto every day, 250 calendar days, one shared-cash account, hard fills;
prints the report.

    python experiments/simulate_demo.py [--seed 0] [--days 250] [--no-rows]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from ndjax.data.calendar import periods_per_year
from ndjax.data.synthetic import synthetic_market
from ndjax.dynamics import Action, MarketParams, init_state
from ndjax.observation import Observation
from ndjax.report.tables import format_report
from ndjax.sim import rollout


def band_policy(offset: float, obs: Observation) -> Action:
    """Buy `offset` under the previous close with a quarter of the excess equity; sell half the holding `offset`
    over it."""
    ref = obs.mark
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
    market = synthetic_market(args.seed, n_stocks=4, n_crypto=2, n_days=args.days + 1, signal_strength=0.0)
    dates, bars, is_crypto = market.dates, market.bars(), market.is_crypto
    params = MarketParams(is_crypto=jnp.asarray(is_crypto))
    state0 = init_state(args.cash, bars.close[0])
    run = jax.jit(lambda p, s, b: rollout(p, band_policy, args.offset, s, jnp.zeros(b.close.shape[0]), b))
    _, (_, infos) = run(params, state0, bars)
    report = format_report(dates[1:], infos, periods_per_year(is_crypto), rows=not args.no_rows)
    print(report)
    print(f"\n(wall time {time.perf_counter() - t0:.2f} s, including compilation)")


if __name__ == "__main__":
    main()
