"""Interrupts during training: SIGINT (Ctrl-C) and SIGTERM (job schedulers) finish the step, save a
checkpoint, say where it is and how to resume (also with progress off), and stop; a second signal
stops at once; a resume from that checkpoint ends exactly where an uninterrupted run does."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit.train import load_checkpoint
from rnnkit.train.interrupt import DeferredSigint

from test_train_loop import run

SIGNALS = ["SIGINT", "SIGTERM"]


@pytest.fixture
def saved_handlers():
    """Put back whatever handlers the test process had, whatever a failing test left behind."""
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in old.items():
        signal.signal(s, h)


@pytest.fixture
def sigterm_fails_the_test(saved_handlers):
    """If fit() left SIGTERM alone it would kill the whole test run; make that a plain failure instead."""
    def unhandled(signum, frame):
        raise AssertionError("SIGTERM reached the process's own handler: training did not handle it")

    signal.signal(signal.SIGTERM, unhandled)
    yield


# -- the handler ----------------------------------------------------------------
def test_sigint_handler_only_sets_a_flag(capsys):
    # Printing from the handler raised "RuntimeError: reentrant call" when Ctrl-C landed in a print.
    with DeferredSigint(True, echo_seconds=0.0) as sigint:
        signal.raise_signal(signal.SIGINT)
        assert sigint.requested and sigint.signal_name == "SIGINT"
        assert capsys.readouterr() == ("", "")
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # the second Ctrl-C stops at once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with DeferredSigint(False) as off, pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert not off.requested


@pytest.mark.parametrize("second", SIGNALS)
def test_sigterm_is_deferred_like_sigint_and_a_second_signal_of_either_kind_stops_at_once(capsys, second):
    with DeferredSigint(True, echo_seconds=0.0) as sigint:
        signal.raise_signal(signal.SIGTERM)
        assert sigint.requested and sigint.signal_name == "SIGTERM"
        assert capsys.readouterr() == ("", "")
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(getattr(signal, second))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("second", SIGNALS)
def test_a_repeat_within_the_echo_window_is_the_same_request_and_a_later_one_stops_at_once(second):
    # mpiexec forwards the signal it got to every rank, and schedulers signal every process of a job:
    # each rank then sees one request twice, milliseconds apart. That must not mean "stop now".
    with DeferredSigint(True, echo_seconds=0.3) as sigint:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(getattr(signal, second))     # the echo: ignored
        signal.raise_signal(signal.SIGTERM)
        assert sigint.requested and sigint.signal_name == "SIGTERM"
        time.sleep(0.35)
        with pytest.raises(KeyboardInterrupt):           # a person pressing Ctrl-C again, later
            signal.raise_signal(getattr(signal, second))


def test_both_previous_handlers_come_back_also_after_an_error(saved_handlers):
    def mine(signum, frame):
        pass

    def other(signum, frame):
        pass

    signal.signal(signal.SIGINT, mine)
    signal.signal(signal.SIGTERM, other)
    with pytest.raises(RuntimeError):
        with DeferredSigint(True):
            assert signal.getsignal(signal.SIGINT) is not mine
            assert signal.getsignal(signal.SIGTERM) is not other
            raise RuntimeError
    assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is other


def test_without_deferring_sigterm_still_unwinds_as_keyboard_interrupt():
    with DeferredSigint(False) as off, pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)  # without the handler this would kill the test process
    assert not off.requested
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_ignored_signal_stays_ignored(saved_handlers):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # e.g. a job started with its SIGTERM ignored
    with DeferredSigint(True) as sigint:
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.raise_signal(signal.SIGTERM)
        assert not sigint.requested
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


# -- the loop, in this process ------------------------------------------------------
def _signal_at(step, signame):
    def cb(event, info):
        if event == "step" and info["step"] == step:
            signal.raise_signal(getattr(signal, signame))
    return cb


@pytest.mark.parametrize("signame", SIGNALS)
def test_the_interrupt_notes_are_printed_by_the_loop_even_with_progress_off(tmp_path, capsys, signame,
                                                                             sigterm_fails_the_test):
    def cb(event, info):
        if event == "step" and info["step"] == 3:
            signal.raise_signal(getattr(signal, signame))
            assert capsys.readouterr().err == ""  # nothing printed inside the handler

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "ck.npz", callbacks=[cb], max_steps=10, progress=False)
    err = capsys.readouterr().err
    again = "Ctrl-C again" if signame == "SIGINT" else "SIGTERM or Ctrl-C again"
    assert f"interrupt: saving a checkpoint at step 3 ({again} to stop now)" in err
    assert (f"interrupted at step 3: checkpoint saved to {tmp_path / 'ck.npz'}; run it again with resume "
            "(--resume on the command line) to continue") in err
    assert load_checkpoint(tmp_path / "ck.npz").step == 3


def test_an_interrupt_raised_by_a_callback_is_reported_with_progress_off(tmp_path, capsys):
    def cb(event, info):
        if event == "step" and info["step"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "ck.npz", callbacks=[cb], max_steps=10, progress=False)
    assert "interrupted at step 4: checkpoint saved to" in capsys.readouterr().err


def test_progress_off_stays_silent_without_an_interrupt(tmp_path, capsys):
    run(tmp_path, "ck.npz", max_steps=10, progress=False)
    assert capsys.readouterr() == ("", "")


def test_the_note_goes_through_the_progress_bar_when_progress_is_on(tmp_path, capsys, monkeypatch,
                                                                     sigterm_fails_the_test):
    from rnnkit.train import progress as progress_mod
    monkeypatch.setattr(progress_mod, "_tqdm_class", lambda: None)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "ck.npz", callbacks=[_signal_at(3, "SIGTERM")], max_steps=10, progress=True)
    err = capsys.readouterr().err
    assert err.count("interrupted at step 3: checkpoint saved to") == 1


# -- a real training process, signalled from outside -----------------------------------
# The script a user or a job scheduler would run: fit() with a checkpoint, progress off, and the
# CLI's handling of KeyboardInterrupt (exit status 130). At step 13 (mid-epoch: the carried state
# and the step rng matter) it tells the test it is training and waits until the signal was sent,
# so the interrupt always lands after step 13 and the checkpoint's step is known.
SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    from rnnkit.nn.module import Module
    from rnnkit.optim import Adam
    from rnnkit.train import fit

    mode, ck, marker, sent, out = sys.argv[1:]
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whoever started us

    class Tiny(Module):
        def __init__(self, seed):
            super().__init__()
            rng = np.random.default_rng(seed)
            self.add_parameter("w", rng.standard_normal(3))
            self.add_parameter("b", np.zeros(1))

    _rng = np.random.default_rng(0)
    X = _rng.standard_normal((64, 3))
    Y = X @ np.array([1.5, -2.0, 0.5]) + 0.25

    def batches(epoch, rng):
        order = rng.permutation(64)
        for i in range(0, 64, 8):
            yield X[order[i:i + 8]], Y[order[i:i + 8]]

    def step(batch, ctx):
        x, y = batch
        m = ctx.model
        xn = x + 0.1 * ctx.rng.standard_normal(x.shape)  # (N, 3)
        h = ctx.carry.get("h", np.zeros(len(y)))  # (N,)
        err = xn @ m.w.data + m.b.data[0] + 0.1 * h - y  # (N,)
        m.w.grad += 2 * xn.T @ err / len(y)
        m.b.grad += 2 * err.mean()
        ctx.carry["h"] = np.tanh(err)
        return float(np.mean(err ** 2)), len(y)

    def wait_for_the_signal(event, info):
        if mode == "interrupt" and event == "step" and info["step"] == 13:
            open(marker, "w").close()
            deadline = time.monotonic() + 60
            while not os.path.exists(sent) and time.monotonic() < deadline:
                time.sleep(0.01)

    model = Tiny(seed=99 if mode == "resume" else 0)  # a resumed run starts from other weights
    try:
        fit(model, Adam(model.parameters(), lr=0.05), step, batches, seed=7, max_steps=30,
            checkpoint_path=ck, resume=mode == "resume", callbacks=[wait_for_the_signal], progress=False)
    except KeyboardInterrupt:
        sys.exit(130)
    np.savez(out, **model.state_dict())
""")


def _start(tmp_path, mode, ck, out):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    root = str(Path(rnnkit.__file__).resolve().parents[1])  # the rnnkit under test, not an installed one
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    args = [sys.executable, str(script), mode, str(ck), str(tmp_path / "training"), str(tmp_path / "sent"),
            str(out)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc, timeout=120):
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


@pytest.mark.parametrize("signame", SIGNALS)
def test_a_signalled_training_process_saves_says_how_to_resume_and_resumes_bit_for_bit(tmp_path, signame):
    ck = tmp_path / "run.ckpt.npz"
    proc = _start(tmp_path, "interrupt", ck, tmp_path / "never.npz")
    deadline = time.monotonic() + 120
    while not (tmp_path / "training").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            code, err = _finish(proc)
            pytest.fail(f"the training process never reached step 13 (exit {code}):\n{err}")
        time.sleep(0.01)
    proc.send_signal(getattr(signal, signame))
    (tmp_path / "sent").touch()
    code, err = _finish(proc)

    assert code == 130, err  # KeyboardInterrupt, caught as the CLI does
    assert "Traceback" not in err, err
    assert f"interrupted at step 13: checkpoint saved to {ck}; run it again with resume" in err, err
    assert not (tmp_path / "never.npz").exists()
    saved = load_checkpoint(ck)
    assert saved.step == 13 and saved.train_state["batch_index"] == 5 and "h" in saved.carry

    code, err = _finish(_start(tmp_path, "resume", ck, tmp_path / "resumed.npz"))
    assert code == 0 and err == "", err
    code, err = _finish(_start(tmp_path, "full", tmp_path / "full.ckpt.npz", tmp_path / "full.npz"))
    assert code == 0, err
    resumed, full = np.load(tmp_path / "resumed.npz"), np.load(tmp_path / "full.npz")
    assert sorted(resumed.files) == sorted(full.files) == ["b", "w"]
    for k in full.files:
        assert np.array_equal(resumed[k], full[k]), (k, resumed[k], full[k])
    assert load_checkpoint(ck).step == load_checkpoint(tmp_path / "full.ckpt.npz").step == 30


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_after_the_last_step_says_how_to_write_the_model(tmp_path, capsys, monkeypatch, signame):
    # a signal in the final validation, averaging or write left a finished checkpoint and no model, and said
    # only "rnnkit: terminated": the same command again (without --resume) trained from scratch over it
    from rnnkit.charlm import CharModel
    from rnnkit.cli import main as cli_main
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 12, encoding="utf-8")
    out = tmp_path / "m.npz"
    argv = ["charlm", "train", str(text), "--out", str(out), "--no-plot", "--no-progress", "--hidden-size", "8",
            "--num-layers", "1", "--seq-len", "8", "--batch-size", "4", "--epochs", "2", "--sample-length", "0"]
    real_save = CharModel.save

    def interrupted_save(self, *a, **k):
        cli_main.note_signal(getattr(signal, signame))
        raise KeyboardInterrupt
    monkeypatch.setattr(CharModel, "save", interrupted_save)
    assert cli_main.main(argv) == (143 if signame == "SIGTERM" else 130)
    err = capsys.readouterr().err
    steps = load_checkpoint(str(tmp_path / "m.ckpt.npz")).step
    assert err.count("\n") == 1 and not out.exists(), err
    assert f"training had finished ({steps:,} steps, stopped: epochs) and {tmp_path / 'm.ckpt.npz'} holds it, but " \
           f"the model was not written to {out}: to write it without training more, run the same command again " \
           f"with --resume --max-steps {steps}" in err, err
    monkeypatch.setattr(CharModel, "save", real_save)
    assert cli_main.main(argv + ["--resume", "--max-steps", str(steps)]) == 0
    assert f"trained {steps:,} steps" in capsys.readouterr().out and out.exists()
    # a run stopped before it wrote a checkpoint of its own: the finished one beside --out is an earlier run's
    out.unlink()
    past = time.time() - 3600
    os.utime(tmp_path / "m.ckpt.npz", (past, past))

    def interrupted_fit(self, *a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(CharModel, "fit", interrupted_fit)
    assert cli_main.main(argv) == 130
    assert capsys.readouterr().err == "rnnkit: interrupted\n"
