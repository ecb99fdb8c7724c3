"""Score a trained character model on a text's last 10%, as the README's quality tables count it.

``rnnkit charlm train`` validates on its own ``--batch-size`` streams; the README's tiny-shakespeare
tables (``benchmarks/charlm_quality.py``) validate on 32 streams of 100-character chunks. This script
loads a model file written by ``rnnkit charlm train`` (for example a run under ``mpiexec`` with
``--distributed``, which ``charlm_quality.py`` does not drive), splits the text exactly as both do
(``split_text(text, 0.1)``: the first 90% trains, the last 10% validates) and reports the validation
loss two ways:

- ``streams32``: 32 contiguous streams, each from a zero state, the state carried across chunks
  (the README tables' number);
- ``one_stream``: the whole validation text as one stream (every character predicted from everything
  before it in the validation text).

With the model's settings, which parameters it kept (``saved_step``, or the checkpoint average of
``averaging``), and its training history (every validation, the last training losses,
steps, training seconds, why it stopped) it writes one JSON file (``--out``, atomic)::

    python benchmarks/charlm_model_score.py runs/c1.npz --data ../shared/data/tinyshakespeare.txt \\
        --out benchmarks/results/charlm_cli_gru_2x384_ln_zoneout_mpi2_30m.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rnnkit.charlm.data import read_text, split_text  # noqa: E402
from rnnkit.charlm.estimator import CharModel  # noqa: E402
from rnnkit.charlm.training import evaluate_ids  # noqa: E402
from rnnkit.errors import RnnkitError  # noqa: E402
from rnnkit.io.atomic import check_outputs, write_json  # noqa: E402


def score(model: CharModel, text: str) -> dict:
    """Validation loss (nats/char) of ``model`` on the last 10% of ``text``, on 32 streams and on one."""
    _, valid_text, _ = split_text(text, 0.1)
    ids = model.vocab_.encode(valid_text)                            # (n,)
    return {"valid_chars": len(valid_text),
            "streams32": evaluate_ids(model.model_, ids, batch=32, seq_len=100)["loss"],
            "one_stream": evaluate_ids(model.model_, ids, batch=1, seq_len=100)["loss"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a model file written by rnnkit charlm train")
    p.add_argument("--data", default=os.path.join("..", "shared", "data", "tinyshakespeare.txt"))
    p.add_argument("--out", required=True, help="the JSON result")
    p.add_argument("--note", default="", help="how the model was trained (the command), kept in the JSON")
    args = p.parse_args(argv)
    try:
        check_outputs({"--out": args.out}, inputs={"MODEL": args.model, "--data": args.data},
                      examples={"--out": "score.json"})
        est = CharModel.load(args.model)
        text = read_text(args.data)
    except (RnnkitError, OSError) as e:
        p.error(str(e))
    h = est.history_
    result = {"model": os.path.basename(args.model), "note": args.note, "params": est.get_params(),
              "parameters": est.model_.num_parameters(), **score(est, text),
              # which parameters the file holds: the best validation's, the final ones, or a checkpoint average
              "kept": {k: est.meta_.get(k) for k in ("saved_step", "valid", "averaging")},
              "history": {"steps": h.steps, "elapsed_s": h.elapsed_s, "stop_reason": h.stop_reason,
                          "best_step": h.best_step, "val_loss": h.val_loss, "last_train": h.train[-20:]},
              "machine": {"python": platform.python_version(), "numpy": np.__version__, "cores": os.cpu_count()}}
    write_json(args.out, result, what="--out")
    print(f"{args.model}: validation {result['streams32']:.4f} nats/char on 32 streams, "
          f"{result['one_stream']:.4f} on one; {h.steps} steps in {h.elapsed_s / 60:.1f} min -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
