"""Sweeps and scale: `Trainer.train` vmapped over seeds and numeric hyperparameters, sharded over devices.

A sweep is K runs of one `Trainer` (same static `TrainConfig`, same data) that differ only in their
PRNG key and their traced `HParams` (learning rate, return weight, maker fee, leverage caps, leverage
interest rate, fill temperature). `jax.vmap(trainer.train)` turns the K runs into one program whose
leaves carry a leading K axis; this module shards that K axis over a 1-D `Mesh` of all devices.

    hps = grid(learning_rate=[1e-3, 3e-3], maker_fee=[0.0, 0.0008])   # HParams with (4,) leaves
    keys, hps, seeds = with_seeds(hps, seeds=[0, 1])                  # K = 8: every config x every seed
    state, metrics = sweep(trainer, keys, hps)                        # leaves (K, ...)
    rows = leaderboard(hps, seeds, metrics)                            # best validation eval, best first

Padding: a sharded axis must be a multiple of the device count (and `sweep` runs K in compiled
chunks of `max_parallel`), so K (or the simulation batch B) is padded by repeating its last entry
and the outputs are trimmed back; padded runs cost compute but never change the real ones. The same
code runs on 1 device (a mesh of one) or many; one program is compiled per (trainer, chunk size, mesh).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ndjax.errors import ConfigError
from ndjax.train.config import HParams
from ndjax.train.sharding import (
    AXIS,
    n_shards,
    pad_axis,
    resolve_mesh,
    round_up,
    to_host,
    trim_axis,
)
from ndjax.train.trainer import Trainer, TrainState

HPARAM_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(HParams))
LOG_SCALE: frozenset[str] = frozenset({"learning_rate", "fill_temperature"})
"""`random_search` draws these log-uniformly (when the range is positive)."""

VAL_COLUMNS: tuple[str, ...] = ("score", "sortino", "total_return", "max_drawdown", "mean_leverage")



def _as_hparams(base: HParams | None, values: Mapping[str, Any]) -> HParams:
    unknown = set(values) - set(HPARAM_NAMES)
    if unknown:
        raise ConfigError(f"unknown HParams fields {sorted(unknown)}; expected some of {HPARAM_NAMES}")
    return (base or HParams()).replace(**values)


def stack_hparams(hparams: Sequence[HParams]) -> HParams:
    """One `HParams` whose every field is a float32 array `(K,)`, from K scalar `HParams`."""
    if not hparams:
        raise ConfigError("stack_hparams: need at least one HParams")
    for h in hparams:
        h.check()
    return HParams(**{name: jnp.asarray(np.array([float(getattr(h, name)) for h in hparams], np.float32))
                      for name in HPARAM_NAMES})


def unstack_hparams(hparams: HParams) -> list[HParams]:
    """The K scalar `HParams` (Python floats) of a stacked `HParams`."""
    cols = {name: np.asarray(getattr(hparams, name), np.float64).reshape(-1) for name in HPARAM_NAMES}
    k = sweep_size(hparams)
    return [HParams(**{name: float(np.broadcast_to(c, (k,))[i]) for name, c in cols.items()}) for i in range(k)]


def sweep_size(hparams: HParams) -> int:
    """K of a stacked `HParams` (1 for scalar fields)."""
    sizes = {int(np.size(getattr(hparams, n))) for n in HPARAM_NAMES} - {1}
    if len(sizes) > 1:
        raise ConfigError(f"HParams fields have different sweep sizes {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def broadcast_hparams(hparams: HParams, k: int | None = None) -> HParams:
    """Every field as float32 `(K,)` (scalars repeated), `K = sweep_size` unless given."""
    k = sweep_size(hparams) if k is None else k
    return HParams(**{n: jnp.broadcast_to(jnp.asarray(getattr(hparams, n), jnp.float32).reshape(-1), (k,))
                      for n in HPARAM_NAMES})


def grid(base: HParams | None = None, **values: Iterable[float]) -> HParams:
    """The Cartesian product of the given field values (first keyword varies slowest), stacked `(K,)`;
    the other fields come from `base` (default `HParams()`).

    `grid(learning_rate=[1e-3, 3e-3], maker_fee=[0.0, 8e-4])` has K = 4.
    """
    names = list(values)
    combos = list(itertools.product(*(list(values[n]) for n in names))) if names else [()]
    return stack_hparams([_as_hparams(base, dict(zip(names, c))) for c in combos])


def random_search(key: jax.Array, n: int, base: HParams | None = None, *, log: Iterable[str] | None = None,
                  **ranges: Any) -> HParams:
    """`n` configurations, stacked `(n,)`: each keyword is a `(low, high)` range drawn uniformly (log-uniformly
    for fields in `log`, default `LOG_SCALE`, when `low > 0`) or a list of choices drawn uniformly.
    Other fields come from `base`."""
    log = LOG_SCALE if log is None else frozenset(log)
    cols: dict[str, np.ndarray] = {}
    for name, key_i in zip(ranges, jax.random.split(key, max(len(ranges), 1))):
        spec = ranges[name]
        if isinstance(spec, tuple) and len(spec) == 2:
            lo, hi = float(spec[0]), float(spec[1])
            u = np.asarray(jax.random.uniform(key_i, (n,), jnp.float32), np.float64)
            if name in log and lo > 0:
                cols[name] = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
            else:
                cols[name] = lo + u * (hi - lo)
        else:
            choices = np.asarray(list(spec), np.float64)
            cols[name] = choices[np.asarray(jax.random.randint(key_i, (n,), 0, len(choices)))]
    return stack_hparams([_as_hparams(base, {k: float(v[i]) for k, v in cols.items()}) for i in range(n)])


def with_seeds(hparams: HParams, seeds: Sequence[int]) -> tuple[jax.Array, HParams, np.ndarray]:
    """Every configuration with every seed (seed varies fastest): `(keys (K, 2), hparams (K,), seeds (K,))`
    with `K = len(seeds) * sweep_size(hparams)`."""
    k = sweep_size(hparams)
    hp = broadcast_hparams(hparams, k)
    s = np.asarray(list(seeds), np.int64)
    hp = jax.tree_util.tree_map(lambda x: jnp.repeat(x, len(s)), hp)
    seed_col = np.tile(s, k)
    return seed_keys(seed_col), hp, seed_col


def seed_keys(seeds: Sequence[int]) -> jax.Array:
    """Raw uint32 keys `(K, 2)`, `jax.random.PRNGKey(seed)` each (what a single `trainer.train` call takes)."""
    return jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])


# --------------------------------------------------------------------------------------------- sweeping


def shard_sweep(keys: jax.Array, hparams: HParams, mesh: Mesh | None = None,
                size: int | None = None) -> tuple[jax.Array, HParams, int]:
    """Pad keys `(K, 2)` and hparams `(K,)` to `size` (default: K rounded up to a multiple of the device
    count) by repeating the last run, and place them split over the mesh axis.
    Returns `(keys, hparams, K)`; trim outputs back to K with `trim_axis`."""
    mesh = resolve_mesh(mesh)
    k = int(keys.shape[0])
    if sweep_size(hparams) not in (1, k):
        raise ConfigError(f"shard_sweep: {k} keys but hparams of sweep size {sweep_size(hparams)}")
    size = round_up(k, n_shards(mesh)) if size is None else size
    if size % n_shards(mesh):
        raise ConfigError(f"shard_sweep: size {size} is not a multiple of the {n_shards(mesh)} devices")
    sharding = NamedSharding(mesh, P(AXIS))
    keys, hparams = pad_axis((jnp.asarray(keys), broadcast_hparams(hparams, k)), size)
    return jax.device_put(keys, sharding), jax.device_put(hparams, sharding), k


@functools.lru_cache(maxsize=64)
def _vmapped_train(train: Callable, mesh: Mesh) -> Callable:
    sharding = NamedSharding(mesh, P(AXIS))
    return jax.jit(jax.vmap(train), in_shardings=(sharding, sharding), out_shardings=sharding)


def sweep_fn(trainer: Trainer, mesh: Mesh | None = None) -> Callable[[jax.Array, HParams], tuple[TrainState, dict]]:
    """The jitted `vmap(trainer.train)` with the K axis split over `mesh` (cached per trainer and mesh).
    K of its inputs must be a multiple of the device count; `sweep` handles that for you."""
    return _vmapped_train(trainer.train, resolve_mesh(mesh))


def sweep(
    trainer: Trainer,
    keys: jax.Array,
    hparams: HParams,
    mesh: Mesh | None = None,
    *,
    max_parallel: int | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> tuple[TrainState, dict]:
    """K independent runs of `trainer.train(keys[i], hparams[i])` as one vmapped, sharded program.

    `keys (K, 2)` raw keys, `hparams` with `(K,)` (or scalar, shared) fields. Returns `(TrainState, metrics)`
    with a leading K axis on every leaf, equal to K separate `trainer.train` calls.

    `max_parallel` runs at most that many configurations per call (rounded up to a multiple of the device
    count), in ceil(K / chunk) calls of one compiled program; the last chunk is padded. `progress(done, K,
    metrics_of_chunk)` is called on the host after each chunk.
    """
    mesh = resolve_mesh(mesh)
    keys = jnp.asarray(keys)
    k = int(keys.shape[0])
    hparams = broadcast_hparams(hparams, k)
    d = n_shards(mesh)
    chunk = round_up(min(max_parallel or k, k), d)
    total = round_up(k, chunk)
    keys_p, hp_p = pad_axis((keys, hparams), total)
    run = sweep_fn(trainer, mesh)
    outs = []
    for start in range(0, total, chunk):
        sl = lambda x: x[start:start + chunk]  # noqa: E731
        ks, hs, _ = shard_sweep(sl(keys_p), jax.tree_util.tree_map(sl, hp_p), mesh, size=chunk)
        out = run(ks, hs)
        outs.append(out)
        if progress is not None:
            jax.block_until_ready(out)
            done = min(start + chunk, k)
            progress(done, k, trim_axis(out[1], done - start) if done - start < chunk else out[1])
    out = outs[0] if len(outs) == 1 else jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *outs)
    return trim_axis(out, k)


def best_validation(metrics: dict) -> dict[str, np.ndarray]:
    """Validation metrics `(K,)` of each run's best evaluation (highest hard-fill `score`, first one on ties,
    as `TrainState.best_params` keeps), plus `best_step` and `best_eval` (index). NaN scores never win;
    a run whose every score is NaN reports its first evaluation."""
    metrics = to_host({"val": metrics["val"], "step": metrics["step"]})
    val = metrics["val"]
    score = val["score"]  # (K, n_evals)
    ranked = np.where(np.isnan(score), -np.inf, score)
    idx = np.argmax(ranked, axis=-1)
    out = {k: np.take_along_axis(v.reshape(v.shape[0], v.shape[1], -1), idx[:, None, None], 1)[:, 0].reshape(
        (v.shape[0],) + v.shape[2:]) for k, v in val.items()}
    out["best_step"] = np.take_along_axis(np.asarray(metrics["step"]), idx[:, None], 1)[:, 0]
    out["best_eval"] = idx
    return out


def _short(x: Any) -> float:
    """A float32 value as the shortest float that round-trips it (0.01, not 0.009999999776)."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-"))


def leaderboard(hparams: HParams, seeds: Sequence[int], metrics: dict, *, sort_by: str = "score") -> list[dict]:
    """One row per run, best `sort_by` first (NaN last): `rank, run, seed`, the hyperparameters, and the hard-fill
    validation metrics of the run's best evaluation (`best_validation`)."""
    best = best_validation(metrics)
    k = best["score"].shape[0]
    hp = broadcast_hparams(hparams, k)
    rows = []
    for i in range(k):
        row: dict[str, Any] = {"run": i, "seed": int(np.asarray(seeds)[i])}
        row.update({n: _short(getattr(hp, n)[i]) for n in HPARAM_NAMES})
        row.update({c: _short(best[c][i]) for c in VAL_COLUMNS})
        row["best_step"] = int(best["best_step"][i])
        rows.append(row)
    rows.sort(key=lambda r: (math.isnan(r[sort_by]), -r[sort_by] if not math.isnan(r[sort_by]) else 0.0))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return [{"rank": r["rank"], **{k: v for k, v in r.items() if k != "rank"}} for r in rows]


def varied_hparams(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The hyperparameters that differ between leaderboard rows (the columns worth printing)."""
    return [n for n in HPARAM_NAMES if len({r[n] for r in rows}) > 1]
