r"""A barrier between the threads of one parallel loop that spins instead of ending the loop: for steps of microseconds.

The threaded inference loops (:mod:`rnnkit.kernels.inference_threads`) need one
synchronisation per time step: every thread's units of h_t must be written before
any thread computes h_{t+1}. Ending a numba ``prange`` at every step costs about
5 us on this project's machine (the team's fork and join), against a step of
10-50 us at configs A and D. Here each thread runs all T steps inside one ``prange``
iteration and, after each step, publishes its progress and waits for the others':

.. math::
    \text{flags}[q] \leftarrow s + 1 \ \text{(release)}; \qquad
    \text{wait until } \text{flags}[q'] \ge s + 1 \ \text{for every part } q' \ \text{(acquire)}

Each part's flag is written by its owner only, so the barrier needs no read-modify-write:
the release store and the acquire loads order each thread's writes of h before
the other threads' reads of them. A waiting thread pauses (``pause`` on x86), and
after :data:`SPINS` rounds yields its core, so a barrier under oversubscription
gives the core to the thread it waits for.

Deadlock-free even when the runtime runs the iterations one after the other
(fewer threads than parts, a nested loop): a part is *claimed* by a compare-and-swap
before its thread runs it, and a thread that waits at the first barrier for a part
nobody has claimed for :data:`STEAL_ROUNDS` rounds claims it itself and runs it
from step 0 (nobody can be past step 0 then); the iteration that would have run it
finds it claimed and returns. After the first barrier every part is claimed by a
running thread, so later waits end.
"""

from __future__ import annotations

import platform
import sys

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["LINE", "SPINS", "STEAL_ROUNDS", "load_acquire", "store_release", "claim", "relax", "wait_for"]

LINE = 8
"""int64 slots between two flags: one 64-byte cache line each, so a thread's flag writes do not evict another's."""
SPINS = 2000
"""Pauses before a waiting thread starts yielding its core."""
STEAL_ROUNDS = 20000
"""Rounds (yields) a thread waits at the first barrier for an unclaimed part before running it itself."""

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
_POSIX = sys.platform.startswith(("linux", "darwin", "freebsd"))


@intrinsic
def load_acquire(typingctx, addr):
    """The int64 at address ``addr``, loaded with acquire order."""
    sig = types.int64(types.intp)

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.load_atomic(ptr, "acquire", 8)
    return sig, codegen


@intrinsic
def store_release(typingctx, addr, value):
    """``*addr = value`` (int64), stored with release order."""
    sig = types.void(types.intp, types.int64)

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        builder.store_atomic(args[1], ptr, "release", 8)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _cas(typingctx, addr, expected, value):
    """Compare-and-swap of the int64 at ``addr``: 1 if it held ``expected`` and now holds ``value``, else 0."""
    sig = types.int64(types.intp, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        pair = builder.cmpxchg(ptr, args[1], args[2], "acq_rel", "acquire")
        return builder.zext(builder.extract_value(pair, 1), ir.IntType(64))
    return sig, codegen


def _emit_pause(builder):
    """The x86 spin-wait hint at the builder's position (nothing elsewhere)."""
    if _X86:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
        builder.call(fn, [])


@intrinsic
def _pause(typingctx):
    """The x86 spin-wait hint (nothing elsewhere)."""
    def codegen(context, builder, signature, args):
        _emit_pause(builder)
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def _yield(typingctx):
    """``sched_yield()`` on POSIX systems (a pause elsewhere)."""
    def codegen(context, builder, signature, args):
        if _POSIX:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
            builder.call(fn, [])
        else:
            _emit_pause(builder)
        return context.get_dummy_value()
    return types.void(), codegen


@njit(inline="always")
def relax(rounds):
    """One round of waiting: a pause for the first :data:`SPINS` rounds, then a yield of the core."""
    if rounds < SPINS:
        _pause()
    else:
        _yield()


@njit(inline="always")
def claim(claims, part, owner):
    """Claim ``part`` for ``owner`` (>= 1) if nobody has: ``claims`` (parts * LINE,) int64, zero at the start."""
    return _cas(claims.ctypes.data + part * LINE * 8, 0, owner) == 1


@njit(inline="always")
def wait_for(flags, part, target, steal):
    """Wait until part's flag reaches ``target``; with ``steal``, give up (return False) after
    :data:`STEAL_ROUNDS` rounds so that the caller can try to claim the part. True once reached."""
    addr = flags.ctypes.data + part * LINE * 8
    rounds = 0
    while load_acquire(addr) < target:
        relax(rounds)
        rounds += 1
        if steal and rounds >= STEAL_ROUNDS:
            return False
    return True
