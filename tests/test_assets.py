"""Asset classes from symbols: the suffix rule and the explicit mapping that wins over it."""

from __future__ import annotations

import pytest

from ndjax.assets import asset_class_mask, is_crypto_symbol


def test_crypto_symbol_rule_and_override():
    assert [is_crypto_symbol(s) for s in ("BTC-USD", "ethusdt", "SOLUSD", "DOGE-USDT", "AAPL", "USDC")] == [
        True, True, True, True, False, False,
    ]
    mask = asset_class_mask(["BTC-USD", "MSTR", "XUSD"], {"XUSD": "stock", "MSTR": True})
    assert mask.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="MSTR"):
        asset_class_mask(["MSTR"], {"MSTR": "bond"})
