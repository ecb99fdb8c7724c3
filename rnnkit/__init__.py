"""rnnkit: recurrent neural networks on NumPy, with exact hand-derived BPTT.

``rnnkit.load(path)`` returns the estimator saved in any model file or training
checkpoint (a ``CharModel``, ``RNNForecaster`` or ``Translator``);
``rnnkit.set_threads(n)`` fixes the threads of the matrix products.
"""

__version__ = "0.1.0"

__all__ = ["load", "set_threads", "__version__"]


def load(path):
    """The fitted estimator stored in ``path`` (model file or checkpoint of any application)."""
    from .estimator import load as _load
    return _load(path)


def set_threads(n="auto"):
    """Threads for BLAS and the compiled kernels: an integer, or "auto" (the cores not already busy)."""
    from .threads import set_threads as _set
    return _set(n)
