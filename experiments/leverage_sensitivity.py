"""Leverage sanity check: does the trained policy borrow only when the edge pays the 6.5 % interest?

On stock-only synthetic markets (the asset class that may borrow) with a rising planted edge, the main job trains
one policy per (edge strength, market seed) with its own configuration, and the held-out days (hard fills) give
the policy's mean and max gross leverage, the share of days above 1x, the interest it paid and its annualised
return, beside the edge the market offers at 1x: the annualised return of a 1x momentum rule on the same days
(hold the assets that rose, bought at the previous close) and the mean leverage of the oracle, which knows the
process and borrows only when its mean-variance target says the expected return pays the interest.

    python experiments/leverage_sensitivity.py [--signals 0,0.05,0.1,0.2,0.3] [--seeds 0,1,2] [--out DIR]

Prints a table per case and per signal, and writes `leverage_sensitivity.csv` and `leverage_sensitivity.png`.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.data.calendar import row_at_or_before
from ndjax.data.source import MarketSource
from ndjax.dynamics import Action, init_state
from ndjax.metrics import summary
from ndjax.observation import Observation
from ndjax.runs.folder import load_market, load_run
from ndjax.runs.job import JobSpec, train_job
from ndjax.sim import rollout


def momentum_rule(_params: None, obs: Observation) -> Action:
    """1x reference: hold the assets whose last bar rose (bought at the previous close), sell the others."""
    up = obs.market > 0
    return Action(buy_price=obs.mark, sell_price=obs.mark, buy_frac=jnp.where(up, 1.0, 0.0),
                  sell_frac=jnp.where(up, 0.0, 1.0))


def one_case(signal: float, seed: int, args: argparse.Namespace) -> dict:
    """Train the main job on one stock-only market; the held-out leverage figures and the 1x edge."""
    source = MarketSource(synthetic_seed=seed, signal=signal, n_stocks=args.n_stocks, n_crypto=0,
                          synthetic_days=args.days)
    out = Path(args.out) / f"s{signal:+.2f}_seed{seed}"
    result = train_job(JobSpec(source=source, seed=seed), out, overwrite=True, rows=False, progress=False)
    run = load_run(out)
    market = load_market(run)
    start = row_at_or_before(market.dates, result.dates[0]) - 1  # the close the test starts flat at
    bars = jax.tree_util.tree_map(lambda x: x[start:], market.bars())  # row 0: the close the rule starts from
    last_return = jnp.asarray(np.log(market.close[start:] / market.close[start - 1:-1]), jnp.float32)
    one_x = run.config.market_params("hard").replace(stock_max_leverage=1.0)
    _, (_, rule) = rollout(one_x, momentum_rule, None, init_state(1.0, jnp.asarray(market.close[start])),
                           last_return, bars)
    P = market.periods_per_year
    years = len(result.dates) / P
    annual = lambda r: float(np.sign(1 + r) * abs(1 + r) ** (1 / years) - 1)  # noqa: E731
    policy, oracle = result.paths["policy"], result.paths["oracle"]
    stats = result.stats["policy"]
    return {
        "signal": signal, "seed": seed,
        "edge_1x_annual": annual(float(summary(rule, P).total_return)),
        "policy_mean_leverage": float(np.mean(policy.leverage)),
        "policy_max_leverage": float(np.max(policy.leverage)),
        "policy_days_above_1x": float(np.mean(np.asarray(policy.leverage) > 1.0 + 1e-6)),
        "policy_interest": float(stats.total_leverage_cost),
        "policy_annual": annual(float(stats.total_return)),
        "policy_sortino": float(stats.sortino),
        "oracle_mean_leverage": float(np.mean(oracle.leverage)),
        "buy_and_hold_annual": annual(float(result.stats["buy_and_hold"].total_return)),
    }


def print_tables(rows: list[dict]) -> None:
    print("Held-out days, hard fills, 6.5 %/yr on stock value above equity (the main job's rules)")
    print(f"{'signal':>7}{'seed':>5}{'1x edge/yr':>12}{'mean lev':>10}{'max lev':>9}{'days>1x':>9}{'interest':>10}"
          f"{'policy/yr':>11}{'Sortino':>9}{'oracle lev':>11}{'B&H/yr':>9}")
    for r in rows:
        print(f"{r['signal']:>7.2f}{r['seed']:>5}{r['edge_1x_annual'] * 100:>11.1f}%{r['policy_mean_leverage']:>9.2f}x"
              f"{r['policy_max_leverage']:>8.2f}x{r['policy_days_above_1x'] * 100:>8.0f}%{r['policy_interest']:>10.4f}"
              f"{r['policy_annual'] * 100:>10.1f}%{r['policy_sortino']:>9.2f}{r['oracle_mean_leverage']:>10.2f}x"
              f"{r['buy_and_hold_annual'] * 100:>8.1f}%")
    print("\nPer signal (mean over seeds):")
    for signal in sorted({r["signal"] for r in rows}):
        g = [r for r in rows if r["signal"] == signal]
        mean = lambda k: float(np.mean([r[k] for r in g]))  # noqa: E731
        print(f"  signal {signal:.2f}: 1x edge {mean('edge_1x_annual') * 100:6.1f} %/yr, policy mean leverage "
              f"{mean('policy_mean_leverage'):.2f}x (max {max(r['policy_max_leverage'] for r in g):.2f}x, "
              f"{mean('policy_days_above_1x') * 100:.0f} % of days above 1x), "
              f"oracle {mean('oracle_mean_leverage'):.2f}x")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    edge = np.array([r["edge_1x_annual"] * 100 for r in rows])
    ax.scatter(edge, [r["policy_mean_leverage"] for r in rows], label="policy mean gross leverage")
    ax.scatter(edge, [r["oracle_mean_leverage"] for r in rows], marker="x", label="oracle mean gross leverage")
    ax.axvline(6.5, color="tab:red", ls="--", label="6.5 %/yr borrowing cost")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("edge offered: 1x momentum rule, annualised held-out return (%)")
    ax.set_ylabel("mean gross leverage")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--signals", default="0,0.05,0.1,0.2,0.3")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--days", type=int, default=1500, help="calendar days of each synthetic market")
    p.add_argument("--n-stocks", type=int, default=6)
    p.add_argument("--out", default="runs/leverage_sensitivity")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = [one_case(float(s), int(seed), args) for s in args.signals.split(",") for seed in args.seeds.split(",")]
    print_tables(rows)
    with open(out / "leverage_sensitivity.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(rows, out / "leverage_sensitivity.png")
    print(f"\n{len(rows)} trainings in {time.perf_counter() - t0:.0f} s; wrote {out}/leverage_sensitivity.csv, .png")
    return rows


if __name__ == "__main__":
    main()
