"""Leverage sanity check: does the trained policy borrow only when the edge pays the 6.5 % interest?

On stock-only synthetic markets (the asset class that may borrow) with a rising planted edge, train
one policy per edge strength and report, on held-out days with hard fills, the policy's mean gross
leverage, the interest it paid and its return, beside the annualised return a simple 1x momentum
rule earns on the same days (the edge the market offers to limit orders, before borrowing).

    python experiments/leverage_sensitivity.py [--signals 0,0.05,0.1,0.2,0.3] [--steps 200] [--out DIR]

Prints a table and writes `leverage_sensitivity.csv` and `leverage_sensitivity.png` into `--out`.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ndjax.data.arrays import context_split, prepare
from ndjax.data.features import compute_features
from ndjax.data.synthetic import synthetic_market
from ndjax.dynamics import Action, MarketParams, init_state
from ndjax.metrics import summary
from ndjax.observation import Observation
from ndjax.policy import PolicyConfig
from ndjax.runs.evaluate import held_out
from ndjax.sim import rollout
from ndjax.train.config import HParams, TrainConfig, market_params
from ndjax.train.trainer import make_train


def momentum_rule(_params: None, obs: Observation) -> Action:
    """1x reference: hold after an up day (buy at the previous close), sell after a down day."""
    up = obs.market > 0
    return Action(buy_price=obs.mark, sell_price=obs.mark, buy_frac=jnp.where(up, 1.0, 0.0),
                  sell_frac=jnp.where(up, 0.0, 1.0))


def one_strength(signal: float, args: argparse.Namespace) -> dict:
    m = synthetic_market(args.seed, n_stocks=args.n_stocks, n_crypto=0, n_days=args.days, signal_strength=signal)
    raw = compute_features(m)
    a, b = int(m.n_days * 0.6), int(m.n_days * 0.8)
    arrays = prepare(m, a)[1]
    cfg = TrainConfig(policy=PolicyConfig(model="mlp", lookback=8),
                      window=args.window, batch_size=16, steps=args.steps, eval_every=max(args.steps // 8, 1),
                      periods_per_year=m.periods_per_year)
    hp = HParams(learning_rate=args.lr, fill_temperature=5e-3)
    trainer = make_train(cfg, arrays.rows(0, a), context_split(arrays, a, b, cfg.policy.context))
    ts, _ = jax.jit(trainer.train)(jax.random.PRNGKey(args.seed), hp)
    mp = market_params(hp, arrays.is_crypto, "hard", "excess")
    runs = held_out(trainer.graphdef, ts.best_params, arrays, b, cfg.policy.context, mp).paths
    P = m.periods_per_year
    pol, hold = summary(runs["policy"], P), summary(runs["buy_and_hold"], P)
    bars = jax.tree_util.tree_map(lambda x: x[b:], m.bars())
    one_x = MarketParams(is_crypto=arrays.is_crypto, stock_max_leverage=1.0)
    _, (_, rule) = rollout(one_x, momentum_rule, None, init_state(1.0, bars.close[0]), jnp.asarray(raw[b:, :, 0]),
                           bars)
    n_years = (m.n_days - b - 1) / P
    annual = lambda r: float(np.sign(1 + r) * abs(1 + r) ** (1 / n_years) - 1)  # noqa: E731
    return {
        "signal": signal,
        "edge_1x_annual": annual(float(summary(rule, P).total_return)),
        "policy_mean_leverage": float(np.mean(runs["policy"].leverage)),
        "policy_days_above_1x": float(np.mean(np.asarray(runs["policy"].leverage) > 1.0)),
        "policy_interest": float(pol.total_leverage_cost),
        "policy_annual": annual(float(pol.total_return)),
        "policy_sortino": float(pol.sortino),
        "buy_and_hold_annual": annual(float(hold.total_return)),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--signals", default="0,0.05,0.1,0.2,0.3")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=1e-3,
                   help="peak learning rate (3e-3 collapses to not trading on stock-only books)")
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--days", type=int, default=1500, help="calendar days of each synthetic market")
    p.add_argument("--n-stocks", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/leverage_sensitivity")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = [one_strength(float(s), args) for s in args.signals.split(",")]
    head = f"{'signal':>7}{'1x edge/yr':>12}{'mean lev':>10}{'days>1x':>9}{'interest':>10}{'policy/yr':>11}{'Sortino':>9}{'B&H/yr':>9}"
    print("Held-out days, hard fills, 6.5 %/yr on stock value above equity (excess rule)")
    print(head)
    for r in rows:
        print(f"{r['signal']:>7.2f}{r['edge_1x_annual'] * 100:>11.1f}%{r['policy_mean_leverage']:>9.2f}x"
              f"{r['policy_days_above_1x'] * 100:>8.0f}%{r['policy_interest']:>10.4f}{r['policy_annual'] * 100:>10.1f}%"
              f"{r['policy_sortino']:>9.2f}{r['buy_and_hold_annual'] * 100:>8.1f}%")
    with open(out / "leverage_sensitivity.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    edge = [r["edge_1x_annual"] * 100 for r in rows]
    ax.plot(edge, [r["policy_mean_leverage"] for r in rows], "o-", label="policy mean gross leverage")
    ax.axvline(6.5, color="tab:red", ls="--", label="6.5 %/yr borrowing cost")
    ax.axhline(1.0, color="grey", lw=0.8)
    for r, x in zip(rows, edge):
        ax.annotate(f"s={r['signal']:g}", (x, r["policy_mean_leverage"]), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("edge offered: 1x momentum rule, annualised held-out return (%)")
    ax.set_ylabel("mean gross leverage")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "leverage_sensitivity.png", dpi=110)
    print(f"\n{len(rows)} trainings in {time.perf_counter() - t0:.0f} s; wrote {out}/leverage_sensitivity.csv, .png")
    return rows


if __name__ == "__main__":
    main()
