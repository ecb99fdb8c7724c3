"""The bench's variants suite: its cases, and that each one builds and runs a training step."""

import numpy as np
import pytest

from rnnkit.bench.cases import VARIANTS, Case, build, suite


def test_the_variants_suite_covers_each_variant_against_the_plain_cell():
    cases = suite("variants", cells=("lstm", "gru"), modes=("train",))
    names = {c.name for c in cases}
    assert {c.config for c in cases} == {"A", "D"}
    for config in ("A", "D"):
        assert f"{config} lstm train L1 uni" in names and f"{config} gru train L1 uni" in names
        for variant, (cells, _) in VARIANTS.items():
            for cell in ("lstm", "gru"):
                assert (f"{config} {cell} train L1 uni {variant}" in names) == (cell in cells)
    with pytest.raises(ValueError, match="--configs"):
        suite("variants", configs=["Z"])


@pytest.mark.parametrize("cell,variant", [(c, v) for v, (cells, _) in VARIANTS.items() for c in cells])
def test_each_variant_case_runs_and_the_projection_matches_torch(cell, variant):
    case = Case(cell, "Q", 6, 3, 5, 8, "train", variant=variant)
    torch = pytest.importorskip("torch") if variant == "proj" else None
    fns = build(case, torch, dtype=np.float64)
    dx = fns["rnnkit"]()
    assert dx.shape == (6, 3, 5) and np.isfinite(dx).all()
    assert ("torch" in fns) == (variant == "proj")
    if variant == "proj":
        np.testing.assert_allclose(dx, fns["torch"]().numpy(), rtol=1e-9, atol=1e-12)
