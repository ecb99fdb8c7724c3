import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


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
