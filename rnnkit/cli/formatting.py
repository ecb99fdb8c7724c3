"""Help formatting shared by the sub-commands."""

from __future__ import annotations

import argparse

__all__ = ["DefaultsHelpFormatter"]


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each flag's default: ``--x/--no-x`` pairs by the flag in force, ``(default: --progress)``.

    None defaults (the help says what None means) and plain switches such as
    ``--resume`` (off unless given) are left alone.
    """

    def _get_help_string(self, action):
        help = action.help or ""
        if isinstance(action, argparse.BooleanOptionalAction) and isinstance(action.default, bool):
            if "default:" in help:           # Python versions whose BooleanOptionalAction adds it itself
                return help
            on, off = action.option_strings[0], action.option_strings[-1]
            return f"{help} (default: {on if action.default else off})"
        if action.default is None or isinstance(action.default, bool) or getattr(action.default, "hide_default", False):
            return action.help                 # (an unset budget: the help says what applies)
        return super()._get_help_string(action)
