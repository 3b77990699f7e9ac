"""Seed ensembles: K policies of one configuration, trained apart, deciding together.

The ensemble's book is the mean of its members' target weights (each inside the book vol cap and the initial
margin, so their mean is too), traded through the members' no-trade band. Averaging K independently trained
cross-sections keeps what they agree on and shrinks what is particular to one seed. It is an `nnx.Module` with the
policy's `encode`/`decide` interface, so what simulates a policy from its `nnx.split` graph and parameters
(`sim.simulate_policy`, `runs.evaluate.held_out`) runs an ensemble unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ndjax.dynamics import Action
from ndjax.errors import ConfigError
from ndjax.observation import Observation
from ndjax.policy import Policy, orders


class Ensemble(nnx.Module):
    """Policies of one `PolicyConfig` whose target weights are averaged."""

    def __init__(self, members: Sequence[Policy]):
        if not members:
            raise ConfigError("Ensemble: needs at least one member policy")
        configs = {m.cfg for m in members}
        if len(configs) != 1:
            raise ConfigError(f"Ensemble: the members' policy configurations differ ({len(configs)} distinct); an "
                              "ensemble averages policies of one configuration")
        self.cfg = members[0].cfg
        self.members = nnx.List(list(members))

    def encode(self, features: jax.Array, valid: jax.Array | None = None) -> jax.Array:
        """Every member's market rows side by side.  features (T, N, F), valid (T, N) -> (T, N, K·E), E the width
        of one member's `Policy.encode`."""
        return jnp.concatenate([m.encode(features, valid) for m in self.members], axis=-1)

    def target_weights(self, obs: Observation) -> jax.Array:
        """The mean of the members' `Policy.target_weights`, each reading its own slice of `obs.market`. (..., N)"""
        width = obs.market.shape[-1] // len(self.members)
        weights = [m.target_weights(obs.replace(market=obs.market[..., k * width:(k + 1) * width]))
                   for k, m in enumerate(self.members)]
        return jnp.mean(jnp.stack(weights), axis=0)

    def decide(self, obs: Observation) -> Action:
        """Limit orders toward the mean target weights, through the members' no-trade band."""
        return orders(self.target_weights(obs), obs, self.cfg.band)


def ensemble(graphdef: nnx.GraphDef, params: Sequence[Any]) -> tuple[nnx.GraphDef, nnx.State]:
    """The split `Ensemble` of the policies `nnx.merge(graphdef, p)` for each parameter pytree in `params`."""
    return nnx.split(Ensemble([nnx.merge(graphdef, p) for p in params]))
