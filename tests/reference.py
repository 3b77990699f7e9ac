"""An independent float64 NumPy reading of SPEC.md, one bar at a time, for cross-checking `step`."""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def reference_step(
    cash, inventory, mark, buy_price, sell_price, buy_frac, sell_frac, high, low, close, tradable, days,
    is_crypto, *, fee=0.0008, ls=2.0, lc=1.0, rate=0.065, day_count=365.0, tau=5e-4, fill="hard",
    interest="excess",
):
    """SPEC steps 1-5 for a batch `(B, N)` of portfolios; returns a dict of float64 arrays."""
    c, q, p = (np.asarray(x, np.float64) for x in (cash, inventory, mark))
    crypto = np.asarray(is_crypto, bool)
    stock = ~crypto
    S = (q * p * stock).sum(-1)
    C = (q * p * crypto).sum(-1)
    E0 = c + S + C
    if interest == "excess":
        B = np.minimum(np.maximum(S - E0, 0), np.maximum(E0, 0))
    else:
        B = np.maximum(-c, 0)
    I = B * rate * np.asarray(days, np.float64) / day_count
    c1 = c - I
    E1 = c1 + S + C
    room_s = np.maximum(ls * E1 - S, 0)
    room_c = np.maximum(np.minimum(lc * E1 - C, c1), 0)
    w = np.clip(buy_frac, 0, 1) * tradable
    Ws = np.maximum(1, (w * stock).sum(-1))
    Wc = np.maximum(1, (w * crypto).sum(-1))
    outlay = np.where(crypto, w / Wc[:, None] * room_c[:, None], w / Ws[:, None] * room_s[:, None])
    bq = outlay / (buy_price * (1 + fee))
    sq = np.clip(sell_frac, 0, 1) * q * tradable
    if fill == "soft":
        fb = sigmoid((buy_price - low) / (p * tau))
        fs = sigmoid((high - sell_price) / (p * tau))
    else:
        fb = (low <= buy_price).astype(np.float64)
        fs = (high >= sell_price).astype(np.float64)
    xb, xs = bq * fb, sq * fs
    fees = fee * ((xb * buy_price).sum(-1) + (xs * sell_price).sum(-1))
    c2 = c1 - (xb * buy_price * (1 + fee)).sum(-1) + (xs * sell_price * (1 - fee)).sum(-1)
    q2 = np.maximum(q + xb - xs, 0)
    gross = (q2 * close).sum(-1)
    E2 = c2 + gross
    ret = np.where(E0 > 0, E2 / np.where(E0 > 0, E0, 1) - 1, 0)
    return dict(
        S=S, C=C, E0=E0, interest=I, c1=c1, room_stock=room_s, room_crypto=room_c, buy_order=bq,
        sell_order=sq, fb=fb, fs=fs, xb=xb, xs=xs, fees=fees, cash=c2, inventory=q2, equity=E2, returns=ret,
    )
