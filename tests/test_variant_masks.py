"""Zoneout's Bernoulli draws (rnnkit.nn.variants.bernoulli): frequency, determinism, edge probabilities."""

import numpy as np
import pytest

from rnnkit.nn.variants import bernoulli, zoneout_probabilities


@pytest.mark.parametrize("p", [0.03, 0.1, 0.5, 0.9])
def test_bernoulli_frequency_matches_p(p):
    n = 1_000_001                                        # odd: the last raw draw is used for one value
    d = bernoulli(np.random.default_rng(0), p, (n,), np.dtype(np.float32))
    assert d.dtype == np.float32 and d.shape == (n,)
    assert set(np.unique(d)) == {0.0, 1.0}
    assert abs(d.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)      # five standard errors


def test_bernoulli_is_the_generators_and_independent_across_positions():
    a = bernoulli(np.random.default_rng(4), 0.5, (200, 16, 8), np.dtype(np.float64))
    b = bernoulli(np.random.default_rng(4), 0.5, (200, 16, 8), np.dtype(np.float64))
    np.testing.assert_array_equal(a, b)                         # same seed, same draws
    rng = np.random.default_rng(4)
    c, e = (bernoulli(rng, 0.5, (200, 16, 8), np.dtype(np.float64)) for _ in range(2))
    assert not np.array_equal(c, e)                             # the generator advances
    flat = a.reshape(-1)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.03   # neighbours (two halves of one raw word) uncorrelated


def test_bernoulli_edge_probabilities_and_zoneout_layout():
    rng = np.random.default_rng(1)
    assert not bernoulli(rng, 0.0, (50, 7), np.dtype(np.float32)).any()
    assert bernoulli(rng, 1.0, (50, 7), np.dtype(np.float32)).all()
    d_h, d_c = zoneout_probabilities(rng, (0.2, 0.4), True, 5, 3, (4, 6), np.float64)
    assert d_h.shape == (5, 3, 4) and d_c.shape == (5, 3, 6)
    e_h, none = zoneout_probabilities(rng, (0.2, 0.0), False, 5, 3, (4, 6), np.float64)
    assert none is None and np.all(e_h == 0.2)
