"""``rnnkit info MODEL``: a thin shell over :func:`rnnkit.io.summary.summarize`."""

from __future__ import annotations

import json

from ..io.summary import format_summary, summarize
from .builder import command

__all__ = ["register"]


def _info(args) -> int:
    s = summarize(args.model)
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    return 0


def register(subparsers) -> None:
    p = command(subparsers, "info", help="what a model file or checkpoint holds: kind, settings, history, size",
                func=_info)
    p.add_argument("model", help="a model file or training checkpoint of any rnnkit application")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
