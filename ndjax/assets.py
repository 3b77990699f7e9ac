"""Asset classes from symbols: crypto by the suffix rule, everything else a stock; an explicit mapping wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ndjax.errors import ConfigError

CRYPTO_QUOTES = ("USDT", "USD")
"""The quote currencies of a crypto pair, longest first (`BTCUSDT` is BTC in USDT, not BTCUSD in T)."""
CRYPTO_SUFFIXES = tuple(sep + quote for quote in CRYPTO_QUOTES for sep in ("-", ""))
"""`-USDT`, `USDT`, `-USD`, `USD`: a symbol ending with one is crypto."""


def is_crypto_symbol(symbol: str) -> bool:
    """The suffix rule: upper-cased symbol ends with USD, -USD, USDT or -USDT."""
    return symbol.strip().upper().endswith(CRYPTO_SUFFIXES)


def asset_class_mask(
    symbols: Sequence[str], asset_classes: Mapping[str, str | bool] | None = None
) -> np.ndarray:
    """`(N,)` bool is-crypto mask; an explicit mapping (`"crypto"`/`"stock"` or bool) wins over the suffix rule."""
    asset_classes = asset_classes or {}
    out = []
    for s in symbols:
        if s in asset_classes:
            v = asset_classes[s]
            if isinstance(v, str):
                if v.lower() not in ("crypto", "stock"):
                    raise ConfigError(f"asset_classes[{s!r}]: expected 'crypto' or 'stock', got {v!r}")
                out.append(v.lower() == "crypto")
            else:
                out.append(bool(v))
        else:
            out.append(is_crypto_symbol(s))
    return np.asarray(out, dtype=bool)
