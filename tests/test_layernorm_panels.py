"""The layer-norm loops' recurrent products on register-tiled panels (rnnkit/kernels/panel_mm.py).

The variant tests run H = 7, where no panel width divides the products' columns and the loops
use BLAS; here H = 64, where they run on panels (asserted), compiled against the NumPy
reference in float64 (rtol 1e-10) and float32, alone and with the masks that change the
product's path (variational mask, zoneout, weight drop, projection), variable lengths, both
directions, and at T = 1, where nothing is packed. ``pmm`` itself is checked against ``np.matmul``
for both its paths.
"""

import numpy as np
import pytest

from test_recurrent_variants import _backend_or_skip, assert_backends_agree
from variant_cases import make_variant_case

CASES = [
    ("lstm", dict(layer_norm=True)),
    ("gru", dict(layer_norm=True)),
    ("lstm", dict(layer_norm=True, proj_size=32, variational_dropout=0.3, weight_drop=0.4, zoneout=0.3)),
    ("gru", dict(layer_norm=True, variational_dropout=0.3, zoneout=0.3)),
]
IDS = [kind + "-" + "-".join(f"{k}{v}" for k, v in kw.items()) for kind, kw in CASES]


def _compiled_pmm():
    from numba import njit

    from rnnkit.kernels.panel_mm import pmm

    @njit
    def run(gemm, Mp, kc, a, M, beta, out):
        pmm(gemm, Mp, kc, a, M, beta, out)
    return run


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("N", [1, 5, 7, 13])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_panel_product_equals_matmul_on_both_paths(dtype, N, beta):
    _backend_or_skip("numba")
    from rnnkit.kernels import microgemm, panel_mm
    from rnnkit.kernels.blas import gemm_pointers

    gemm = gemm_pointers()[np.dtype(dtype)]
    GW = panel_mm.panel_width(dtype)
    rng = np.random.default_rng(N)
    run = _compiled_pmm()
    kc = microgemm.k_chunk(panel_mm.VECTORS, dtype)
    for K, C, panels in [(2 * kc + 5, 3 * GW, True), (9, GW + 3, False)]:   # K over several chunks; C no multiple
        a = rng.standard_normal((N, K)).astype(dtype)
        M = rng.standard_normal((K, C)).astype(dtype)
        Mp = panel_mm.pack(M)
        assert (Mp.shape[0] > 0) == panels
        out0 = rng.standard_normal((N, C)).astype(dtype)
        out = out0.copy()
        run(gemm, Mp, kc, a, M, dtype(beta), out)
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(out, a @ M + beta * out0, **tol)


@pytest.mark.parametrize("kind,kw", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("T", [5, 1], ids=["T5", "T1-blas"])       # a one-step scan does not pack
def test_layer_norm_loops_on_panels_equal_the_reference(kind, kw, dtype, T):
    _backend_or_skip("numba")
    from rnnkit.kernels import layernorm_scan, panel_mm

    H = 64
    G = 4 if kind == "lstm" else 3
    P = kw.get("proj_size") or H
    assert panel_mm.pack(np.zeros((P, G * H), dtype)).shape[0] > 0      # the forward product can run on panels
    assert (T >= layernorm_scan.PANEL_MIN_STEPS) == (T == 5)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=1e-4)
    ref = assert_backends_agree(make_variant_case(kind, kw, varlen=T > 1, dtype=dtype, T=T, N=7, D=5, H=H), tol)
    assert any(np.abs(a).max() > 0 for a in ref)
