"""The README's adding-problem table: `rnnkit compare adding` at T = 50, 100, 200 (one thread, 3 seeds).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 python benchmarks/compare_adding.py [OUTDIR]

Writes OUTDIR/adding_T{T}.json (every number) and the learning-curve and
gradient-norm PNGs for each T (default OUTDIR: benchmarks/results/compare).
"""

import os
import sys

from rnnkit.compare import compare, format_table

SETTINGS = dict(params=5000, seeds=3, batch_size=32, learning_rate=1e-2, clip_norm=1.0, max_steps=3000,
                eval_every=100, test_size=1000)

if __name__ == "__main__":
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("benchmarks", "results", "compare")
    os.makedirs(outdir, exist_ok=True)
    for T in (50, 100, 200):
        report = compare("adding", seq_len=T, out=os.path.join(outdir, f"adding_T{T}.json"),
                         plot=os.path.join(outdir, f"adding_T{T}_curves.png"),
                         grad_plot=os.path.join(outdir, f"adding_T{T}_grads.png"), **SETTINGS)
        print(format_table(report), flush=True)
