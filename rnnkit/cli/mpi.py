"""The command line's side of a data-parallel run (:mod:`rnnkit.distributed`): joining, reporting, ending.

A ``train`` command started by ``mpiexec -n K ... --distributed`` runs on K ranks. What
the user sees must not be K times everything, and no rank may wait forever for another:

- :func:`setup` joins the job; ranks other than 0 print no results.
- A failure every rank agreed on (at a step's all-reduce, or before training at the start's,
  :func:`agree`) is said once, by rank 0, or by each rank whose reason differs from rank 0's;
  a failure on some ranks only before training is said by those ranks, with their rank; the
  ranks then meet (:func:`reported`) and end with the highest of their statuses (:func:`exit_process`).
- A failure on one rank alone after training started is said by that rank, with its rank, and
  aborts the job: the other ranks may be waiting for it in a collective.
- A rank that stops before joining (its command line refused or asking for ``--help``, or a train
  command without ``--distributed``) joins at its end to take part in the start with its reason
  (:func:`exit_process`): a process that ends without joining does not end the job, and the ranks
  that joined would wait for it forever (another command line in an MPMD launch).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import signal
import sys
import warnings
from typing import Iterator, List, Optional

import numpy as np

from ..distributed import (SINGLE, World, init, is_collective, launched_rank, launched_size, mark_collective,
                           signal_handlers, started, world)
from ..errors import HyperparameterError

__all__ = ["setup", "parsing", "threads_per_process", "agree", "report_prefix", "reported", "exit_process"]

# environment variables MPI launchers set to the number of ranks on this host
_LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")


def setup(enabled: bool) -> World:
    """What ``--distributed`` does for a ``train`` command: join the MPI job; on ranks other than 0
    send stdout to /dev/null (rank 0 prints the results). Without the flag, a process started by an
    MPI launcher as one of several is refused: each would train alone and write the same files."""
    if not enabled:
        k = launched_size()
        if k > 1:
            exc = mark_collective(HyperparameterError(
                f"this process is one of {k} started by an MPI launcher, but --distributed is not given: each "
                "would train its own copy and write the same files; add --distributed to train one model on "
                "all of them"))
            _before_joining.append(f"rnnkit: error: {exc}")
            raise exc
        return SINGLE
    w = init()
    if w.size == 1:           # `rnnkit ... --distributed` without a launcher: say so, it trains as without the flag
        warnings.warn("--distributed: this is a single process (start several with an MPI launcher, e.g. "
                      "mpiexec -n 2 rnnkit ...); it trains as without the flag", RuntimeWarning, stacklevel=2)
    if w.size > 1:            # a bug's traceback on one rank must end the job, not leave the others waiting
        hook = sys.excepthook

        def abort_then_report(kind, value, tb):
            from mpi4py import run
            run.set_abort_status(1)
            hook(kind, value, tb)
        sys.excepthook = abort_then_report
    if not w.is_root:
        sys.stdout = open(os.devnull, "w")
    return w


@contextlib.contextmanager
def parsing() -> Iterator[None]:
    """Around the parsing of the command line. Under an MPI launcher every rank parses the same arguments
    and refuses a bad one alike, before any rank has joined the job: ranks other than 0 keep argparse's
    message (and ``--help``'s text) to themselves; the stop is kept as the rank's reason, which
    :func:`exit_process` joins the job to give the others at the start of training (alike on every rank, rank
    0 has said it; different on another rank, that rank says its own). Without mpi4py nothing changes: no
    rank could wait for rank 0's line, which would then be lost when a quiet rank ended the job first."""
    if launched_size() == 1 or importlib.util.find_spec("mpi4py") is None:
        yield
        return
    _before_joining.clear()
    said = io.StringIO()
    try:
        with contextlib.ExitStack() as quiet:
            quiet.enter_context(contextlib.redirect_stderr(said))   # argparse's refusal: kept for exit_process
            if launched_rank() != 0:           # --help (stdout) and the refusal: rank 0's to say
                quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
            yield
    except SystemExit as exc:
        if launched_rank() == 0:
            sys.stderr.write(said.getvalue())
            sys.stderr.flush()
        _before_joining.append(said.getvalue().strip() if exc.code else _HELP_LINE)
        raise
    else:
        if launched_rank() == 0:
            sys.stderr.write(said.getvalue())


def threads_per_process(w: World) -> int:
    """``--threads auto`` in a data-parallel run: the free cores of this host shared by its ranks.

    Every rank measures the cores at the same moment and would otherwise take all of them. The
    ranks on this host are counted from the launcher's environment (MPICH's ``MPI_LOCALNRANKS``,
    Open MPI's ``OMPI_COMM_WORLD_LOCAL_SIZE``), so that nothing collective comes before the start of
    training (:meth:`~rnnkit.distributed.World.start_together`); only without them by splitting the
    communicator by shared memory.
    """
    from ..threads import auto_threads
    local = 1
    if w.size > 1:
        for var in _LOCAL_SIZE_VARS:
            try:
                local = int(os.environ[var])
                break
            except (KeyError, ValueError):
                continue
        else:
            from mpi4py import MPI
            node = w.comm.Split_type(MPI.COMM_TYPE_SHARED)
            local = node.Get_size()
            node.Free()
    return max(1, auto_threads() // max(1, local))


def agree(exc: BaseException, message: str) -> None:
    """Before reporting a failure: a rank that failed before training takes part in the others' start
    (:meth:`~rnnkit.distributed.World.start_together`) with ``message``, and the failure becomes one the
    ranks agree on; after the start, nothing changes."""
    w = world()
    if w.size == 1 or started():
        return
    failed, sums = w.start_together(True, message)
    mark_collective(exc)
    exc.rnnkit_failed_ranks = failed
    exc.rnnkit_says_root = 0 in failed and sums[w.rank] == sums[0]     # rank 0 says the same


def report_prefix(exc: BaseException, code: int) -> Optional[str]:
    """How this rank reports a failed command: the prefix for its one-line message, or None to stay
    quiet (see the module docstring). A failure on one rank alone sets the job to abort with ``code``
    when this process exits, so no rank waits forever."""
    w = world()
    if w.size == 1:
        # one of several processes an MPI launcher started that never joined (refused before joining, or
        # stopped by the launcher's signal): every rank has the same line, rank 0 says it
        alike = is_collective(exc) or isinstance(exc, KeyboardInterrupt)
        return None if alike and launched_size() > 1 and launched_rank() != 0 else ""
    failed = getattr(exc, "rnnkit_failed_ranks", None)
    if failed is not None:                                   # before training (agree)
        if len(failed) == w.size and exc.rnnkit_says_root:
            return "" if w.is_root else None
        return f"rank {w.rank} of {w.size}: "
    if is_collective(exc):
        return "" if w.is_root else None
    from mpi4py import run
    run.set_abort_status(code)
    return f"rank {w.rank} of {w.size}: "


def reported(exc: BaseException, code: int) -> int:
    """After the CLI reported a failure with exit status ``code``: when every rank raised it alike, no rank
    exits before rank 0 has written its line. mpiexec stops the whole job as soon as one process exits with an
    error status, and a quiet rank that got there first took rank 0's message with it (about one run in five,
    3 ranks on 2 cores). The ranks meet in an all-reduce of their statuses and return the highest, so that the
    job's status does not depend on which rank ends first: a rank stopped by Ctrl-C (130) or SIGTERM (143)
    beside one that stopped for a reason of its own (2) makes it the signal's."""
    w = world()
    if w.size > 1 and is_collective(exc):
        sys.stderr.flush()
        code = _highest(w, code)
        _stopped_alike.append(exc)
    return code


def _highest(w: World, code: int) -> int:
    """The highest ``code`` over the ranks (every rank calls it: an all-reduce)."""
    from mpi4py import MPI
    buf = np.array([code], np.int64)
    w.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.MAX)
    return int(buf[0])


_stopped_alike: List[BaseException] = []   # what reported() met every rank for


_before_joining: List[str] = []
"""The one-line reason of a rank that stopped before joining the job (refused or asked for ``--help`` while
parsing, or a train command without ``--distributed``); :func:`exit_process` joins to tell the other ranks."""
_HELP_LINE = "rnnkit: error: its command line asks for help (--help), so it trains nothing"


def _stop_at_the_start(w: World, said: str, code: int) -> int:
    """A rank that stopped before joining takes part in the start of training with its reason, as :func:`agree`
    does for later failures: the ranks that did join (another command line in an MPMD launch, ``mpiexec -n 1 A
    : -n 1 B``) stop at their start instead of waiting for this rank forever (a process that ends without
    joining does not end the job), and it says its line unless rank 0 said the same. Then it meets them in
    :func:`reported`'s all-reduce of the statuses, and returns the job's status.

    Ctrl-C or SIGTERM while it waits (the CLI's own handlers are gone by then) is noted, not obeyed: the same
    signal reaches the other ranks from the launcher, and they come to the start to say so; the status then
    becomes the signal's (130 or 143). A rank that waits in MPI's all-reduce cannot run a Python handler
    anyway: a second Ctrl-C to mpiexec ends the whole job, as mpiexec says."""
    head = "rnnkit: error: "
    got: List[int] = []                         # the signals noted while it waits
    with signal_handlers(lambda signum, frame: got.append(signum)):
        failed, sums = w.start_together(True, said)
        if w.rank != 0 and said and (0 not in failed or sums[w.rank] != sums[0]):
            reason = said[len(head):] if said.startswith(head) else said
            sys.stderr.write(f"{head}rank {w.rank} of {w.size}: {reason}\n")
            sys.stderr.flush()
        signalled = (143 if got[0] == signal.SIGTERM else 130) if got else 0
        return _highest(w, signalled or code)    # the ranks that joined meet there after saying theirs (reported)


def exit_process(code: int) -> None:
    """End the CLI's process with status ``code``.

    When every rank of an MPI job stopped alike (met in :func:`reported`), nothing is left to
    say: each rank points its stderr at the null device and calls ``MPI_Abort(code)`` itself. Under
    ``python -m mpi4py`` a non-zero exit ends in ``MPI_Abort`` anyway, and MPICH then prints
    "Abort(130) ... application called MPI_Abort" after a clean stop, as if the job had crashed; a
    plain non-zero exit of every rank is worse: MPICH's launcher kills the ranks still finishing when
    the first one ends (2 runs in 8 here), prints its "BAD TERMINATION" banner and reports status 9.
    The abort makes the job's status ``code`` either way. A failure on one rank alone keeps its report
    and the abort that stops the other ranks waiting for it in a collective.
    """
    w = world()
    stopped_before_joining = w.size == 1 and launched_size() > 1 and bool(_before_joining)
    if stopped_before_joining:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            w = init()
        except Exception:           # noqa: BLE001 (mpi4py without a working MPI library: a plain exit)
            sys.exit(code)
        code = _stop_at_the_start(w, _before_joining[-1], code)
    if code and w.size > 1 and (_stopped_alike or stopped_before_joining):
        sys.stdout.flush()
        sys.stderr.flush()
        _abort_quietly(w.comm, code)
    if code and w.size == 1 and "mpi4py.run" in sys.modules:
        # `mpiexec -n 1 python -m mpi4py -m rnnkit ...`: the runner ends a failed script in MPI_Abort, and MPICH
        # then adds its "Abort(2) on node 0 ..." line to the one line already said
        MPI = sys.modules.get("mpi4py.MPI")
        if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized():
            sys.stdout.flush()
            sys.stderr.flush()
            _abort_quietly(MPI.COMM_WORLD, code)
    sys.exit(code)


def _abort_quietly(comm, code: int) -> None:
    """``MPI_Abort(code)`` on ``comm`` with stderr pointed at the null device: MPICH's report of the abort is not
    for the user, who has had the command's own line."""
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 2)
    comm.Abort(code)
