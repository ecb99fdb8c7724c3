"""rnnkit's entry point: exit statuses and one-line messages, through main(argv) with a fake command."""

import errno
import sys
import types

import pytest

from rnnkit.cli import main as cli_main
from rnnkit.errors import ModelFileError

ERRORS = {
    "rnnkit": lambda: ModelFileError("m.npz: is truncated or corrupted; re-save it"),
    "value": lambda: ValueError("hidden: expected a positive integer, got -1"),
    "nospace": lambda: OSError(errno.ENOSPC, "No space left on device", "/data/run.ckpt.npz"),
    "permission": lambda: PermissionError(errno.EACCES, "Permission denied", "/root/x"),
    "oserror": lambda: OSError("a device went away"),
    "interrupt": lambda: KeyboardInterrupt(),
    "bug": lambda: RuntimeError("an rnnkit bug"),
}


def _run(args):
    if args.raise_ is not None:
        raise ERRORS[args.raise_]()
    return args.status


@pytest.fixture
def fake_command(monkeypatch):
    """Register only a 'fake' command: `rnnkit fake [--raise KIND] [--status N]`."""
    mod = types.ModuleType("rnnkit_fake_cli")

    def register(sub):
        p = sub.add_parser("fake", help="raise an error on request")
        p.add_argument("--raise", dest="raise_", choices=sorted(ERRORS))
        p.add_argument("--status", type=int, default=0)
        p.set_defaults(func=_run)

    mod.register = register
    monkeypatch.setitem(sys.modules, "rnnkit_fake_cli", mod)
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ["rnnkit_fake_cli"])
    monkeypatch.delenv("RNNKIT_DEBUG", raising=False)


def test_the_command_result_is_the_exit_status(fake_command, capsys):
    assert cli_main.main(["fake"]) == 0
    assert cli_main.main(["fake", "--status", "3"]) == 3
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kind,line", [
    ("rnnkit", "rnnkit: error: m.npz: is truncated or corrupted; re-save it"),
    ("value", "rnnkit: error: hidden: expected a positive integer, got -1"),
    ("nospace", "rnnkit: error: No space left on device: /data/run.ckpt.npz"),
    ("permission", "rnnkit: error: Permission denied: /root/x"),
    ("oserror", "rnnkit: error: a device went away"),
])
def test_user_and_system_errors_print_one_line_and_exit_2(fake_command, capsys, kind, line):
    assert cli_main.main(["fake", "--raise", kind]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", line + "\n")


def test_interrupt_exits_130(fake_command, capsys):
    assert cli_main.main(["fake", "--raise", "interrupt"]) == 130
    assert capsys.readouterr().err == "rnnkit: interrupted\n"


def test_a_bug_keeps_its_traceback(fake_command):
    with pytest.raises(RuntimeError, match="an rnnkit bug"):
        cli_main.main(["fake", "--raise", "bug"])


@pytest.mark.parametrize("kind,exc", [("rnnkit", ModelFileError), ("nospace", OSError), ("value", ValueError)])
def test_rnnkit_debug_reraises_for_the_traceback(fake_command, monkeypatch, kind, exc):
    monkeypatch.setenv("RNNKIT_DEBUG", "1")
    with pytest.raises(exc):
        cli_main.main(["fake", "--raise", kind])
    monkeypatch.setenv("RNNKIT_DEBUG", "0")  # "0" (or empty) means off
    assert cli_main.main(["fake", "--raise", kind]) == 2


def test_usage_errors_and_version(fake_command, capsys):
    assert cli_main.main(["fake", "--status", "x"]) == 2
    assert "invalid int value" in capsys.readouterr().err
    assert cli_main.main([]) == 2
    assert cli_main.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("rnnkit ")


def test_broken_pipe_exits_quietly(monkeypatch, capsys):
    import rnnkit.cli.main as cli

    def register(sub):
        p = sub.add_parser("pipe")
        p.set_defaults(func=lambda args: (_ for _ in ()).throw(BrokenPipeError()))

    monkeypatch.setattr(cli, "COMMAND_MODULES", [])
    real = cli.build_parser

    def build():
        parser = real()
        register(parser._subparsers._group_actions[0])
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    stdout = sys.stdout
    try:
        assert cli.main(["pipe"]) == 141
    finally:
        sys.stdout = stdout
    assert "Traceback" not in capsys.readouterr().err


def test_interrupt_while_building_the_parser(monkeypatch, capsys):
    import rnnkit.cli.main as cli

    def build():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", build)
    assert cli.main(["anything"]) == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_charlm(tmp_path_factory):
    from rnnkit import charlm
    d = tmp_path_factory.mktemp("closed")
    (d / "t.txt").write_text("to be or not to be, that is the question. " * 20)
    charlm.train(d / "t.txt", out=d / "m.npz", hidden_size=8, num_layers=1, embedding_size=4, seq_len=8, batch_size=2,
                 max_steps=1, progress=False, plot=False, sample_length=0)
    return d


# "1<file" leaves descriptor 1 open for reading only, as pyenv's shim does to descriptor 2.
# (A closed stdin is tested with `rnnkit translate`, which reads it.)
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX shell to close descriptors")
@pytest.mark.parametrize("redirect", [">&-", "2>&-", ">&- 2>&-", "1<t.txt", "2<t.txt"])
def test_closed_standard_streams_give_no_traceback(tiny_charlm, redirect):
    """`rnnkit ... >&-`: output goes nowhere, and the exit status still tells a mistake (2) from success (0).

    An uncaught exception would exit with 1 (its traceback unseen when stderr is closed).
    """
    import os
    import shlex
    import subprocess
    code = "import sys; from rnnkit.cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for argv, expect in ((["charlm", "sample", "m.npz", "--length", "5"], 0),
                         (["charlm", "sample", "m.npz", "--random-state", "-1"], 2),
                         (["charlm", "sample", "nope.npz"], 2)):
        cmd = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} {' '.join(argv)} {redirect}"
        proc = subprocess.run(["sh", "-c", cmd], cwd=tiny_charlm, capture_output=True, text=True, timeout=120,
                              env=env)
        assert proc.returncode == expect, (argv, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr


def test_sigterm_outside_training_exits_143_without_traceback(tmp_path):
    """A scheduler's SIGTERM while a command loads data stops it cleanly: one line, 143 (128 + 15) as shells
    report a terminated job, no traceback."""
    import signal
    import subprocess
    import sys
    import time
    ready = tmp_path / "ready"
    code = ("import sys, time, pathlib, rnnkit.cli.info as info, rnnkit.cli.main as m\n"
            "def slow(args):\n"
            f"    pathlib.Path({str(ready)!r}).write_text('x')\n"
            "    time.sleep(60)\n"
            "    return 0\n"
            "info._info = slow\n"
            "sys.exit(m.main(['info', 'model.npz']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert err.strip() == "rnnkit: terminated"
    assert "Traceback" not in err


@pytest.mark.parametrize("argv,expect", [
    (["charlm", "train", "x.txt", "--hidden-size", "nan"],
     "rnnkit: error: rnnkit charlm train: argument --hidden-size: invalid int value: 'nan'"),
    (["charlm", "train", "x.txt", "--hidden", "5"],
     "rnnkit: error: rnnkit charlm train: unrecognized arguments: --hidden 5; --hidden is spelled --hidden-size here"),
    (["forecast", "train", "d.csv", "--lr", "0.1", "--seed", "3"],
     "--lr is spelled --learning-rate here, --seed is spelled --random-state here"),
    (["bench", "--json", "x.json"], "--json is spelled --out here"),
    (["music", "sample", "m.npz", "--out", "a.mid"], "--out is spelled --midi here"),
    (["compare", "adding", "--seed", "1"],          # --seeds is a count there: not offered as a seed
     "--seeds here is the number of seeds (runs 0 .. N-1), not a seed; this command has no single-seed flag"),
    (["translate", "m.npz", "--beem", "3", "hi"], "--beem is spelled --beam here"),
    (["forecast", "train", "d.csv", "--no-plot"],    # was "--no-plot is spelled --plot here": the opposite
     "--no-plot; this command draws a plot only when --plot PATH is given: leave --no-plot out"),
    (["chrlm"], "rnnkit: error: rnnkit: argument COMMAND: invalid choice: 'chrlm'"),
])
def test_parse_errors_are_one_line_naming_the_command_and_the_right_flag(argv, expect, capsys):
    """argparse printed the whole usage (20-40 lines) before the problem; a renamed flag got no hint."""
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err
    assert expect in err and err.count("\n") == 1, err


def test_warnings_are_one_line(capsys, monkeypatch):
    """A RuntimeWarning (resuming with another seed) printed the file, line number and source line."""
    import warnings
    import rnnkit.cli.info as info

    def warn(args):
        warnings.warn("resuming r.ckpt.npz (seed 0) with seed 5: the data order will differ", RuntimeWarning)
        return 0
    monkeypatch.setattr(info, "_info", warn)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli_main.main(["info", "x.npz"]) == 0
    err = capsys.readouterr().err
    assert err == "rnnkit: warning: resuming r.ckpt.npz (seed 0) with seed 5: the data order will differ\n"


def test_out_of_memory_names_only_the_commands_own_size_flags(monkeypatch, capsys):
    """compare's message named --hidden-size, --num-layers and --beam, which it does not have."""
    import rnnkit.compare.run as run

    def oom(*a, **k):
        raise MemoryError
    monkeypatch.setattr(run, "make_task", oom)
    assert cli_main.main(["compare", "adding", "--max-steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == "rnnkit: error: out of memory; choose smaller sizes (--batch-size, --seq-len, --test-size, " \
                  "--params)\n", err
