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


def test_alpaca_pairs_are_the_crypto_symbols():
    """The feed maps a symbol to an Alpaca pair exactly when the loader calls it crypto (one list of quotes)."""
    from ndjax.feeds.bars import FeedError, alpaca_pair

    for symbol in ("BTC-USD", "ethusdt", "SOLUSD", "DOGE-USDT", "BTC-USDC", "AAPL"):
        if is_crypto_symbol(symbol):
            assert alpaca_pair(symbol).split("/")[1] in ("USD", "USDT")
        else:
            with pytest.raises(FeedError):
                alpaca_pair(symbol)
