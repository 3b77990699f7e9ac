"""Sharding over devices: a 1-D mesh of every device, padding an axis to a multiple of the device count, the
simulator with its portfolio axis split over the mesh, and gathering results to the host.

The same code runs on one device (a mesh of one) or many, and across hosts after
`jax.distributed.initialize()`: `jax.devices()` then lists every host's devices.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ndjax.dynamics import Action, Bar, MarketParams, PortfolioState, StepInfo
from ndjax.errors import ConfigError
from ndjax.sim import simulate

AXIS = "devices"
"""Name of the one mesh axis; the sweep axis K and the simulation batch axis are split over it."""


def make_mesh(devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh named `AXIS` over `devices` (default: `jax.devices()`, every device of every process)."""
    devs = np.asarray(list(jax.devices() if devices is None else devices))
    return Mesh(devs, (AXIS,))


@functools.cache
def default_mesh() -> Mesh:
    return make_mesh()


def resolve_mesh(mesh: Mesh | None) -> Mesh:
    """`mesh`, or the default mesh of every device."""
    return default_mesh() if mesh is None else mesh


def n_shards(mesh: Mesh | None = None) -> int:
    return int(resolve_mesh(mesh).shape[AXIS])


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pad_axis(tree: Any, size: int, axis: int = 0) -> Any:
    """Pad every leaf of `tree` along `axis` to `size` by repeating its last entry (no-op if already `size`)."""

    def pad(x):
        if x is None:
            return None
        n = x.shape[axis]
        if n == size:
            return x
        if n > size or n == 0:
            raise ConfigError(f"pad_axis: cannot pad an axis of {n} to {size}")
        widths = [(0, 0)] * x.ndim
        widths[axis] = (0, size - n)
        return jnp.pad(jnp.asarray(x), widths, mode="edge")

    return jax.tree_util.tree_map(pad, tree)


def trim_axis(tree: Any, size: int, axis: int = 0) -> Any:
    """The first `size` entries of every leaf along `axis` (leaves already that long are left as they are)."""
    return jax.tree_util.tree_map(
        lambda x: x if x.shape[axis] == size else jax.lax.slice_in_dim(x, 0, size, axis=axis), tree)


def _sim_shardings(mesh: Mesh):
    batch0 = NamedSharding(mesh, P(AXIS))  # state leaves (B, ...)
    batch1 = NamedSharding(mesh, P(None, AXIS))  # time-major leaves (T, B, ...)
    return batch0, batch1, NamedSharding(mesh, P())


@functools.lru_cache(maxsize=16)
def _sharded_simulate(mesh: Mesh) -> Callable:
    batch0, batch1, rep = _sim_shardings(mesh)
    return jax.jit(lambda p, s, a, b: simulate(p, s, a, b), in_shardings=(rep, batch0, batch1, batch1),
                   out_shardings=(batch0, batch1))


def simulate_sharded(
    params: MarketParams, state0: PortfolioState, actions: Action, bars: Bar, mesh: Mesh | None = None,
) -> tuple[PortfolioState, StepInfo]:
    """`ndjax.sim.simulate` with the portfolio batch axis split over the devices of `mesh`.

    `state0` leaves are `(B, ...)`, `actions`/`bars` leaves `(T, B, ...)` (batch right after time);
    `params` is replicated (its numeric fields scalar or `(N,)`). B is padded to a multiple of the device
    count by repeating the last portfolio and trimmed from the outputs. Returns `(final_state (B, ...),
    infos (T, B, ...))`, the same numbers as `simulate`.
    """
    mesh = resolve_mesh(mesh)
    cash = jnp.asarray(state0.cash)
    if cash.ndim < 1:
        raise ConfigError("simulate_sharded: state0 needs a batch axis (cash of shape (B,))")
    b = int(cash.shape[0])
    size = round_up(b, n_shards(mesh))
    batch0, batch1, rep = _sim_shardings(mesh)
    state0 = jax.device_put(pad_axis(state0, size, 0), batch0)
    actions = jax.device_put(pad_axis(actions, size, 1), batch1)
    bars = jax.device_put(pad_axis(bars, size, 1), batch1)
    params = jax.device_put(params, rep)
    final, infos = _sharded_simulate(mesh)(params, state0, actions, bars)
    return trim_axis(final, b, 0), trim_axis(infos, b, 1)


def to_host(tree: Any) -> Any:
    """numpy copies of every leaf; arrays spread over several processes (`jax.distributed`) are gathered
    first (`multihost_utils.process_allgather`), so every process gets the whole sweep."""
    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(get, tree)
