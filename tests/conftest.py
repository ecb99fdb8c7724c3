import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import ci_skip_guard  # noqa: E402
from skip_allowlist import ALLOWED_SKIPS  # noqa: E402


def pytest_configure(config):
    """Under CI=true a skip not on tests/skip_allowlist.py fails the run (see tests/ci_skip_guard.py).

    A shell that starts a job in the background (``cmd &``, ``nohup``) makes it ignore SIGINT, and Python
    then leaves Ctrl-C ignored, in pytest and in every subprocess it starts; the interrupt tests need the
    usual KeyboardInterrupt, so it is put back here for the run and its children.
    """
    ci_skip_guard.install(config, ALLOWED_SKIPS)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="module")
def one_blas_thread():
    """One BLAS thread for a module of many tiny products, where threads only fight each other."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn, a test dependency
        yield
        return
    with threadpool_limits(1):
        yield
