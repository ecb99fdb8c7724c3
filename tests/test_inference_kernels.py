"""The inference loops (rnnkit/kernels/inference.py) against the NumPy reference scanner.

Forward only (``need_cache=False``), every configuration of the recurrent grid
in float64 and float32, with the time axis cut into several chunks and the
recurrent product into several unit blocks (a partial one at the end), forward
and reverse; and the same loops driven from Python when NumPy's BLAS symbol is
not found. No speed is asserted.
"""

import numpy as np
import pytest

from ci_skip_guard import in_ci
from recurrent_cases import GRID, GRID_IDS, as_tuple, make_case

if in_ci():
    import numba                                               # noqa: F401
else:
    pytest.importorskip("numba")
from rnnkit.kernels import backend, fused_scan, inference      # noqa: E402

if not backend.numba_status()["ok"]:
    _unavailable = f"numba kernels unavailable: {backend.numba_status()['reason']}"
    if in_ci():
        pytest.fail(f"{_unavailable} (CI=true: numba is a test dependency, its kernels must compile)",
                    pytrace=False)
    pytest.skip(_unavailable, allow_module_level=True)

TOL = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=1e-5, atol=1e-6)}
# (numbers per chunk, product size per block): one chunk and one block; chunks of one step and blocks of
# 4 units of 10 (4 + 4 + 2: the last one partial); mid-sized chunks, one block per... unit count
SPLITS = [(2 ** 16, 10 ** 6), (1, 400), (100, 400)]


@pytest.fixture
def spy(monkeypatch):
    """Counts the calls that reach the inference loops (so a test knows it ran them)."""
    calls = []
    real = inference.scan_forward

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(inference, "scan_forward", counted)
    return calls


def forward(layer, x, state, lengths, backend_name):
    layer.backend = backend_name
    y, state_n, cache = layer.eval().forward(x, state, lengths, need_cache=False)
    assert cache is None
    return [y] + list(as_tuple(state_n))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("split", SPLITS, ids=["whole", "tiny-chunks-blocks", "chunks-blocks"])
@pytest.mark.parametrize("kind,num_layers,bidirectional,varlen,given_state", GRID, ids=GRID_IDS)
def test_inference_loops_equal_the_reference(kind, num_layers, bidirectional, varlen, given_state, split, dtype,
                                             monkeypatch, spy):
    monkeypatch.setattr(inference, "CHUNK_NUMBERS", split[0])
    monkeypatch.setattr(inference, "SMALL_PRODUCT", split[1])
    case = make_case(kind, num_layers, bidirectional, varlen, given_state, dtype=dtype, T=7, N=2, D=3, H=10)
    layer, x, state, lengths = case[:4]
    ref = forward(layer, x, state, lengths, "numpy")
    assert spy == []
    fast = forward(layer, x, state, lengths, "numba")
    assert len(spy) == num_layers * (2 if bidirectional else 1)
    for name, r, f in zip(["output", "h_n", "c_n"], ref, fast):
        np.testing.assert_allclose(f, r, err_msg=name, **TOL[dtype])


def test_the_splits_really_split():
    """What the grid above relies on: its settings give several chunks and blocks, the last block partial."""
    assert inference.chunk_steps(7, 40, 2) == 7
    assert inference.chunk_steps(7, 40, 2) > inference.chunk_steps(7, 40 * 2 ** 16, 2) == 1
    old = inference.SMALL_PRODUCT
    try:
        inference.SMALL_PRODUCT = 400
        assert inference.block_units(10, 4, 2, threads=1) == 4         # blocks 4, 4, 2
        assert inference.block_units(10, 3, 2, threads=1) == 4
        assert inference.block_units(10, 4, 2, threads=2) == 10        # threads: one product, BLAS splits it
    finally:
        inference.SMALL_PRODUCT = old
    order = inference.block_order(10, 4, 4)
    assert sorted(order) == list(range(40))                             # a permutation of the rows
    assert list(order[:8]) == [0, 1, 2, 3, 10, 11, 12, 13]              # units 0-3: gate i, then gate f ...
    assert list(order[32:]) == [8, 9, 18, 19, 28, 29, 38, 39]           # the partial last block


@pytest.mark.parametrize("cols", [1, 16, 64, 128, 1000, 1024, 4096])
def test_chunk_rows_are_an_odd_number_of_cache_lines_apart(cols):
    n = inference.row_length(cols)
    assert n >= cols and (n * 4) % 64 == 0 and (n * 4 // 64) % 2 == 1


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
def test_python_driven_inference_loop(kind, monkeypatch):
    """Without NumPy's gemm symbol the same loops run as Python calling np.matmul: same results."""
    monkeypatch.setattr(inference, "SMALL_PRODUCT", 400)
    layer, x, state, lengths = make_case(kind, 1, False, True, True, dtype=np.float64, T=5, N=2, D=3, H=10)[:4]
    ref = forward(layer, x, state, lengths, "numpy")
    w = dict(layer.named_parameters())
    states = [s[0] for s in as_tuple(state)]
    y, state_n = inference.scan_forward(kind, x, states, w["weight_ih_l0"].data, w["weight_hh_l0"].data,
                                        w["bias_ih_l0"].data, w["bias_hh_l0"].data, lengths, False,
                                        lambda fn, dtype: (fn.py_func, None))
    np.testing.assert_allclose(y, ref[0], **TOL[np.float64])
    for got, want in zip(state_n, ref[1:]):
        np.testing.assert_allclose(got, want[0], **TOL[np.float64])
