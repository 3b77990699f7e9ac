"""The book vol cap (`targets.book_vol_capped`) against a float64 reference, and `experiments/cap_structure.py`'s
untrained book built from it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ndjax.targets import book_vol_capped

ROOT = Path(__file__).resolve().parents[1]


def _reference(weight: np.ndarray, sigma: np.ndarray, cap: float) -> np.ndarray:
    bound = float(np.sum(weight * sigma))
    return weight * (min(cap / bound, 1.0) if bound > 0 else 1.0)


_capped = jax.jit(book_vol_capped)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.01, 2.0)), min_size=1, max_size=6),
       st.floats(0.01, 1.0))
def test_book_vol_cap_matches_a_float64_reference(rows, cap):
    weight, sigma = (np.array(c, np.float64) for c in zip(*rows))
    got = np.asarray(_capped(weight.astype(np.float32), sigma.astype(np.float32), np.float32(cap)))
    want = _reference(weight, sigma, cap)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
    assert float(np.sum(got * sigma)) <= cap * (1 + 1e-5) or float(np.sum(weight * sigma)) <= cap


def test_cap_structure_holds_the_untrained_heads_book():
    spec = importlib.util.spec_from_file_location("cap_structure", ROOT / "experiments" / "cap_structure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    vol = np.array([[np.nan, np.nan, np.nan], [0.2, np.nan, 0.4], [0.1, 0.1, 0.1]])
    books = module.capped_books(3, vol, [0.05, 1.0])
    np.testing.assert_array_equal(books["1"][0], 0.0)  # no forecast yet: nothing held
    np.testing.assert_allclose(books["1"][1:], [[0.25, 0.0, 0.25], [0.25, 0.25, 0.25]], rtol=1e-6)  # 1 / (N + 1)
    np.testing.assert_allclose(books["0.05"][1], np.array([0.25, 0.0, 0.25]) * 0.05 / 0.15, rtol=1e-6)
    np.testing.assert_allclose(books["0.05"][2], np.full(3, 0.25) * 0.05 / 0.075, rtol=1e-6)
