"""Peers for `bench_sim.py`: workload generator, PyTorch eager loop, vectorbt replay, NumPy float64 loop.

Every peer reads the same market rules as `ndjax.dynamics.step` (docs/semantics.md);
`bench_sim.py` checks each against ndjax before timing it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.reference import reference_step  # noqa: E402  float64 NumPy reading of the rules

# ---------------------------------------------------------------------------------------------
# Workloads


@dataclass
class Workload:
    """Random-walk bars and random limit orders, all `(T, B, N)` (per-portfolio `(T, B)`), float32."""

    name: str
    T: int
    B: int
    N: int
    is_crypto: np.ndarray  # (N,) bool
    cash0: np.ndarray  # (B,)
    mark0: np.ndarray  # (B, N)
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    tradable: np.ndarray  # bool
    days: np.ndarray  # (T, B)
    buy_price: np.ndarray
    sell_price: np.ndarray
    buy_frac: np.ndarray
    sell_frac: np.ndarray

    @property
    def asset_steps(self) -> int:
        return self.T * self.B * self.N


def make_workload(name: str, T: int, B: int, N: int, n_crypto: int, seed: int) -> Workload:
    """Seeded geometric random walk per (portfolio, asset) path; buy limits below / sell limits above the
    previous close by 0-3 %, fractions uniform, ~5 % of asset-days untradable, weekends (days=3) every 5th bar."""
    rng = np.random.default_rng(seed)
    is_crypto = np.zeros(N, bool)
    is_crypto[N - n_crypto :] = True
    logc = np.log(100.0) + rng.normal(0, 0.5, (1, B, N)) + np.cumsum(rng.normal(0, 0.02, (T + 1, B, N)), 0)
    close_all = np.exp(logc)
    prev, close = close_all[:-1], close_all[1:]
    opn = prev * np.exp(rng.normal(0, 0.005, (T, B, N)))
    high = np.maximum(opn, close) * np.exp(np.abs(rng.normal(0, 0.01, (T, B, N))))
    low = np.minimum(opn, close) * np.exp(-np.abs(rng.normal(0, 0.01, (T, B, N))))
    tradable = rng.random((T, B, N)) < 0.95
    days = np.where((np.arange(T) % 5) == 4, 3.0, 1.0)[:, None] * np.ones((1, B))
    f32 = np.float32
    return Workload(
        name=name, T=T, B=B, N=N, is_crypto=is_crypto,
        cash0=np.full(B, 10_000.0, f32), mark0=prev[0].astype(f32),
        high=high.astype(f32), low=low.astype(f32), close=close.astype(f32), tradable=tradable,
        days=days.astype(f32),
        buy_price=(prev * (1 - rng.uniform(0, 0.03, (T, B, N)))).astype(f32),
        sell_price=(prev * (1 + rng.uniform(0, 0.03, (T, B, N)))).astype(f32),
        buy_frac=(rng.uniform(0, 1, (T, B, N)) * (rng.random((T, B, N)) < 0.5)).astype(f32),
        sell_frac=(rng.uniform(0, 1, (T, B, N)) * (rng.random((T, B, N)) < 0.3)).astype(f32),
    )


@dataclass
class Rules:
    fee: float = 0.0008
    ls: float = 2.0
    lc: float = 1.0
    rate: float = 0.065
    day_count: float = 365.0
    tau: float = 5e-4
    mm: float = 0.30
    sl: float = 0.001
    margin_call: bool = True


# ---------------------------------------------------------------------------------------------
# PyTorch eager loop over bars (the prior system's CPU training loop shape)


def torch_inputs(w: Workload, requires_grad: bool = False):
    import torch

    t = lambda x: torch.from_numpy(np.ascontiguousarray(x))  # noqa: E731
    acts = [t(w.buy_price), t(w.sell_price), t(w.buy_frac), t(w.sell_frac)]
    if requires_grad:
        acts = [a.clone().requires_grad_(True) for a in acts]
    bars = [t(w.high), t(w.low), t(w.close), t(w.tradable.astype(np.float32)), t(w.days)]
    return acts, bars, t(w.cash0), t(w.mark0), torch.from_numpy(w.is_crypto)


def torch_simulate(acts, bars, cash0, mark0, is_crypto, rules: Rules, fill: str = "hard"):
    """Eager loop over bars, batched tensor ops per bar (one buying-power pool, maintenance calls).
    Returns (equity (T, B), returns (T, B))."""
    import torch

    # torch.maximum / minimum (not clamp) so ties split the gradient 50/50 exactly as jnp.maximum,
    # jnp.minimum and jnp.clip do; at no-order fractions (exactly 0) and empty books the subgradient
    # would otherwise differ from ndjax's.
    zero, one = mark0.new_zeros(()), mark0.new_ones(())
    relu = lambda x: torch.maximum(x, zero)  # noqa: E731
    clip01 = lambda x: torch.minimum(torch.maximum(x, zero), one)  # noqa: E731
    f = rules.fee
    crypto = is_crypto
    cm = crypto.to(mark0.dtype)
    sm = 1 - cm
    c, q, p = cash0, torch.zeros_like(mark0), mark0
    eq, rets = [], []
    per_bar = zip(*(torch.unbind(x, 0) for x in (*acts, *bars)))
    for bp, sp, bf, sf, hi, lo, cl, tr, days in per_bar:
        value = q * p
        S = (value * sm).sum(-1)
        C = (value * cm).sum(-1)
        E0 = c + S + C
        borrowed = torch.minimum(relu(S - E0), relu(E0))
        c1 = c - borrowed * rules.rate * days / rules.day_count
        E1 = c1 + S + C
        m = torch.where(crypto, 1 / rules.lc, 1 / rules.ls).to(p.dtype)
        X = relu(E1 - (m * value).sum(-1))
        wgt = clip01(bf) * tr
        W = torch.maximum(wgt.sum(-1), one)[..., None]
        outlay = wgt / W * (X[..., None] * (1 + f) / (m + f))
        bo = outlay / (bp * (1 + f))
        so = clip01(sf) * q * tr
        if fill == "hard":
            fb = (lo <= bp).to(p.dtype)
            fs = (hi >= sp).to(p.dtype)
        else:
            scale = p * rules.tau
            fb = torch.sigmoid((bp - lo) / scale)
            fs = torch.sigmoid((hi - sp) / scale)
        xb = bo * fb
        xs = so * fs
        c2 = c1 - (xb * bp * (1 + f)).sum(-1) + (xs * sp * (1 - f)).sum(-1)
        q = relu(q + xb - xs)
        if rules.margin_call:  # maintenance check at the close, forced sale back to the initial requirement
            V = q * cl
            S2, C2 = (V * sm).sum(-1), (V * cm).sum(-1)
            E2 = c2 + S2 + C2
            call = E2 < rules.mm * S2 + C2 / rules.lc - 1e-6 * (S2 + C2)
            k = 1 - (1 - rules.sl) * (1 - f)
            sellable = V * tr
            St, Ct = (sellable * sm).sum(-1), (sellable * cm).sum(-1)
            need = S2 / rules.ls + C2 / rules.lc - E2
            y = torch.where(call, torch.minimum(relu(need / (1 / rules.ls - k)), St), zero)
            z = torch.where(call, torch.minimum(relu((need - y / rules.ls + k * y) / (1 / rules.lc - k)), Ct), zero)
            safe = lambda a, b: torch.where(b > 0, a / torch.where(b > 0, b, one), zero)  # noqa: E731
            share = torch.where(crypto, safe(z, Ct)[..., None], safe(y, St)[..., None])
            q = q - torch.where(sellable > 0, q * share, zero)
            c2 = c2 + (y + z) * (1 - rules.sl) * (1 - f)
        E2 = c2 + (q * cl).sum(-1)
        pos = E0 > 0
        rets.append(torch.where(pos, E2 / torch.where(pos, E0, one) - 1, zero))
        eq.append(E2)
        c, p = c2, cl
    return torch.stack(eq), torch.stack(rets)


def torch_sortino(returns, periods_per_year: float, eps: float):
    """`ndjax.loss.sortino` over time axis 0 of `(T, B)`."""
    import torch

    down = (torch.clamp(returns, max=0) ** 2).mean(0)
    return returns.mean(0) / torch.sqrt(down + eps) * float(np.sqrt(periods_per_year))


# ---------------------------------------------------------------------------------------------
# NumPy float64 loop reading of the rules (tests/reference.py, one bar at a time)


def numpy_simulate(w: Workload, rules: Rules, fill: str = "hard") -> np.ndarray:
    c = w.cash0.astype(np.float64)
    q = np.zeros((w.B, w.N))
    p = w.mark0.astype(np.float64)
    eq = np.empty((w.T, w.B))
    f64 = lambda x: x.astype(np.float64)  # noqa: E731
    for t in range(w.T):
        out = reference_step(
            c, q, p, f64(w.buy_price[t]), f64(w.sell_price[t]), f64(w.buy_frac[t]), f64(w.sell_frac[t]),
            f64(w.high[t]), f64(w.low[t]), f64(w.close[t]), w.tradable[t].astype(np.float64), f64(w.days[t]),
            w.is_crypto, fee=rules.fee, ls=rules.ls, lc=rules.lc, rate=rules.rate, day_count=rules.day_count,
            tau=rules.tau, mm=rules.mm, sl=rules.sl, fill=fill, margin_call=rules.margin_call,
        )
        c, q, p = out["cash"], out["inventory"], f64(w.close[t])
        eq[t] = out["equity"]
    return eq


# ---------------------------------------------------------------------------------------------
# vectorbt: replay ndjax's executed fills with Portfolio.from_orders


def vbt_orders(w: Workload, buy_qty: np.ndarray, sell_qty: np.ndarray):
    """Two order rows per bar (sell leg, then buy leg), columns = B*N assets; NaN = no order.

    from_orders takes one order per (row, column), and one bar may both sell and buy one asset
    at different limit prices, so each bar becomes two rows marked at the same close."""
    T, B, N = buy_qty.shape
    cols = B * N
    size = np.full((2 * T, cols), np.nan)
    price = np.empty((2 * T, cols))
    xs = sell_qty.reshape(T, cols).astype(np.float64)
    xb = buy_qty.reshape(T, cols).astype(np.float64)
    size[0::2] = np.where(xs > 0, -xs, np.nan)
    size[1::2] = np.where(xb > 0, xb, np.nan)
    price[0::2] = w.sell_price.reshape(T, cols)
    price[1::2] = w.buy_price.reshape(T, cols)
    close = np.repeat(w.close.reshape(T, cols).astype(np.float64), 2, axis=0)
    group_by = np.repeat(np.arange(B), N)
    return dict(close=close, size=size, price=price, group_by=group_by)


def vbt_equity(orders: dict, fee: float, init_cash: float) -> np.ndarray:
    """Portfolio.from_orders (cash shared per portfolio group) then its value curve at the end of each bar (T, B)."""
    import vectorbt as vbt

    pf = vbt.Portfolio.from_orders(
        orders["close"], orders["size"], size_type="amount", price=orders["price"], fees=fee,
        direction="longonly", init_cash=init_cash, cash_sharing=True, group_by=orders["group_by"],
        freq="1D",
    )
    value = np.asarray(pf.value())  # (2T, groups); a Series when there is one group
    return value.reshape(value.shape[0], -1)[1::2]
