"""In CI, a skipped test is a failed test unless the allow-list says why it may skip.

A skip is silent: a missing optional dependency (``pytest.importorskip``), a
module-level ``pytest.skip`` or a ``skipif`` mark turns tests into one letter
``s`` and the run stays green. Under ``CI=true`` (or ``CI=1``) this plugin turns
every skip, and every xfail, into a failure with its reason, unless its node id
is on the allow-list (``tests/skip_allowlist.py``) with that same reason. A
stale xfail mark (the test passes, "XPASS") fails too. A skip at collection
(a whole module) becomes a collection error, the way a failed import does.

Outside CI nothing changes: developers without numba or torch still get skips.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

import pytest

ALLOWLIST_FILE = "tests/skip_allowlist.py"


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """True when the environment variable CI is "true" or "1" (what CI services set)."""
    return environ.get("CI", "").strip().lower() in ("true", "1")


def skip_reason(report) -> str:
    """The reason pytest recorded for a skipped (or xfailed) report, without the "Skipped: " prefix."""
    if hasattr(report, "wasxfail"):
        return f"xfail: {report.wasxfail}" if report.wasxfail else "xfail"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:   # (path, lineno, "Skipped: reason")
        reason = longrepr[2]
    else:
        reason = str(longrepr or "")
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def _where(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        try:
            path = os.path.relpath(longrepr[0])
        except ValueError:                                     # another drive on Windows
            path = longrepr[0]
        return f" ({path}:{longrepr[1]})"
    return ""


class SkipGuard:
    """The pytest plugin. ``allowed`` maps a node id to the skip reason it may skip with.

    An entry names a test ("tests/test_x.py::test_y"), every parametrization of
    it ("tests/test_x.py::test_y" also covers "...::test_y[a-b]"), or a module
    ("tests/test_x.py", for a skip at collection). The test's skip reason must
    contain the entry's reason, so the entry allows that skip and no other.
    """

    def __init__(self, allowed: Mapping[str, str]):
        self.allowed = dict(allowed)
        self.refused: list = []     # (node id, reason), in the order they happened

    def allowed_reason(self, nodeid: str) -> Optional[str]:
        for entry, reason in self.allowed.items():
            if nodeid == entry or nodeid.startswith(entry + "[") or nodeid.startswith(entry + "::"):
                return reason
        return None

    def _check(self, report) -> None:
        xpassed = report.passed and hasattr(report, "wasxfail")
        if not (report.skipped or xpassed):
            return
        if xpassed:
            reason = f"XPASS, the xfail mark is stale ({report.wasxfail or 'no reason'}): remove it"
        else:
            reason = skip_reason(report)
            expected = self.allowed_reason(report.nodeid)
            if expected is not None and expected in reason:
                return
        self.refused.append((report.nodeid, reason))
        if hasattr(report, "wasxfail"):
            del report.wasxfail
        report.outcome = "failed"
        report.longrepr = (f"{'XPASS' if xpassed else 'skipped'} under CI=true and not on the allow-list: "
                           f"{reason}{_where(report)}\nMake it run in CI, or add its node id with this reason "
                           f"to ALLOWED_SKIPS in {ALLOWLIST_FILE}.")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        self._check(outcome.get_result())

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector):
        outcome = yield
        self._check(outcome.get_result())

    def pytest_terminal_summary(self, terminalreporter):
        if not self.refused:
            return
        tr = terminalreporter
        tr.section(f"CI=true: {len(self.refused)} skip(s) not on the allow-list ({ALLOWLIST_FILE})", red=True)
        for nodeid, reason in self.refused:
            tr.line(f"{nodeid}: {reason}")


def install(config, allowed: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> Optional[SkipGuard]:
    """Register the guard on ``config`` when running in CI; returns it (None outside CI)."""
    if not in_ci(environ):
        return None
    guard = SkipGuard(allowed)
    config.pluginmanager.register(guard, "ci-skip-guard")
    return guard



def numba_unavailable() -> Optional[str]:
    """Why numba's compiled kernels cannot run here, or None when they can.

    Under CI, where numba is a test dependency, their absence is a failure instead (raised here).
    The caller skips with the reason, so that the skip is reported at the test module's line.
    """
    try:
        import numba                                            # noqa: F401
    except ImportError as e:
        if in_ci():
            raise
        return f"could not import 'numba': {e}"
    from rnnkit.kernels import backend
    status = backend.numba_status()
    if status["ok"]:
        return None
    unavailable = f"numba kernels unavailable: {status['reason']}"
    if in_ci():
        pytest.fail(f"{unavailable} (CI=true: numba is a test dependency, its kernels must compile)", pytrace=False)
    return unavailable
