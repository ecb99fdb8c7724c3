"""The character model's validation shared across ranks: each rank runs its part of the streams.

``tests/test_distributed.py`` runs ``mpiexec -n K python tests/mpi_evaluate_shared.py OUTDIR [FAIL_RANK]``.
Every rank builds the same model and text, evaluates them once on its own (``shared=False``) and once
shared, counting the streams its own ``nll`` calls saw, and writes both results to ``rankR.json``. With
FAIL_RANK, that rank's ``nll`` raises in the shared evaluation; every rank must then raise, not wait.
"""

import json
import os
import sys

import numpy as np

from rnnkit import distributed
from rnnkit.charlm.data import Vocab
from rnnkit.charlm.model import CharLM
from rnnkit.charlm.training import evaluate_ids
from rnnkit.errors import DataError


def main(argv):
    out = argv[0]
    fail = int(argv[1]) if len(argv) > 1 else None
    w = distributed.init("mpi_evaluate_shared.py")
    model = CharLM(Vocab("abcdefghijk"), cell="gru", hidden_size=8, num_layers=2, embedding_size=5,
                   dtype=np.float64, rng=np.random.default_rng(3))
    ids = np.random.default_rng(4).integers(0, 11, 400)
    alone = evaluate_ids(model, ids, batch=7, seq_len=9)
    seen = []
    plain_nll = model.nll

    def counting_nll(x, y, state=None):
        seen.append(int(x.shape[1]))
        if fail == w.rank:
            raise DataError(f"stream trouble (found on rank {w.rank})")
        return plain_nll(x, y, state)

    model.nll = counting_nll
    try:
        shared = evaluate_ids(model, ids, batch=7, seq_len=9, shared=True)
        error = None
    except Exception as e:      # noqa: BLE001 (written out for the test to read)
        shared, error = None, f"{type(e).__name__}: {e}"
    with open(os.path.join(out, f"rank{w.rank}.json"), "w") as f:
        json.dump({"alone": alone, "shared": shared, "streams": sorted(set(seen)), "error": error}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
