"""Training: a whole run is one pure function, `make_train(config, train, val)(key, hparams)`.

Updates run inside `lax.scan`. Each update samples a batch of random windows over random asset subsets
(one shared-cash account per window, its normalised features blurred by `HParams.feature_noise` Gaussian noise,
a regulariser against fitting the training days' noise; not the vol forecast a risk-budget head divides by),
rolls the policy through the one transition (`sim.simulate_policy`, `ste` fills by default) and ascends
`loss.evaluate_returns` of the batch's pooled daily returns: the same objective function the simulator's returns
are scored with (a mean of per-window Sortino ratios would reward windows that happen to hold no losing day).
Every `eval_every` updates the policy is simulated on the validation period with `hard` fills, the honest figure,
and the best parameters so far are kept.
Metrics come back from the scans; numeric hyperparameters are traced so runs `vmap` over seeds and them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ndjax.data.arrays import MarketArrays, drift_free, drifted, sample_window
from ndjax.data.features import ANNUAL_VOL
from ndjax.errors import ConfigError
from ndjax.loss import evaluate_returns, evaluate_sums
from ndjax.metrics import path_stats
from ndjax.policy import create
from ndjax.sim import simulate_policy, simulate_policy_sums
from ndjax.stats_scan import finish_path
from ndjax.train.config import HParams, TrainConfig, market_params, objective_weights


class TrainState(NamedTuple):
    """Everything a run carries between updates (a checkpoint is exactly this)."""

    params: Any
    opt_state: Any
    key: jax.Array  # raw uint32 key
    step: jax.Array
    best_params: Any
    best_score: jax.Array


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


class AnchorState(NamedTuple):
    """`anchor_decay`'s state: the update count and the parameters the decay pulls toward."""

    count: jax.Array
    anchor: Any


def anchor_decay(rate: float, schedule: Callable[[jax.Array], jax.Array]) -> optax.GradientTransformation:
    """Decoupled decay toward the parameters the optimiser was initialised with (L2-SP, Li, Grandvalet and Davoine
    2018): adds `-schedule(count) * rate * (params - anchor)` to the updates, so a weight moves from its start only
    as far as the objective's gradient keeps paying for it."""

    def init(params: Any) -> AnchorState:
        return AnchorState(count=jnp.zeros((), jnp.int32), anchor=params)

    def update(updates: Any, state: AnchorState, params: Any) -> tuple[Any, AnchorState]:
        pull = schedule(state.count) * rate
        updates = jax.tree_util.tree_map(lambda u, p, a: u - pull * (p - a), updates, params, state.anchor)
        return updates, state._replace(count=state.count + 1)

    return optax.GradientTransformation(init, update)


def make_optimizer(cfg: TrainConfig, hp: HParams) -> optax.GradientTransformation:
    """Clipped AdamW with the learning rate injected from `lr_schedule` (so it is logged and vmappable), then
    `anchor_decay` when `cfg.anchor_decay` is set."""
    schedule = lr_schedule(cfg, hp.learning_rate)
    parts = [optax.clip_by_global_norm(cfg.grad_clip),
             optax.inject_hyperparams(optax.adamw)(learning_rate=schedule, weight_decay=cfg.weight_decay)]
    if cfg.anchor_decay:
        parts.append(anchor_decay(cfg.anchor_decay, schedule))
    return optax.chain(*parts)


def init_train_state(cfg: TrainConfig, hp: HParams, key: jax.Array) -> TrainState:
    """A fresh run: new policy parameters from `key`, a fresh optimiser, step 0."""
    k_init, k_run = jax.random.split(key)
    _, params = create(cfg.policy, k_init)
    return TrainState(params=params, opt_state=make_optimizer(cfg, hp).init(params), key=k_run,
                      step=jnp.zeros((), jnp.int32), best_params=params, best_score=jnp.array(-jnp.inf, jnp.float32))


def make_template(cfg: TrainConfig, hp: HParams) -> tuple[nnx.GraphDef, TrainState]:
    """The policy graph and a `TrainState` with the layout checkpoints of this configuration have."""
    graphdef, _ = create(cfg.policy, jax.random.PRNGKey(0))
    return graphdef, init_train_state(cfg, hp, jax.random.PRNGKey(0))


TRAIN_METRICS = ("sortino", "total_return", "max_drawdown", "mean_leverage", "max_leverage", "total_leverage_cost",
                 "total_fees", "buy_fill_rate", "sell_fill_rate", "margin_calls")
"""The `PathStats` fields a run logs per update (training windows) and per validation."""


def path_metrics(infos: Any, periods_per_year: float) -> dict[str, jax.Array]:
    """The `TRAIN_METRICS` of `metrics.path_stats` per path, from `StepInfo` with time on axis 0."""
    stats = path_stats(infos, periods_per_year)
    return {name: getattr(stats, name) for name in TRAIN_METRICS}


@dataclass(frozen=True)
class Trainer:
    """The pieces of a run. `train(key, hparams)` is the whole run as one pure function; `loss(params, hparams, key)`
    is the negated objective of one sampled batch; `init` and `chunk` (eval_every updates then one validation)
    let a host loop checkpoint between chunks; `validate(params, hparams)` the validation metrics and score."""

    graphdef: nnx.GraphDef
    loss: Callable[[Any, HParams, jax.Array], tuple[jax.Array, dict]]
    init: Callable[[jax.Array, HParams], TrainState]
    chunk: Callable[[TrainState, HParams], tuple[TrainState, dict]]
    train: Callable[[jax.Array, HParams], tuple[TrainState, dict]]
    validate: Callable[[Any, HParams], dict]


def make_train(cfg: TrainConfig, train_arrays: MarketArrays, val_arrays: MarketArrays) -> Trainer:
    """Build the run. `val_arrays` must include `cfg.policy.context` rows of context before the
    validation period (see `context_split`)."""
    L, W = cfg.policy.context, cfg.window
    span = L + W + 1
    N = train_arrays.close.shape[1]
    T = train_arrays.n_days
    k = cfg.n_assets or N
    if span > T:
        raise ConfigError(f"TrainConfig.window: lookback {L} + window {W} + 1 = {span} rows exceed the {T} "
                         "training rows")
    if not 1 <= k <= N:
        raise ConfigError(f"TrainConfig.n_assets: {k} not in [1, {N}]")
    if val_arrays.n_days <= L + 1:
        raise ConfigError(f"validation period: {val_arrays.n_days} rows, need more than lookback + 1 = {L + 1}")
    graphdef, _ = create(cfg.policy, jax.random.PRNGKey(0))
    P = cfg.periods_per_year
    if cfg.drift_free:
        train_arrays = drift_free(train_arrays)

    def window_returns(params, hp: HParams, key: jax.Array):
        k_window, k_noise = jax.random.split(key)
        win = sample_window(train_arrays, k_window, span, k)
        noise = jax.random.normal(k_noise, win.features.shape, win.features.dtype)
        if cfg.policy.reads_vol:  # the head's vol forecast is a scale, not an input to blur
            noise = noise * jnp.asarray([name != ANNUAL_VOL for name in cfg.policy.feature_names], noise.dtype)
        win = win.replace(features=win.features + hp.feature_noise * noise)
        win = drifted(win, hp.drift_sd * jax.random.normal(jax.random.fold_in(key, 1), (k,), win.close.dtype))
        mp = market_params(hp, win.is_crypto, cfg.fill, cfg.interest, cfg.margin_call)
        _, infos = simulate_policy(graphdef, params, win, mp, L, cfg.initial_cash)
        return infos.returns, path_metrics(infos, P)

    def batch_loss(params, hp: HParams, key: jax.Array):
        returns, metrics = jax.vmap(window_returns, in_axes=(None, None, 0))(
            params, hp, jax.random.split(key, cfg.batch_size))  # (B, W)
        if cfg.pool_batch:
            value = evaluate_returns(returns.reshape(-1), cfg.objective, P, **objective_weights(hp))
        else:
            value = jnp.mean(evaluate_returns(returns, cfg.objective, P, **objective_weights(hp)))
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

    def validate(params, hp: HParams) -> dict:
        # summary-only: the scan carries the running sums; the score is the objective of the validation
        # returns bit for bit (`evaluate_sums` of the sums `return_sums` would fold over them)
        mp = market_params(hp, val_arrays.is_crypto, "hard", cfg.interest, cfg.margin_call)
        sums = simulate_policy_sums(graphdef, params, val_arrays, mp, L, cfg.initial_cash)
        score = evaluate_sums(sums.returns, cfg.objective, P, **objective_weights(hp))
        stats = finish_path(sums, P)
        return dict({name: getattr(stats, name) for name in TRAIN_METRICS}, score=score)

    def init(key: jax.Array, hp: HParams) -> TrainState:
        ts = init_train_state(cfg, hp, key)
        if cfg.prior_checkpoint:  # the start competes with every later validation
            ts = ts._replace(best_score=validate(ts.params, hp)["score"])
        return ts

    def chunk(ts: TrainState, hp: HParams) -> tuple[TrainState, dict]:
        ts, train_metrics = jax.lax.scan(lambda s, _: update(s, hp), ts, None, length=cfg.eval_every)
        val = validate(ts.params, hp)
        better = val["score"] > ts.best_score
        best = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), ts.params, ts.best_params)
        ts = ts._replace(best_params=best, best_score=jnp.where(better, val["score"], ts.best_score))
        return ts, {"train": train_metrics, "val": val, "step": ts.step}

    def train(key: jax.Array, hp: HParams) -> tuple[TrainState, dict]:
        ts = init(key, hp)
        return jax.lax.scan(lambda s, _: chunk(s, hp), ts, None, length=cfg.n_evals)

    return Trainer(graphdef=graphdef, loss=batch_loss, init=init, chunk=chunk, train=train, validate=validate)
