"""Shared test inputs: random valid books and paths for the transition, small markets and trainers for training
(small fixed shapes so each jit compiles once)."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState

B, N = 3, 5


def random_case(seed: int, batch: int = B, n: int = N, dtype=np.float32, bust: bool | None = None):
    """Random valid state, action, bar and is_crypto mask as numpy arrays (float64 master copy)."""
    rng = np.random.default_rng(seed)
    is_crypto = rng.random(n) < 0.4
    mark = 100 * np.exp(rng.normal(0, 1, (batch, n)))
    inventory = np.where(rng.random((batch, n)) < 0.3, 0, rng.exponential(1000, (batch, n)) / mark)
    value = (inventory * mark).sum(-1)
    lo = -1.6 if bust else (-1.2 if bust is None else -0.6)
    cash = value * rng.uniform(lo, 1.0, batch) + rng.uniform(0, 2000, batch) * (rng.random(batch) < 0.5)
    close = mark * np.exp(rng.normal(0, 0.03, (batch, n)))
    opn = mark * np.exp(rng.normal(0, 0.01, (batch, n)))
    span = rng.exponential(0.015, (batch, n))
    high = np.maximum(opn, close) * (1 + span)
    low = np.minimum(opn, close) * (1 - span)
    tradable = (rng.random((batch, n)) < 0.8).astype(np.float64)
    days = rng.integers(0, 5, batch).astype(np.float64)
    buy_price = mark * (1 - rng.uniform(-0.04, 0.06, (batch, n)))
    sell_price = mark * (1 + rng.uniform(-0.04, 0.06, (batch, n)))
    buy_frac = rng.uniform(-0.2, 1.2, (batch, n))
    sell_frac = rng.uniform(-0.2, 1.2, (batch, n))
    return dict(
        cash=cash, inventory=inventory, mark=mark, buy_price=buy_price, sell_price=sell_price, buy_frac=buy_frac,
        sell_frac=sell_frac, high=high, low=low, close=close, tradable=tradable, days=days, is_crypto=is_crypto,
    )


def to_jax(case: dict, dtype=jnp.float32, **param_kwargs):
    """(params, state, action, bar) pytrees from a `random_case` dict."""
    a = {k: jnp.asarray(v, dtype) if k != "is_crypto" else jnp.asarray(v) for k, v in case.items()}
    params = MarketParams(is_crypto=a["is_crypto"], **param_kwargs)
    state = PortfolioState(cash=a["cash"], inventory=a["inventory"], mark=a["mark"])
    action = Action(buy_price=a["buy_price"], sell_price=a["sell_price"], buy_frac=a["buy_frac"],
                    sell_frac=a["sell_frac"])
    bar = Bar(high=a["high"], low=a["low"], close=a["close"], tradable=a["tradable"], days_elapsed=a["days"])
    return params, state, action, bar


def random_path(seed: int, T: int = 64, batch: int = 2, n: int = 4, dtype=np.float32):
    """A random-walk path: (params_mask, state0, actions, bars) with leading time axis, as float64 numpy."""
    rng = np.random.default_rng(seed)
    is_crypto = np.arange(n) >= n // 2
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (T + 1, batch, n)), axis=0))
    prev, close = close[:-1], close[1:]
    span = rng.exponential(0.01, (T, batch, n))
    high = np.maximum(prev, close) * (1 + span)
    low = np.minimum(prev, close) * (1 - span)
    tradable = np.where(is_crypto, 1.0, (rng.random((T, batch, n)) < 0.85))
    days = rng.choice([1.0, 1.0, 1.0, 3.0], (T, batch))
    bars = dict(high=high, low=low, close=close, tradable=tradable, days_elapsed=days)
    actions = dict(
        buy_price=prev * (1 - rng.uniform(0.0, 0.03, (T, batch, n))),
        sell_price=prev * (1 + rng.uniform(0.0, 0.03, (T, batch, n))),
        buy_frac=rng.uniform(0, 1, (T, batch, n)),
        sell_frac=rng.uniform(0, 1, (T, batch, n)),
    )
    return is_crypto, prev[0], actions, bars


def path_to_jax(path, dtype=jnp.float32, cash=10_000.0, **param_kwargs):
    """Pytrees `(params, state0, actions (T, B, N), bars (T, B, N))` from `random_path`."""
    from ndjax.dynamics import init_state

    is_crypto, mark0, actions, bars = path
    params = MarketParams(is_crypto=jnp.asarray(is_crypto), **param_kwargs)
    state0 = init_state(cash, jnp.asarray(mark0, dtype))
    actions = Action(**{k: jnp.asarray(v, dtype) for k, v in actions.items()})
    bars = Bar(**{k: jnp.asarray(v, dtype) for k, v in bars.items()})
    return params, state0, actions, bars


SMALL_POLICY = dict(d_model=16, hidden=32, n_heads=2, lookback=8)
"""A policy small enough for tests."""


def small_arrays(seed: int, signal: float = 0.0, n_days: int = 300, n_stocks: int = 2, n_crypto: int = 2):
    """`(market, arrays, a, b)`: a synthetic market, its normalised arrays, and the 60 % / 80 % split rows."""
    from ndjax.data.arrays import prepare
    from ndjax.data.synthetic import synthetic_market

    m = synthetic_market(seed, n_stocks=n_stocks, n_crypto=n_crypto, n_days=n_days, signal_strength=signal)
    a, b = int(m.n_days * 0.6), int(m.n_days * 0.8)
    return m, prepare(m, a)[1], a, b


def small_trainer(arr, a, b, steps: int = 4, eval_every: int = 2, model: str = "mlp", **train_kwargs):
    """`(cfg, trainer)` on rows `[0, a)` with validation `[a, b)`."""
    from ndjax.data.arrays import context_split
    from ndjax.policy import PolicyConfig
    from ndjax.train.config import TrainConfig
    from ndjax.train.trainer import make_train

    cfg = TrainConfig(policy=PolicyConfig(model=model, **SMALL_POLICY), window=24, batch_size=4, steps=steps,
                      eval_every=eval_every, periods_per_year=365, **train_kwargs)
    return cfg, make_train(cfg, arr.rows(0, a), context_split(arr, a, b, cfg.policy.context))


# ----------------------------------------------------------------------------- sweeps

TOL = dict(rtol=1e-5, atol=1e-5)  # parameters (O(0.1)), optimiser state; Adam divides out gradient scale
METRIC_TOL = dict(rtol=1e-4, atol=1e-5)  # Sortino-type ratios amplify float32 rounding of near-cancelling sums


def assert_run_close(run, ref):
    import chex

    """`run`, `ref`: `(TrainState, metrics)` of one run each."""
    (state, metrics), (ref_state, ref_metrics) = run, ref
    chex.assert_trees_all_close(state._replace(best_score=0.0), ref_state._replace(best_score=0.0), **TOL)
    chex.assert_trees_all_close((state.best_score, metrics), (ref_state.best_score, ref_metrics), **METRIC_TOL)


def sweep_trainer():
    """A tiny synthetic market and an mlp trainer: 4 updates, validation every 2.

    Training uses `soft` fills and no margin calls: an `ste` fill and a call are step functions, so a limit
    within one float32 ulp of the bar's low, or a book within one ulp of its maintenance line, may flip
    between two mathematically equal programs (different vmap/shard shapes round differently) and the runs
    then legitimately diverge. Validation still uses hard fills."""
    from ndjax.data.arrays import context_split, prepare
    from ndjax.data.synthetic import synthetic_market
    from ndjax.policy import PolicyConfig
    from ndjax.train.config import TrainConfig
    from ndjax.train.trainer import make_train

    m = synthetic_market(0, n_stocks=2, n_crypto=2, n_days=160, signal_strength=0.3)
    a, b = int(m.n_days * 0.6), int(m.n_days * 0.8)
    arr = prepare(m, a)[1]
    pc = PolicyConfig(model="mlp", d_model=8, hidden=16, n_heads=2, lookback=8)
    cfg = TrainConfig(policy=pc, window=16, batch_size=2, steps=4, eval_every=2, warmup_steps=1,
                      fill="soft", margin_call=False)
    return cfg, make_train(cfg, arr.rows(0, a), context_split(arr, a, b, pc.context))


# ----------------------------------------------------------------------------- CSV files for the data tests

D = np.datetime64


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.write_bytes(text.strip("\n").replace("\n", newline).encode() + newline.encode())
    return path


def yahoo(dates: list[str], closes: list[float] | None = None, header: str = "Date,Open,High,Low,Close,Volume") -> str:
    """Yahoo-style CSV text with valid bars (open = close, high/low +-1%)."""
    closes = closes or [100.0 + i for i in range(len(dates))]
    cols = [c.strip().lower() for c in header.split(",")]
    lines = [header]
    for d, c in zip(dates, closes):
        vals = {"date": d, "open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "adj close": c, "volume": 1000}
        lines.append(",".join(str(vals[k]) for k in cols))
    return "\n".join(lines)


def days(start: str, n: int) -> list[str]:
    return [str(D(start) + i) for i in range(n)]


WEEK = ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08", "2024-07-09"]  # XNYS, 07-04 holiday
OLD_WEEK = ["2018-07-02", "2018-07-03", "2018-07-05", "2018-07-06", "2018-07-09", "2018-07-10"]  # XNYS
