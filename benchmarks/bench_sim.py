"""Benchmark `ndjax.sim.simulate` against what researchers use today.

Peers, each checked against ndjax's equity curves (tolerance printed) before it is timed:
  torch   the same transition as a PyTorch eager loop over bars (batched ops per bar); forward with
          hard fills, forward+backward of the Sortino objective with soft fills (vs ndjax jax.grad
          of `simulated_objective(..., name="sortino")`, fill="soft")
  vectorbt  `Portfolio.from_orders` (cash_sharing, one group per portfolio) replaying the fills
          ndjax decided; forward only. vectorbt has no margin or interest, so the fills come from
          an ndjax run with leverage caps 1.0, rate 0 and every asset a stock (cash never < 0)
  numpy   float64 NumPy loop over bars (`tests/reference.py`)
Workloads: (a) 32 accounts x 1 asset x 256 days, (b) 1024 x 16 x 256, (c) 1 x 16 x 2520.

Usage: python benchmarks/bench_sim.py [--quick] [--only a,b,c] [--skip torch,vectorbt,numpy]
Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from sim_peers import (  # noqa: E402
    Rules,
    Workload,
    make_workload,
    numpy_simulate,
    torch_inputs,
    torch_simulate,
    torch_sortino,
    vbt_equity,
    vbt_orders,
)

from ndjax import dynamics as dyn  # noqa: E402
from ndjax.loss import EPS, simulated_objective  # noqa: E402
from ndjax.sim import simulate, simulate_stats  # noqa: E402

WORKLOADS = {  # name: (T, B, N, n_crypto, seed)
    "a": (256, 32, 1, 0, 1),
    "b": (256, 1024, 16, 4, 2),
    "c": (2520, 1, 16, 4, 3),
}
QUICK = {"a": (64, 32, 1, 0, 1), "b": (32, 128, 16, 4, 2), "c": (256, 1, 16, 4, 3)}
DESC = {"a": "32 accts x 1 asset x {T} d", "b": "{B} pf x 16 assets x {T} d", "c": "1 pf x 16 assets x {T} d"}


# ---------------------------------------------------------------------------------------------
# timing


def bench(fn, repeats: int, budget_s: float, min_repeats: int = 3) -> tuple[float, int]:
    """Median wall ms of `fn()` over up to `repeats` calls (at least `min_repeats`, stop early past `budget_s`)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= min_repeats and time.perf_counter() - start > budget_s:
            break
    return statistics.median(times), len(times)


def copy_bandwidth(nbytes: int = 512 << 20, repeats: int = 5) -> float:
    """Bytes/s moved by a large numpy copy (read + write counted)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return 2 * src.nbytes / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compile_jit(fn, *args):
    """AOT-compile a jitted function; returns (compiled, compile ms)."""
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, (time.perf_counter() - t0) * 1e3


def block(x):
    return jax.block_until_ready(x)


# ---------------------------------------------------------------------------------------------
# ndjax


def ndjax_inputs(w: Workload, rules: Rules, fill: str = "hard", is_crypto: np.ndarray | None = None):
    params = dyn.MarketParams(
        is_crypto=jnp.asarray(w.is_crypto if is_crypto is None else is_crypto), maker_fee=rules.fee,
        stock_max_leverage=rules.ls, crypto_max_leverage=rules.lc, leverage_fee_rate=rules.rate,
        day_count=rules.day_count, fill_temperature=rules.tau, maintenance_margin=rules.mm,
        liquidation_slippage=rules.sl, margin_call=rules.margin_call, fill=fill,
    )
    state0 = dyn.init_state(jnp.asarray(w.cash0), jnp.asarray(w.mark0))
    actions = dyn.Action(*(jnp.asarray(x) for x in (w.buy_price, w.sell_price, w.buy_frac, w.sell_frac)))
    bars = dyn.Bar(*(jnp.asarray(x) for x in (w.high, w.low, w.close, w.tradable, w.days)))
    return params, state0, actions, bars


@jax.jit
def simulate_equity(params, state0, actions, bars):
    """Lean variant: the same `step`, but the scan emits only equity and returns, what the torch peer
    returns (XLA drops the other StepInfo fields)."""

    def body(state, xs):
        state, info = dyn.step(params, state, *xs)
        return state, (info.equity, info.returns)

    return jax.lax.scan(body, state0, (actions, bars))[1]


@jax.jit
def sortino_value(params, state0, actions, bars):
    """The summed Sortino of `simulated_objective`, forward only (what validation of a soft-fill objective runs)."""
    return jnp.sum(simulated_objective(params, state0, actions, bars, name="sortino")[0])


@jax.jit
def sortino_grad(params, state0, actions, bars):
    """d/d(actions) of the summed Sortino of `simulated_objective` (the training gradient)."""

    def loss(a):
        return jnp.sum(simulated_objective(params, state0, a, bars, name="sortino")[0])

    return jax.value_and_grad(loss)(actions)


# ---------------------------------------------------------------------------------------------


def rel_err(x, ref) -> float:
    """max |x - ref| / max |ref|."""
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(x - ref)) / max(np.max(np.abs(ref)), 1e-30))


def rel_err_pointwise(x, ref) -> float:
    """max |x - ref| / |ref| (equity is > 0 on these workloads)."""
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(x - ref) / np.maximum(np.abs(ref), 1e-30)))


def run_workload(key: str, w: Workload, args, bw: float, rows: list, checks: list) -> None:
    rules = Rules()
    reps, budget = args.repeats, args.budget
    label = f"({key}) " + DESC[key].format(T=w.T, B=w.B)
    print(f"\n== {label}: {w.asset_steps:,} asset-steps ==", flush=True)
    # bytes an asset-step must minimally move: 7 float32 inputs (high, low, close, buy/sell price and
    # fraction) + 1 byte tradable, plus per portfolio-step days_elapsed in and equity out (4 B each) / N.
    bytes_per = 7 * 4 + 1 + (4 + 4) / w.N
    floor_ms = bytes_per * w.asset_steps / bw * 1e3

    def add(impl, mode, ms, n, compile_ms=None, vs=None, check=""):
        rows.append(dict(
            wl=key, impl=impl, mode=mode, ms=ms, n=n, compile_ms=compile_ms, steps_s=w.asset_steps / (ms / 1e3),
            vs=vs, floor=(ms / floor_ms) if key == "b" and mode == "fwd" else None, check=check,
        ))
        print(f"   {impl:<22}{mode:<8}{ms:10.2f} ms (n={n})" + (f"  compile {compile_ms:.0f} ms" if compile_ms else ""),
              flush=True)

    # ---- ndjax: full StepInfo, equity and returns only, soft-fill Sortino gradient
    p, s0, a, b = ndjax_inputs(w, rules)
    full, c_full = compile_jit(simulate, p, s0, a, b)
    final, infos = block(full(p, s0, a, b))
    eq_nd = np.asarray(infos.equity)
    ms_full, n = bench(lambda: block(full(p, s0, a, b)), reps, budget)
    add("ndjax full StepInfo", "fwd", ms_full, n, c_full)

    stats_fn, c_stats = compile_jit(simulate_stats, p, s0, a, b)
    stats = block(stats_fn(p, s0, a, b))
    ms_stats, n = bench(lambda: block(stats_fn(p, s0, a, b)), reps, budget)
    add("ndjax summary-only", "fwd", ms_stats, n, c_stats,
        check=f"final equity = full: {rel_err_pointwise(stats.final_equity, eq_nd[-1]):.1e}")

    lean, c_lean = compile_jit(simulate_equity, p, s0, a, b)
    eq_lean = np.asarray(block(lean(p, s0, a, b))[0])
    ms_lean, n = bench(lambda: block(lean(p, s0, a, b)), reps, budget)
    add("ndjax equity+returns", "fwd", ms_lean, n, c_lean, check=f"= full: {rel_err_pointwise(eq_lean, eq_nd):.1e}")

    ps, _, _, _ = ndjax_inputs(w, rules, fill="soft")
    sval, c_sval = compile_jit(sortino_value, ps, s0, a, b)
    val_fwd = block(sval(ps, s0, a, b))
    ms_sval, n = bench(lambda: block(sval(ps, s0, a, b)), reps, budget)
    add("ndjax Sortino objective", "fwd", ms_sval, n, c_sval)

    grad, c_grad = compile_jit(sortino_grad, ps, s0, a, b)
    val_nd, g_nd = block(grad(ps, s0, a, b))
    ms_grad, n = bench(lambda: block(grad(ps, s0, a, b)), reps, budget)
    add("ndjax jax.grad", "fwd+bwd", ms_grad, n, c_grad)

    # ---- PyTorch eager loop
    if "torch" not in args.skip:
        import torch

        acts, tbars, c0, m0, crypto = torch_inputs(w)
        with torch.no_grad():
            eq_t, _ = torch_simulate(acts, tbars, c0, m0, crypto, rules, "hard")
        err = rel_err_pointwise(eq_t.numpy(), eq_nd)
        checks.append((key, "torch fwd equity (hard)", err))
        with torch.no_grad():
            ms, n = bench(lambda: torch_simulate(acts, tbars, c0, m0, crypto, rules, "hard"), reps, budget)
        add("torch eager loop", "fwd", ms, n, vs=ms / ms_full,
            check=f"eq rel {err:.1e}; {ms / ms_lean:.1f}x vs ndjax equity+returns (same outputs)")

        acts_g, tbars, c0, m0, crypto = torch_inputs(w, requires_grad=True)

        def fwd_bwd():
            for t_ in acts_g:
                t_.grad = None
            _, rets = torch_simulate(acts_g, tbars, c0, m0, crypto, rules, "soft")
            obj = torch_sortino(rets, 252.0, EPS).sum()
            obj.backward()
            return obj

        with torch.no_grad():
            acts_s, tbars_s, c0_s, m0_s, crypto_s = torch_inputs(w)

            def sortino_fwd():
                return torch_sortino(torch_simulate(acts_s, tbars_s, c0_s, m0_s, crypto_s, rules, "soft")[1],
                                     252.0, EPS).sum()

            err_s = abs(float(sortino_fwd()) - float(val_fwd)) / max(abs(float(val_fwd)), 1e-30)
            ms, n = bench(sortino_fwd, reps, budget)
        add("torch Sortino objective", "fwd", ms, n, vs=ms / ms_sval, check=f"obj {err_s:.1e} (vs ndjax Sortino fwd)")

        obj_t = fwd_bwd()
        err_v = abs(float(obj_t.detach()) - float(val_nd)) / max(abs(float(val_nd)), 1e-30)
        fields = ("buy_price", "sell_price", "buy_frac", "sell_frac")
        errs = [rel_err(t_.grad.numpy(), getattr(g_nd, f_)) for t_, f_ in zip(acts_g, fields)]
        err_g = max(errs)
        checks.append((key, "torch sortino value (soft)", err_v))
        for f_, e_ in zip(fields, errs):
            checks.append((key, f"torch d sortino / d {f_} (soft), max|dg|/max|g|", e_))
        fwd_bwd()
        ms, n = bench(fwd_bwd, reps, budget)
        add("torch eager loop", "fwd+bwd", ms, n, vs=ms / ms_grad, check=f"obj {err_v:.1e} grad {err_g:.1e}")

    # ---- vectorbt replaying ndjax fills (no margin: caps 1, rate 0, all stocks)
    if "vectorbt" not in args.skip:
        try:
            import vectorbt  # noqa: F401

            vb_ok = True
        except Exception as exc:  # noqa: BLE001
            vb_ok = False
            print(f"   vectorbt unavailable ({type(exc).__name__}: {exc}); skipping that peer", flush=True)
        if vb_ok:
            vr = Rules(ls=1.0, lc=1.0, rate=0.0)
            pv, sv, av, bv = ndjax_inputs(w, vr, is_crypto=np.zeros(w.N, bool))
            _, inf_v = block(full(pv, sv, av, bv))
            orders = vbt_orders(w, np.asarray(inf_v.buy_qty), np.asarray(inf_v.sell_qty))
            t0 = time.perf_counter()
            eq_v = vbt_equity(orders, vr.fee, float(w.cash0[0]))  # first call: numba dispatch/compile
            c_v = (time.perf_counter() - t0) * 1e3
            err = rel_err_pointwise(eq_v, np.asarray(inf_v.equity))
            checks.append((key, "vectorbt value vs ndjax equity (caps 1, rate 0)", err))
            ms, n = bench(lambda: vbt_equity(orders, vr.fee, float(w.cash0[0])), reps, budget)
            add("vectorbt from_orders", "fwd", ms, n, c_v, vs=ms / ms_full,
                check=f"eq rel {err:.1e}; {ms / ms_stats:.1f}x vs ndjax summary-only")

    # ---- float64 NumPy loop
    if "numpy" not in args.skip:
        eq_np = numpy_simulate(w, rules)
        err = rel_err_pointwise(eq_nd, eq_np)
        checks.append((key, "ndjax float32 vs NumPy float64 equity", err))
        ms, n = bench(lambda: numpy_simulate(w, rules), reps, budget)
        add("numpy f64 loop", "fwd", ms, n, vs=ms / ms_full, check=f"eq rel {err:.1e}")

    if key == "b" and "variants" not in args.skip:
        run_variants(w, rules, (p, s0, a, b), (ps, s0, a, b), eq_nd, reps, budget, add)

    if key == "b":
        print(f"   bandwidth floor: {bytes_per:.2f} B/asset-step x {w.asset_steps:,} / {bw / 1e9:.1f} GB/s "
              f"= {floor_ms:.2f} ms", flush=True)


@jax.jit
def simulate_equity_batch_minor(params, state0, actions, bars):
    """Lean scan over data laid out (T, N, B) (portfolio axis minor), `step` vmapped over that last axis."""
    st_ax = dyn.PortfolioState(cash=0, inventory=1, mark=1)
    vstep = jax.vmap(
        lambda s, a_, b_: dyn.step(params, s, a_, b_),
        in_axes=(st_ax, dyn.Action(1, 1, 1, 1), dyn.Bar(1, 1, 1, 1, 0, None, None)), out_axes=(st_ax, 0),
    )

    def body(state, xs):
        state, info = vstep(state, *xs)
        return state, (info.equity, info.returns)

    return jax.lax.scan(body, state0, (actions, bars))[1]


def run_variants(w, rules, hard_args, soft_args, eq_nd, reps, budget, add) -> None:
    """A layout candidate: the same `step` vmapped over a minor portfolio axis."""
    p, s0, a, b = hard_args
    sw = lambda x: jnp.swapaxes(x, -1, -2) if x.ndim == 3 else x  # noqa: E731
    aT, bT = jax.tree_util.tree_map(sw, a), jax.tree_util.tree_map(sw, b)
    sT = dyn.PortfolioState(cash=s0.cash, inventory=sw(s0.inventory[None])[0], mark=sw(s0.mark[None])[0])
    compiled, c_ms = compile_jit(simulate_equity_batch_minor, p, sT, aT, bT)
    eq = block(compiled(p, sT, aT, bT))[0]
    ms, n = bench(lambda: block(compiled(p, sT, aT, bT)), reps, budget)
    add("ndjax equity+returns [(T,N,B) layout]", "fwd", ms, n, c_ms,
        check=f"= full: {rel_err_pointwise(eq, eq_nd):.1e}")


MEMORY_SHAPE = (1024, 16)  # B, N of the memory children; T is 256 or 4096


def memory_child(mode: str, T: int) -> None:
    """Print the peak RSS (MB) of one simulation of `T` steps at `MEMORY_SHAPE`, as JSON.

    `summary`/`full`: inputs generated per step inside the scan (what the simulation itself holds);
    `summary-stored`: the usual call with the (T, B, N) input arrays built first."""
    from ndjax.stats_scan import add_step, finish_path, start_path

    B, N = MEMORY_SHAPE
    params = dyn.MarketParams(is_crypto=jnp.arange(N) >= N - 4)
    mark0 = 100 * jnp.exp(0.5 * jax.random.normal(jax.random.PRNGKey(0), (B, N)))
    state0 = dyn.init_state(jnp.full((B,), 10_000.0), mark0)

    def inputs(key, prev):
        k1, k2, k3 = jax.random.split(key, 3)
        close = prev * jnp.exp(0.02 * jax.random.normal(k1, prev.shape))
        span = 1 + 0.01 * jax.random.uniform(k2, prev.shape)
        u = jax.random.uniform(k3, (4,) + prev.shape)
        bar = dyn.Bar(high=jnp.maximum(prev, close) * span, low=jnp.minimum(prev, close) / span, close=close,
                      tradable=u[3] < 0.95, days_elapsed=jnp.ones(prev.shape[:-1]))
        return dyn.Action(prev * (1 - 0.03 * u[0]), prev * (1 + 0.03 * u[1]), u[2] * (u[3] < 0.5),
                          u[2] * (u[3] > 0.7)), bar

    @jax.jit
    def generated(state0):
        def body(carry, t):
            state, sums = carry
            state, info = dyn.step(params, state, *inputs(jax.random.fold_in(jax.random.PRNGKey(1), t), state.mark))
            if mode == "summary":
                return (state, add_step(sums, info)), None
            return (state, sums), info

        (_, sums), infos = jax.lax.scan(body, (state0, start_path((B,), jnp.float32)), jnp.arange(T))
        return finish_path(sums) if mode == "summary" else infos

    if mode == "summary-stored":
        steps = jax.jit(lambda k: jax.vmap(lambda t: inputs(jax.random.fold_in(k, t), mark0))(jnp.arange(T)))
        actions, bars = block(steps(jax.random.PRNGKey(1)))
        block(simulate_stats(params, state0, actions, bars))
    else:
        block(generated(state0))
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM, which `exec` resets; `ru_maxrss` keeps the parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_section(quick: bool) -> dict:
    """Peak RSS of each memory mode at T = 256 and T = 4096, each in its own subprocess."""
    Ts = (64, 1024) if quick else (256, 4096)
    print(f"\n== memory: peak RSS at B x N = {MEMORY_SHAPE[0]} x {MEMORY_SHAPE[1]}, T = {Ts[0]} vs {Ts[1]} "
          "(one subprocess each) ==", flush=True)
    out = {}
    for mode in ("summary", "full", "summary-stored"):
        for T in Ts:
            res = subprocess.run([sys.executable, __file__, "--memory-child", f"{mode}:{T}"], capture_output=True,
                                 text=True, check=True)
            out[(mode, T)] = json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_mb"]
        ratio = out[(mode, Ts[1])] / out[(mode, Ts[0])]
        print(f"   {mode:<16} T={Ts[0]}: {out[(mode, Ts[0])]:8.0f} MB   T={Ts[1]}: {out[(mode, Ts[1])]:8.0f} MB   "
              f"ratio {ratio:.2f}", flush=True)
    return {"Ts": Ts, "rss": out}


def sweep_section(quick: bool, reps: int, budget: float, ms_single: float | None) -> dict:
    """K market configurations (maker fee x stock leverage cap) vmapped over one summary-only simulation."""
    K, (T, B, N, nc, seed) = (8, QUICK["b"]) if quick else (256, WORKLOADS["b"])
    w = make_workload("b", T, B, N, nc, seed)
    p, s0, a, b = ndjax_inputs(w, Rules())
    fees = jnp.linspace(0.0, 0.003, K)
    levs = jnp.tile(jnp.array([1.0, 1.25, 1.5, 2.0]), K // 4 + 1)[:K]

    @jax.jit
    def sweep(fees, levs):
        one = lambda f, m: simulate_stats(p.replace(maker_fee=f, stock_max_leverage=m), s0, a, b)  # noqa: E731
        return jax.vmap(one)(fees, levs)

    print(f"\n== sweep: K = {K} configurations x {B} pf x {N} assets x {T} d, summary-only "
          f"({K * w.asset_steps:,} asset-steps) ==", flush=True)
    compiled, c_ms = compile_jit(sweep, fees, levs)
    out = block(compiled(fees, levs))
    one = block(simulate_stats(p.replace(maker_fee=fees[3], stock_max_leverage=levs[3]), s0, a, b))
    err = rel_err_pointwise(out.final_equity[3], one.final_equity)
    ms, n = bench(lambda: block(compiled(fees, levs)), max(2, reps // 5), budget, min_repeats=2)
    res = dict(K=K, ms=ms, n=n, compile_ms=c_ms, steps_s=K * w.asset_steps / (ms / 1e3), configs_s=K / (ms / 1e3),
               vs_loop=(K * ms_single / ms) if ms_single else None, err=err)
    print(f"   {ms:10.1f} ms (n={n}, compile {c_ms:.0f} ms)  {res['steps_s']:.3g} asset-steps/s  "
          f"{res['configs_s']:.1f} configs/s  config 3 = its own run: {err:.1e}"
          + (f"  {res['vs_loop']:.2f}x faster than K single summary runs" if ms_single else ""), flush=True)
    return res


def targets(rows: list, memory: dict | None, sweep: dict | None) -> None:
    """The issue's targets, from the rows of this run."""
    def find(wl, impl, mode="fwd"):
        return next((r for r in rows if r["wl"] == wl and r["impl"] == impl and r["mode"] == mode), None)

    print("\nTargets (ratios within this run):")
    st, full, vbt = find("b", "ndjax summary-only"), find("b", "ndjax full StepInfo"), find("b", "vectorbt from_orders")
    if st:
        print(f"  (b) summary-only: {st['steps_s'] / 1e6:.0f} M asset-steps/s (target >= 300 M): "
              f"{'MET' if st['steps_s'] >= 300e6 else 'missed'}")
    if st and vbt:
        r = vbt["ms"] / st["ms"]
        print(f"  (b) vectorbt / summary-only: {r:.1f}x (target >= 100x): {'MET' if r >= 100 else 'missed'}")
    if full and vbt:
        r = vbt["ms"] / full["ms"]
        print(f"  (b) vectorbt / full record: {r:.1f}x (target >= 30x): {'MET' if r >= 30 else 'missed'}")
    for mode, nd in (("fwd", "ndjax Sortino objective"), ("fwd+bwd", "ndjax jax.grad")):
        peer = "torch Sortino objective" if mode == "fwd" else "torch eager loop"
        t_, n_ = find("a", peer, mode), find("a", nd, mode)
        if t_ and n_:
            r = t_["ms"] / n_["ms"]
            print(f"  (a) torch / ndjax Sortino {mode}: {r:.0f}x (target >= 150x): {'MET' if r >= 150 else 'missed'}")
    t_, n_ = find("a", "torch eager loop"), find("a", "ndjax full StepInfo")
    if t_ and n_:
        print(f"  (a) torch hard fwd / ndjax full StepInfo fwd (the earlier table's ratio): {t_['ms'] / n_['ms']:.0f}x")
    if memory:
        lo, hi = memory["Ts"]
        for mode in ("summary", "full", "summary-stored"):
            r = memory["rss"][(mode, hi)] / memory["rss"][(mode, lo)]
            tail = f" (target <= 1.5): {'MET' if r <= 1.5 else 'missed'}" if mode == "summary" else ""
            print(f"  memory {mode}: peak RSS T={hi} / T={lo} = {r:.2f}{tail}")
    if sweep:
        print(f"  sweep K={sweep['K']}: {sweep['steps_s'] / 1e6:.0f} M asset-steps/s, "
              f"{sweep['configs_s']:.1f} configs/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small shapes, few repeats (smoke run)")
    ap.add_argument("--only", default="a,b,c", help="comma list of workloads")
    ap.add_argument("--skip", default="", help="comma list to skip: torch,vectorbt,numpy,variants,memory,sweep")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=None, help="max timed repeats per cell (after warm-up)")
    ap.add_argument("--budget", type=float, default=None, help="seconds per cell before stopping at >= 3 repeats")
    args = ap.parse_args()
    if args.memory_child:
        mode, T = args.memory_child.split(":")
        memory_child(mode, int(T))
        return
    args.skip = {s for s in args.skip.split(",") if s}
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.budget = args.budget or (0.5 if args.quick else 4.0)
    shapes = QUICK if args.quick else WORKLOADS

    import numpy
    versions = [f"jax {jax.__version__}", f"numpy {numpy.__version__}"]
    if "torch" not in args.skip:
        import torch

        versions.append(f"torch {torch.__version__} (get_num_threads={torch.get_num_threads()}, "
                        f"interop={torch.get_num_interop_threads()})")
    if "vectorbt" not in args.skip:
        try:
            import vectorbt

            versions.append(f"vectorbt {vectorbt.__version__}")
        except Exception as exc:  # noqa: BLE001
            versions.append(f"vectorbt unavailable: {type(exc).__name__}: {exc}")
    print(f"python {platform.python_version()} | {' | '.join(versions)}")
    print(f"cpus visible: {os.cpu_count()} | jax devices: {jax.devices()} | "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
          " (XLA:CPU default: one device, intra-op Eigen pool over all cores)")
    bw = copy_bandwidth(64 << 20 if args.quick else 512 << 20)
    print(f"measured copy bandwidth (numpy copyto, read+write): {bw / 1e9:.2f} GB/s")

    rows: list[dict] = []
    checks: list = []
    t_start = time.perf_counter()
    for key in args.only.split(","):
        T, B, N, nc, seed = shapes[key]
        run_workload(key, make_workload(key, T, B, N, nc, seed), args, bw, rows, checks)

    single = next((r["ms"] for r in rows if r["wl"] == "b" and r["impl"] == "ndjax summary-only"), None)
    sweep = None if "sweep" in args.skip else sweep_section(args.quick, args.repeats, args.budget, single)
    memory = None if "memory" in args.skip else memory_section(args.quick)

    print("\nEquality checks (relative; equity pointwise max|x-ref|/|ref|, gradients max|dg|/max|g|):")
    for key, what, err in checks:
        print(f"  ({key}) {what:<66} {err:.2e}")

    print("\n| wl | implementation | mode | median ms | n | compile ms | asset-steps/s | peer / ndjax | x bw floor "
          "| check |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        cm = "" if r["compile_ms"] is None else f"{r['compile_ms']:.0f}"
        vs = "" if r["vs"] is None else f"{r['vs']:.1f}x"
        fl = "" if r["floor"] is None else f"{r['floor']:.1f}x"
        print(f"| {r['wl']} | {r['impl']} | {r['mode']} | {r['ms']:.2f} | {r['n']} | {cm} | {r['steps_s']:.3g} | "
              f"{vs} | {fl} | {r['check']} |")
    print("\npeer / ndjax: peer median ms over ndjax median ms (fwd rows vs 'ndjax full StepInfo', fwd+bwd rows vs "
          "'ndjax jax.grad'); the torch fwd row also gives the ratio against 'ndjax equity+returns', the outputs the "
          "torch loop produces; x bw floor: median ms over the bandwidth-floor ms (1.0 = at the floor).")
    targets(rows, memory, sweep)
    print(f"total wall time {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
