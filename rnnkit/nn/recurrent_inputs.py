"""Input and state checks of the recurrent stacks: the public layout in, the scanner's tuples out.

A mixin of :class:`rnnkit.nn.recurrent.Recurrent`, kept apart so that the layer's
module holds the math and this one the conversions around it:

- states: PyTorch's layout ``h`` (L*K, N, H) or ``(h, c)`` in, a tuple per
  component inside (:meth:`_state_in`, :meth:`_checked_states`), stacked back on
  the way out (:meth:`_state_out`);
- the input: rank, feature size, dtype, ``batch_first`` to (T, N, D), and the
  device (:meth:`_check_device`: input and parameters on one device, else one line);
- ``lengths``: checked on the host (shape (N,), integers in [1, T]), dropped when
  nothing is padded, moved to the input's device otherwise; or derived from a
  prefix mask (:meth:`lengths_from_mask`);
- the batch order for inference: a padded NumPy batch sorted longest first once per
  stack (:meth:`_longest_first`) and put back in the caller's order (:meth:`_caller_order`).

Every mistake is a :class:`~rnnkit.errors.ShapeError` (or ``DeviceError``) that
says what was expected and what was given.
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import numpy as np

from ..errors import ShapeError
from ..kernels.backend import fused_scan_module
from .xp import check_same_device, device_of, host_if_needed, is_numpy, namespace, numpy_dtype, to_device, to_host

__all__ = ["RecurrentInputs"]

StateLike = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]


class RecurrentInputs:
    """The checks and conversions of :class:`~rnnkit.nn.recurrent.Recurrent`'s inputs and states (a mixin:
    it reads ``cell``, ``mode``, ``num_layers``, ``num_directions``, ``input_size``, ``dtype``, ``batch_first``,
    ``_state_sizes()`` and ``weight_ih_l0`` of the layer)."""

    # -- state conversion: the public layout is PyTorch's, inside it is a tuple -----
    def _state_out(self, per_layer: List[Tuple[np.ndarray, ...]]) -> StateLike:
        xp = namespace(per_layer[0][0])
        stacked = tuple(xp.stack([s[j] for s in per_layer]) for j in range(self.cell.num_states))
        return stacked if self.cell.num_states > 1 else stacked[0]

    def _state_in(self, state: Optional[StateLike], name: str) -> Tuple:
        if state is None:
            return (None,) * self.cell.num_states
        if self.cell.num_states > 1:
            if not (isinstance(state, (tuple, list)) and len(state) == self.cell.num_states):
                raise ShapeError(f"{name}: expected a tuple (h, c) for LSTM, got {type(state).__name__}")
            return tuple(state)
        if isinstance(state, (tuple, list)):
            if len(state) != 1:
                raise ShapeError(f"{name}: expected one array h for {self.mode}, got a tuple of {len(state)}")
            return tuple(state)
        return (state,)

    def _checked_states(self, state, N: int) -> Tuple:
        """The initial state as a tuple (None where not given), each checked to be (L*K, N, H) of our dtype
        ((L*K, N, P) for a projected h)."""
        LK = self.num_layers * self.num_directions
        states = self._state_in(state, "state")
        for j, (s, H) in enumerate(zip(states, self._state_sizes())):
            if s is None:
                continue
            s = host_if_needed(s)
            which = ("h", "c")[j]
            check_same_device(s, self.weight_ih_l0.data, f"initial state {which}")
            if s.shape != (LK, N, H):
                raise ShapeError(f"initial state {which}: expected shape (num_layers*num_directions, N, H) = "
                                 f"{(LK, N, H)}, got {s.shape}")
            if numpy_dtype(s.dtype) != self.dtype:
                raise ShapeError(f"initial state: expected dtype {self.dtype}, got {s.dtype}")
        return states

    def _check_input(self, x, state, lengths):
        x = host_if_needed(x)
        self._check_device(x)
        xp = namespace(x)
        if x.ndim != 3:
            layout = "(N, T, D)" if self.batch_first else "(T, N, D)"
            raise ShapeError(f"input: expected a 3-D array {layout}, got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"input: expected feature size {self.input_size} in the last axis, got {x.shape[-1]} "
                             f"(shape {x.shape})")
        if numpy_dtype(x.dtype) != self.dtype:
            if not np.issubdtype(numpy_dtype(x.dtype), np.floating):
                raise ShapeError(f"input: expected a floating array of dtype {self.dtype}, got {x.dtype}")
            raise ShapeError(f"input: expected dtype {self.dtype} (the parameters' dtype), got {x.dtype}; "
                             f"cast with x.astype(np.{self.dtype})")
        if self.batch_first:
            x = xp.permute_dims(x, (1, 0, 2))
        if is_numpy(x):
            x = np.ascontiguousarray(x)
        T, N, _ = x.shape
        if T == 0 or N == 0:
            raise ShapeError(f"input: expected at least one time step and one sequence, got T={T}, N={N}")
        states = self._checked_states(state, N)
        if lengths is not None:
            lengths = to_host(host_if_needed(lengths))      # checked on the host, moved to x's device below
            if lengths.shape != (N,):
                raise ShapeError(f"lengths: expected shape (N,) = ({N},), one length per sequence, got {lengths.shape}")
            if not np.issubdtype(lengths.dtype, np.integer):
                raise ShapeError(f"lengths: expected integers, got dtype {lengths.dtype}")
            if lengths.min() < 1 or lengths.max() > T:
                raise ShapeError(f"lengths: expected values in [1, T={T}], got min {lengths.min()} and max {lengths.max()}")
            lengths = lengths.astype(np.int64)
            if (lengths == T).all():
                lengths = None   # nothing is padded: take the faster unmasked path
            else:
                lengths = to_device(lengths, device_of(x), xp)
        return x, states, lengths

    @staticmethod
    def _longest_first(x, states, lengths):
        """``(x, states, lengths, back)`` with the batch sorted by length, longest first, or the arguments and
        ``back = None`` where it is sorted already or not a NumPy batch with lengths.

        For inference without random masks: the compiled loops run the live rows of each step as a prefix
        and sort every layer and direction's input otherwise (a (T, N, K*H) copy in, another out, per
        scan); sorting once for the whole stack leaves them in order. ``back`` restores the caller's order
        (:meth:`_caller_order`). ``np.take`` keeps the copies C-contiguous (``x[:, order]`` is laid out
        batch-major, which the loops would copy once more)."""
        if lengths is None or not is_numpy(x, lengths):
            return x, states, lengths, None
        order = np.argsort(-lengths, kind="stable")
        if np.array_equal(order, np.arange(order.size)):
            return x, states, lengths, None
        x = np.take(x, order, axis=1)                                      # (T, N, D) copy
        states = tuple(None if s is None else np.take(s, order, axis=1) for s in states)
        return x, states, lengths[order], np.argsort(order)

    def _caller_order(self, out, state, back):
        """The output (T, N, .) and the final state (L*K, N, .) (or a tuple) in the caller's batch order.

        ``out`` is this call's own array: with the compiled kernels it is reordered in place
        (``permute_rows_inplace``), else copied with ``np.take``; either way C-contiguous (before
        ``batch_first`` turns it into an (N, T, .) view)."""
        if back is None:
            return out, state
        state = tuple(np.take(s, back, axis=1) for s in state) if isinstance(state, tuple) \
            else np.take(state, back, axis=1)                              # (L*K, N, .) each
        if fused_scan_module(self.backend) is not None and out.flags.c_contiguous and out.flags.writeable:
            from numba.core.errors import NumbaError
            from ..kernels.primitives import permute_rows_inplace
            try:
                permute_rows_inplace(out, back)                            # (T, N, K*P) in place
                return out, state
            except NumbaError:                # not compiled here: the copy below does the same
                pass
        return np.take(out, back, axis=1), state                           # (T, N, K*P) copy

    def _check_device(self, x) -> None:
        """The input lives where the parameters do (else one line saying how to move the layer)."""
        check_same_device(x, self.weight_ih_l0.data)

    @staticmethod
    def lengths_from_mask(mask: np.ndarray, batch_first: bool = False) -> np.ndarray:
        """Lengths from a boolean mask (T, N) (or (N, T)) that is True on real steps.

        The mask must be a prefix mask: real steps first, then padding.
        """
        m = np.asarray(to_host(host_if_needed(mask)), dtype=bool)
        if m.ndim != 2:
            raise ShapeError(f"mask: expected a 2-D boolean array, got shape {m.shape}")
        if not batch_first:
            m = m.T
        lengths = m.sum(axis=1)
        prefix = np.arange(m.shape[1])[None, :] < lengths[:, None]
        if not np.array_equal(prefix, m):
            bad = int(np.nonzero((prefix != m).any(axis=1))[0][0])
            raise ShapeError(f"mask: sequence {bad} has padding before a real step; "
                             "expected True for the first length_n steps and False after")
        return lengths
