"""Flax NNX policies: a causal market encoder and a per-day order head.

A policy has two parts so that causality is structural and training is parallel:

- `encode(features (T, N, F), valid (T, N)) -> (T, N, D)`: row t of the embedding
  depends on feature rows <= t only (a banded causal mask over at most `lookback`
  days), and is permutation-equivariant over assets (no asset positions).
- `decide(Observation) -> Action`: inside the scan the action for bar t reads the embedding
  of row t-1 and the book after bar t-1, gathered by `observe` (`sim.rollout`).

Cross into jit/scan/vmap with `nnx.split` / `nnx.merge`: `make_apply` below returns a function of
the plain parameter pytree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx, struct

from ndjax.data.features import FEATURE_NAMES
from ndjax.dynamics import Action, PortfolioState

BOOK_FEATURES = 3  # position weight, cash fraction, gross leverage
BOOK_BOUND = 10.0  # book features are clipped to +-this (a nearly bust account has huge ratios)


@struct.dataclass
class Observation:
    """What a policy sees before deciding bar t, all from bars up to t-1.

    `market (..., N, D)`: one causal row per asset (an embedding, features, or a rule's inputs);
    `book (..., N, BOOK_FEATURES)`: position weight, cash fraction and gross leverage of the book after t-1
    (0 where equity <= 0); `mark (..., N)`: the previous close, the price limits are set against.
    """

    market: jax.Array
    book: jax.Array
    mark: jax.Array


def observe(market: jax.Array, state: PortfolioState) -> Observation:
    """The `Observation` of a market row `(..., N, D)` and the book `state` after the previous bar."""
    value = state.inventory * state.mark
    equity = state.cash + jnp.sum(value, axis=-1)
    solvent = equity > 0
    safe = jnp.where(solvent, equity, 1.0)
    bounded = lambda x: jnp.clip(jnp.where(solvent[..., None], x, 0.0), -BOOK_BOUND, BOOK_BOUND)  # noqa: E731
    weight = bounded(value / safe[..., None])
    cash = jnp.broadcast_to(bounded((state.cash / safe)[..., None]), weight.shape)
    gross = jnp.broadcast_to(bounded((jnp.sum(value, axis=-1) / safe)[..., None]), weight.shape)
    return Observation(market=market, book=jnp.stack([weight, cash, gross], axis=-1).astype(market.dtype),
                       mark=state.mark)


PolicyApply = Callable[[Any, Observation], Action]
"""`apply(policy_params, observation) -> Action`, called inside the rollout's scan."""


@dataclass(frozen=True)
class PolicyConfig:
    """Shape-setting policy choices (static)."""

    model: str = "mlp"  # "mlp" | "transformer"
    n_features: int = len(FEATURE_NAMES)
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 1
    lookback: int = 16
    hidden: int = 64
    offset: float = 0.025
    min_gap: float = 0.0005

    def __post_init__(self) -> None:
        if self.model not in ("transformer", "mlp"):
            raise ValueError(f"PolicyConfig.model: unknown {self.model!r}; expected 'transformer' or 'mlp'")
        if self.d_model % self.n_heads:
            raise ValueError(f"PolicyConfig.d_model: {self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.lookback < 1:
            raise ValueError(f"PolicyConfig.lookback: must be >= 1, got {self.lookback}")
        if not 0 < self.offset < 0.5:
            raise ValueError(f"PolicyConfig.offset: must be in (0, 0.5), got {self.offset}")


def _attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, n_heads: int) -> jax.Array:
    """Masked multi-head attention over axis -2.  q, k, v: (..., L, D); mask (..., L, L) or broadcastable."""
    *lead, length, d = q.shape
    split = lambda x: x.reshape(*x.shape[:-1], n_heads, d // n_heads)  # noqa: E731
    qh, kh, vh = split(q), split(k), split(v)
    logits = jnp.einsum("...qhd,...khd->...hqk", qh, kh) / jnp.sqrt(d // n_heads).astype(q.dtype)
    logits = jnp.where(mask[..., None, :, :], logits, jnp.finfo(q.dtype).min)
    weights = jax.nn.softmax(logits, axis=-1)
    weights = jnp.where(mask[..., None, :, :], weights, 0)
    return jnp.einsum("...hqk,...khd->...qhd", weights, vh).reshape(*lead, length, d)


class SelfAttention(nnx.Module):
    """Pre-norm residual self-attention block over axis -2 with a boolean mask."""

    def __init__(self, d: int, n_heads: int, *, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.qkv = nnx.Linear(d, 3 * d, rngs=rngs)
        self.out = nnx.Linear(d, d, rngs=rngs)
        self.n_heads = n_heads

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        q, k, v = jnp.split(self.qkv(self.norm(x)), 3, axis=-1)
        return x + self.out(_attention(q, k, v, mask, self.n_heads))


class FeedForward(nnx.Module):
    """Pre-norm residual MLP block."""

    def __init__(self, d: int, hidden: int, *, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.up = nnx.Linear(d, hidden, rngs=rngs)
        self.down = nnx.Linear(hidden, d, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x + self.down(jax.nn.gelu(self.up(self.norm(x))))


class EncoderLayer(nnx.Module):
    """Causal attention over days (per asset), then attention across assets (per day), then an MLP."""

    def __init__(self, cfg: PolicyConfig, *, rngs: nnx.Rngs):
        self.time = SelfAttention(cfg.d_model, cfg.n_heads, rngs=rngs)
        self.assets = SelfAttention(cfg.d_model, cfg.n_heads, rngs=rngs)
        self.ff = FeedForward(cfg.d_model, cfg.hidden, rngs=rngs)

    def __call__(self, x: jax.Array, time_mask: jax.Array, asset_mask: jax.Array) -> jax.Array:
        # x: (T, N, D); time attention runs on (N, T, D)
        x = jnp.swapaxes(self.time(jnp.swapaxes(x, 0, 1), time_mask), 0, 1)
        x = self.assets(x, asset_mask)
        return self.ff(x)


def causal_band_mask(length: int, lookback: int) -> jax.Array:
    """(L, L) mask: position i attends to j with i - lookback < j <= i."""
    i = jnp.arange(length)[:, None]
    j = jnp.arange(length)[None, :]
    return (j <= i) & (j > i - lookback)


class Policy(nnx.Module):
    """Encoder (MLP or causal transformer) and an order head decoding to limit orders."""

    def __init__(self, cfg: PolicyConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = nnx.Linear(cfg.n_features, cfg.d_model, rngs=rngs)
        if cfg.model == "transformer":
            self.layers = nnx.List([EncoderLayer(cfg, rngs=rngs) for _ in range(cfg.n_layers)])
        else:
            self.layers = nnx.List([FeedForward(cfg.d_model, cfg.hidden, rngs=rngs) for _ in range(cfg.n_layers)])
        self.norm = nnx.LayerNorm(cfg.d_model, rngs=rngs)
        self.head_in = nnx.Linear(2 * cfg.d_model + BOOK_FEATURES, cfg.hidden, rngs=rngs)
        self.head_out = nnx.Linear(cfg.hidden, 4, kernel_init=nnx.initializers.zeros, rngs=rngs)
        # start with limits near the previous close (sigmoid(-2) ~ 0.12 of the band) so most orders fill
        # and the fractions get gradient from the first update
        self.head_out.bias[...] = jnp.array([-2.0, -2.0, 0.0, 0.0])

    def encode(self, features: jax.Array, valid: jax.Array | None = None) -> jax.Array:
        """Market embedding per day and asset.  features (T, N, F), valid (T, N) -> (T, N, D)."""
        x = self.embed(features)
        if valid is None:
            valid = jnp.ones(features.shape[:2], bool)
        valid = valid.astype(bool)
        if self.cfg.model == "transformer":
            time_mask = causal_band_mask(features.shape[0], self.cfg.lookback)  # (T, T), shared by assets
            asset_mask = valid[:, None, :] | jnp.eye(features.shape[1], dtype=bool)  # (T, N, N)
            for layer in self.layers:
                x = layer(x, time_mask, asset_mask)
        else:
            for layer in self.layers:
                x = layer(x)
        return self.norm(x)

    def decide(self, obs: Observation) -> Action:
        """Limit orders for the next bar from one observation: embedding row (N, D), book (N, 3), mark (N,)."""
        embedding = obs.market
        pooled = jnp.broadcast_to(jnp.mean(embedding, axis=-2, keepdims=True), embedding.shape)
        h = jax.nn.gelu(self.head_in(jnp.concatenate([embedding, pooled, obs.book], axis=-1)))
        return decode_action(self.head_out(h), obs.mark, self.cfg.offset, self.cfg.min_gap)


def decode_action(z: jax.Array, ref: jax.Array, offset: float, min_gap: float) -> Action:
    """Raw head outputs (..., N, 4) to limits: buy in [ref(1-2o), ref], sell in [ref, ref(1+2o)],
    sell >= buy (1 + min_gap), fractions by sigmoid."""
    buy = ref * (1 - 2 * offset * jax.nn.sigmoid(z[..., 0]))
    sell = ref * (1 + 2 * offset * jax.nn.sigmoid(z[..., 1]))
    sell = jnp.maximum(sell, buy * (1 + min_gap))
    return Action(buy_price=buy, sell_price=sell, buy_frac=jax.nn.sigmoid(z[..., 2]),
                  sell_frac=jax.nn.sigmoid(z[..., 3]))


def create(cfg: PolicyConfig, key: jax.Array) -> tuple[nnx.GraphDef, nnx.State]:
    """A new policy split into its static graph and its parameter pytree."""
    return nnx.split(Policy(cfg, rngs=nnx.Rngs(key)))


def encode(graphdef: nnx.GraphDef, params: nnx.State, features: jax.Array, valid: jax.Array | None = None):
    """`Policy.encode` on a plain parameter pytree.  (T, N, F) -> (T, N, D)"""
    return nnx.merge(graphdef, params).encode(features, valid)


def make_apply(graphdef: nnx.GraphDef) -> PolicyApply:
    """A `sim.rollout`-compatible `apply(params, observation) -> Action` for this graph."""

    def apply(params: nnx.State, obs: Observation) -> Action:
        return nnx.merge(graphdef, params).decide(obs)

    return apply
