"""``rnnkit`` 's command line with a fault planted on one rank (run under ``mpiexec`` by test_distributed.py).

``python tests/mpi_charlm_fault.py RANK STEP KIND -- rnnkit-arguments...``: on rank RANK the
character model's training step number STEP (0-based) fails; KIND is

- ``raise``: the step raises a DataError (bad input found on that rank);
- ``nan``: the step's loss and gradients are NaN;
- ``missing``: that rank reads a text file that does not exist (it fails before training, before
  any collective call, while the other ranks go on to the start of training, where they learn of it);
- ``late``: that rank reaches the start of training late: it creates the file named by the environment
  variable ``RNNKIT_TEST_LATE`` and waits up to 60 s first (STEP is ignored), so that a test can signal the
  job while the other ranks wait for it there.
"""

import sys

import numpy as np


def main(argv):
    rank, step, kind = int(argv[0]), int(argv[1]), argv[2]
    args = argv[argv.index("--") + 1:]
    from rnnkit import distributed
    from rnnkit.charlm import estimator
    from rnnkit.cli.main import main as rnnkit_main
    from rnnkit.errors import DataError

    make = estimator.make_step_fn

    def faulty(model):
        step_fn = make(model)

        def wrapped(chunk, ctx):
            if distributed.world().rank == rank and ctx.step == step:
                if kind == "raise":
                    raise DataError(f"chunk at step {step} holds a corrupt record (planted on rank {rank})")
                for p in model.parameters():
                    p.grad[...] = np.nan
                return float("nan"), chunk.x.size
            return step_fn(chunk, ctx)
        return wrapped

    estimator.make_step_fn = faulty
    if kind == "late":
        import os
        import time
        start = distributed.World.start_together

        def late(self, failed, message=""):
            if self.rank == rank and not failed:
                open(os.environ["RNNKIT_TEST_LATE"], "w").close()
                time.sleep(60)
            return start(self, failed, message)
        distributed.World.start_together = late
    if kind == "missing":
        import os
        if int(os.environ.get("PMI_RANK", "0")) == rank:
            args = [a if not a.endswith(".txt") else a + ".missing" for a in args]
    return rnnkit_main(args)


if __name__ == "__main__":
    from rnnkit.cli.mpi import exit_process
    exit_process(main(sys.argv[1:]))          # as rnnkit's own entry point ends
