"""Both directions of a bidirectional layer at once, for inference.

The forward and the reverse scan of a layer read the same input and share nothing
else. Where neither keeps a cache (evaluation, generation over a prompt, serving)
and both run in the compiled inference loops (:mod:`rnnkit.kernels.inference`),
the reverse scan runs on a helper thread while the caller runs the forward one:
the loops release the GIL, and each keeps its steps on its own thread
(:func:`rnnkit.kernels.inference.serial_steps`), so there is no synchronisation
per step, only one hand-over per layer. Results are the same arrays, bit for bit,
as the two scans one after the other; only the wall clock changes (when it pays:
:func:`rnnkit.kernels.inference.pair_pays`).

There is one helper thread for the process and it takes one pair at a time: a caller
that finds it busy (a server answering several requests on threads) runs its two
directions itself, one after the other, rather than queueing behind another caller's.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import List, Sequence

from .scan import fused_for, scan_forward

__all__ = ["scan_directions"]

_pool: dict = {}
_pool_lock = threading.Lock()
_busy = threading.Lock()        # held while the helper runs a caller's second direction


def _helper() -> ThreadPoolExecutor:
    with _pool_lock:
        if "pool" not in _pool:
            _pool["pool"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnkit-direction")
        return _pool["pool"]


def _concurrent(calls: Sequence[dict], backend, need_cache: bool) -> bool:
    """Two scans that the compiled inference loops will run, large enough to pay for a hand-over."""
    if len(calls) != 2 or need_cache:
        return False
    for c in calls:
        fused = fused_for(c["cell"], c["x"], c["state0"], c["W_ih"], c["W_hh"], c["b_ih"], c["b_hh"], c["lengths"],
                          c["variant"], backend)
        if fused is None or not fused.runs_inference_loop(c["cell"], c["x"], c["variant"], need_cache):
            return False
    from ..kernels import inference
    T, N, _ = calls[0]["x"].shape
    return inference.pair_pays(calls[0]["cell"].fused_kernel, T, N, calls[0]["W_hh"].shape[1])


def scan_directions(calls: Sequence[dict], backend=None, need_cache: bool = True) -> List[tuple]:
    """``[scan_forward(**call, backend=..., need_cache=...) for call in calls]``, the two directions of a
    bidirectional layer at once where :func:`_concurrent` allows it (``calls[1]`` on the helper thread)."""
    if not _concurrent(calls, backend, need_cache) or not _busy.acquire(blocking=False):
        return [scan_forward(**c, backend=backend, need_cache=need_cache) for c in calls]
    from ..kernels.inference import serial_steps

    def run(call):
        with serial_steps():
            return scan_forward(**call, backend=backend, need_cache=need_cache)

    try:
        second = _helper().submit(run, calls[1])
        try:
            first = run(calls[0])
        finally:
            wait([second])              # also when the first raised: nothing may still run after we return
    finally:
        _busy.release()
    return [first, second.result()]
