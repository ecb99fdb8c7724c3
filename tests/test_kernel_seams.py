"""The seam between the engine (rnnkit.nn) and the compiled kernels (rnnkit.kernels).

The kernels know cells only by the name each cell declares (``fused_kernel``),
and never import the engine: nn/scan.py calls into kernels/, not the reverse.
These checks need no numba (the kernels against the reference are in test_kernels.py).
"""

import ast
import os

import pytest

from rnnkit.nn import Cell, GRUCell, LSTMCell, RNNCell

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "rnnkit", "kernels")


def imported_modules(path):
    """Every module a source file imports, as absolute dotted names (relative ones resolved from rnnkit.kernels)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = "rnnkit.kernels".split(".")[: 2 - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            names += [base] + [f"{base}.{a.name}" for a in node.names]
    return names


def test_no_kernel_module_imports_the_engine():
    files = sorted(f for f in os.listdir(KERNELS) if f.endswith(".py"))
    assert "fused_scan.py" in files and "backend.py" in files
    bad = [(f, m) for f in files for m in imported_modules(os.path.join(KERNELS, f))
           if m == "rnnkit.nn" or m.startswith("rnnkit.nn.")]
    assert bad == []


def test_the_import_check_sees_relative_and_absolute_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("from ..nn.cells import GRUCell\nimport rnnkit.nn.scan\nfrom .. import nn\nfrom . import lstm\n")
    assert {"rnnkit.nn.cells", "rnnkit.nn.scan", "rnnkit.nn", "rnnkit.kernels.lstm"} <= set(imported_modules(src))


def test_cells_declare_their_kernel_and_subclasses_lose_it():
    assert [RNNCell("tanh").fused_kernel, RNNCell("relu").fused_kernel, LSTMCell().fused_kernel,
            GRUCell().fused_kernel] == ["rnn_tanh", "rnn_relu", "lstm", "gru"]

    class Peephole(LSTMCell):
        def step(self, xw, hw, state):
            return super().step(xw, hw, state)

    class Leaky(RNNCell):
        pass

    class Declared(GRUCell):
        fused_kernel = "gru"

    class Minimal(Cell):
        num_gates, num_states = 1, 1

    assert Peephole().fused_kernel is None and Leaky("relu").fused_kernel is None and Minimal().fused_kernel is None
    assert Declared().fused_kernel == "gru"
    with pytest.raises(NotImplementedError):
        Minimal().step(None, None, None)
