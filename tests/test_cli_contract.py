"""The CLI contract of issue 10, checked on every command: one spelling per shared setting, help with defaults.

The commands are discovered by walking ``rnnkit.cli.main.build_parser()``
(every sub-command, recursively), so a new command is checked without being
listed here.
"""

import argparse

import pytest

from rnnkit.cli.builder import SHARED, IntermixedParser
from rnnkit.cli.main import build_parser, main

# old spellings that must not exist anywhere (the canonical one is in SHARED)
FORBIDDEN = {"--hidden": "--hidden-size", "--layers": "--num-layers", "--batch": "--batch-size",
             "--lr": "--learning-rate", "--seed": "--random-state", "--valid-fraction": "--validation-fraction",
             "--valid": "--validation-fraction", "--test": "--test-fraction", "--embedding": "--embedding-size",
             "--embed": "--embedding-size", "--no-progress-bar": "--no-progress"}
NO_THREADS = set()                       # every command takes --threads
TRAIN_FLAGS = ("--out", "--resume", "--random-state", "--max-minutes", "--progress", "--no-progress",
               "--batch-size", "--validation-fraction", "--learning-rate", "--weight-decay")


def _walk(parser, path=()):
    """(path, parser, is_leaf) for every parser below ``parser`` (aliases counted once)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield path, parser, not subs
    seen = set()
    for action in subs:
        for name, child in action.choices.items():
            if id(child) not in seen:
                seen.add(id(child))
                yield from _walk(child, path + (name,))


def _commands():
    return [(path, parser) for path, parser, leaf in _walk(build_parser()) if leaf]


def _options(parser):
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def _problems(path, parser, leaf):
    where = "rnnkit " + " ".join(path)
    found = []
    for action in _options(parser):
        flags = set(action.option_strings)
        for f in sorted(flags):
            if f in FORBIDDEN:
                found.append(f"{where}: {f} must be spelled {FORBIDDEN[f]}")
            if f.startswith("--") and "_" in f:
                found.append(f"{where}: {f} has an underscore; flags use dashes (--{f[2:].replace('_', '-')})")
        if "--progress" in flags or "--no-progress" in flags:
            if flags != {"--progress", "--no-progress"} or action.nargs != 0:
                found.append(f"{where}: progress must be one --progress/--no-progress switch, got "
                             f"{sorted(flags)} (nargs={action.nargs!r})")
        long_flags = {f for f in flags if f.startswith("--")}
        for name, canonical in SHARED.items():
            if action.dest == name and canonical not in long_flags:
                found.append(f"{where}: the setting {name} is set by {sorted(long_flags)}, not {canonical}")
            if canonical in long_flags and action.dest != name:
                found.append(f"{where}: {canonical} sets {action.dest!r}, not the keyword {name!r}")
            if canonical in long_flags and len(long_flags - {canonical, "--no-progress"}) > 0:
                found.append(f"{where}: {canonical} has other spellings too: {sorted(long_flags)}")
    options = {f for a in _options(parser) for f in a.option_strings}
    if leaf and path not in NO_THREADS and "--threads" not in options:
        found.append(f"{where}: no --threads (make the parser with rnnkit.cli.builder.command)")
    if leaf and parser.allow_abbrev:
        found.append(f"{where}: accepts abbreviations (--hidden would mean --hidden-size); make the parser with "
                     "rnnkit.cli.builder.command")
    if leaf and not isinstance(parser, IntermixedParser):
        found.append(f"{where}: options cannot come between positionals; make the parser with "
                     "rnnkit.cli.builder.command")
    if leaf and path[-1:] == ("train",):
        missing = [f for f in TRAIN_FLAGS if f not in options]
        if missing:
            found.append(f"{where}: a train command without {', '.join(missing)}")
    return found


def test_every_command_spells_the_shared_settings_the_same_way():
    walked = list(_walk(build_parser()))
    paths = {p for p, _, leaf in walked if leaf}
    assert {("info",), ("bench",)} <= paths and len(paths) >= 6, sorted(paths)
    problems = [msg for path, parser, leaf in walked for msg in _problems(path, parser, leaf)]
    assert not problems, "\n" + "\n".join(problems)


def _default_shown(action) -> bool:
    from rnnkit.cli.builder import UNSET                # an unset budget: the help says what applies, as for None
    return (isinstance(action, (argparse._StoreAction, argparse.BooleanOptionalAction))
            and action.default is not None and action.default is not argparse.SUPPRESS and action.default is not UNSET)


@pytest.mark.parametrize("path", [p for p, _ in _commands()], ids=lambda p: " ".join(p))
def test_every_command_has_help_with_defaults(path, capsys):
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    shown = " ".join(p for p in path if not p.startswith(":"))   # hidden forms (translate MODEL) show the parent
    assert out.startswith(f"usage: rnnkit {shown}")
    parser = dict(_commands())[path]
    formatter = parser._get_formatter()
    flat = "".join(out.split())              # help wraps lines anywhere, even after a hyphen
    missing = []
    for action in _options(parser):
        if not _default_shown(action):
            continue
        text = formatter._expand_help(action) if action.help else ""
        if "(default:" not in text or "".join(text.split()) not in flat:
            missing.append(f"{'/'.join(action.option_strings)} (default {action.default!r}): {text!r}")
    assert not missing, f"rnnkit {' '.join(path)} --help does not show these defaults:\n" + "\n".join(missing)


def _kind(action) -> str:
    """What kind of value a flag takes: a switch, one value of a type, several values, a choice."""
    if action.nargs == 0:
        return "switch"
    if action.choices is not None:
        return "choice"
    name = getattr(action.type, "__name__", "str") if action.type is not None else "str"
    return f"{'several ' if action.nargs in ('+', '*') else ''}{name}"


def test_a_setting_shared_by_commands_is_the_same_flag_of_the_same_kind_everywhere():
    """Beyond SHARED: a flag means one kind of value in every command (``--json`` is not a path in one and a
    switch in another), and a keyword two commands take is spelled the same in both."""
    kinds, spellings, problems = {}, {}, []
    for path, parser in _commands():
        where = "rnnkit " + " ".join(path)
        by_dest = {}
        for action in _options(parser):
            for f in action.option_strings:
                if f.startswith("--"):
                    kinds.setdefault(f, {}).setdefault(_kind(action), where)
            by_dest.setdefault(action.dest, set()).update(f for f in action.option_strings if f.startswith("--"))
        for dest, flags in by_dest.items():
            spellings.setdefault(dest, {})[where] = flags
    for f, seen in kinds.items():
        if len(seen) > 1:
            problems.append(f"{f} takes different kinds of value: " + ", ".join(f"{k} in {w}" for k, w in seen.items()))
    for dest, per_command in spellings.items():
        canonical = "--" + dest.replace("_", "-")
        if any(canonical in flags for flags in per_command.values()):
            for where, flags in per_command.items():
                if canonical not in flags:
                    problems.append(f"{dest}: {where} spells it {sorted(flags)}, elsewhere it is {canonical}")
    assert not problems, "\n" + "\n".join(problems)
