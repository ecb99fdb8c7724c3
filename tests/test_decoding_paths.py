"""The speed paths of translation decoding against what they replace (issue 14).

- :class:`rnnkit.kernels.projection.PackedLinear` (the output layer packed once per
  decoding call, one compiled product per step) equals :class:`rnnkit.nn.layers.Linear`;
- ``decode._best`` (the beam's candidates by a partition, then a stable sort of the
  few kept) equals the stable full sort it replaces, ties, ``-inf`` and NaN included;
- greedy and beam decoding give the same hypotheses through the packed layer as
  through the layer itself.
No speed is asserted.
"""

import numpy as np
import pytest

from ci_skip_guard import numba_unavailable
from rnnkit.nn.layers import Linear
from rnnkit.translate import decode
from rnnkit.translate.model import Seq2Seq

needs_numba = pytest.mark.skipif(bool(numba_unavailable()), reason=str(numba_unavailable()))


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("N,I,O", [(1, 7, 5), (13, 40, 130), (14, 33, 64), (32, 200, 257)])
def test_packed_linear_equals_the_layer(dtype, bias, N, I, O):
    """O not a multiple of the panel width (padding columns), every row tile, K over a chunk (I = 200)."""
    from rnnkit.kernels.projection import PackedLinear, packed_linear

    rng = np.random.default_rng(N + I + O)
    layer = Linear(I, O, bias=bias, dtype=dtype, rng=rng)
    if bias:
        layer.bias.data[...] = rng.uniform(-1, 1, O)                    # non-zero biases
    x = rng.standard_normal((N, I)).astype(dtype)
    want = layer(x)[0]
    for f in (PackedLinear(layer.weight.data, None if layer.bias is None else layer.bias.data),
              packed_linear(layer)):
        got = f(x)
        assert got.shape == (N, O) and got.dtype == dtype
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))


def test_packed_linear_falls_back_to_the_layer_on_the_numpy_backend(monkeypatch):
    from rnnkit.kernels import backend
    from rnnkit.kernels.projection import PackedLinear, packed_linear

    monkeypatch.setenv("RNNKIT_BACKEND", "numpy")
    monkeypatch.setattr(backend, "_setting", None)
    layer = Linear(4, 3, rng=0)
    f = packed_linear(layer)
    assert not isinstance(f, PackedLinear)
    x = np.ones((2, 4), layer.weight.data.dtype)
    np.testing.assert_array_equal(f(x), layer(x)[0])


def test_best_equals_the_stable_full_sort():
    rng = np.random.default_rng(0)
    for trial in range(400):
        N, BV, k = int(rng.integers(1, 6)), int(rng.integers(1, 60)), int(rng.integers(1, 12))
        cand = np.round(rng.standard_normal((N, BV)), 1)                 # one decimal: many ties
        cand[rng.random((N, BV)) < 0.3] = -np.inf                        # dead beams
        if trial % 7 == 0:
            cand[0, 0] = np.nan
        want = np.argsort(-cand, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(decode._best(cand, k), want)


def _hyps(result):
    flat = [h for group in result for h in group] if isinstance(result[0], list) else result
    return [(h.tokens, round(h.log_prob, 4)) for h in flat]


@needs_numba
@pytest.mark.parametrize("cfg", [dict(attention="bahdanau"),
                                 dict(attention="bahdanau", tie_embeddings=True),     # out_proj: 24+48 -> 16
                                 dict(attention="general", input_feeding=True, tie_embeddings=True)])
def test_decoding_through_the_packed_layer_equals_decoding_through_the_layer(monkeypatch, cfg):
    model = Seq2Seq(50, 60, embedding_size=16, hidden_size=24, rng=3, **cfg)
    assert ("out_proj" in model.decoder._modules) == cfg.get("tie_embeddings", False)
    rng = np.random.default_rng(1)
    src = rng.integers(4, 50, (7, 5)).astype(np.int64)
    src_len = np.array([7, 5, 6, 3, 7])
    fast = (decode.greedy(model, src, src_len, 12), decode.beam_search(model, src, src_len, 3, 2, 0.5, 12))
    monkeypatch.setattr(decode, "_output_layer", lambda dec: dec.logits)
    plain = (decode.greedy(model, src, src_len, 12), decode.beam_search(model, src, src_len, 3, 2, 0.5, 12))
    for a, b in zip(fast, plain):
        assert _hyps(a) == _hyps(b)
