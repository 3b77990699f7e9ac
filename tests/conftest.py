"""Shared random valid inputs for the transition tests (small fixed shapes so each jit compiles once)."""

from __future__ import annotations

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
    action = Action(buy_price=a["buy_price"], sell_price=a["sell_price"], buy_frac=a["buy_frac"], sell_frac=a["sell_frac"])
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
