"""Exceptions for user mistakes.

Everything a user can get wrong (a bad file, a wrong shape, a flag out of range)
raises a subclass of :class:`RnnkitError` whose message names the problem and the
fix. The CLI prints such messages without a traceback and exits non-zero; any
other exception is a bug in rnnkit.
"""

__all__ = ["RnnkitError", "ShapeError", "ModelFileError", "DataError", "TrainingError", "NotFittedError",
           "HyperparameterError", "PathError"]


class RnnkitError(Exception):
    """Base class for errors caused by input, files or settings rather than by rnnkit itself."""


class ShapeError(RnnkitError, ValueError):
    """An array has the wrong rank, size, dtype or layout (the message says expected vs got)."""


class ModelFileError(RnnkitError):
    """A model or checkpoint file is missing, truncated, tampered with, or of an unknown format."""


class DataError(RnnkitError, ValueError):
    """Input data cannot be used (empty, undecodable, missing columns, ...)."""


class TrainingError(RnnkitError):
    """Training cannot continue (non-finite loss or gradients, ...)."""


class NotFittedError(RnnkitError, AttributeError):
    """An estimator was used before ``fit``."""


class HyperparameterError(RnnkitError, ValueError):
    """A hyperparameter (learning rate, beta, decay, ...) is outside its valid range."""


class PathError(RnnkitError, ValueError):
    """An input or output path cannot be used: missing directory, not a regular file, too large,
    an output that is also an input, a name the file system refuses (the message names the flag)."""
