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

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from flax import nnx

from ndjax.data.features import ANNUAL_VOL, FEATURE_SETS
from ndjax.dynamics import Action
from ndjax.errors import ConfigError
from ndjax.observation import BOOK_FEATURES, Observation, PolicyApply
from ndjax.targets import banded, book_vol_capped, project_budget, target_action


@dataclass(frozen=True)
class PolicyConfig:
    """Shape-setting policy choices (static).

    The head outputs, per asset, a target weight `w_cap * sigmoid(z + w_bias - log N)` (the position's value as a
    fraction of equity), N the number of assets in the observation (`w_per_asset`; without it the `- log N` is
    left out). At initialisation z = 0, so every asset starts at `w_cap * sigmoid(w_bias - log N)`, i.e.
    `w_cap / (N + 1)` at the default `w_bias = 0`: a starting gross of `w_cap * N / (N + 1)` (0.5x .. 1x) whatever
    the size of the universe (without `w_per_asset` the start is `N * w_cap * sigmoid(w_bias)`, 10x at 56 assets,
    cut to the margin limit). The per-asset cap stays `w_cap`. Targets are scaled down together when the book
    would need more than the initial margin allows; `targets.target_action` turns them into limit orders at the
    previous close.
    `pooled` also feeds the head the mean embedding over assets (cross-asset context). `features` names the
    `FEATURE_SETS` entry the encoder reads ("base": 20 bars back at most; "regime": also 60/120/250-bar returns,
    the drawdown from the year's high and vol against its norm; "regime_vol": also the raw annualised vol).
    With `vol_target > 0` the head is a risk budget: the weight is also multiplied by
    `min(vol_target / sigma, vol_scale_cap)`, sigma the asset's annualised vol forecast (the `log_annual_vol`
    feature, passed unchanged from the encoder's input to the head), so exposure falls when vol rises without
    the network having to learn it. With `book_vol_target > 0` all weights are then scaled down together so that
    `sum_i w_i sigma_i <= book_vol_target`: the book's vol forecast if every pair of assets moved together (an
    upper bound on it, and what a crash's correlations come close to), so the book as a whole cannot take more
    risk than the target however many assets the head likes. A binding cap leaves the book's overall scale
    without a gradient (scaling every weight up is undone by the cap), so with `learn_book_vol` the cap itself is a
    trained parameter, `exp(log_book_vol)` starting at `book_vol_target`: the objective sets the book's risk
    level from the training years. With `band > 0` an asset trades back to its target
    only when it is more than `band x max(target, held)` away from it (`targets.banded`, the classical rules'
    no-trade band): fewer small trades, which pay the fee and fill on the wrong side of a limit at the close.
    """

    model: str = field(default="mlp", metadata={"help": "policy encoder: mlp or transformer"})
    features: str = field(default="base", metadata={"help": "feature set the encoder reads: base (20 bars back at "
                                                     "most), regime (also 60/120/250-bar returns, drawdown, vol "
                                                     "ratio) or regime_vol (also the raw annual vol)"})
    d_model: int = field(default=8, metadata={"help": "embedding width"})
    n_heads: int = field(default=4, metadata={"help": "attention heads"})
    n_layers: int = field(default=1, metadata={"help": "encoder layers"})
    lookback: int = field(default=16, metadata={"help": "days of history the encoder reads"})
    hidden: int = field(default=16, metadata={"help": "hidden width of MLP blocks and the order head"})
    w_cap: float = field(default=1.0, metadata={
        "help": "largest target weight of one asset (the head's w_cap * sigmoid)"})
    w_bias: float = field(default=0.0, metadata={
        "help": "the head's starting logit: every asset starts at w_cap * sigmoid(w_bias - log N) (w_per_asset) "
                "or w_cap * sigmoid(w_bias)"})
    w_per_asset: bool = field(default=True, metadata={
        "help": "shift the head's logit by -log N, so the starting book is w_cap / (N + 1) per asset whatever the "
                "number of assets N"})
    pooled: bool = field(default=False, metadata={"help": "also feed the head the mean embedding over assets"})
    vol_target: float = field(default=0.0, metadata={"help": "risk-budget head: weight x min(vol_target / annual vol "
                                                       "forecast, vol_scale_cap); 0: off (needs regime_vol)"})
    vol_scale_cap: float = field(default=2.0, metadata={"help": "largest vol scaling of the risk-budget head"})
    book_vol_target: float = field(default=0.0, metadata={
        "help": "book vol cap: all weights scaled down together so that sum of weight x annual vol forecast (the "
                "book's vol if all assets moved together) <= this; 0: off (needs regime_vol)"})
    learn_book_vol: bool = field(default=False, metadata={
        "help": "make the book vol cap a trained parameter (its log), starting at book_vol_target: the objective "
                "sets the book's risk level, which a fixed binding cap leaves without a gradient"})
    band: float = field(default=0.0, metadata={
        "help": "no-trade band: an asset trades to its target only when more than band x max(target, held) away "
                "(entries and exits always); 0: off"})

    def __post_init__(self) -> None:
        if self.model not in ("transformer", "mlp"):
            raise ConfigError(f"PolicyConfig.model: unknown {self.model!r}; expected 'transformer' or 'mlp'")
        if self.features not in FEATURE_SETS:
            raise ConfigError(f"PolicyConfig.features: unknown {self.features!r}; expected one of "
                             f"{sorted(FEATURE_SETS)}")
        if self.vol_target < 0 or not self.vol_scale_cap > 0:
            raise ConfigError(f"PolicyConfig.vol_target: must be >= 0 with vol_scale_cap > 0, got {self.vol_target}, "
                             f"{self.vol_scale_cap}")
        if not 0 <= self.band < 1:
            raise ConfigError(f"PolicyConfig.band: must be in [0, 1), got {self.band}")
        if self.book_vol_target < 0:
            raise ConfigError(f"PolicyConfig.book_vol_target: must be >= 0, got {self.book_vol_target}")
        if self.learn_book_vol and not self.book_vol_target > 0:
            raise ConfigError("PolicyConfig.learn_book_vol: needs book_vol_target > 0 (its starting value)")
        for name in ("vol_target", "book_vol_target"):
            if getattr(self, name) > 0 and ANNUAL_VOL not in self.feature_names:
                raise ConfigError(f"PolicyConfig.{name}: the head then reads log_annual_vol, which the "
                                 f"{self.features!r} features do not have; use features='regime_vol'")
        if self.d_model % self.n_heads:
            raise ConfigError(f"PolicyConfig.d_model: {self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.lookback < 1:
            raise ConfigError(f"PolicyConfig.lookback: must be >= 1, got {self.lookback}")
        if not self.w_cap > 0:
            raise ConfigError(f"PolicyConfig.w_cap: must be > 0, got {self.w_cap}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features the encoder reads, in order."""
        return FEATURE_SETS[self.features]

    @property
    def reads_vol(self) -> bool:
        """Whether the head reads the raw `log_annual_vol` feature (a risk budget or a book vol cap)."""
        return self.vol_target > 0 or self.book_vol_target > 0

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def context(self) -> int:
        """Rows a decision reads, today's included: the transformer's receptive field `n_layers·(lookback−1)+1`
        (each layer looks `lookback − 1` rows further back), `lookback` for the MLP (which reads one row; the
        context only sets where decisions start)."""
        return self.n_layers * (self.lookback - 1) + 1 if self.model == "transformer" else self.lookback


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
    """Encoder (MLP or causal transformer) and a target-weight head decoded into limit orders."""

    def __init__(self, cfg: PolicyConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embed = nnx.Linear(cfg.n_features, cfg.d_model, rngs=rngs)
        if cfg.model == "transformer":
            self.layers = nnx.List([EncoderLayer(cfg, rngs=rngs) for _ in range(cfg.n_layers)])
        else:
            self.layers = nnx.List([FeedForward(cfg.d_model, cfg.hidden, rngs=rngs) for _ in range(cfg.n_layers)])
        self.norm = nnx.LayerNorm(cfg.d_model, rngs=rngs)
        width = (2 if cfg.pooled else 1) * cfg.d_model + BOOK_FEATURES
        self.head_in = nnx.Linear(width, cfg.hidden, rngs=rngs)
        self.head_out = nnx.Linear(cfg.hidden, 1, kernel_init=nnx.initializers.zeros, rngs=rngs)
        self.head_out.bias[...] = jnp.array([cfg.w_bias])
        if cfg.learn_book_vol:
            self.log_book_vol = nnx.Param(jnp.log(jnp.asarray(cfg.book_vol_target, jnp.float32)))

    def encode(self, features: jax.Array, valid: jax.Array | None = None) -> jax.Array:
        """Market embedding per day and asset.  features (T, N, F), valid (T, N) -> (T, N, D), or (T, N, D + 1)
        when the head reads the vol (`reads_vol`; the last column: the `log_annual_vol` feature as it came in)."""
        embedding = self._encode(features, valid)
        if self.cfg.reads_vol:
            vol = features[..., self.cfg.feature_names.index(ANNUAL_VOL), None]
            return jnp.concatenate([embedding, vol.astype(embedding.dtype)], axis=-1)
        return embedding

    def _encode(self, features: jax.Array, valid: jax.Array | None) -> jax.Array:
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

    def target_weights(self, obs: Observation) -> jax.Array:
        """The head's target weights `(..., N)` for the next bar, inside the book vol cap and the initial margin
        (before the no-trade band), from one observation: embedding row (N, D), book (N, 3), the margin rules."""
        market = obs.market[..., : self.cfg.d_model]
        parts = [market, obs.book]
        if self.cfg.pooled:
            parts.insert(1, jnp.broadcast_to(jnp.mean(market, axis=-2, keepdims=True), market.shape))
        z = self.head_out(jax.nn.gelu(self.head_in(jnp.concatenate(parts, axis=-1))))[..., 0]
        if self.cfg.w_per_asset:  # a static shift (the shape's N): equivariant, causal, the same for every asset
            z = z - jnp.log(jnp.asarray(z.shape[-1], z.dtype))
        weight = self.cfg.w_cap * jax.nn.sigmoid(z)
        sigma = jnp.exp(obs.market[..., self.cfg.d_model]) if self.cfg.reads_vol else None
        if self.cfg.vol_target > 0:
            weight = weight * jnp.minimum(self.cfg.vol_target / sigma, self.cfg.vol_scale_cap)
        if self.cfg.book_vol_target > 0:
            cap = jnp.exp(self.log_book_vol[...]) if self.cfg.learn_book_vol else self.cfg.book_vol_target
            weight = book_vol_capped(weight, sigma, cap)
        return project_budget(weight, obs.margin_rate)

    def decide(self, obs: Observation) -> Action:
        """Limit orders for the next bar from one observation: embedding row (N, D), book (N, 3), the marks and
        the margin rules (`observe(..., params)`)."""
        return orders(self.target_weights(obs), obs, self.cfg.band)


def orders(target: jax.Array, obs: Observation, band: float) -> Action:
    """The `Action` trading the book of `obs` toward `target (..., N)` through the no-trade `band` (0: none)."""
    if band > 0:
        target = banded(target, obs.book[..., 0], band)
    return target_action(target, obs, obs.margin_rate, obs.maker_fee)


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
