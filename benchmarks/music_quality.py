"""The README's music table: test NLL per time step of tanh RNN, GRU and LSTM at ~20K parameters (Chung et al.
2014's sizes: 100, 46, 36 units) on the four Boulanger-Lewandowski data sets, beside the marginal baseline.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 \\
        python benchmarks/music_quality.py DATADIR OUT.json [MINUTES] [DATASET[:MINUTES] ...]

DATADIR holds JSB_Chorales.mat, Nottingham.mat, MuseData.mat, Piano_midi.mat. Each run trains for MINUTES
(default 4; DATASET:MINUTES overrides it for one data set) on the file's training pieces, keeps the
parameters of the best validation NLL (validated every 200 steps) and reports the file's test pieces. The JSON is rewritten after every run.
"""

import os
import sys
import time

from rnnkit.io.atomic import write_json
from rnnkit.music import MusicModel, marginal_baseline, read_rolls

DATASETS = ("JSB_Chorales", "Nottingham", "MuseData", "Piano_midi")
CELLS = ("rnn", "gru", "lstm")
SETTINGS = dict(seq_len=100, batch_size=16, learning_rate=3e-3, clip_norm=1.0, validate_every=200)

if __name__ == "__main__":
    datadir, out = sys.argv[1], sys.argv[2]
    minutes = float(sys.argv[3]) if len(sys.argv) > 3 else 4.0
    names = sys.argv[4:] or DATASETS
    results = {"settings": dict(SETTINGS, max_minutes=minutes, threads=1), "runs": []}
    for spec in names:
        name, _, own = spec.partition(":")
        budget = float(own) if own else minutes
        data = read_rolls(os.path.join(datadir, name + ".mat"))
        base = marginal_baseline(data["train"], data["test"])
        for cell in CELLS:
            t0 = time.perf_counter()
            m = MusicModel(cell=cell, max_minutes=budget, random_state=0, **SETTINGS)
            m.fit(data["train"], valid=data["valid"])
            test = m.score(data["test"])
            run = {"dataset": name, "cell": cell, "max_minutes": budget, "hidden_size": m._units(),
                   "parameters": m.meta_["parameters"],
                   "test_nll": test["nll"], "valid_nll": m.meta_["valid"]["nll"], "baseline_test_nll": base,
                   "steps": m.history_.steps, "best_step": m.history_.best_step,
                   "train_seconds": m.history_.elapsed_s, "wall_seconds": time.perf_counter() - t0}
            results["runs"].append(run)
            print(f"{name:<13} {cell:<5} H={run['hidden_size']:<4} {run['parameters']:>7,} params  "
                  f"test {run['test_nll']:.3f}  valid {run['valid_nll']:.3f}  baseline {base:.3f}  "
                  f"{run['steps']} steps (best {run['best_step']}) in {run['train_seconds']:.0f} s", flush=True)
            write_json(out, results)
