"""An independent float64 NumPy reading of the market contract (second version: one buying-power pool,
maintenance calls), one bar at a time, for cross-checking `ndjax.dynamics.step`."""

from __future__ import annotations

import numpy as np

CALL_TOLERANCE = 1e-6  # the documented rounding allowance of the call test (docs/semantics.md)


def sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def reference_step(
    cash, inventory, mark, buy_price, sell_price, buy_frac, sell_frac, high, low, close, tradable, days,
    is_crypto, *, fee=0.0008, ls=2.0, lc=1.0, rate=0.065, day_count=365.0, tau=5e-4, mm=0.30, sl=0.001,
    fill="hard", interest="excess", margin_call=True,
):
    """Steps 1-7 for a batch `(B, N)` of portfolios; returns a dict of float64 arrays."""
    c, q, p = (np.asarray(x, np.float64) for x in (cash, inventory, mark))
    tradable = np.asarray(tradable, np.float64)
    crypto = np.asarray(is_crypto, bool)
    stock = ~crypto
    # 1. overnight interest on the book carried into the bar
    S = (q * p * stock).sum(-1)
    C = (q * p * crypto).sum(-1)
    E0 = c + S + C
    if interest == "excess":
        borrowed = np.minimum(np.maximum(S - E0, 0), np.maximum(E0, 0))
    else:
        borrowed = np.maximum(-c, 0)
    interest_cost = borrowed * rate * np.asarray(days, np.float64) / day_count
    c1 = c - interest_cost
    # 2. one pool of excess equity
    m = np.where(crypto, 1 / lc, 1 / ls)
    E1 = c1 + S + C
    IM = (m * q * p).sum(-1)
    X = np.maximum(E1 - IM, 0)
    w = np.clip(buy_frac, 0, 1) * tradable
    a = w / np.maximum(1, w.sum(-1))[:, None]
    outlay = a * X[:, None] * (1 + fee) / (m + fee)
    bq = outlay / (buy_price * (1 + fee))
    sq = np.clip(sell_frac, 0, 1) * q * tradable
    # 3. fills
    if fill == "soft":
        fb = sigmoid((buy_price - low) / (p * tau))
        fs = sigmoid((high - sell_price) / (p * tau))
    else:
        fb = (low <= buy_price).astype(np.float64)
        fs = (high >= sell_price).astype(np.float64)
    # 4. execution
    xb, xs = bq * fb, sq * fs
    order_fees = fee * ((xb * buy_price).sum(-1) + (xs * sell_price).sum(-1))
    c2 = c1 - (xb * buy_price * (1 + fee)).sum(-1) + (xs * sell_price * (1 - fee)).sum(-1)
    q2 = np.maximum(q + xb - xs, 0)
    # 5. marking
    V = q2 * close
    S2, C2 = (V * stock).sum(-1), (V * crypto).sum(-1)
    E2 = c2 + S2 + C2
    # 6. maintenance call and forced deleveraging
    MM = mm * S2 + C2 / lc
    IMc = S2 / ls + C2 / lc
    call = (E2 < MM - CALL_TOLERANCE * (S2 + C2)) & margin_call
    k = 1 - (1 - sl) * (1 - fee)
    St, Ct = (V * tradable * stock).sum(-1), (V * tradable * crypto).sum(-1)
    dust = 1e-12 * (S2 + C2) + 1e-15  # documented: dust positions are never force-sold
    St, Ct = np.where(St > dust, St, 0), np.where(Ct > dust, Ct, 0)
    y = np.where(call, np.clip((IMc - E2) / (1 / ls - k), 0, St), 0)
    z = np.where(call, np.clip((IMc - y / ls - (E2 - k * y)) / (1 / lc - k), 0, Ct), 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(crypto, np.where(Ct > 0, z / Ct, 0)[:, None], np.where(St > 0, y / St, 0)[:, None])
    forced = q2 * tradable * frac
    q3 = q2 - forced
    c3 = c2 + (y + z) * (1 - sl) * (1 - fee)
    fees = order_fees + fee * (1 - sl) * (y + z)
    # 7. report
    gross = (q3 * close).sum(-1)
    E3 = c3 + gross
    ret = np.where(E0 > 0, E3 / np.where(E0 > 0, E0, 1) - 1, 0)
    return dict(
        S=S, C=C, E0=E0, interest=interest_cost, c1=c1, E1=E1, IM=IM, X=X, margin_rate=m, buy_order=bq, sell_order=sq,
        fb=fb, fs=fs, xb=xb, xs=xs, cash2=c2, inventory2=q2, equity2=E2, MM=MM, IMc=IMc, call=call, y=y, z=z,
        forced=forced, fees=fees, cash=c3, inventory=q3, equity=E3, returns=ret, gross=gross,
    )
