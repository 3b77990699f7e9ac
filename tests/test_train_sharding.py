"""Sharding: a sweep and the simulator split over four (forced) host devices give the single-device numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from ndjax.train.sharding import pad_axis, round_up, trim_axis

ROOT = Path(__file__).resolve().parents[1]


def test_pad_and_trim():
    x = {"a": jnp.arange(3.0), "b": jnp.arange(6.0).reshape(3, 2)}
    padded = pad_axis(x, 5)
    np.testing.assert_array_equal(padded["a"], [0, 1, 2, 2, 2])
    np.testing.assert_array_equal(trim_axis(padded, 3)["b"], x["b"])
    assert round_up(5, 4) == 8 and round_up(8, 4) == 8
    with pytest.raises(ValueError, match="pad"):
        pad_axis(x, 2)


CHILD = textwrap.dedent("""
    import os, json, sys
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np, chex
    assert jax.device_count() == 4, jax.devices()
    sys.path.insert(0, {root!r})
    from tests.helpers import sweep_trainer, assert_run_close
    from tests.helpers import path_to_jax, random_path
    from ndjax.train.sweep import sweep, grid, with_seeds
    from ndjax.train.sharding import simulate_sharded
    from ndjax.sim import simulate

    out = {{}}
    _, tr = sweep_trainer()
    one = jax.jit(tr.train)
    for k in (4, 3):  # 3 pads to 4 (same compiled program)
        keys, hp, _ = with_seeds(grid(learning_rate=np.geomspace(1e-3, 2e-2, k).tolist()), [5])
        state, metrics = sweep(tr, keys, hp)
        assert state.best_score.shape == (k,)
        if k == 4:
            leaves = jax.tree_util.tree_leaves((state, metrics))
            out["sweep_devices"] = sorted({{len(x.sharding.device_set) for x in leaves}})
            out["sweep_spec"] = str(state.best_score.sharding.spec)
        for i in range(k):  # each run equals its own single-device run
            h = jax.tree_util.tree_map(lambda x: x[i], hp)
            ref = jax.device_get(one(jax.device_put(keys[i], jax.devices()[0]), jax.device_put(h, jax.devices()[0])))
            assert_run_close(jax.tree_util.tree_map(lambda x: np.asarray(x)[i], (state, metrics)), ref)
    for b in (8, 6):  # 6 pads to 8
        params, state0, actions, bars = path_to_jax(random_path(0, T=24, batch=b))
        final, infos = simulate_sharded(params, state0, actions, bars)
        rf, ri = simulate(params, state0, actions, bars)
        if b == 8:
            out["sim_devices"] = sorted({{len(x.sharding.device_set)
                                          for x in jax.tree_util.tree_leaves((final, infos))}})
            out["sim_spec"] = str(infos.equity.sharding.spec)
        assert infos.equity.shape == (24, b) and final.cash.shape == (b,)
        chex.assert_trees_all_close((final, infos), (rf, ri), rtol=1e-6, atol=1e-6)
    print("RESULT" + json.dumps(out))
""")


def test_sharded_over_four_host_devices():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT))], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    out = json.loads(line[len("RESULT"):])
    assert out["sweep_devices"] == [4] and out["sim_devices"] == [4]
    assert "devices" in out["sweep_spec"] and "devices" in out["sim_spec"]
