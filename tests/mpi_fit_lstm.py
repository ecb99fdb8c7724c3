"""A small LSTM regressor trained through ``rnnkit.train.fit``, on one process or under ``mpiexec``.

``tests/test_distributed.py`` runs it with ``mpiexec -n K python tests/mpi_fit_lstm.py OUTDIR ...``
and compares every rank's final parameters with one process training on the same global batches
(:func:`train` called in the test's own process). Float64 throughout, so the comparison is tight.

The model: an LSTM over (T, n, D) inputs, a linear head on the last step, mean squared error on
(n, 2) targets; clipping is set low enough to act, so a clip before the reduce would show.
"""

import json
import os
import sys

import numpy as np

from rnnkit import distributed
from rnnkit.errors import DataError
from rnnkit.nn import LSTM, Linear, Module
from rnnkit.nn.losses import mse
from rnnkit.optim import Adam
from rnnkit.train import fit

T, M, D, H = 4, 20, 3, 5          # steps, samples, input size, hidden size


class Net(Module):
    def __init__(self, rng):
        super().__init__()
        self.lstm = LSTM(D, H, dtype=np.float64, rng=rng)
        self.head = Linear(H, 2, dtype=np.float64, rng=rng)

    def loss(self, x, y):
        out, _, c_rnn = self.lstm.forward(x)                       # (T, n, H)
        pred, c_head = self.head.forward(out[-1])                  # (n, 2)
        loss, d_pred = mse(pred, y)
        d_out = np.zeros_like(out)                                 # (T, n, H)
        d_out[-1] = self.head.backward(d_pred, c_head)
        self.lstm.backward(d_out, c_rnn)
        return loss


def data():
    rng = np.random.default_rng(123)
    x = rng.normal(size=(T, M, D))                                 # (T, M, D)
    y = np.stack([x.sum(axis=(0, 2)), x[-1, :, 0]], axis=1) / 3    # (M, 2)
    return x, y


def train(batch: int, steps: int, fail=None, checkpoint=None, resume=False, schedule=None, max_minutes=None,
          on_step=None):
    """Train and return the model; ``fail = (rank, step, what)`` makes that rank's step fail: ``what`` is
    "raise" (step_fn raises), "nan" (its loss is NaN) or "validate" (validation, which rank 0 runs, raises)."""
    w = distributed.world()
    x, y = data()
    net = Net(np.random.default_rng(7))
    opt = Adam(net.parameters(), lr=0.05)

    def batches(epoch, rng):
        order = rng.permutation(M)
        return [w.shard(order[i:i + batch]) for i in range(0, M, batch)]

    def step_fn(idx, ctx):
        if on_step is not None:
            on_step()
        if fail is not None and w.rank == fail[0] and ctx.step == fail[1]:
            if fail[2] == "raise":
                raise DataError(f"sample {int(idx[0])} is corrupt (found on rank {w.rank})")
            return float("nan"), len(idx)
        return net.loss(x[:, idx], y[idx]), len(idx)

    validate = None
    if fail is not None and fail[2] == "validate":
        def validate(model):
            if w.rank == fail[0]:
                raise DataError(f"validation set is unreadable (found on rank {w.rank})")
            return {"loss": 0.0}
    net.history = fit(net, opt, step_fn, batches, seed=5, max_steps=steps, clip_norm=0.05, progress=False, schedule=schedule,
        max_minutes=max_minutes,
        checkpoint_path=checkpoint, resume=resume, checkpoint_every=1 if checkpoint else None,
        validate=validate, validate_every=fail[1] if validate else None)
    return net


def main(argv):
    out, batch, steps = argv[0], int(argv[1]), int(argv[2])
    fail, timed = None, len(argv) > 3 and argv[3] == "time"
    if len(argv) > 3 and not timed:
        fail = (int(argv[3]), int(argv[4]), argv[5])
    w = distributed.init("mpi_fit_lstm.py")
    extra = {}
    if timed:   # a time schedule on clocks that disagree: rank r's moves on (r + 1) s at each step
        from rnnkit.optim import TimeCosineLR
        from rnnkit.train import loop
        now = [0.0]
        loop._clock = lambda: now[0]
        extra = dict(schedule=TimeCosineLR(0.05, eta_min=0.001), max_minutes=0.25,
                     on_step=lambda: now.__setitem__(0, now[0] + w.rank + 1))
    net = train(batch, steps, fail, **extra)
    np.savez(os.path.join(out, f"rank{w.rank}.npz"), **net.state_dict())
    if w.is_root:
        with open(os.path.join(out, "world.json"), "w") as f:
            json.dump({"size": w.size, "reduces": w.stats["calls"], "bytes": w.stats["bytes"],
                       "parameters": int(net.num_parameters()), "lr": [lr for _, lr in net.history.lr]}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
