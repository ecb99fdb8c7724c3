"""rnnkit.kernels.cuda_graph.GraphedInference where there is no GPU: the eager path it falls back to.

The recording and replaying themselves need CuPy and a GPU and are tested in tests/test_gpu.py.
"""

import numpy as np
import pytest

from recurrent_cases import make_case
from rnnkit.kernels.cuda_graph import GraphedInference


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("varlen", [False, True])
def test_numpy_arrays_run_the_layer_eagerly(kind, varlen):
    layer, x, state, lengths, _, _ = make_case(kind, 2, True, varlen, True, T=5)
    graphed = GraphedInference(layer)
    y, s = graphed(x, state, lengths)
    y_ref, s_ref, _ = layer.forward(x, state, lengths, need_cache=False)
    np.testing.assert_array_equal(y, y_ref)
    for a, b in zip(s if isinstance(s, tuple) else (s,), s_ref if isinstance(s_ref, tuple) else (s_ref,)):
        np.testing.assert_array_equal(a, b)
    assert (graphed.eager_calls, graphed.captures, graphed.replays, graphed.failures) == (1, 0, 0, {})


def test_the_eager_call_raises_what_the_layer_raises():
    layer, x, _, _, _, _ = make_case("gru", 2, False, False, False, dropout=0.3)
    layer.train()
    with pytest.raises(ValueError, match="rng"):
        GraphedInference(layer)(x)


def test_max_graphs_must_be_positive():
    layer, *_ = make_case("rnn_tanh", 1, False, False, False)
    with pytest.raises(ValueError, match="max_graphs"):
        GraphedInference(layer, max_graphs=0)
