r"""Attention over a memory of encoder states: additive (Bahdanau) and multiplicative (Luong).

For a query :math:`s` (decoder state) and memory :math:`h_1..h_S` (encoder states)
with a mask :math:`m_j` (1 on real source positions, 0 on padding):

.. math::
    e_j &= \mathrm{score}(s, h_j)                   \\
    a_j &= \frac{m_j \exp e_j}{\sum_k m_k \exp e_k}  \qquad \text{(padding gets exactly 0)} \\
    c   &= \sum_j a_j h_j

with the scores

.. math::
    \text{additive (Bahdanau et al. 2015):}\quad & e_j = v^T \tanh(W s + U h_j) \\
    \text{dot (Luong et al. 2015):}\quad         & e_j = s^T h_j \\
    \text{general (Luong et al. 2015):}\quad     & e_j = s^T W_a h_j

Every scorer splits into a part that depends on the memory only, the *keys*
:math:`k_j` (:math:`U h_j`, :math:`h_j`, :math:`W_a h_j`), and a part that uses the
query. A decoder attends once per output step to the same memory, so
:meth:`Attention.prepare` computes the keys once per batch and :meth:`Attention.attend`
does the per-step work; in the backward pass the key gradients of all steps are
summed and :meth:`Attention.prepare_backward` turns them into the parameter
gradient with one product. :meth:`Attention.forward` / :meth:`Attention.backward`
do both halves in one call.

Shapes (N batch, S source positions, K memory features, Q query features,
A attention size, T queries per sequence):

- query ``s``: (N, Q), or (N, T, Q) for T queries at once (Luong attention over
  a whole teacher-forced target sequence);
- memory ``h``: (N, S, K), batch first; mask (N, S) boolean, True on real positions;
- context ``c``: (N, K) or (N, T, K); weights ``a``: (N, S) or (N, T, S).

Parameters: additive ``W`` (A, Q), ``U`` (A, K), ``v`` (A,); general ``W_a`` (Q, K);
dot has none and needs Q == K. Initialisation U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
as a PyTorch ``Linear`` without bias. Departure from the papers: none of the
scorers has a bias (the equations above have none, and a bias added to every
:math:`e_j` cancels in the softmax anyway for dot and general).

The arithmetic runs in the array namespace of the inputs and parameters
(:mod:`rnnkit.nn.xp`): NumPy as before, or device arrays that stay on their device.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ..checks import check_count, check_seed
from ..errors import ShapeError
from .module import Module, check_array
from .xp import host_if_needed, xp_dtype, is_numpy, namespace

__all__ = ["Attention", "AdditiveAttention", "DotAttention", "GeneralAttention", "Memory",
           "make_attention", "ATTENTION_TYPES"]


class Memory(NamedTuple):
    """What :meth:`Attention.prepare` returns: the memory, its keys and the mask."""

    values: np.ndarray              # (N, S, K) the h_j that the context averages
    keys: np.ndarray                # (N, S, A) U h_j, (N, S, K) h_j or (N, S, Q) W_a h_j
    mask: Optional[np.ndarray]      # (N, S) bool, True on real positions (None: all real)


def _masked_softmax(e: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
    """Softmax over the last axis (S) that gives exactly zero weight where mask is False."""
    xp = namespace(e)
    if mask is not None:
        e = xp.where(mask, e, -xp.inf)      # exp(-inf) = 0: padding never receives weight
    e = e - xp.max(e, axis=-1, keepdims=True)
    w = xp.exp(e)
    w /= xp.sum(w, axis=-1, keepdims=True)
    return w


def _softmax_backward(w: np.ndarray, dw: np.ndarray) -> np.ndarray:
    """d e_j = a_j (d a_j - sum_k a_k d a_k); zero at masked positions because a_j is zero there."""
    xp = namespace(w, dw)
    return w * (dw - xp.sum(w * dw, axis=-1, keepdims=True))


class Attention(Module):
    """Base class: the masked softmax and the weighted average; subclasses define the score.

    Subclasses implement ``_keys(values) -> keys``, ``_keys_backward(d_keys, values)
    -> d_values`` (adding parameter gradients), ``_scores(query, keys) -> (e, cache)``
    and ``_scores_backward(d_e, cache) -> (d_query, d_keys)`` (adding parameter gradients).
    """

    query_size: int
    memory_size: int

    # -- keys: once per memory ---------------------------------------------
    def prepare(self, memory: np.ndarray, mask: Optional[np.ndarray] = None) -> Memory:
        """Validate the memory (N, S, K) and the mask (N, S), and compute the keys."""
        memory = _check(memory, f"{type(self).__name__} memory", ndims=(3,), last=self.memory_size,
                        layout=f"(N, S, K={self.memory_size})", dtype=self.dtype)
        if mask is not None:
            mask = host_if_needed(mask)
            xp = namespace(memory, mask)
            mask = np.asarray(mask, dtype=bool) if xp is np else xp.astype(mask, xp.bool)
            if tuple(mask.shape) != tuple(memory.shape[:2]):
                raise ShapeError(f"{type(self).__name__} mask: expected shape (N, S) = {tuple(memory.shape[:2])}, "
                                 f"got {tuple(mask.shape)}")
            if not bool(xp.all(xp.any(mask, axis=1))):
                raise ShapeError(f"{type(self).__name__} mask: every sequence needs at least one real position")
            if bool(xp.all(mask)):
                mask = None               # nothing padded: skip the masking work
        return Memory(memory, self._keys(memory), mask)

    def prepare_backward(self, d_keys: np.ndarray, d_values: np.ndarray, memory: Memory) -> np.ndarray:
        """Gradient of the memory from the summed key and value gradients of every step."""
        return d_values + self._keys_backward(d_keys, memory.values)

    # -- per query ---------------------------------------------------------
    def attend(self, query: np.ndarray, memory: Memory):
        """Context and weights for ``query`` (N, Q) or (N, T, Q); returns ``(context, weights, cache)``.

        No validation here: this is the decoder's per-step path (``prepare`` checked the memory).
        """
        xp = namespace(query, memory.values)
        e, score_cache = self._scores(query, memory.keys)           # (N, [T,] S)
        mask = memory.mask
        if mask is not None and e.ndim == 3:
            mask = mask[:, None, :]                                  # (N, 1, S) for every query
        w = _masked_softmax(e, mask)                                 # (N, [T,] S)
        if w.ndim == 2:
            context = xp.matmul(w[:, None, :], memory.values)[:, 0, :]  # (N, K)
        else:
            context = xp.matmul(w, memory.values)                    # (N, T, K)
        return context, w, (w, score_cache)

    def attend_backward(self, d_context: np.ndarray, cache, memory: Memory,
                        d_weights: Optional[np.ndarray] = None):
        """Returns ``(d_query, d_keys, d_values)``; parameter gradients of the query side are added."""
        w, score_cache = cache
        h = memory.values
        xp = namespace(d_context, h)
        if w.ndim == 2:
            dw = xp.matmul(h, d_context[:, :, None])[:, :, 0]        # (N, S): d a_j = dc . h_j
            d_values = w[:, :, None] * d_context[:, None, :]         # (N, S, K)
        else:
            dw = xp.matmul(d_context, xp.permute_dims(h, (0, 2, 1)))  # (N, T, S)
            d_values = xp.matmul(xp.permute_dims(w, (0, 2, 1)), d_context)   # (N, S, K): sum over queries
        if d_weights is not None:
            dw = dw + d_weights
        d_e = _softmax_backward(w, dw)
        d_query, d_keys = self._scores_backward(d_e, score_cache)
        return d_query, d_keys, d_values

    # -- both halves -------------------------------------------------------
    def forward(self, query, memory, mask=None):
        """``(context, weights, cache)`` for query (N, Q) or (N, T, Q) over memory (N, S, K)."""
        query = _check(query, f"{type(self).__name__} query", ndims=(2, 3), last=self.query_size,
                       layout=f"(N, Q={self.query_size}) or (N, T, Q)", dtype=self.dtype)
        mem = self.prepare(memory, mask)
        if query.shape[0] != mem.values.shape[0]:
            raise ShapeError(f"{type(self).__name__}: query batch {query.shape[0]} != memory batch "
                             f"{mem.values.shape[0]}")
        context, w, cache = self.attend(query, mem)
        return context, w, (cache, mem)

    def backward(self, d_context, cache, d_weights=None):
        """``(d_query, d_memory)``; parameter gradients are added to ``.grad``."""
        step_cache, mem = cache
        d_query, d_keys, d_values = self.attend_backward(d_context, step_cache, mem, d_weights)
        return d_query, self.prepare_backward(d_keys, d_values, mem)

    def __call__(self, query, memory, mask=None):
        return self.forward(query, memory, mask)


def _init(rng, shape, fan_in, dtype):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _check(a, what, *, ndims, layout, last, dtype):
    """:func:`check_array`'s checks for arrays of any library (a device array is never copied to the host)."""
    a = host_if_needed(a)
    if is_numpy(a):
        return check_array(a, what, ndims=ndims, layout=layout, last=last, dtype=dtype)
    if a.ndim not in ndims or (last is not None and a.shape[-1] != last):
        raise ShapeError(f"{what}: expected {layout}, got shape {tuple(a.shape)}")
    if a.dtype != xp_dtype(namespace(a), dtype):
        raise ShapeError(f"{what}: expected dtype {np.dtype(dtype)} (the parameters' dtype), got {a.dtype}")
    return a


def _check_sizes(**sizes):
    for name, v in sizes.items():
        check_count(name, v, 1)


class AdditiveAttention(Attention):
    r"""Bahdanau attention, :math:`e_j = v^T \tanh(W s + U h_j)` (see the module docstring).

    ``W`` (A, Q), ``U`` (A, K), ``v`` (A,); the keys are :math:`U h_j` (N, S, A).
    Backward, with :math:`t_j = \tanh(W s + U h_j)` and :math:`g_j = (d e_j\, v) \odot (1 - t_j^2)`:
    :math:`dv = \sum_j d e_j t_j`, :math:`dW = (\sum_j g_j)^T s`, :math:`ds = (\sum_j g_j) W`,
    :math:`d k_j = g_j`, :math:`dU = \sum_j g_j^T h_j`.
    """

    def __init__(self, query_size: int, memory_size: int, attention_size: Optional[int] = None, *,
                 dtype=np.float32, rng=None):
        super().__init__()
        attention_size = query_size if attention_size is None else attention_size
        _check_sizes(query_size=query_size, memory_size=memory_size, attention_size=attention_size)
        self.query_size, self.memory_size, self.attention_size = int(query_size), int(memory_size), int(attention_size)
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(check_seed("rng", rng))
        self.add_parameter("W", _init(rng, (attention_size, query_size), query_size, dtype))
        self.add_parameter("U", _init(rng, (attention_size, memory_size), memory_size, dtype))
        self.add_parameter("v", _init(rng, (attention_size,), attention_size, dtype))

    def _keys(self, h):
        xp = namespace(h, self.U.data)
        return xp.matmul(h, xp.permute_dims(self.U.data, (1, 0)))    # (N, S, A)

    def _keys_backward(self, d_keys, h):
        return _linear_keys_backward(self.U, d_keys, h)

    def _scores(self, s, keys):
        xp = namespace(s, keys, self.W.data)
        ws = xp.matmul(s, xp.permute_dims(self.W.data, (1, 0)))     # (N, [T,] A)
        if s.ndim == 2:
            t = xp.tanh(ws[:, None, :] + keys)                       # (N, S, A)
        else:
            t = xp.tanh(ws[:, :, None, :] + keys[:, None, :, :])     # (N, T, S, A)
        e = xp.matmul(t, self.v.data)                                # (N, [T,] S)
        return e, (s, t)

    def _scores_backward(self, d_e, cache):
        s, t = cache
        A = self.attention_size
        xp = namespace(d_e, t)
        self.v.grad += xp.sum(xp.reshape(d_e[..., None] * t, (-1, A)), axis=0)
        g = (d_e[..., None] * self.v.data) * (1.0 - t * t)           # (N, [T,] S, A)
        d_ws = xp.sum(g, axis=-2)                                    # (N, [T,] A)
        self.W.grad += xp.matmul(xp.permute_dims(xp.reshape(d_ws, (-1, A)), (1, 0)),
                                 xp.reshape(s, (-1, self.query_size)))   # (A, Q)
        d_query = xp.matmul(d_ws, self.W.data)                       # (N, [T,] Q)
        d_keys = g if g.ndim == 3 else xp.sum(g, axis=1)             # (N, S, A): summed over queries
        return d_query, d_keys


class _BilinearScores(Attention):
    """Luong's scores :math:`e_j = s^T k_j`, shared by dot (k = h) and general (k = W_a h) attention."""

    def _scores(self, s, keys):
        return _bilinear(s, keys), (s, keys)

    def _scores_backward(self, d_e, cache):
        s, keys = cache
        return _bilinear_backward(d_e, s, keys)


class DotAttention(_BilinearScores):
    r"""Luong's dot attention, :math:`e_j = s^T h_j` (query and memory of the same size, no parameters).

    Backward: :math:`ds = \sum_j d e_j h_j`, :math:`d h_j \mathrel{+}= d e_j s`.
    """

    def __init__(self, query_size: int, memory_size: Optional[int] = None, *, dtype=np.float32, rng=None):
        super().__init__()
        memory_size = query_size if memory_size is None else memory_size
        _check_sizes(query_size=query_size, memory_size=memory_size)
        if memory_size != query_size:
            raise ValueError(f"dot attention needs query_size == memory_size, got {query_size} and {memory_size}; "
                             "use 'general' attention for different sizes")
        self.query_size = self.memory_size = int(query_size)
        self.dtype = np.dtype(dtype)

    def _keys(self, h):
        return h

    def _keys_backward(self, d_keys, h):
        return d_keys


class GeneralAttention(_BilinearScores):
    r"""Luong's general attention, :math:`e_j = s^T W_a h_j`; the keys are :math:`W_a h_j` (N, S, Q).

    ``W_a`` (Q, K). Backward: :math:`ds = \sum_j d e_j k_j`, :math:`d k_j = d e_j s`,
    :math:`dW_a = \sum_j d k_j^T h_j`.
    """

    def __init__(self, query_size: int, memory_size: int, *, dtype=np.float32, rng=None):
        super().__init__()
        _check_sizes(query_size=query_size, memory_size=memory_size)
        self.query_size, self.memory_size = int(query_size), int(memory_size)
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(check_seed("rng", rng))
        self.add_parameter("W_a", _init(rng, (query_size, memory_size), memory_size, dtype))

    def _keys(self, h):
        xp = namespace(h, self.W_a.data)
        return xp.matmul(h, xp.permute_dims(self.W_a.data, (1, 0)))  # (N, S, Q)

    def _keys_backward(self, d_keys, h):
        return _linear_keys_backward(self.W_a, d_keys, h)


def _linear_keys_backward(W, d_keys, h):
    """Backward of keys = h W^T: adds dW = sum_j d k_j^T h_j to ``W.grad``, returns dh = d_keys W (N, S, K)."""
    N, S, K = h.shape
    xp = namespace(d_keys, h)
    W.grad += xp.matmul(xp.permute_dims(xp.reshape(d_keys, (N * S, -1)), (1, 0)),
                        xp.reshape(h, (N * S, K)))                   # (A or Q, K)
    return xp.matmul(d_keys, W.data)                                 # (N, S, K)


def _bilinear(s, keys):
    """e_j = s . k_j for one query (N, Q) or T queries (N, T, Q)."""
    xp = namespace(s, keys)
    if s.ndim == 2:
        return xp.matmul(keys, s[:, :, None])[:, :, 0]               # (N, S)
    return xp.matmul(s, xp.permute_dims(keys, (0, 2, 1)))            # (N, T, S)


def _bilinear_backward(d_e, s, keys):
    xp = namespace(d_e, s, keys)
    if s.ndim == 2:
        d_query = xp.matmul(d_e[:, None, :], keys)[:, 0, :]          # (N, Q)
        d_keys = d_e[:, :, None] * s[:, None, :]                     # (N, S, Q)
    else:
        d_query = xp.matmul(d_e, keys)                               # (N, T, Q)
        d_keys = xp.matmul(xp.permute_dims(d_e, (0, 2, 1)), s)       # (N, S, Q): summed over queries
    return d_query, d_keys


ATTENTION_TYPES = {"bahdanau": AdditiveAttention, "additive": AdditiveAttention,
                   "dot": DotAttention, "general": GeneralAttention}


def make_attention(kind: str, query_size: int, memory_size: int, attention_size: Optional[int] = None, *,
                   dtype=np.float32, rng=None) -> Attention:
    """Build an attention layer by name: "bahdanau" (= "additive"), "dot" or "general"."""
    if kind not in ATTENTION_TYPES:
        raise ValueError(f"attention: expected one of {sorted(ATTENTION_TYPES)}, got {kind!r}")
    if ATTENTION_TYPES[kind] is AdditiveAttention:
        return AdditiveAttention(query_size, memory_size, attention_size, dtype=dtype, rng=rng)
    return ATTENTION_TYPES[kind](query_size, memory_size, dtype=dtype, rng=rng)
