"""Training: a whole run is one pure function, `make_train(config, train, val)(key, hparams)`.

Updates run inside `lax.scan`; each update samples a batch of random windows over
random asset subsets (one shared-cash account per window), rolls the policy through
the one transition (`fill` of the config, `ste` by default), and ascends the
objective of the batch's pooled daily returns (a mean of per-window Sortino ratios
would reward windows that happen to hold no losing day). Every `eval_every` updates the policy is simulated on the validation
period with `hard` fills, the honest figure, and the best parameters so far are
kept. Metrics come back from the scans; numeric hyperparameters are traced so runs
`vmap` over seeds and hyperparameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct

from ndjax.dynamics import Bar, MarketParams, init_state
from ndjax.loss import evaluate_returns
from ndjax.policy import PolicyConfig, create, encode, policy_apply
from ndjax.sim import path_stats, rollout


@struct.dataclass
class MarketArrays:
    """Device arrays of one period: features `(T, N, F)` (normalised), bars `(T, N)`, `days_elapsed (T,)`,
    `valid (T, N)` (the asset has data at or before t) and `is_crypto (N,)`."""

    features: jax.Array
    high: jax.Array
    low: jax.Array
    close: jax.Array
    tradable: jax.Array
    days_elapsed: jax.Array
    valid: jax.Array
    is_crypto: jax.Array
    open: jax.Array | None = None
    volume: jax.Array | None = None

    @property
    def n_days(self) -> int:
        return self.close.shape[0]

    def rows(self, start: int, stop: int) -> MarketArrays:
        """Rows `start:stop` of the time axis (static bounds)."""
        return jax.tree_util.tree_map(lambda x: x[start:stop], self.replace(is_crypto=None)).replace(
            is_crypto=self.is_crypto)

    def bars(self) -> Bar:
        return Bar(high=self.high, low=self.low, close=self.close, tradable=self.tradable,
                   days_elapsed=self.days_elapsed, open=self.open, volume=self.volume)


def market_arrays(market: Any, features: np.ndarray, dtype: Any = jnp.float32) -> MarketArrays:
    """`MarketArrays` from a `data.MarketData` and its normalised features `(T, N, F)`."""
    tradable = np.asarray(market.tradable, np.float64)
    listed = np.maximum.accumulate(tradable > 0, axis=0)
    return MarketArrays(
        features=jnp.asarray(features, dtype),
        high=jnp.asarray(market.high, dtype),
        low=jnp.asarray(market.low, dtype),
        close=jnp.asarray(market.close, dtype),
        tradable=jnp.asarray(tradable, dtype),
        days_elapsed=jnp.asarray(market.days_elapsed, dtype),
        valid=jnp.asarray(listed),
        is_crypto=jnp.asarray(market.is_crypto, bool),
        open=jnp.asarray(market.open, dtype),
        volume=jnp.asarray(market.volume, dtype),
    )


@struct.dataclass
class HParams:
    """Numeric hyperparameters, traced so sweeps can vmap over them."""

    learning_rate: Any = 1e-3
    return_weight: Any = 0.08
    maker_fee: Any = 0.0008
    stock_max_leverage: Any = 2.0
    crypto_max_leverage: Any = 1.0
    leverage_fee_rate: Any = 0.065
    fill_temperature: Any = 5e-4
    maintenance_margin: Any = 0.30
    liquidation_slippage: Any = 0.001


@dataclass(frozen=True)
class TrainConfig:
    """Static, shape-setting training choices."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    window: int = 128
    batch_size: int = 16
    n_assets: int | None = None  # random asset subset per window; None = all
    steps: int = 400
    eval_every: int = 50
    fill: str = "ste"
    interest: str = "excess"
    margin_call: bool = True
    objective: str = "score"
    warmup_steps: int = 20
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    periods_per_year: int = 365
    initial_cash: float = 1.0
    pool_batch: bool = True  # objective of the batch's pooled daily returns, not the mean over windows

    def __post_init__(self) -> None:
        if self.fill not in ("soft", "ste", "hard"):
            raise ValueError(f"TrainConfig.fill: unknown {self.fill!r}; train with 'soft' or 'ste'")
        if self.steps % self.eval_every:
            raise ValueError(f"TrainConfig.steps: {self.steps} is not a multiple of eval_every={self.eval_every}")
        if self.window < 2 or self.batch_size < 1:
            raise ValueError("TrainConfig.window must be >= 2 and batch_size >= 1")

    @property
    def n_evals(self) -> int:
        return self.steps // self.eval_every


class TrainState(NamedTuple):
    """Everything a run carries between updates (a checkpoint is exactly this)."""

    params: Any
    opt_state: Any
    key: jax.Array  # raw uint32 key
    step: jax.Array
    best_params: Any
    best_score: jax.Array


def market_params(hp: HParams, is_crypto: jax.Array, fill: str, interest: str, margin_call: bool = True) -> MarketParams:
    """The transition's params for these hyperparameters."""
    return MarketParams(
        is_crypto=is_crypto, maker_fee=hp.maker_fee, stock_max_leverage=hp.stock_max_leverage,
        crypto_max_leverage=hp.crypto_max_leverage, leverage_fee_rate=hp.leverage_fee_rate,
        fill_temperature=hp.fill_temperature, maintenance_margin=hp.maintenance_margin,
        liquidation_slippage=hp.liquidation_slippage, fill=fill, interest=interest, margin_call=margin_call,
    )


def lr_schedule(cfg: TrainConfig, peak: Any) -> Callable[[jax.Array], jax.Array]:
    """Linear warmup to `peak` over `warmup_steps`, then cosine decay to 10 % of it at `steps`.

    Written out (not `optax.warmup_cosine_decay_schedule`) so `peak` may be a traced value.
    """
    warmup = max(cfg.warmup_steps, 1)
    decay = max(cfg.steps - warmup, 1)

    def schedule(count: jax.Array) -> jax.Array:
        count = jnp.asarray(count, jnp.float32)
        ramp = jnp.minimum(count / warmup, 1.0)
        progress = jnp.clip((count - warmup) / decay, 0.0, 1.0)
        cosine = 0.1 + 0.9 * 0.5 * (1 + jnp.cos(jnp.pi * progress))
        return peak * jnp.where(count < warmup, ramp, cosine)

    return schedule


def make_optimizer(cfg: TrainConfig, hp: HParams) -> optax.GradientTransformation:
    """Clipped AdamW with the learning rate injected from `lr_schedule` (so it is logged and vmappable)."""
    return optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip),
        optax.inject_hyperparams(optax.adamw)(learning_rate=lr_schedule(cfg, hp.learning_rate),
                                              weight_decay=cfg.weight_decay),
    )


def simulate_policy(
    graphdef: nnx.GraphDef, params: Any, arrays: MarketArrays, mp: MarketParams, lookback: int,
    initial_cash: float = 1.0, lag: int = 1, probe: bool = False,
):
    """Roll the policy over `arrays`, acting from row `lookback` on (the first rows are encoder context).

    `lag` > 1 delays decisions (a lookahead check); `probe` gives the state the trade memory that
    `MarketParams.probe_notional` needs.

    Returns `(actions, infos)` for bars `lookback + lag .. T-1`.
    """
    emb = encode(graphdef, params, arrays.features, arrays.valid)
    bars = arrays.bars()
    tail = jax.tree_util.tree_map(lambda x: x[lookback:], bars)
    state0 = init_state(initial_cash, arrays.close[lookback], probe=probe)
    _, (actions, infos) = rollout(mp, policy_apply(graphdef), params, state0, emb[lookback:], tail, lag=lag)
    return actions, infos


simulate_policy_jit = jax.jit(simulate_policy, static_argnames=("graphdef", "lookback", "lag", "probe"))
"""`simulate_policy` compiled once per graph, shapes and static choices; arrays are arguments, not constants."""


_METRIC_KEYS = {"sortino": "sortino", "total_return": "net_pnl", "max_drawdown": "max_drawdown",
                "mean_leverage": "mean_leverage", "max_leverage": "max_leverage",
                "leverage_cost": "total_leverage_cost", "fees": "total_fees",
                "buy_fill_rate": "buy_fill_rate", "sell_fill_rate": "sell_fill_rate", "margin_calls": "margin_calls"}


def path_metrics(infos: Any, periods_per_year: float) -> dict[str, jax.Array]:
    """Per-path training/validation metrics (a subset of `sim.path_stats`) from `StepInfo`, time on axis 0."""
    stats = path_stats(infos, periods_per_year)
    return {name: stats[key] for name, key in _METRIC_KEYS.items()}


@dataclass(frozen=True)
class Trainer:
    """The pieces of a run. `train(key, hparams)` is the whole run as one pure function; `loss(params, hparams, key)`
    is the negated objective of one sampled batch; `init`,
    `chunk` (eval_every updates then one validation) and `evaluate` let a host loop checkpoint."""

    graphdef: nnx.GraphDef
    loss: Callable[[Any, HParams, jax.Array], tuple[jax.Array, dict]]
    init: Callable[[jax.Array, HParams], TrainState]
    chunk: Callable[[TrainState, HParams], tuple[TrainState, dict]]
    evaluate: Callable[[Any, HParams], dict]
    train: Callable[[jax.Array, HParams], tuple[TrainState, dict]]


def make_train(cfg: TrainConfig, train_arrays: MarketArrays, val_arrays: MarketArrays) -> Trainer:
    """Build the run. `val_arrays` must include `cfg.policy.lookback` rows of context before the
    validation period (see `context_split`)."""
    L, W = cfg.policy.lookback, cfg.window
    span = L + W + 1
    T, N = train_arrays.close.shape
    k = cfg.n_assets or N
    if span > T:
        raise ValueError(f"TrainConfig.window: lookback {L} + window {W} + 1 = {span} rows exceed the {T} training rows")
    if not 1 <= k <= N:
        raise ValueError(f"TrainConfig.n_assets: {k} not in [1, {N}]")
    if val_arrays.n_days <= L + 1:
        raise ValueError(f"validation period: {val_arrays.n_days} rows, need more than lookback + 1 = {L + 1}")
    graphdef, _ = create(cfg.policy, jax.random.PRNGKey(0))
    P = cfg.periods_per_year

    def sample_window(key: jax.Array) -> MarketArrays:
        k_start, k_assets = jax.random.split(key)
        start = jax.random.randint(k_start, (), 0, T - span + 1)
        idx = jax.random.permutation(k_assets, N)[:k]
        per_asset = lambda x: jax.lax.dynamic_slice_in_dim(x, start, span, 0)[:, idx]  # noqa: E731
        return MarketArrays(
            features=per_asset(train_arrays.features), high=per_asset(train_arrays.high),
            low=per_asset(train_arrays.low), close=per_asset(train_arrays.close),
            tradable=per_asset(train_arrays.tradable),
            days_elapsed=jax.lax.dynamic_slice_in_dim(train_arrays.days_elapsed, start, span, 0),
            valid=per_asset(train_arrays.valid), is_crypto=train_arrays.is_crypto[idx],
        )

    def window_returns(params, hp: HParams, key: jax.Array):
        win = sample_window(key)
        mp = market_params(hp, win.is_crypto, cfg.fill, cfg.interest, cfg.margin_call)
        _, infos = simulate_policy(graphdef, params, win, mp, L, cfg.initial_cash)
        return infos.returns, path_metrics(infos, P)

    def batch_loss(params, hp: HParams, key: jax.Array):
        returns, metrics = jax.vmap(window_returns, in_axes=(None, None, 0))(
            params, hp, jax.random.split(key, cfg.batch_size))  # (B, W)
        if cfg.pool_batch:
            value = evaluate_returns(returns.reshape(-1), cfg.objective, P, hp.return_weight)
        else:
            value = jnp.mean(evaluate_returns(returns, cfg.objective, P, hp.return_weight))
        metrics = jax.tree_util.tree_map(jnp.mean, metrics)
        return -value, dict(metrics, objective=value)

    def update(ts: TrainState, hp: HParams) -> tuple[TrainState, dict]:
        key, sub = jax.random.split(ts.key)
        (loss, metrics), grads = jax.value_and_grad(batch_loss, has_aux=True)(ts.params, hp, sub)
        opt = make_optimizer(cfg, hp)
        updates, opt_state = opt.update(grads, ts.opt_state, ts.params)
        params = optax.apply_updates(ts.params, updates)
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads),
                       learning_rate=opt_state[1].hyperparams["learning_rate"])
        return ts._replace(params=params, opt_state=opt_state, key=key, step=ts.step + 1), metrics

    def evaluate(params, hp: HParams) -> dict:
        mp = market_params(hp, val_arrays.is_crypto, "hard", cfg.interest, cfg.margin_call)
        _, infos = simulate_policy(graphdef, params, val_arrays, mp, L, cfg.initial_cash)
        score = evaluate_returns(infos.returns, cfg.objective, P, hp.return_weight)
        return dict(path_metrics(infos, P), score=score)

    def init(key: jax.Array, hp: HParams) -> TrainState:
        k_init, k_run = jax.random.split(key)
        _, params = create(cfg.policy, k_init)
        return TrainState(params=params, opt_state=make_optimizer(cfg, hp).init(params), key=k_run,
                          step=jnp.zeros((), jnp.int32), best_params=params,
                          best_score=jnp.array(-jnp.inf, jnp.float32))

    def chunk(ts: TrainState, hp: HParams) -> tuple[TrainState, dict]:
        ts, train_metrics = jax.lax.scan(lambda s, _: update(s, hp), ts, None, length=cfg.eval_every)
        val = evaluate(ts.params, hp)
        better = val["score"] > ts.best_score
        best = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), ts.params, ts.best_params)
        ts = ts._replace(best_params=best, best_score=jnp.where(better, val["score"], ts.best_score))
        return ts, {"train": train_metrics, "val": val, "step": ts.step}

    def train(key: jax.Array, hp: HParams) -> tuple[TrainState, dict]:
        ts = init(key, hp)
        return jax.lax.scan(lambda s, _: chunk(s, hp), ts, None, length=cfg.n_evals)

    return Trainer(graphdef=graphdef, loss=batch_loss, init=init, chunk=chunk, evaluate=evaluate, train=train)


def context_split(arrays: MarketArrays, start: int, stop: int, lookback: int) -> MarketArrays:
    """Rows `start:stop` with `lookback` rows of encoder context before `start` (clipped at row 0)."""
    return arrays.rows(max(start - lookback, 0), stop)
