r"""Data-parallel training over MPI: K processes, one model, the gradient of the whole batch.

Every process (rank :math:`r = 0..K-1`) holds the same parameters and takes its
own contiguous share of each global batch of :math:`N` items; rank :math:`r`'s
``step_fn`` returns the mean loss :math:`\ell_r` over its :math:`n_r` items and
its gradient :math:`g_r = \nabla \ell_r`. One all-reduce per step (a SUM over one
flat contiguous buffer, never one call per parameter) gives every rank

.. math::
    g = \frac{1}{N}\sum_{r} n_r\, g_r, \qquad \ell = \frac{1}{N}\sum_r n_r\, \ell_r,
    \qquad N = \sum_r n_r,

the gradient and loss of one process that sees the whole batch: K processes
with batch B each equal one process with batch K*B (up to rounding). Clipping
and the optimiser step come after the reduce, so every rank makes the same
update. The same buffer carries three flags (a rank failed, a rank was asked to
stop, a rank's time budget ran out), so every rank takes the same decision at
the same step and no rank waits forever for another, and rank 0's share of the
time budget used, so a schedule that follows the clock gives every rank the same rate.

In :func:`rnnkit.train.fit`: rank 0's parameters and optimiser state are
broadcast at the start (and after a resume); a rank whose share of a batch is
empty (``batches`` gave None) adds nothing; the step's randomness comes from
``[seed, 0, rank]`` (``[seed, 0]`` on one process) while every rank builds the
same batches in the same order from ``[seed, 1, epoch]``; an exception in one
rank's ``step_fn`` is raised on every rank after that step's reduce, naming the
rank; rank 0 alone validates (the metrics are broadcast, so early stopping
decides alike) unless the ``validate`` function is marked :func:`on_every_rank`,
in which case every rank runs it and it shares the work itself (the character
model's validation streams are split across the ranks with :meth:`World.sum_parts`); rank 0 shows progress and writes checkpoints, which hold every rank's
random state and ``carry`` and resume only on as many processes as wrote them.

Everything goes through MPI (mpi4py on an installed MPI library, the ``mpi``
extra); metadata travels as JSON and arrays as raw buffers, never pickled.

Use::

    from rnnkit import distributed
    world = distributed.init()        # under `mpiexec -n K python -m mpi4py script.py`
    CharModel(...).fit(text)           # the training loop reduces; each app shards its batches

Without :func:`init` the world is one process (:data:`SINGLE`) and nothing here
costs anything. :func:`world` is what the training loop and the applications'
batching code ask. Only rank 0 writes files (:mod:`rnnkit.io.atomic` asks
:func:`is_writer`) and prints progress.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import HyperparameterError, TrainingError

__all__ = ["World", "SINGLE", "init", "world", "using", "is_writer", "launched_size", "mark_collective",
           "is_collective", "on_every_rank", "runs_on_every_rank", "StepFlags", "MPI_HINT", "started",
           "launched_rank", "signal_handlers"]

MPI_HINT = "pip install 'rnnkit[mpi]' (mpi4py and the mpich MPI library)"
# environment variables MPI launchers set in every process they start: (size, rank)
_LAUNCH_VARS = (("PMI_SIZE", "PMI_RANK"), ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
                ("PMIX_SIZE", "PMIX_RANK"), ("MPI_LOCALNRANKS", "MPI_LOCALRANKID"))


def mark_collective(exc: BaseException) -> BaseException:
    """Mark ``exc`` as raised on every rank alike: only rank 0 reports it, nobody needs to abort."""
    exc.rnnkit_collective = True
    return exc


def is_collective(exc: BaseException) -> bool:
    return bool(getattr(exc, "rnnkit_collective", False))


def on_every_rank(fn: Callable) -> Callable:
    """Mark ``fn`` (a ``validate`` function) as one that every rank calls and that shares its work across
    the ranks itself; :func:`rnnkit.train.fit` then calls it on every rank instead of on rank 0 alone."""
    fn.rnnkit_every_rank = True
    return fn


def runs_on_every_rank(fn: Callable) -> bool:
    return bool(getattr(fn, "rnnkit_every_rank", False))


class StepFlags:
    """What every rank agreed at a step's reduce: ``failed`` (some rank raised), ``stop`` (Ctrl-C or
    SIGTERM on some rank), ``deadline`` (some rank's time budget ran out), and ``progress``: the fraction
    of the time budget rank 0 has used (the other ranks send 0), which a time schedule follows."""

    __slots__ = ("failed", "stop", "deadline", "progress")

    def __init__(self, failed: bool = False, stop: bool = False, deadline: bool = False, progress: float = 0.0):
        self.failed, self.stop, self.deadline, self.progress = failed, stop, deadline, progress


class World:
    """The processes of one training run: ``rank`` (0..size-1), ``size`` and the collectives it needs.

    ``World(None)`` is the single process: every collective is the identity.
    ``stats`` counts the gradient all-reduces: ``calls``, ``seconds`` (wall time
    inside MPI) and ``bytes`` (the buffer each rank contributed).
    """

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = 0 if comm is None else int(comm.Get_rank())
        self.size = 1 if comm is None else int(comm.Get_size())
        self.stats = {"calls": 0, "seconds": 0.0, "bytes": 0}
        self._buffer: Optional[np.ndarray] = None

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # -- sharding ------------------------------------------------------------------
    def part(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` items: sizes differ by at most one, lower ranks first."""
        q, extra = divmod(int(n), self.size)
        start = self.rank * q + min(self.rank, extra)
        return slice(start, start + q + (1 if self.rank < extra else 0))

    def shard(self, items):
        """``items[part(len(items))]``, or None when this rank's share is empty (the loop then adds nothing)."""
        if self.size == 1:
            return items
        sl = self.part(len(items))
        return items[sl] if sl.stop > sl.start else None

    # -- the step's all-reduce ---------------------------------------------------------
    def reduce_step(self, grads: Sequence[np.ndarray], loss: float, n_units: int,
                    flags: StepFlags) -> Tuple[float, int, StepFlags]:
        """Average ``grads`` in place over the ranks, weighted by ``n_units``; return the global loss,
        the global count and the flags any rank raised (see the module docstring).

        The buffer is ``[n_r g_r (all parameters, flat) | n_r l_r | n_r | failed | stop | deadline |
        progress]`` in the gradients' dtype, reused from step to step.
        """
        if self.size == 1:
            return loss, n_units, flags
        if not all(g.flags.c_contiguous for g in grads):   # the results are written back through views
            raise TypeError("reduce_step: every gradient must be a C-contiguous array")
        total = sum(g.size for g in grads)
        dtype = np.result_type(*grads) if grads else np.float64
        if self._buffer is None or self._buffer.size != total + 6 or self._buffer.dtype != dtype:
            self._buffer = np.empty(total + 6, dtype=dtype)                    # (P + 6,)
        buf, at = self._buffer, 0
        w = float(n_units)
        for g in grads:
            np.multiply(g.reshape(-1), w, out=buf[at:at + g.size])           # n_r * g_r
            at += g.size
        buf[at:] = (w * loss if n_units else 0.0, w, flags.failed, flags.stop, flags.deadline,
                    flags.progress if self.rank == 0 else 0.0)
        from mpi4py import MPI
        t0 = time.perf_counter()
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        self.stats["seconds"] += time.perf_counter() - t0
        self.stats["calls"] += 1
        self.stats["bytes"] += buf.nbytes
        n_total = float(buf[at + 1])
        agreed = StepFlags(bool(buf[at + 2] > 0), bool(buf[at + 3] > 0), bool(buf[at + 4] > 0), float(buf[at + 5]))
        scale = 1.0 / n_total if n_total > 0 else 0.0
        at = 0
        for g in grads:
            np.multiply(buf[at:at + g.size], scale, out=g.reshape(-1))       # (sum_r n_r g_r) / N
            at += g.size
        loss_total = float(buf[at]) * scale if n_total > 0 else float("nan")
        return loss_total, int(round(n_total)), agreed

    # -- the start of training -----------------------------------------------------------
    def start_together(self, failed: bool, message: str = "") -> Tuple[List[int], List[int]]:
        """``(failed ranks, their messages' CRC-32s)``: every rank calls this once, as its first collective,
        at the start of :func:`rnnkit.train.fit` (``failed`` False) or, when it failed before getting there,
        from the CLI's error report (``failed`` True, with its message; :func:`rnnkit.cli.mpi.agree`). Both
        are the same all-reduce, so a bad flag, which every rank refuses alike, is reported once, a file
        missing on one host is reported by that rank while the others stop with it instead of waiting, and
        a rank whose reason differs from rank 0's knows to say its own. The rank counts as started before
        the call: an interrupt that lands as it returns must not make it join a second time."""
        _started.append(True)
        if self.size == 1:
            return ([0] if failed else []), [0]
        from mpi4py import MPI
        buf = np.zeros(2 * self.size, np.int64)                 # (2K,) [1 where failed | CRC-32 of its message]
        if failed:
            buf[self.rank], buf[self.size + self.rank] = 1, zlib.crc32(message.encode())
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return [int(r) for r in np.flatnonzero(buf[:self.size])], [int(c) for c in buf[self.size:]]

    def same_everywhere(self, text: str) -> bool:
        """Whether every rank passed the same ``text`` (compared by its CRC-32: the lowest and the highest over
        the ranks, in one all-reduce). Every rank gets the same answer, so all stop alike when it is False."""
        if self.size == 1:
            return True
        from mpi4py import MPI
        c = zlib.crc32(text.encode("utf-8", "surrogatepass"))
        buf = np.array([c, -c], np.int64)                      # max of c and of -c: the highest and the lowest
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.MAX)
        return int(buf[0]) == -int(buf[1])

    # -- broadcasts and gathers (JSON and raw buffers, no pickle) -------------------------
    def bcast_arrays(self, arrays: Sequence[np.ndarray]) -> None:
        """Overwrite ``arrays`` on every rank with rank 0's, in place (one flat buffer per dtype)."""
        if self.size == 1:
            return
        by_dtype: Dict[np.dtype, List[np.ndarray]] = {}
        for a in arrays:
            if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
                raise TypeError("bcast_arrays: expected C-contiguous NumPy arrays")
            by_dtype.setdefault(a.dtype, []).append(a)
        for dtype in sorted(by_dtype, key=str):
            group = by_dtype[dtype]
            flat = np.concatenate([a.reshape(-1) for a in group]) if self.is_root else \
                np.empty(sum(a.size for a in group), dtype=dtype)
            self.comm.Bcast(flat, root=0)
            at = 0
            for a in group:
                a.reshape(-1)[...] = flat[at:at + a.size]
                at += a.size

    def bcast_json(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` (JSON-able) on every rank."""
        if self.size == 1:
            return obj
        data = json.dumps(obj).encode() if self.is_root else b""
        n = np.array([len(data)], dtype=np.int64)
        self.comm.Bcast(n, root=0)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.is_root else np.empty(int(n[0]), dtype=np.uint8)
        self.comm.Bcast(buf, root=0)
        return json.loads(buf.tobytes().decode())

    def gather_json(self, obj: Any) -> Optional[List[Any]]:
        """Every rank's ``obj`` (JSON-able) as a list on rank 0; None on the others."""
        if self.size == 1:
            return [obj]
        data = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)
        sizes = np.empty(self.size, dtype=np.int64)
        self.comm.Allgather(np.array([data.size], dtype=np.int64), sizes)
        out = np.empty(int(sizes.sum()), dtype=np.uint8) if self.is_root else None
        self.comm.Gatherv(data, [out, sizes.tolist()] if self.is_root else None, root=0)
        if not self.is_root:
            return None
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        return [json.loads(out[bounds[i]:bounds[i + 1]].tobytes().decode()) for i in range(self.size)]

    def gather_arrays(self, arrays: Dict[str, np.ndarray]) -> Optional[List[Dict[str, np.ndarray]]]:
        """Every rank's ``{name: array}`` as a list on rank 0 (None on the others)."""
        if self.size == 1:
            return [dict(arrays)]
        specs = self.gather_json([[k, a.dtype.str, list(a.shape)] for k, a in arrays.items()])
        raw = np.concatenate([np.ascontiguousarray(a).reshape(-1).view(np.uint8) for a in arrays.values()]) \
            if arrays else np.zeros(0, dtype=np.uint8)
        sizes = np.empty(self.size, dtype=np.int64)
        self.comm.Allgather(np.array([raw.size], dtype=np.int64), sizes)
        out = np.empty(int(sizes.sum()), dtype=np.uint8) if self.is_root else None
        self.comm.Gatherv(raw, [out, sizes.tolist()] if self.is_root else None, root=0)
        if not self.is_root:
            return None
        result, at = [], 0
        for spec in specs:
            d = {}
            for name, dtype, shape in spec:
                dt = np.dtype(dtype)
                nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
                d[name] = out[at:at + nbytes].view(dt).reshape(shape).copy()
                at += nbytes
            result.append(d)
        return result

    def gather_rank_states(self, rng: np.random.Generator, carry: Dict[str, np.ndarray]):
        """For a checkpoint: every rank's ``(rng state, carry)`` in rank order on rank 0 (None elsewhere and
        on one process, where the loop's own state is all there is)."""
        if self.size == 1:
            return None
        states = self.gather_json(rng.bit_generator.state)
        carries = self.gather_arrays(carry)
        return None if states is None else list(zip(states, carries))

    def allgather_text(self, text: str) -> List[str]:
        """Every rank's ``text``, on every rank (used only when a step failed somewhere)."""
        if self.size == 1:
            return [text]
        data = np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8)
        sizes = np.empty(self.size, dtype=np.int64)
        self.comm.Allgather(np.array([data.size], dtype=np.int64), sizes)
        out = np.empty(int(sizes.sum()), dtype=np.uint8)
        self.comm.Allgatherv(data, [out, sizes.tolist()])
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        return [out[bounds[i]:bounds[i + 1]].tobytes().decode("utf-8", "replace") for i in range(self.size)]

    def sum_parts(self, values: Sequence[float], error: Optional[BaseException], what: str) -> List[float]:
        """The sum over the ranks of each of ``values`` (this rank's share), the same bits on every rank.

        ``error`` is what this rank's share raised (None: it went well); if any rank failed, every rank
        raises as in :meth:`raise_failure`. One Allgather of ``[failed, values...]``, summed in rank order,
        so the result does not depend on the reduction tree.
        """
        mine = np.array([0.0 if error is None else 1.0, *(0.0 if error is not None else v for v in values)],
                        dtype=np.float64)                                     # (1 + k,)
        if self.size == 1:
            if error is not None:
                raise error
            return [float(v) for v in mine[1:]]
        every = np.empty((self.size, mine.size), dtype=np.float64)            # (K, 1 + k)
        self.comm.Allgather(mine, every)
        if every[:, 0].any():
            self.raise_failure(error, what)
        total = every[0, 1:].copy()
        for r in range(1, self.size):
            total += every[r, 1:]
        return [float(v) for v in total]

    # -- failures ---------------------------------------------------------------------
    def on_root(self, fn: Callable[[], Any], what: str) -> Any:
        """Run ``fn`` on rank 0 only and give every rank its JSON-able result; an error on rank 0 is
        raised on every rank (rank 0's own exception there, a :class:`TrainingError` quoting it elsewhere)."""
        if self.size == 1:
            return fn()
        result, error = None, None
        if self.is_root:
            try:
                result = fn()
            except Exception as e:          # noqa: BLE001 (re-raised below, on every rank)
                error = e
        sent = self.bcast_json({"ok": error is None, "result": result if error is None else None,
                                "error": None if error is None else str(error)})
        if error is not None:
            raise mark_collective(error)
        if not sent["ok"]:
            raise mark_collective(TrainingError(f"rank 0 failed ({what}): {sent['error']}"))
        return sent["result"]

    def raise_failure(self, error: Optional[BaseException], where: str) -> None:
        """After a reduce whose ``failed`` flag is set: every rank raises, naming the rank(s) that failed
        and the first one's message. Called on every rank."""
        texts = self.allgather_text("" if error is None else f"{type(error).__name__}: {error}")
        failed = [r for r, t in enumerate(texts) if t]
        first = failed[0] if failed else 0
        if error is not None and self.rank == first:
            raise mark_collective(error)          # the failing rank keeps its own exception (and type)
        message = texts[first].split(": ", 1)[-1] if failed else "unknown error"
        others = f" (and rank(s) {', '.join(map(str, failed[1:]))})" if len(failed) > 1 else ""
        raise mark_collective(TrainingError(f"rank {first} of {self.size} failed at {where}{others}: {message}"))


SINGLE = World(None)
_current: Dict[str, World] = {"world": SINGLE}


_started: List[bool] = []   # this rank has taken part in World.start_together


def started() -> bool:
    """Whether this rank has passed the start of training (:meth:`World.start_together`)."""
    return bool(_started)


def world() -> World:
    """The world this process trains in: the one :func:`init` set up, else :data:`SINGLE`."""
    return _current["world"]


def is_writer() -> bool:
    """Whether this process writes output files: rank 0 (or a single process)."""
    return _current["world"].rank == 0


@contextlib.contextmanager
def using(w: World):
    """Make ``w`` the current world inside the block (tests; nested runs)."""
    old = _current["world"]
    _current["world"] = w
    try:
        yield w
    finally:
        _current["world"] = old


def launched_size() -> int:
    """How many processes the MPI launcher started (from its environment variables; 1 without one)."""
    return _launched()[0]


def launched_rank() -> int:
    """This process's rank among those the MPI launcher started (0 without one), before joining the job."""
    return _launched()[1]


def _launched() -> Tuple[int, int]:
    for size_var, rank_var in _LAUNCH_VARS:
        try:
            size, rank = int(os.environ.get(size_var, "1")), int(os.environ.get(rank_var, "0"))
        except ValueError:
            continue
        if size > 1:
            return size, rank
    return 1, 0


@contextlib.contextmanager
def signal_handlers(handler):
    """SIGTERM and SIGINT handled by ``handler`` (a function, or ``signal.SIG_DFL``) inside the block, their
    handlers from before restored after it; off the main thread, where handlers cannot be set, nothing changes."""
    kept = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                kept[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):
                pass
    try:
        yield
    finally:
        for sig, old in kept.items():
            signal.signal(sig, old)


def init(what: str = "--distributed") -> World:
    """Join the MPI job this process was launched in (``mpiexec -n K``) and make it the current world.

    Without mpi4py (or its MPI library) this is a one-line :class:`HyperparameterError` naming
    the ``mpi`` extra. Calling it again returns the same world.
    """
    if _current["world"] is not SINGLE:
        return _current["world"]
    try:
        # SIGTERM and SIGINT end the process while MPI starts: MPI_Init_thread waits in C for every rank of the
        # job, where a Python handler cannot run; a rank that got the launcher's signal before joining exits, and
        # a rank already inside would otherwise wait for it forever (2 launches in 14 stopped in their first
        # 0.4 s hung so). Nothing is lost by ending there: no training has started.
        with signal_handlers(signal.SIG_DFL):
            from mpi4py import MPI             # MPI_Init_thread: waits until every rank of the job has called it
    except ImportError as e:
        raise mark_collective(HyperparameterError(                  # every launched process alike: rank 0 says it
            f"{what} needs mpi4py and an MPI library, which are not installed ({e}); {MPI_HINT}")) from None
    except RuntimeError as e:                  # mpi4py present, its MPI library missing or broken
        raise mark_collective(HyperparameterError(f"{what}: mpi4py could not start MPI ({e}); {MPI_HINT}")) from None
    w = World(MPI.COMM_WORLD)
    _current["world"] = w
    return w
