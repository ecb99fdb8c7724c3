"""`rnnkit bench` with the inference loops forced onto one thread (``serial``), with the steps shared by unit
blocks but never the rows split (``units``), or chosen as usual (``threaded``).

    python benchmarks/inference_serial_or_threaded.py serial --suite full --modes inference --threads 2 \
        --configs A,B --out serial.json
    python benchmarks/inference_serial_or_threaded.py threaded ... --out threaded.json

Compares rnnkit's inference loops (``rnnkit.kernels.inference_loops`` on one thread or
on ranges of rows, ``rnnkit.kernels.inference_threads``) under the same bench; only the rnnkit columns
of the two runs are meant to be compared with each other. Every other argument is
``rnnkit bench``'s.
"""

import sys

from rnnkit.kernels import inference


def main(argv):
    if not argv or argv[0] not in ("serial", "units", "threaded"):
        print("usage: inference_serial_or_threaded.py serial|units|threaded [rnnkit bench arguments]", file=sys.stderr)
        return 2
    if argv[0] in ("serial", "units"):
        inference.ROW_MACS = 1 << 62               # no batch is split by rows
    if argv[0] == "serial":
        inference.THREADED_MACS = 1 << 62          # no step is large enough to share
    from rnnkit.cli.main import main as rnnkit_main
    return rnnkit_main(["bench"] + argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
