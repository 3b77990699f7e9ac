"""Command-line pieces shared by the experiment scripts: data and model flags, market loading,
the date split and feature preparation."""

from __future__ import annotations

import argparse

import numpy as np

from ndjax.data.loading import load_daily
from ndjax.data.market import MarketData
from ndjax.data.features import FEATURE_NAMES, Normalizer, compute_features
from ndjax.policy import PolicyConfig
from ndjax.data.synthetic import synthetic_market
from ndjax.train.trainer import MarketArrays, TrainConfig, market_arrays


def add_data_args(p: argparse.ArgumentParser, *, synthetic_days: int) -> None:
    """`--data-dir`, `--symbols`, `--start/--end`, `--train-end/--val-end`, `--synthetic-days`, `--signal`."""
    d = p.add_argument_group("data")
    d.add_argument("--data-dir", help="folder of daily CSVs (default: built-in synthetic market)")
    d.add_argument("--symbols", help="comma-separated symbols to load")
    d.add_argument("--start"), d.add_argument("--end")
    d.add_argument("--train-end", help="last training date (default: 60 %% of the rows)")
    d.add_argument("--val-end", help="last validation date (default: 80 %% of the rows); the rest is the test")
    d.add_argument("--synthetic-days", type=int, default=synthetic_days)
    d.add_argument("--signal", type=float, default=0.3, help="planted signal strength of the synthetic market")


def add_model_args(p: argparse.ArgumentParser, *, d_model: int, window: int, batch: int, steps: int,
                   eval_every: int) -> argparse._ArgumentGroup:
    """Static model and training flags (one compiled program per combination); returns the group."""
    m = p.add_argument_group("model and training")
    m.add_argument("--model", choices=["transformer", "mlp"], default="mlp")
    m.add_argument("--lookback", type=int, default=16)
    m.add_argument("--d-model", type=int, default=d_model)
    m.add_argument("--layers", type=int, default=1)
    m.add_argument("--window", type=int, default=window)
    m.add_argument("--batch", type=int, default=batch)
    m.add_argument("--n-assets", type=int, help="random asset subset per window (default: all)")
    m.add_argument("--steps", type=int, default=steps)
    m.add_argument("--eval-every", type=int, default=eval_every)
    m.add_argument("--fill", choices=["ste", "soft"], default="ste")
    m.add_argument("--interest", choices=["excess", "debit"], default="excess")
    m.add_argument("--objective", default="score")
    return m


def load_market(args: argparse.Namespace, seed: int) -> MarketData:
    """The CSV folder of `--data-dir`, or the synthetic market of `seed`."""
    if args.data_dir:
        symbols = args.symbols.split(",") if args.symbols else None
        return load_daily(args.data_dir, symbols=symbols, start=args.start, end=args.end)
    return synthetic_market(seed, n_days=args.synthetic_days, signal_strength=args.signal)


def split_rows(market: MarketData, train_end: str | None, val_end: str | None, *,
               need_test: bool = True) -> tuple[int, int]:
    """Rows where validation and test start (default 60 % / 80 % of the rows)."""
    T = market.n_days
    a = int(np.searchsorted(market.dates, np.datetime64(train_end), "right")) if train_end else int(T * 0.6)
    b = int(np.searchsorted(market.dates, np.datetime64(val_end), "right")) if val_end else int(T * 0.8)
    if not 0 < a < b < T + (0 if need_test else 1):
        raise SystemExit(f"date split: train rows [0, {a}), validation [{a}, {b}), test [{b}, {T}) must all be "
                         f"non-empty (dates {market.dates[0]} .. {market.dates[-1]})")
    return a, b


def prepare(market: MarketData, train_rows: int) -> tuple[Normalizer, MarketArrays]:
    """Features normalised with statistics of the first `train_rows` rows only, as device arrays."""
    raw = compute_features(market)
    normalizer = Normalizer.fit(raw[:train_rows])
    return normalizer, market_arrays(market, normalizer.apply(raw))


def train_config(args: argparse.Namespace, periods_per_year: int) -> TrainConfig:
    """`TrainConfig` (with its `PolicyConfig`) from the flags of `add_model_args`."""
    policy = PolicyConfig(model=args.model, n_features=len(FEATURE_NAMES), d_model=args.d_model,
                          n_layers=args.layers, lookback=args.lookback)
    return TrainConfig(policy=policy, window=args.window, batch_size=args.batch, n_assets=args.n_assets,
                       steps=args.steps, eval_every=args.eval_every, fill=args.fill, interest=args.interest,
                       objective=args.objective, periods_per_year=periods_per_year)
