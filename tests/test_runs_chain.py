"""Chained walk-forward paths: the concatenated statistics are the statistics of the concatenated daily returns."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ndjax.dynamics import StepInfo
from ndjax.loss import sharpe, sortino
from ndjax.metrics import summary
from ndjax.runs.chain import chain_paths, rows_per_year


def _path(rng: np.random.Generator, t: int, n: int) -> StepInfo:
    """A consistent random path of `t` steps on `n` assets from equity 1."""
    r = rng.normal(0.0005, 0.02, t)
    equity = np.cumprod(1 + r)
    prev = np.r_[1.0, equity[:-1]]
    asset = lambda: rng.random((t, n)) * (rng.random((t, n)) < 0.5)  # noqa: E731
    return StepInfo(equity=equity, prev_equity=prev, cash=0.1 * equity, returns=equity / prev - 1,
                    leverage=rng.uniform(0, 2, t), leverage_cost=rng.uniform(0, 1e-4, t) * prev,
                    fees=rng.uniform(0, 1e-4, t) * prev, traded_notional=rng.uniform(0, 0.1, t) * prev,
                    margin_call=(rng.random(t) < 0.05).astype(float), forced_notional=np.zeros(t),
                    buy_fill=(rng.random((t, n)) < 0.7).astype(float),
                    sell_fill=(rng.random((t, n)) < 0.7).astype(float),
                    buy_order_qty=asset(), sell_order_qty=asset(), buy_qty=asset(), sell_qty=asset(),
                    forced_qty=np.zeros((t, n)), inventory=asset())


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(2, 40), min_size=1, max_size=4))
def test_concatenated_stats_are_the_stats_of_the_concatenated_returns(seed, lengths):
    rng = np.random.default_rng(seed)
    names = ["A", "B", "C", "D"]
    pieces = [(names[k % 3: k % 3 + 2], _path(rng, t, 2)) for k, t in enumerate(lengths)]
    union, chained = chain_paths(pieces)
    assert union == tuple(sorted({s for syms, _ in pieces for s in syms}))
    got = summary(chained, 252)  # float32, as reports compute it
    r = np.concatenate([np.asarray(p.returns) for _, p in pieces])
    np.testing.assert_allclose(chained.returns, r, atol=1e-12)
    np.testing.assert_allclose(chained.equity[1:] / chained.prev_equity[1:] - 1, r[1:], atol=1e-10)
    np.testing.assert_allclose(got.total_return, np.prod(1 + r) - 1, rtol=1e-5, atol=1e-7)  # summary: float32
    np.testing.assert_allclose(got.sortino, sortino(r, 252), rtol=1e-5)
    np.testing.assert_allclose(got.sharpe, sharpe(r, 252), rtol=1e-5)
    curve = np.r_[1.0, np.cumprod(1 + r)]
    np.testing.assert_allclose(got.max_drawdown, np.max(1 - curve / np.maximum.accumulate(curve)), atol=1e-6)
    np.testing.assert_allclose(got.mean_leverage, np.mean(np.concatenate([p.leverage for _, p in pieces])), rtol=1e-5)
    np.testing.assert_allclose(got.margin_calls, sum(p.margin_call.sum() for _, p in pieces))
    level = np.r_[1.0, np.cumprod([1 + np.prod(1 + p.returns) - 1 for _, p in pieces])[:-1]]
    np.testing.assert_allclose(got.total_fees, sum(s * p.fees.sum() for s, (_, p) in zip(level, pieces)), rtol=1e-5)
    np.testing.assert_allclose(got.n_buys, sum((p.buy_qty > 0).sum() for _, p in pieces))


def test_rows_per_year():
    days = np.arange(np.datetime64("2020-01-01"), np.datetime64("2022-01-01"))
    np.testing.assert_allclose(rows_per_year(days), 365.25 * days.size / 731)
    np.testing.assert_allclose(rows_per_year(days[::7]), 365.25 * days[::7].size / 729)
