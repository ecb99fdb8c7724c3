r"""One time step of a whole recurrent stack, forward and backward: for loops that must step themselves.

An attentional decoder, sampling from a language model or recursive forecasting
feed each step's output back into the next input, so they cannot hand a whole
sequence to :meth:`Recurrent.forward`. They step the stack instead, layer l at
time t from the layer below (``x^0_t = x_t``):

.. math::
    s^l_t = \mathrm{cell}(x^l_t W_{ih}^{l\,T} + b^l_{ih},\ s^l_{t-1}), \qquad
    x^{l+1}_t = m^{l+1}_t \odot h^l_t, \qquad \mathrm{out}_t = h^{L-1}_t

with :math:`m` the dropout keep-mask between layers (scaled by 1/(1-p), training
mode only, a fresh draw per step; 1 otherwise). The affine maps and the cell's
step are those of the scanner (:func:`rnnkit.nn.scan.recurrent_step`), so the
cells and the scanner hold the only recurrent math.

Backward, from :math:`d\,\mathrm{out}_t` and the gradient of the state after the
step, goes down the layers and returns the input's gradient and the previous
state's. The weight gradients are sums over steps of
:math:`dXW_t^T X_t` (and :math:`dHW_t^T H_{t-1}`): :meth:`steps_backward`, or
:meth:`step_backward` with a :class:`StepGradients`, keeps the gate gradients
of every step and forms each weight gradient with one product at the end, as
the scanner does; :meth:`step_backward` alone adds them at every step.

Unidirectional stacks only: the reverse direction of a bidirectional layer
starts at the end of the sequence, which a step does not know.

Shapes: x_t (N, D); out (N, P); state as in :class:`Recurrent`, (L, N, P)
(LSTM: the pair ``(h, c)``, c (L, N, H)); P = H unless the LSTM is projected.

Variants: the projection ``h = h_cell W_hr^T`` runs here as in the scanner, and
zoneout at evaluation (its deterministic expectation, ``s = p s_prev + (1-p) s_new``).
The training-mode regularisers (variational dropout, weight drop, zoneout) draw
one mask per *sequence*, which a single step cannot know: in training mode they
are refused here; train with :meth:`Recurrent.forward` over whole chunks.

Array-API code like the scanner: a step computes in the namespace and on the
device of ``x_t`` (dropout masks drawn on the host from ``rng`` and moved there).
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional

import numpy as np

from ..errors import ShapeError
from .module import check_array
from .scan import input_projection, recurrent_step, recurrent_step_backward, weight_gradients
from .xp import device_of, host_if_needed, is_numpy, namespace, numpy_dtype, to_device, xp_dtype

__all__ = ["StepCache", "StepGradients", "RecurrentSteps"]


class StepCache(NamedTuple):
    xs: List[np.ndarray]                  # per layer: its input (N, D_l), after dropout
    h_prev: List[np.ndarray]              # per layer: h (N, H) entering the step
    cells: List[object]                   # per layer: what cell.step returned
    masks: List[Optional[np.ndarray]]     # per layer: scaled dropout keep-mask (N, D_l) on its input, or None


class StepGradients:
    """Gate gradients of many steps, kept by the caller until :meth:`Recurrent.add_step_gradients`.

    An explicit accumulator (nothing is kept on the layer): create one per
    backward pass, pass it to every :meth:`Recurrent.step_backward`, then hand it
    to :meth:`Recurrent.add_step_gradients` once.
    """

    def __init__(self):
        self.rows = {}                    # layer -> list of (d_xw, d_hw, x, h_prev), one entry per step

    def append(self, layer: int, d_xw, d_hw, x, h_prev) -> None:
        self.rows.setdefault(layer, []).append((d_xw, d_hw, x, h_prev))


class RecurrentSteps:
    """The one-step API of :class:`rnnkit.nn.recurrent.Recurrent` (see the module docstring)."""

    def _check_steppable(self, what: str) -> None:
        if self.num_directions != 1:
            raise ValueError(f"{what}: a bidirectional layer cannot run one step at a time (its reverse "
                             "direction starts at the end of the sequence); use forward on the whole sequence")

    def _zeros_for_missing(self, states, N: int, like):
        """The state tuple with zeros (L, N, size) where an entry is None, in ``like``'s namespace and device."""
        xp, dev = namespace(like), device_of(like)
        return [xp.zeros((self.num_layers, N, n), dtype=xp_dtype(xp, self.dtype), device=dev) if s is None
                else host_if_needed(s) for s, n in zip(states, self._state_sizes())]

    def _check_step_regularisers(self) -> None:
        if self.training and (self.variational_dropout or self.weight_drop or self._zoneout_probs()):
            raise ValueError("step_forward: variational_dropout, weight_drop and zoneout draw one mask per "
                             "sequence, which a single step cannot do in training mode; run forward over the "
                             "sequence, or call eval() to step the trained layer")

    def step_forward(self, x_t, state=None, rng: Optional[np.random.Generator] = None, *,
                     need_cache: bool = True):
        """One time step of the whole stack: ``(out (N, H), state_n, cache)``.

        ``x_t`` (N, D); ``state`` in the layout of :meth:`forward`'s (None: zeros).
        ``out`` is the top layer's new h; ``cache`` goes to :meth:`step_backward`
        or, kept in a list over the steps, to :meth:`steps_backward`. ``rng`` is
        required in training mode when ``dropout > 0`` (a fresh mask each step).
        ``need_cache=False`` in eval mode (generation, decoding): cache None, and the
        step runs as a one-step :meth:`forward` through the compiled inference loops.
        """
        self._check_steppable("step_forward")
        self._check_step_regularisers()
        x = check_array(x_t, "x_t", ndims=(2,), last=self.input_size, dtype=self.dtype,
                        layout=f"one step (N, D) with D = input_size = {self.input_size}")
        self._check_device(x)
        if not need_cache and not self.training:          # no cell caches to build: the inference path
            out, state_n, _ = self.forward(x[:, None, ...] if self.batch_first else x[None, ...], state,
                                           need_cache=False)
            return (out[:, 0, ...] if self.batch_first else out[0, ...]), state_n, None
        N = x.shape[0]
        states = self._zeros_for_missing(self._checked_states(state, N), N, x)
        use_dropout = self._uses_dropout(rng)
        cache = StepCache([], [], [], [])
        new = [[] for _ in states]
        for l in range(self.num_layers):
            mask = None
            if l > 0 and use_dropout:
                mask = to_device(self._dropout_mask(rng, x.shape), device_of(x), namespace(x))  # (N, H)
                x = x * mask
            W_ih, W_hh, b_ih, b_hh = self._scan_weights(l, 0)
            cell = self._cell_for(l, 0)
            s_prev = tuple(s[l, ...] for s in states)
            xw = input_projection(cell, x, W_ih, b_ih, b_hh)                    # (N, G*H)
            s_new, cell_cache = recurrent_step(cell, xw, s_prev, W_hh, b_hh)
            if self.proj_size:
                cell_cache = (cell_cache, s_new[0])                             # h_cell (N, H) for dW_hr
                s_new = (s_new[0] @ self._projection(l, 0).T,) + tuple(s_new[1:])  # (N, P)
            zone = self._zoneout_probs()
            if zone is not None:                                                # evaluation: the expectation
                s_new = tuple(n + p * (o - n) for n, o, p in zip(s_new, s_prev, zone))
            for field, value in zip(cache, (x, s_prev[0], cell_cache, mask)):
                field.append(value)
            for j, v in enumerate(s_new):
                new[j].append(v)
            x = s_new[0]                                                        # (N, H)
        return x, self._state_out([tuple(v[l] for v in new) for l in range(self.num_layers)]), cache

    def step_backward(self, d_out, cache: StepCache, d_state=None, grads: Optional[StepGradients] = None):
        """Backward of one :meth:`step_forward`: ``(dx_t (N, D), d_state_prev)``.

        ``d_out`` (N, H) (or None) is the gradient at the step's output, ``d_state``
        at its new state (the layout of the state; None: zero). Returns the input's
        gradient and the previous state's, in the state's layout. Parameter
        gradients are added to ``.grad`` now, or, with ``grads``, recorded there
        for :meth:`add_step_gradients` (one product per weight for all steps).
        """
        self._check_steppable("step_backward")
        if not isinstance(cache, StepCache):
            raise ValueError("step_backward needs the cache that step_forward returned")
        N, H = cache.h_prev[0].shape
        like = cache.h_prev[0]
        xp, dev = namespace(like), device_of(like)
        d_states = self._zeros_for_missing(self._state_in(d_state, "d_state"), N, like)
        for j, (d, n) in enumerate(zip(d_states, self._state_sizes())):
            if d.shape != (self.num_layers, N, n):
                raise ShapeError(f"d_state[{j}]: expected the new state's shape {(self.num_layers, N, n)}, "
                                 f"got {d.shape}")
        if d_out is not None and np.shape(d_out) != (N, H):
            raise ShapeError(f"d_out: expected the step output's shape {(N, H)}, got {np.shape(d_out)}")
        dtype = xp_dtype(xp, self.dtype)

        def ours(a):                # in the layer's dtype, as backward() casts: a float64 d_state stays out
            if is_numpy(a):
                return np.asarray(a, dtype=self.dtype)
            return a if numpy_dtype(a.dtype) == self.dtype else xp.astype(a, dtype)

        d_states = [ours(d) for d in d_states]
        d_out = None if d_out is None else ours(d_out)
        own = grads is None
        if own:
            grads = StepGradients()
        GH = self.cell.num_gates * self.hidden_size
        zone = self._zoneout_probs()
        d_prev = [xp.empty_like(d) for d in d_states]
        d_above = d_out
        for l in range(self.num_layers - 1, -1, -1):
            W_ih, W_hh, _, _ = self._weights(l, 0)
            dh = d_states[0][l, ...] if d_above is None else d_states[0][l, ...] + d_above
            d_new = (dh,) + tuple(d[l, ...] for d in d_states[1:])
            direct = [0.0] * len(d_new)
            if zone is not None:                                                # s = s_new + p (s_prev - s_new)
                direct = [p * d for d, p in zip(d_new, zone)]
                d_new = tuple((1.0 - p) * d for d, p in zip(d_new, zone))
            cell_cache = cache.cells[l]
            if self.proj_size:
                cell_cache, h_cell = cell_cache
                W_hr = getattr(self, "weight_hr" + self._suffix(l, 0))
                W_hr.grad += d_new[0].T @ h_cell                                # (P, H)
                d_new = (d_new[0] @ W_hr.data,) + tuple(d_new[1:])              # (N, H)
            step_cell = self._cell_for(l, 0)
            d_xw = xp.empty((N, GH), dtype=dtype, device=dev)                   # (N, G*H) gate gradients
            d_hw = xp.empty((N, GH), dtype=dtype, device=dev) if step_cell.split_recurrent else d_xw
            acc = step_cell.zero_parameter_gradients() if self.layer_norm else None
            for j, d in enumerate(recurrent_step_backward(step_cell, d_new, cell_cache, W_hh, d_xw, d_hw,
                                                          acc=acc)):
                d_prev[j][l, ...] = d + direct[j]
            if self.peephole:
                acc = step_cell.parameter_gradients(xp.expand_dims(d_xw, axis=0), [cell_cache])
            if acc is not None:                                                 # the cell's own weights, now
                self._add_gradients(l, 0, (None,) * 5 + (acc,))
            grads.append(l, d_xw, d_hw, cache.xs[l], cache.h_prev[l])
            d_above = d_xw @ W_ih                                               # (N, D_l): the layer's input
            if cache.masks[l] is not None:
                d_above *= cache.masks[l]
        if own:
            self.add_step_gradients(grads)
        return d_above, tuple(d_prev) if len(d_prev) > 1 else d_prev[0]

    def add_step_gradients(self, grads: StepGradients) -> None:
        """Add the weight gradients of every step recorded in ``grads`` to ``.grad``, one product each.

        dW_ih = sum_t dXW_t^T X_t, dW_hh = sum_t dHW_t^T H_{t-1} and the bias sums,
        over the steps stacked into (steps * N) rows.
        """
        for l, rows in grads.rows.items():
            xp = namespace(rows[0][0])
            d_xw, d_hw, x, h_prev = (xp.concat(parts) for parts in zip(*rows))  # (steps*N, .)
            for name, g in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
                               weight_gradients(d_xw, d_hw, x, h_prev, self.bias and not self.layer_norm)):
                if g is not None:
                    getattr(self, name + self._suffix(l, 0)).grad += g
        grads.rows.clear()

    def steps_backward(self, d_outs, caches: List[StepCache], d_state=None):
        """Backward of T consecutive :meth:`step_forward` calls: ``(dx (T, N, D), d_state0)``.

        ``caches`` in the order of the steps; ``d_outs`` (T, N, H), a list with
        None entries, or None; ``d_state`` at the last step's state. Walks the
        steps in reverse and adds each weight gradient with one product.
        """
        if len(caches) == 0:
            raise ValueError("steps_backward: expected the caches of at least one step, got none")
        T = len(caches)
        if d_outs is None:
            d_outs = [None] * T
        if len(d_outs) != T:
            raise ShapeError(f"d_outs: expected one gradient per step ({T}), got {len(d_outs)}")
        grads = StepGradients()
        dxs = [None] * T
        for t in range(T - 1, -1, -1):
            dxs[t], d_state = self.step_backward(d_outs[t], caches[t], d_state, grads)
        self.add_step_gradients(grads)
        return namespace(dxs[0]).stack(dxs), d_state                            # (T, N, D)
