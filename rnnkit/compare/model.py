r"""The network every cell is compared in: one recurrent layer and a linear read-out, sized to a parameter budget.

.. math::
    h_t = \mathrm{cell}(x_t, h_{t-1}), \qquad \hat y_t = h_t W^T + b

The loss follows the task (:mod:`.tasks`): MSE or cross-entropy on :math:`\hat y_T`
alone, or cross-entropy averaged over every step. :func:`matched_hidden_sizes`
picks each cell's H so that the total parameter counts are as close as possible
to one budget, as Chung et al. (2014) did (their ~20K models: tanh 100, GRU 46,
LSTM 36 units on 88 inputs).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import HyperparameterError
from ..nn import Linear, Module, Recurrent, cross_entropy, mse
from ..nn.diagnostics import gate_saturation, hidden_gradient_norms
from ..nn.shapes import CELL_MODES, count, linear_shapes, recurrent_shapes
from .tasks import Task

__all__ = ["SeqModel", "parameter_count", "matched_hidden_sizes", "MAX_HIDDEN"]

MAX_HIDDEN = 4096


def parameter_count(cell: str, input_size: int, hidden_size: int, output_size: int) -> int:
    """Parameters of one ``cell`` layer (D -> H) and a linear read-out (H -> O), biases included."""
    shapes = recurrent_shapes("rnn.", CELL_MODES[cell], input_size, hidden_size)
    shapes.update(linear_shapes("head.", hidden_size, output_size))
    return count(shapes)


def matched_hidden_sizes(cells, input_size: int, output_size: int, params: int) -> Dict[str, int]:
    """For each cell, the H (1 to ``MAX_HIDDEN``) whose :func:`parameter_count` is closest to ``params``.

    A budget below some cell's count at H = 1, or above some cell's count at ``MAX_HIDDEN``, could not be
    matched and is refused (:class:`HyperparameterError` giving the range that can).
    """
    counts = {c: np.array([parameter_count(c, input_size, H, output_size) for H in range(1, MAX_HIDDEN + 1)])
              for c in cells}                                                  # cell -> (MAX_HIDDEN,)
    low = max(counts, key=lambda c: counts[c][0])
    high = min(counts, key=lambda c: counts[c][-1])
    if params < counts[low][0] or params > counts[high][-1]:
        raise HyperparameterError(
            f"params (--params) must be between {counts[low][0]:,} (the smallest {low}, H=1) and "
            f"{counts[high][-1]:,} (the largest {high} compared, H={MAX_HIDDEN:,}) for this task, got {params:,}")
    return {c: int(np.argmin(np.abs(n - params))) + 1 for c, n in counts.items()}


class SeqModel(Module):
    """``cell`` layer of ``hidden_size`` units and a linear head for ``task`` (see the module docstring).

    LSTM forget biases start at 1 (Gers et al. 2000; Jozefowicz et al. 2015).
    """

    def __init__(self, task: Task, cell: str, hidden_size: int, *, dtype=np.float32, rng=None):
        super().__init__()
        rng = np.random.default_rng(rng)
        self.task, self.cell = task, cell
        kw = {"forget_bias": 1.0} if cell == "lstm" else {}
        self.rnn = Recurrent(CELL_MODES[cell], task.input_size, hidden_size, dtype=dtype, rng=rng, **kw)
        self.head = Linear(hidden_size, task.output_size, dtype=dtype, rng=rng)

    def _head_input(self, h):
        return h if self.task.loss == "ce_all" else h[-1]                       # (T, N, H) or (N, H)

    def loss(self, x, y, backward: bool = True) -> float:
        """The task's loss on one batch; with ``backward`` its gradients are added to ``.grad``."""
        h, _, c_rnn = self.rnn.forward(x)                                        # (T, N, H)
        out, c_head = self.head.forward(self._head_input(h))                     # (N, O) or (T, N, O)
        value, d_out = self._criterion(out, y)
        if backward:
            dh_in = self.head.backward(d_out, c_head)
            if self.task.loss == "ce_all":
                dh = dh_in
            else:
                dh = np.zeros_like(h)
                dh[-1] = dh_in                                                   # only the last step is read
            self.rnn.backward(dh, c_rnn)
        return value

    def _criterion(self, out, y) -> Tuple[float, np.ndarray]:
        if self.task.loss == "mse_last":
            return mse(out, y)
        return cross_entropy(out, y)

    def evaluate(self, x, y) -> Dict[str, float]:
        """``loss`` and, for classification, ``accuracy`` (of the last step, or of the copied symbols)."""
        with self.eval_mode():
            h, _, _ = self.rnn.forward(x, need_cache=False)
            out, _ = self.head.forward(self._head_input(h))
            value, _ = self._criterion(out, y)
        result = {"loss": float(value)}
        if self.task.loss != "mse_last":
            pred = out.argmax(-1)
            if self.task.loss == "ce_all":       # the symbols to recall: the last S steps
                S = (y.shape[0] - self.task.T) // 2
                result["accuracy"] = float((pred[-S:] == y[-S:]).mean())
            else:
                result["accuracy"] = float((pred == y).mean())
        return result

    def gradient_norms(self, x, y, state=None) -> np.ndarray:
        """||dL_T/dh_t|| for t = 0..T-1 (batch mean), L_T the loss of the last step (see rnnkit.nn.diagnostics)."""
        with self.eval_mode():
            h, _, _ = self.rnn.forward(x, need_cache=False)
            out, c_head = self.head.forward(h[-1])                               # (N, O)
            last = y if self.task.loss != "ce_all" else y[-1]
            _, d_out = mse(out, last) if self.task.loss == "mse_last" else cross_entropy(out, last)
            d_last = d_out @ self.head.weight.data                               # (N, H): no .grad touched
            return hidden_gradient_norms(self.rnn, x, d_last, state)

    def saturation(self, x) -> Optional[Dict[str, np.ndarray]]:
        with self.eval_mode():
            return gate_saturation(self.rnn, x)
