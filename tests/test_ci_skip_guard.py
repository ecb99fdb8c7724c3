"""The CI skip guard: under CI=true a skip fails the run unless tests/skip_allowlist.py allows it.

Each case runs a tiny pytest session of its own (pytester, in process), with
a conftest that installs the guard with a one-entry allow-list.
"""

import ast
import os
import subprocess
import sys

import pytest

import ci_skip_guard
from skip_allowlist import ALLOWED_SKIPS

pytest_plugins = ["pytester"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INNER_CONFTEST = """
import ci_skip_guard

def pytest_configure(config):
    ci_skip_guard.install(config, {"test_inner.py::test_allowed": "no frobnicator on this machine"})
"""


@pytest.fixture
def inner(pytester, monkeypatch):
    """Run ``source`` as test_inner.py under the guard; ``ci`` is the CI variable's value (None: unset)."""
    pytester.makeconftest(INNER_CONFTEST)

    def run(source, ci):
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        pytester.makepyfile(test_inner=source)
        result = pytester.runpytest("-p", "no:cacheprovider")
        return result, result.stdout.str()
    return run


ONE_SKIP = """
import pytest

def test_runs():
    pass

def test_skips():
    pytest.skip("needs a frobnicator")
"""


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_a_skip_fails_the_run_in_ci_and_is_named_with_its_reason(inner, ci):
    result, out = inner(ONE_SKIP, ci)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, errors=0, failed=1)
    assert "test_inner.py::test_skips: needs a frobnicator" in out           # the summary section
    assert "skipped under CI=true and not on the allow-list: needs a frobnicator" in out
    assert "tests/skip_allowlist.py" in out


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_outside_ci_a_skip_is_only_a_skip(inner, ci):
    result, out = inner(ONE_SKIP, ci)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=1)
    assert "allow-list" not in out


def test_an_allowed_skip_passes_in_ci_only_with_its_reason(inner):
    source = """
import pytest

@pytest.mark.parametrize("n", [1, 2])
def test_allowed(n):
    pytest.skip("no frobnicator on this machine" if n == 1 else "some other reason")
"""
    result, out = inner(source, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(skipped=1, failed=1)                             # [1] allowed, [2] not
    assert "test_inner.py::test_allowed[2]: some other reason" in out
    assert "test_allowed[1]:" not in out


def test_every_kind_of_skip_and_xfail_is_caught_and_listed(inner):
    source = """
import pytest

@pytest.mark.skipif(True, reason="a skipif mark")
def test_mark():
    pass

@pytest.fixture
def needs_thing():
    pytest.skip("a fixture skips")

def test_fixture(needs_thing):
    pass

@pytest.mark.xfail(reason="known bug 12")
def test_xfail():
    assert False

@pytest.mark.xfail(reason="fixed long ago")
def test_xpass():
    pass
"""
    result, out = inner(source, "true")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(errors=2, failed=2)                   # setup skips are errors, the others failures
    assert "CI=true: 4 skip(s) not on the allow-list" in out
    for line in ["test_inner.py::test_mark: a skipif mark", "test_inner.py::test_fixture: a fixture skips",
                 "test_inner.py::test_xfail: xfail: known bug 12",
                 "test_inner.py::test_xpass: XPASS, the xfail mark is stale (fixed long ago)"]:
        assert line in out, line


def test_a_module_level_skip_is_a_collection_error_in_ci(inner):
    source = """
import pytest

pytest.importorskip("rnnkit_no_such_module")

def test_never_collected():
    pass
"""
    result, out = inner(source, "true")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    assert "test_inner.py: could not import 'rnnkit_no_such_module'" in out
    result, _ = inner(source, None)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.assert_outcomes(skipped=1)


def test_this_session_has_the_guard_exactly_when_ci_is_set(request):
    guard = request.config.pluginmanager.get_plugin("ci-skip-guard")
    assert (guard is not None) == ci_skip_guard.in_ci()
    if guard is not None:
        assert guard.allowed == ALLOWED_SKIPS


def test_every_allowlist_entry_names_a_test_that_exists_and_gives_a_reason():
    """A renamed test would leave its entry behind, allowing nothing, or a later test of the same name."""
    assert ALLOWED_SKIPS, "an empty allow-list needs no test; remove this one"
    for nodeid, reason in ALLOWED_SKIPS.items():
        assert isinstance(reason, str) and reason.strip(), nodeid
        path, _, name = nodeid.partition("::")
        assert os.path.isfile(os.path.join(ROOT, path)), nodeid
        if name:
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert name.split("::")[-1].split("[")[0] in functions, nodeid


def _kernel_tests(broken_numba, tmp_path, ci):
    """Run the kernel tests where numba does not work: disabled, or missing."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "RNNKIT_BACKEND", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = ROOT
    if broken_numba == "disabled":
        env["RNNKIT_DISABLE_NUMBA"] = "1"
    else:
        (tmp_path / "numba.py").write_text("raise ModuleNotFoundError('No module named numba (test stand-in)', name='numba')\n")
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), ROOT])
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           "tests/test_kernels.py"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


@pytest.mark.parametrize("broken_numba,reason", [
    ("disabled", "numba kernels unavailable: RNNKIT_DISABLE_NUMBA is set"),
    ("missing", "No module named numba (test stand-in)"),
], ids=["disabled", "missing"])
def test_kernels_without_working_numba_fail_in_ci_and_skip_elsewhere(tmp_path, broken_numba, reason):
    """The issue's case: without numba all kernel tests became one silent skip, and CI stayed green."""
    done = _kernel_tests(broken_numba, tmp_path, ci=True)
    out = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.INTERRUPTED and "1 error" in out, out
    assert reason in out and "skipped" not in out, out
    done = _kernel_tests(broken_numba, tmp_path, ci=False)
    out = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.NO_TESTS_COLLECTED and "SKIPPED [1] tests/test_kernels.py" in out, out
    assert reason in out, out
