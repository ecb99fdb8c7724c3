"""Data-parallel training over MPI (rnnkit.distributed): K processes equal one process with the whole batch.

The MPI tests launch ``mpiexec -n K`` (K = 2, and 3 oversubscribed on a 2-core machine) through a
subprocess with a timeout, and compare with one process trained in this test's own process on the
same global batches, in float64 at rtol 1e-10: an LSTM through ``rnnkit.train.fit``
(tests/mpi_fit_lstm.py), the character model and the forecaster end to end through their CLI.
They skip only where ``mpiexec`` is missing; CI installs it (the ``mpi`` extra is in ``test``).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rnnkit import distributed
from rnnkit.optim import TimeCosineLR
from rnnkit.cli.main import main
from rnnkit.train.checkpoint import load_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import mpi_fit_lstm  # noqa: E402

_beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
MPIEXEC = _beside if os.access(_beside, os.X_OK) else shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found (pip install 'rnnkit[mpi]')")
RTOL = 1e-10
LIMIT = 180   # seconds a launch may take before the test fails instead of hanging
# under mpi4py's runner, and `python -m rnnkit` alone (which starts MPI itself when it joins)
both_launches = pytest.mark.parametrize("launch", [("-m", "mpi4py", "-m", "rnnkit"), ("-m", "rnnkit")])


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        env.pop(name, None)
    return env


def _mpiexec(k, *args, timeout=LIMIT):
    return subprocess.run([MPIEXEC, "-n", str(k), sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=ROOT)


def _assert_close(expected, got, what):
    assert set(expected) == set(got), what
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=RTOL, atol=0, err_msg=f"{what}: {name}")


# -- one process: sharding, the CLI's refusals ---------------------------------------------------
class _FakeComm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


@pytest.mark.parametrize("n, k", [(6, 2), (5, 3), (7, 4), (2, 3), (1, 1)])
def test_the_ranks_parts_tile_the_batch_in_order(n, k):
    parts = [distributed.World(_FakeComm(r, k)).part(n) for r in range(k)]
    assert [i for p in parts for i in range(n)[p]] == list(range(n))
    sizes = [p.stop - p.start for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_an_empty_share_is_none_and_one_process_keeps_everything():
    items = np.arange(2)
    assert distributed.World(_FakeComm(2, 3)).shard(items) is None
    np.testing.assert_array_equal(distributed.World(_FakeComm(1, 3)).shard(items), [1])
    assert distributed.SINGLE.shard(items) is items


def test_translate_buckets_shard_every_batch_and_keep_the_order():
    from rnnkit.translate.data import bucket_batches
    rng = np.random.default_rng(0)
    src = [list(rng.integers(4, 20, size=rng.integers(1, 9))) for _ in range(40)]
    tgt = [list(rng.integers(4, 20, size=rng.integers(1, 9))) for _ in range(40)]
    whole = bucket_batches(src, tgt, 6, np.random.default_rng(3))
    shares = [bucket_batches(src, tgt, 6, np.random.default_rng(3), shard=distributed.World(_FakeComm(r, 3)).shard)
              for r in range(3)]
    assert all(len(s) == len(whole) for s in shares)
    for i, batch in enumerate(whole):
        parts = [s[i].index for s in shares if s[i] is not None]
        assert [int(j) for p in parts for j in p] == [int(j) for j in batch.index]


def test_distributed_without_mpi4py_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)      # `import mpi4py` now raises ImportError
    text = tmp_path / "t.txt"
    text.write_text("abcab " * 50)
    code = main(["charlm", "train", str(text), "--out", str(tmp_path / "m.npz"), "--distributed", "--max-steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--distributed needs mpi4py" in err and "rnnkit[mpi]" in err and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "m.ckpt.npz").exists()


def test_distributed_on_a_single_process_says_it_trains_as_without_the_flag(tmp_path, capsys):
    pytest.importorskip("mpi4py")
    text = tmp_path / "t.txt"
    text.write_text("abcab " * 50)
    argv = ["charlm", "train", str(text), "--max-steps", "1", "--no-progress", "--sample-length", "0", "--no-plot"]
    assert main(argv + ["--out", str(tmp_path / "a.npz"), "--distributed"]) == 0
    err = capsys.readouterr().err
    assert err == ("rnnkit: warning: --distributed: this is a single process (start several with an MPI launcher, "
                   "e.g. mpiexec -n 2 rnnkit ...); it trains as without the flag\n"), err
    assert main(argv + ["--out", str(tmp_path / "b.npz")]) == 0
    from rnnkit.charlm import CharModel
    a, b = CharModel.load(tmp_path / "a.npz"), CharModel.load(tmp_path / "b.npz")
    for (name, x), y in zip(a.model_.state_dict().items(), b.model_.state_dict().values()):
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("command", [["charlm", "train", "T.txt"], ["forecast", "train", "D.csv"],
                                     ["translate", "train", "P.tsv"]])
def test_an_mpi_launch_without_distributed_is_refused(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("PMI_RANK", "0")
    code = main(command + ["--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "one of 4 started by an MPI launcher" in err and "add --distributed" in err
    assert err.count("\n") == 1
    monkeypatch.setenv("PMI_RANK", "2")                 # every rank is refused alike: rank 0 alone says it
    assert main(command + ["--out", str(tmp_path / "m.npz")]) == 2
    assert capsys.readouterr().err == ""


def test_warnings_come_from_rank_0_only_and_in_one_write(monkeypatch):
    import sys
    from rnnkit.cli.main import _one_line_warning
    writes = []

    class Stream:
        def write(self, text):
            writes.append(text)

        def flush(self):
            pass
    monkeypatch.setattr(sys, "stderr", Stream())
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "1")
    _one_line_warning("dropout has no effect", RuntimeWarning, "f", 1)
    assert writes == []
    monkeypatch.setenv("PMI_RANK", "0")
    _one_line_warning("dropout has no effect", RuntimeWarning, "f", 1)
    assert writes == ["rnnkit: warning: dropout has no effect\n"]      # the newline in the same write


def test_every_train_command_has_the_distributed_flag():
    from rnnkit.cli.main import build_parser
    parser = build_parser()
    for app in ("charlm", "forecast", "translate"):
        args = parser.parse_args([app, "train", "--distributed", "x"] if app != "charlm"
                                 else [app, "train", "--distributed"])
        assert args.distributed is True


# -- fit(): an LSTM on K processes == one process with the K-times-larger batch ------------------
@needs_mpi
@pytest.mark.parametrize("k, batch", [(2, 6), (3, 5)])
def test_fit_on_k_processes_equals_one_process(k, batch, tmp_path):
    steps = 7                                            # past an epoch (20 samples), with clipping active
    run = _mpiexec(k, "-m", "mpi4py", os.path.join(HERE, "mpi_fit_lstm.py"), str(tmp_path), str(batch), str(steps))
    assert run.returncode == 0, run.stderr
    one = mpi_fit_lstm.train(batch, steps).state_dict()
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(k)]
    moved = max(float(np.abs(one[n] - mpi_fit_lstm.Net(np.random.default_rng(7)).state_dict()[n]).max()) for n in one)
    assert moved > 1e-3                                  # training did change the parameters
    _assert_close(one, ranks[0], f"rank 0 of {k}")
    for r in range(1, k):                                # every rank holds the same parameters, bit for bit
        assert all(np.array_equal(ranks[0][n], ranks[r][n]) for n in one), f"rank {r} drifted from rank 0"
    info = json.loads((tmp_path / "world.json").read_text())
    assert info["size"] == k and info["reduces"] == steps          # ONE all-reduce per step
    assert info["bytes"] == steps * (info["parameters"] + 6) * 8   # the flat float64 buffer, 6 scalars


@needs_mpi
def test_a_time_schedule_gives_every_rank_rank_0s_rate(tmp_path):
    # each rank's clock runs at another speed: rates read from each rank's own clock would make the ranks'
    # parameters drift apart at the first step; the reduce carries rank 0's share of the budget to all
    run = _mpiexec(2, "-m", "mpi4py", os.path.join(HERE, "mpi_fit_lstm.py"), str(tmp_path), "6", "7", "time")
    assert run.returncode == 0, run.stderr
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    assert all(np.array_equal(ranks[0][n], ranks[1][n]) for n in ranks[0]), "rank 1 drifted from rank 0"
    start = mpi_fit_lstm.Net(np.random.default_rng(7)).state_dict()
    assert max(float(np.abs(ranks[0][n] - start[n]).max()) for n in start) > 1e-3
    info = json.loads((tmp_path / "world.json").read_text())
    assert info["reduces"] == 7
    # rank 0's clock: k of the 15 s budget after step k (rank 1's reads 2k, and would end the run at 8)
    expected = [TimeCosineLR(0.05, eta_min=0.001).lr_at_fraction(k / 15) for k in range(1, 8)]
    np.testing.assert_allclose(info["lr"], expected, rtol=1e-6)


# -- the character model through its CLI -----------------------------------------------------------
def _corpus(path):
    rng = np.random.default_rng(1)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    path.write_text(" ".join(words[i] for i in rng.integers(0, len(words), 500)))
    return str(path)


def _charlm_args(text, out, steps, batch=6):
    return ["charlm", "train", text, "--out", str(out), "--hidden-size", "8", "--num-layers", "1",
            "--embedding-size", "4", "--seq-len", "5", "--batch-size", str(batch), "--max-steps", str(steps),
            "--dtype", "float64", "--sample-length", "0", "--no-plot", "--threads", "1", "--no-progress",
            "--checkpoint-every", "2", "--learning-rate", "0.01", "--validate-every", "2"]


def _weights(path):
    import rnnkit
    return rnnkit.load(path).model_.state_dict()


@needs_mpi
@pytest.mark.parametrize("k", [2, 3])
def test_charlm_cli_on_k_processes_equals_one_process(k, tmp_path, capsys):
    text = _corpus(tmp_path / "text.txt")
    assert main(_charlm_args(text, tmp_path / "one.npz", 5)) == 0
    capsys.readouterr()
    run = _mpiexec(k, "-m", "mpi4py", "-m", "rnnkit", *_charlm_args(text, tmp_path / "k.npz", 5), "--distributed")
    assert run.returncode == 0, run.stderr
    _assert_close(_weights(tmp_path / "one.npz"), _weights(tmp_path / "k.npz"), f"charlm on {k} processes")
    one, dist = load_checkpoint(tmp_path / "one.ckpt.npz"), load_checkpoint(tmp_path / "k.ckpt.npz")
    np.testing.assert_allclose([v for _, v in dist.history.train], [v for _, v in one.history.train], rtol=1e-12)
    assert dist.train_state["world_size"] == k and len(dist.train_state["rank_rng_states"]) == k
    # the ranks share the validation streams: the same figures up to the order of one sum
    assert [s for s, _ in dist.history.val] == [2, 4] == [s for s, _ in one.history.val]
    for (_, d), (_, o) in zip(dist.history.val, one.history.val):
        assert d["chars"] == o["chars"] and d["loss"] == pytest.approx(o["loss"], rel=1e-12)
    assert run.stdout.count("trained 5 steps") == 1      # rank 0 alone prints
    assert sorted(os.listdir(tmp_path)) == sorted(["text.txt", "one.npz", "one.ckpt.npz", "k.npz", "k.ckpt.npz"])


@needs_mpi
@pytest.mark.parametrize("k", [2, 3])
def test_the_charlm_validation_is_shared_across_the_ranks_and_a_failing_share_stops_every_rank(k, tmp_path):
    script = os.path.join(HERE, "mpi_evaluate_shared.py")
    run = _mpiexec(k, script, str(tmp_path))
    assert run.returncode == 0, run.stderr
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(k)]
    # 7 streams: rank r runs its contiguous part (3+2+2 or 4+3), never all of them
    assert [r["streams"] for r in ranks] == {2: [[4], [3]], 3: [[3], [2], [2]]}[k]
    for r in ranks:
        assert r["error"] is None and r["shared"]["chars"] == r["alone"]["chars"]
        assert r["shared"]["loss"] == pytest.approx(r["alone"]["loss"], rel=1e-12)
        assert r["shared"] == ranks[0]["shared"]            # the same bits on every rank
    run = _mpiexec(k, script, str(tmp_path), str(k - 1))
    assert run.returncode == 0, run.stderr
    for r in range(k):
        error = json.loads((tmp_path / f"rank{r}.json").read_text())["error"]
        assert error is not None and f"stream trouble (found on rank {k - 1})" in error, error


@needs_mpi
def test_charlm_resume_on_the_same_k_is_bit_for_bit_and_another_k_is_refused(tmp_path):
    text = _corpus(tmp_path / "text.txt")
    dist = ("-m", "mpi4py", "-m", "rnnkit")
    full = _mpiexec(2, *dist, *_charlm_args(text, tmp_path / "full.npz", 6), "--distributed")
    half = _mpiexec(2, *dist, *_charlm_args(text, tmp_path / "half.npz", 3), "--distributed")
    assert full.returncode == 0 and half.returncode == 0, full.stderr + half.stderr
    other = _mpiexec(3, *dist, *_charlm_args(text, tmp_path / "half.npz", 6), "--distributed", "--resume")
    assert other.returncode == 2 and "Abort" not in other.stderr, other.stderr
    assert other.stderr.count("written by a run on 2 process(es)") == 1, other.stderr   # said once, by rank 0
    assert "mpiexec -n 2" in other.stderr and "Traceback" not in other.stderr
    rest = _mpiexec(2, *dist, *_charlm_args(text, tmp_path / "half.npz", 6), "--distributed", "--resume")
    assert rest.returncode == 0, rest.stderr
    a, b = _weights(tmp_path / "full.npz"), _weights(tmp_path / "half.npz")
    assert all(np.array_equal(a[n], b[n]) for n in a)


@needs_mpi
def test_a_bad_flag_on_every_rank_is_one_line(tmp_path):
    text = _corpus(tmp_path / "text.txt")
    args = _charlm_args(text, tmp_path / "m.npz", 2)
    run = _mpiexec(2, "-m", "mpi4py", "-m", "rnnkit", *args, "--hidden-size", "-1", "--distributed")
    assert run.returncode == 2
    assert run.stderr.strip() == "rnnkit: error: hidden_size (--hidden-size) must be >= 1, got -1", run.stderr
    assert not (tmp_path / "m.npz").exists()


@needs_mpi
@both_launches
def test_a_refusal_on_a_one_process_launch_is_its_own_line_without_mpichs_abort_report(tmp_path, launch):
    text = _corpus(tmp_path / "text.txt")
    run = _mpiexec(1, *launch, *_charlm_args(text, tmp_path / "m.npz", 2), "--hidden-size", "-1", "--distributed")
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == [
        "rnnkit: warning: --distributed: this is a single process (start several with an MPI launcher, e.g. "
        "mpiexec -n 2 rnnkit ...); it trains as without the flag",
        "rnnkit: error: hidden_size (--hidden-size) must be >= 1, got -1"], run.stderr


@needs_mpi
@both_launches
def test_a_flag_argparse_refuses_is_one_line_under_either_launch(tmp_path, launch):
    # refused while parsing, before any rank joined the job; `python -m rnnkit` alone never starts MPI itself
    text = _corpus(tmp_path / "text.txt")
    run = _mpiexec(2, *launch, *_charlm_args(text, tmp_path / "m.npz", 2), "--hidden-size", "abc", "--distributed")
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip() == ("rnnkit: error: rnnkit charlm train: argument --hidden-size: invalid int value: "
                                  "'abc' (see rnnkit charlm train --help)"), run.stderr


_REFUSED = ("rnnkit charlm train: argument --hidden-size: invalid int value: 'abc' (see rnnkit charlm train "
            "--help)")
_UNJOINED = ("this process is one of 2 started by an MPI launcher, but --distributed is not given: each would train "
             "its own copy and write the same files; add --distributed to train one model on all of them")
_LATE = "rnnkit: error: rank 1 of 2 failed before training (the reason is on that rank's line); nothing was trained"


@needs_mpi
@both_launches
@pytest.mark.parametrize("rank0, rank1, expected", [
    # refused while parsing on one rank
    (["--distributed", "--hidden-size", "abc"], ["--distributed"], [f"rnnkit: error: {_REFUSED}"]),
    (["--distributed"], ["--distributed", "--hidden-size", "abc"], [_LATE, f"rnnkit: error: rank 1 of 2: {_REFUSED}"]),
    # --help on one rank: it never trains, and says so
    (["--distributed"], ["--distributed", "--help"],
     [_LATE, "rnnkit: error: rank 1 of 2: its command line asks for help (--help), so it trains nothing"]),
    # --distributed left out on one rank, alone or beside a refused command line
    (["--hidden-size", "8"], ["--distributed"], [f"rnnkit: error: {_UNJOINED}"]),
    (["--distributed", "--hidden-size", "abc"], ["--hidden-size", "8"],
     [f"rnnkit: error: {_REFUSED}", f"rnnkit: error: rank 1 of 2: {_UNJOINED}"]),
], ids=["refused-on-0", "refused-on-1", "help-on-1", "unjoined-0", "refused-0-unjoined-1"])
def test_ranks_of_an_mpmd_launch_that_stop_before_joining_stop_every_rank(tmp_path, launch, rank0, rank1, expected):
    # `mpiexec -n 1 A : -n 1 B` where one rank stops before joining the job (a process that ends without joining
    # does not end the job): the ranks that joined stop at the start of training instead of waiting forever for it,
    # and every reason is said once
    text = _corpus(tmp_path / "text.txt")
    base = [sys.executable, *launch, *_charlm_args(text, tmp_path / "m.npz", 2)]
    t0 = time.monotonic()
    run = subprocess.run([MPIEXEC, "-n", "1", *base, *rank0, ":", "-n", "1", *base, *rank1], capture_output=True,
                         text=True, timeout=120, env=_env(), cwd=ROOT)
    assert time.monotonic() - t0 < 120 and run.returncode == 2, run.stderr
    assert sorted(run.stderr.strip().splitlines()) == sorted(expected), run.stderr
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "m.ckpt.npz").exists()


@needs_mpi
@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_while_a_refused_rank_waits_for_the_others_ends_the_job_with_the_signals_status(tmp_path, sig, code,
                                                                                               said):
    # rank 1's command line is refused; it waits at the start of training for rank 0, which is late; the launcher
    # forwards Ctrl-C or SIGTERM: every rank ends, no traceback, the refusal still said, the signal's status
    text = _corpus(tmp_path / "text.txt")
    good = _charlm_args(text, tmp_path / "m.npz", 2) + ["--distributed"]
    marker = tmp_path / "rank0-at-the-start"
    env = dict(_env(), RNNKIT_TEST_LATE=str(marker))
    proc = subprocess.Popen([MPIEXEC, "-n", "1", sys.executable, os.path.join(HERE, "mpi_charlm_fault.py"), "0", "0",
                             "late", "--", *good, ":", "-n", "1", sys.executable, "-m", "rnnkit", *good, "--bogus"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        t0 = time.monotonic()
        while not marker.exists() and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "rank 0 never got to the start"
        time.sleep(2)                                     # rank 1 is waiting in the start's all-reduce by now
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err and "Abort" not in err and "TERMINATION" not in err, err
    assert ("rnnkit: error: rank 1 of 2: rnnkit charlm train: unrecognized arguments: --bogus "
            "(see rnnkit charlm train --help)") in err.splitlines(), err
    assert f"rnnkit: {said}" in err.splitlines(), err


def test_a_signal_while_mpi_starts_ends_the_process_at_once(tmp_path):
    # MPI_Init_thread waits in C for every rank: a Python handler there never runs, and the rank would wait
    # for one that the same signal already ended. A stand-in mpi4py sends the signal from inside the import.
    fake = tmp_path / "mpi4py"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    comm = ("class _Comm:\n    def Get_rank(self): return 0\n    def Get_size(self): return 1\n"
            "COMM_WORLD = _Comm()\n")
    code = ("import signal\n"
            "def handler(signum, frame): raise KeyboardInterrupt\n"
            "signal.signal(signal.SIGTERM, handler)\n"
            "from rnnkit import distributed\n"
            "try:\n    print(distributed.init())\nexcept BaseException as e:\n    print('caught', type(e).__name__)\n"
            "print(signal.getsignal(signal.SIGTERM) is handler, signal.getsignal(signal.SIGINT) is "
            "signal.default_int_handler)\n")
    env = dict(_env(), PYTHONPATH=str(tmp_path) + os.pathsep + _env()["PYTHONPATH"])
    for name in ("SIGTERM", "SIGINT"):
        (fake / "MPI.py").write_text(f"import os, signal\nos.kill(os.getpid(), signal.{name})\n"
                                     f"print('survived')\n{comm}")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                             cwd=ROOT)
        assert run.returncode == -getattr(signal, name), (name, run.returncode, run.stdout, run.stderr)
        assert run.stdout == "", run.stdout
    (fake / "MPI.py").write_text(comm)           # no signal: the handlers from before are back afterwards
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert run.returncode == 0 and run.stdout == "World(rank=0, size=1)\nTrue True\n", (run.stdout, run.stderr)


@needs_mpi
def test_help_under_the_launcher_is_printed_once():
    run = _mpiexec(2, "-m", "mpi4py", "-m", "rnnkit", "charlm", "train", "--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("usage: rnnkit charlm train") == 1, run.stdout


@needs_mpi
def test_different_reasons_before_training_are_each_said_and_nobody_waits(tmp_path):
    # every rank refuses --batch-size 2 on 3 ranks, and rank 1 cannot read the text file first: rank 0 says
    # the refusal for ranks 0 and 2, rank 1 its own reason
    text = _corpus(tmp_path / "text.txt")
    t0 = time.monotonic()
    run = _mpiexec(3, os.path.join(HERE, "mpi_charlm_fault.py"), "1", "0", "missing", "--",
                   *_charlm_args(text, tmp_path / "m.npz", 2, batch=2), "--distributed", timeout=120)
    assert time.monotonic() - t0 < 120 and run.returncode == 2, run.stderr
    lines = sorted(run.stderr.strip().splitlines())
    assert len(lines) == 2, run.stderr
    assert lines[0].startswith("rnnkit: error: batch_size (--batch-size) 2 is smaller than the 3 processes")
    assert lines[1].startswith("rnnkit: error: rank 1 of 3: TEXTFILE"), run.stderr


@needs_mpi
def test_fewer_streams_than_processes_is_one_line(tmp_path):
    text = _corpus(tmp_path / "text.txt")
    run = _mpiexec(3, "-m", "mpi4py", "-m", "rnnkit", *_charlm_args(text, tmp_path / "m.npz", 2, batch=2),
                   "--distributed")
    assert run.returncode == 2
    assert run.stderr.count("batch_size (--batch-size) 2 is smaller than the 3 processes") == 1, run.stderr
    assert "Abort" not in run.stderr, run.stderr        # every rank agreed: no MPI_Abort report


# -- faults ------------------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize("kind, message", [
    ("raise", "rank 1 of 2 failed at step 4 (epoch 0, batch 3): chunk at step 3 holds a corrupt record "
              "(planted on rank 1)"),
    ("nan", "training diverged at step 4"),
    ("missing", "rank 1 of 2: TEXTFILE"),
])
def test_a_failing_rank_stops_every_rank_with_its_message(kind, message, tmp_path):
    text = _corpus(tmp_path / "text.txt")
    args = _charlm_args(text, tmp_path / "m.npz", 50)
    args[args.index("--checkpoint-every") + 1] = "1"
    t0 = time.monotonic()
    # no `-m mpi4py` here: rnnkit itself must make a one-rank failure end the job
    run = _mpiexec(2, os.path.join(HERE, "mpi_charlm_fault.py"), "1", "3", kind, "--", *args, "--distributed",
                   timeout=120)
    assert time.monotonic() - t0 < 120
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "Abort" not in run.stderr and "TERMINATION" not in run.stderr
    if kind == "missing":                # rank 1's line, and rank 0 says why it stopped too
        assert "rnnkit: error: rank 1 of 2 failed before training" in run.stderr, run.stderr
        assert not (tmp_path / "m.npz").exists()
    else:   # the checkpoint from before the failing step is whole and loads
        ck = load_checkpoint(tmp_path / "m.ckpt.npz")
        assert ck.step == 3 and not (tmp_path / "m.npz").exists()


@needs_mpi
@pytest.mark.parametrize("k", [2, 3])
def test_a_failure_in_fit_on_one_rank_or_in_rank_0s_validation_stops_every_rank(k, tmp_path):
    script = os.path.join(HERE, "mpi_fit_lstm.py")
    t0 = time.monotonic()
    run = _mpiexec(k, script, str(tmp_path), "5", "6", str(k - 1), "2", "raise", timeout=120)
    assert run.returncode != 0 and time.monotonic() - t0 < 120
    assert "sample" in run.stderr and f"is corrupt (found on rank {k - 1})" in run.stderr, run.stderr
    assert not (tmp_path / "rank0.npz").exists()        # no rank went on past the failing step
    run = _mpiexec(k, script, str(tmp_path), "5", "6", "0", "2", "validate", timeout=120)
    assert run.returncode != 0
    assert "validation set is unreadable (found on rank 0)" in run.stderr, run.stderr
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".npz")]


def _descendants(pid):
    """Every process below pid (Linux's /proc children lists), so a test can signal the ranks themselves."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        found += kids
        todo += kids
    return found


@needs_mpi
@pytest.mark.parametrize("who", ["launcher", "every process"])
def test_ctrl_c_on_the_launcher_stops_every_rank_and_keeps_a_whole_checkpoint(tmp_path, who):
    # "every process": what a scheduler does (scancel, kill on the job's process group); each rank then
    # gets the request twice, from the scheduler and forwarded by mpiexec, and must still save it.
    if who == "every process" and not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        pytest.skip("finding the ranks' process ids needs Linux's /proc children lists")
    text = _corpus(tmp_path / "text.txt")
    args = _charlm_args(text, tmp_path / "m.npz", 10 ** 6)
    args[args.index("--checkpoint-every") + 1] = "1"
    proc = subprocess.Popen([MPIEXEC, "-n", "2", sys.executable, "-m", "mpi4py", "-m", "rnnkit", *args,
                             "--distributed"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=ROOT)
    ckpt = tmp_path / "m.ckpt.npz"
    try:
        deadline = time.monotonic() + LIMIT
        while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint yet"
        time.sleep(0.5)
        ranks = _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)                   # what Ctrl-C in the terminal sends mpiexec
        if who == "every process":
            for pid in ranks:
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.count("interrupted at step") == 1, err     # rank 0 says where the checkpoint is
    assert "Abort" not in err, err                         # a clean stop, not MPI_Abort's crash report
    assert "no checkpoint written" not in err, err
    ck = load_checkpoint(ckpt)
    assert ck.step >= 1 and ck.history.stop_reason == "interrupted" and ck.train_state["world_size"] == 2
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


# -- the forecaster end to end -------------------------------------------------------------------------
@needs_mpi
def test_forecast_cli_on_two_processes_equals_one_process(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.sin(np.arange(120) / 5) + 0.1 * rng.normal(size=120)
    (tmp_path / "s.csv").write_text("Date,Close\n" + "".join(
        f"2020-01-{1 + i // 24:02d}T{i % 24:02d}:00,{v:.6f}\n" for i, v in enumerate(y)))
    def args(out):
        return ["forecast", "train", str(tmp_path / "s.csv"), "--lookback", "6", "--hidden-size", "5",
                "--batch-size", "7", "--max-steps", "6", "--dtype", "float64", "--no-progress", "--threads", "1",
                "--out", str(tmp_path / out)]
    assert main(args("one.npz")) == 0, capsys.readouterr().err
    run = _mpiexec(2, "-m", "mpi4py", "-m", "rnnkit", *args("two.npz"), "--distributed")
    assert run.returncode == 0, run.stderr
    _assert_close(_weights_any(tmp_path / "one.npz"), _weights_any(tmp_path / "two.npz"), "forecast on 2 processes")


def _weights_any(path):
    import rnnkit
    return rnnkit.load(path)._network_state()


@needs_mpi
def test_translate_cli_on_two_processes_equals_one_process(tmp_path, capsys):
    pytest.importorskip("num2words")     # the built-in task; in the test extra
    def args(out):
        return ["translate", "train", "--numbers", "0-40", "--max-steps", "6", "--batch-size", "8", "--hidden-size", "8",
                "--embedding-size", "8", "--validation-fraction", "0.1", "--validate-every", "3", "--test-fraction",
                "0", "--dropout", "0", "--no-progress", "--threads", "1", "--out", str(tmp_path / out)]
    assert main(args("one.npz")) == 0, capsys.readouterr().err
    run = _mpiexec(2, "-m", "mpi4py", "-m", "rnnkit", *args("two.npz"), "--distributed")
    assert run.returncode == 0, run.stderr
    one, two = _weights_any(tmp_path / "one.npz"), _weights_any(tmp_path / "two.npz")
    # the Translator trains in float32 only: equal up to float32 rounding (a wrong share is off by 1e-3 and more)
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-6, err_msg=name)


@needs_mpi
def test_ranks_that_read_different_data_are_refused_before_training(tmp_path):
    # a host with another copy of the text: a shorter one hung both ranks in different collectives (SIGTERM
    # could not stop them), one of the same length trained one model on two texts with exit 0
    text = _corpus(tmp_path / "text.txt")
    other = tmp_path / "other.txt"
    for name, make in (("short", lambda t: t[: len(t) * 2 // 3]), ("same length", lambda t: t[::-1])):
        other.write_text(make(open(text).read()))
        out = tmp_path / f"{name.replace(' ', '_')}.npz"
        cmd = [MPIEXEC, "-n", "1", sys.executable, "-m", "mpi4py", "-m", "rnnkit", *_charlm_args(text, out, 40),
               "--distributed", ":", "-n", "1", sys.executable, "-m", "mpi4py", "-m", "rnnkit",
               *_charlm_args(str(other), out, 40), "--distributed"]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT, env=_env(), cwd=ROOT)
        assert run.returncode == 2, (name, run.stderr)
        assert run.stderr.count("ranks read different data") == 1 and "Traceback" not in run.stderr, run.stderr
        assert not out.exists()
