"""Milliseconds per training step of each cell in `rnnkit compare adding` (5,000 parameters, batch 32), timed
interleaved (one step of each cell in turn, median of ROUNDS) so that other jobs on a shared machine slow
every cell alike. The per-run ms/step in compare's own table is measured run after run and is not.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 python benchmarks/compare_step_time.py
"""

import time

import numpy as np

from rnnkit.compare import SeqModel, make_task, matched_hidden_sizes

ROUNDS = 60

if __name__ == "__main__":
    for T in (50, 100, 200):
        task = make_task("adding", T)
        sizes = matched_hidden_sizes(("lstm", "gru", "rnn"), task.input_size, task.output_size, 5000)
        models = {c: SeqModel(task, c, H, rng=0) for c, H in sizes.items()}
        x, y = task.draw(np.random.default_rng(0), 32)
        times = {c: [] for c in models}
        for c, m in models.items():                                  # compile and warm up
            m.loss(x, y)
        for _ in range(ROUNDS):
            for c, m in models.items():
                t0 = time.perf_counter()
                m.loss(x, y)
                times[c].append(time.perf_counter() - t0)
        print(f"T={T}: " + ", ".join(f"{c} (H={sizes[c]}) {1000 * np.median(v):.2f} ms" for c, v in times.items()),
              flush=True)
