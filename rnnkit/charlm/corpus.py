"""The default training text: the Python documentation that ships with the standard library.

``pydoc_data.topics`` holds the text of the language reference topics that
``help()`` shows (about 465,000 characters of English prose and code), so every
Python installation has a real corpus without network access. The topics are
joined in sorted key order, so the text is the same on every run of the same
Python version.
"""

from __future__ import annotations

import sys

from ..errors import DataError

__all__ = ["default_corpus", "DEFAULT_CORPUS_NAME"]

DEFAULT_CORPUS_NAME = f"pydoc_data.topics (Python {sys.version_info.major}.{sys.version_info.minor})"


def default_corpus() -> str:
    """The embedded default corpus as one string (topics separated by blank lines)."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # pragma: no cover - only stripped-down Pythons lack it
        raise DataError("this Python has no pydoc_data module (the standard library's documentation "
                        "text), so there is no default corpus; pass a TEXTFILE to train on") from e
    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics)) + "\n"
