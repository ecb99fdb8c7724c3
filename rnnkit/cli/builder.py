"""One CLI builder: every application's flags come from its estimator's signature and docstring.

A flag is the keyword it sets, with dashes: ``hidden_size`` is ``--hidden-size``,
``random_state`` is ``--random-state``. Its default is the keyword's default
(an application may override a few for the command line), its help is the
keyword's entry in the class docstring's numpydoc ``Parameters`` section, and
its type follows the annotation: ``int``, ``float``, ``str``, ``bool``
(``--flag/--no-flag``), ``Optional[...]`` (the word ``none`` gives None) and
``Sequence[float]`` (several values). ``cls._choices`` lists the allowed values of
a keyword. So one setting has one name in every application, and a user who
knows ``rnnkit charlm train`` knows the flags of ``rnnkit forecast train``.

The settings every training command shares (:data:`SHARED`) are defined once
here; ``tests/test_cli_contract.py`` walks every command's parser and checks them.

Leaf commands parse options and positionals in any order
(``rnnkit translate MODEL --beam 2 "sentence"``), and every command takes
``--threads`` (see :mod:`rnnkit.threads`).
"""

from __future__ import annotations

import argparse
import inspect
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from ..checks import flag
from .formatting import DefaultsHelpFormatter

__all__ = ["SHARED", "RENAMED", "RnnkitParser", "IntermixedParser", "command", "add_estimator_flags", "estimator_kwargs", "param_docs",
           "add_output_flags", "flag", "none_or"]

# The settings shared across applications: one keyword, one flag, everywhere.
SHARED = {
    "cell": "--cell", "hidden_size": "--hidden-size", "num_layers": "--num-layers",
    "embedding_size": "--embedding-size", "dropout": "--dropout", "batch_size": "--batch-size",
    "learning_rate": "--learning-rate", "weight_decay": "--weight-decay", "clip_norm": "--clip-norm", "epochs": "--epochs",
    "max_steps": "--max-steps", "max_minutes": "--max-minutes", "validation_fraction": "--validation-fraction",
    "random_state": "--random-state", "progress": "--progress", "out": "--out", "resume": "--resume",
    "threads": "--threads", "test_fraction": "--test-fraction", "checkpoint_every": "--checkpoint-every",
    "device": "--device",
}


# old or other toolkits' spellings -> the flag rnnkit uses (suggested when a user types the old one)
RENAMED = {"--hidden": "--hidden-size", "--layers": "--num-layers", "--batch": "--batch-size",
           "--lr": "--learning-rate", "--seed": "--random-state", "--valid-fraction": "--validation-fraction",
           "--valid": "--validation-fraction", "--test": "--test-fraction", "--embedding": "--embedding-size",
           "--embed": "--embedding-size", "--json": "--out", "--checkpoint-path": "--out",
           "--out": "--midi",                      # music sample writes --midi (and --png), not --out
           "--sample-length": "--length", "--temp": "--temperature"}    # train's sample flag; a short form


class RnnkitParser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes are one line: ``rnnkit: error: <command>: <problem>``, exit 2.

    argparse prints the whole usage before a bad value; this names the command, the
    flag and the problem, and for an unknown flag the one it most likely meant.
    """

    def error(self, message: str):
        message = " ".join(str(message).split())
        if message.startswith("unrecognized arguments:"):
            message += self._suggest(message.split(":", 1)[1].split())
        self.exit(2, f"rnnkit: error: {self.prog}: {message} (see {self.prog} --help)\n")

    def _suggest(self, unknown) -> str:
        import difflib
        options = [f for a in self._actions for f in a.option_strings if f.startswith("--")]
        hints = []
        for word in unknown:
            flag = word.split("=", 1)[0]
            if not flag.startswith("--"):
                continue
            guess = RENAMED.get(flag) if RENAMED.get(flag) in options else None
            guess = guess or next(iter(difflib.get_close_matches(flag, options, n=1, cutoff=0.75)), None)
            if (flag, guess) in FALSE_FRIENDS:
                hints.append(FALSE_FRIENDS[flag, guess])
            elif guess:
                hints.append(f"{flag} is spelled {guess} here")
        return f"; {', '.join(hints)}" if hints else ""


# close spellings that mean something else: the hint says so instead of offering the other flag
FALSE_FRIENDS = {("--seed", "--seeds"): "--seeds here is the number of seeds (runs 0 .. N-1), not a seed; "
                                        "this command has no single-seed flag",
                 ("--no-plot", "--plot"): "this command draws a plot only when --plot PATH is given: leave "
                                          "--no-plot out"}


class IntermixedParser(RnnkitParser):
    """An ArgumentParser whose leaf commands accept options between positionals.

    argparse's ``parse_known_intermixed_args`` does this but calls
    ``parse_known_args`` itself, so the override runs it once and lets the inner
    calls through. Parsers with sub-commands keep the plain behaviour.
    """

    _inner = False

    def parse_known_args(self, args=None, namespace=None):
        # argparse cannot intermix with sub-commands or REMAINDER arguments: those parse the plain way
        if self._inner or self._subparsers is not None or any(
                a.nargs in (argparse.REMAINDER, argparse.PARSER) for a in self._actions):
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def command(subparsers, name: str, *, help: str, description: Optional[str] = None,
            func: Optional[Callable] = None, threads: bool = True) -> argparse.ArgumentParser:
    """A sub-command parser with the shared help formatter, intermixed parsing and ``--threads``.

    The parser is an :class:`IntermixedParser` whatever class ``subparsers`` was
    made with (``rnnkit``'s own top level uses plain argparse), so options may
    come between positionals in every command.
    """
    cls = getattr(subparsers, "_parser_class", None)
    if cls is not None and not issubclass(cls, IntermixedParser):
        subparsers._parser_class = IntermixedParser     # add_parser has no per-call parser class
    try:
        # no abbreviations: `--hidden` must not quietly mean `--hidden-size` (one spelling per setting)
        p = subparsers.add_parser(name, help=help, description=description or help,
                                  formatter_class=DefaultsHelpFormatter, allow_abbrev=False)
    finally:
        if cls is not None:
            subparsers._parser_class = cls
    if threads:
        p.add_argument("--threads", default="auto", metavar="N",
                       help="threads for the matrix products: an integer, or auto = the cores not already "
                            "busy (OpenBLAS's own default slows down many times when other jobs share the cores)")
    p.set_defaults(_parser=p)          # main() lets the command's own parser report unknown flags
    if func is not None:
        p.set_defaults(func=func)
    return p


def subcommands(parser: argparse.ArgumentParser, dest: str, metavar: str = "ACTION"):
    """``add_subparsers`` whose commands parse intermixed options (see :class:`IntermixedParser`)."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar, parser_class=IntermixedParser)
    sub.required = True
    return sub


# -- docstrings ------------------------------------------------------------------
_ENTRY = re.compile(r"^(\s*)([A-Za-z_][\w, ]*?)\s*:\s*(.*)$")


def param_docs(cls) -> Dict[str, str]:
    """Keyword -> its description in the class docstring's ``Parameters`` section (first sentence kept whole).

    Entries may group keywords (``epochs, batch_size : training``) and run over
    indented continuation lines.
    """
    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Parameters")
    except StopIteration:
        return {}
    out: Dict[str, str] = {}
    names: List[str] = []
    buf: List[str] = []

    def flush():
        if names and buf:
            text = " ".join(" ".join(buf).split())
            for n in names:
                out.setdefault(n, text)

    for line in lines[start + 2:]:
        if not line.strip():
            continue
        if not line.startswith(" ") and re.match(r"^[A-Z][\w ()]*$", line.strip()) and ":" not in line:
            break                                   # the next section ("Attributes", "Examples")
        if line.startswith("-") and set(line.strip()) == {"-"}:
            break
        m = _ENTRY.match(line)
        if m and not m.group(1):
            flush()
            names = [n.strip() for n in m.group(2).split(",") if n.strip()]
            buf = [m.group(3)]
        else:
            buf.append(line.strip())
    flush()
    return out


# -- types -------------------------------------------------------------------------
def none_or(convert: Callable[[str], Any], what: Optional[str] = None) -> Callable[[str], Any]:
    """An argparse type: the word ``none`` gives None, anything else ``convert(text)``."""
    return _none_or(convert, what or convert.__name__)


def _none_or(convert: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def parse(text: str):
        if text.strip().lower() == "none":
            return None
        return convert(text)
    parse.__name__ = what                  # argparse names the type in its error message
    return parse


def _converter(annotation: Any, default: Any):
    """(argparse keyword arguments) for a parameter's annotation and default."""
    # typing.Optional[int].__name__ is just "Optional": only plain classes go by their name
    ann = annotation if isinstance(annotation, str) else annotation.__name__ if isinstance(annotation, type) \
        else str(annotation)
    ann = ann.replace("typing.", "").replace(" ", "")
    if ann.startswith("Union[") and ann.endswith(",None]"):              # Union[int, None]
        ann = f"Optional[{ann[len('Union['):-len(',None]')]}]"
    if ann.endswith("|None") or ann.startswith("None|"):                 # int | None (PEP 604)
        ann = f"Optional[{ann.replace('|None', '').replace('None|', '')}]"
    optional = ann.startswith("Optional[") or default is None
    base = ann[len("Optional["):-1] if ann.startswith("Optional[") else ann
    if base in ("bool",) or isinstance(default, bool):
        return {"action": argparse.BooleanOptionalAction}
    if base.startswith(("Sequence[", "Tuple[", "List[", "tuple", "list")) or isinstance(default, (tuple, list)):
        inner = float if "float" in base or (default and isinstance(default[0], float)) else int if "int" in base \
            else str
        return {"nargs": "+", "type": inner}
    kinds = {"int": int, "float": float, "str": str}
    convert = kinds.get(base.split("[")[0].strip(), None)
    if convert is None:   # Union, a Generator for random_state, ...: the default's type, else an int
        convert = type(default) if isinstance(default, (int, float, str)) else int
    if convert is float:  # "1e-3" and "3" both read as floats; an int default for a float keyword stays exact
        convert = float
    if optional:
        return {"type": _none_or(convert, convert.__name__)}
    return {"type": convert}


def add_estimator_flags(parser, cls, names: Optional[Iterable[str]] = None, *, exclude: Sequence[str] = (),
                        defaults: Optional[Mapping[str, Any]] = None,
                        helps: Optional[Mapping[str, str]] = None, title: Optional[str] = None) -> List[str]:
    """Add a flag per keyword of ``cls.__init__`` (all, or ``names``); returns the keywords added.

    ``defaults`` overrides a keyword's default on the command line only;
    ``helps`` overrides or supplies a help text.
    """
    sig = inspect.signature(cls.__init__)
    docs = param_docs(cls)
    choices = getattr(cls, "_choices", {})
    wanted = list(names) if names is not None else [p for p in sig.parameters if p != "self"]
    target = parser.add_argument_group(title) if title else parser
    added = []
    for name in wanted:
        if name in exclude:
            continue
        param = sig.parameters[name]
        default = (defaults or {}).get(name, param.default)
        kw = _converter(param.annotation, param.default)
        if name == "random_state" and "type" in kw:   # None = fresh entropy, in every application
            kw = {"type": _none_or(int, "int"), "metavar": "SEED"}
        if name in choices and "type" in kw:
            kw["choices"] = list(choices[name])
            kw.pop("type", None) if all(isinstance(c, str) for c in choices[name]) else None
        text = (helps or {}).get(name) or docs.get(name) or name.replace("_", " ")
        target.add_argument(flag(name), dest=name, default=default, help=text, **kw)
        added.append(name)
    return added


class _Unset:
    """The default of a training budget flag that was not given (``UNSET_BUDGET``): the estimator's own default
    budget applies, which ``--epochs none`` (no epoch limit) must not be mistaken for."""

    hide_default = True          # the help formatter shows no "(default: unset)"

    def __repr__(self) -> str:
        return "unset"


UNSET = _Unset()
BUDGET = ("epochs", "max_steps", "max_minutes")
UNSET_BUDGET = {name: UNSET for name in BUDGET}       # ``defaults=`` for commands whose estimator has a default budget


def estimator_kwargs(args: argparse.Namespace, names: Iterable[str]) -> Dict[str, Any]:
    """The keyword arguments named ``names`` from parsed ``args``.

    Budget flags left at :data:`UNSET` become None (the estimator's default budget); when some were given and
    none of them is a number (``--epochs none --max-steps none``), training would never end: refused (it
    trained the default 10 epochs).
    """
    kwargs = {name: getattr(args, name) for name in names}
    budget = [k for k in BUDGET if k in kwargs]
    given = [k for k in budget if kwargs[k] is not UNSET]
    if any(kwargs[k] is UNSET for k in budget) and given and all(kwargs[k] in (None, UNSET) for k in budget):
        from ..errors import HyperparameterError
        raise HyperparameterError(f"{' '.join(flag(k) + ' none' for k in given)}: with no "
                                  f"{', '.join(flag(k) for k in budget)} training never ends; give one of them a "
                                  "number, or leave them out for the default budget")
    return {k: None if v is UNSET else v for k, v in kwargs.items()}


def add_output_flags(parser, *, out: Optional[str] = None, out_help: str = "the model file",
                     resume: bool = False, progress: Optional[bool] = None) -> None:
    """The shared run flags: ``--out`` (with a default), ``--resume``, ``--progress/--no-progress``;
    with ``resume`` (the train commands) also ``--distributed`` (:mod:`rnnkit.distributed`)."""
    if out is not None:
        parser.add_argument("--out", default=out, metavar="PATH", help=out_help)
    if resume:
        parser.add_argument("--resume", action="store_true",
                            help="continue from the checkpoint beside --out (which must exist and match "
                                 "the model settings and the data)")
    if progress is not None:
        parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=progress,
                            help="progress bar and notes while training")
    if resume:   # the train commands
        parser.add_argument("--distributed", action="store_true",
                            help="data-parallel training on every process of an MPI launch (mpiexec -n K python -m "
                                 "mpi4py -m rnnkit ...): each takes 1/K of every batch, gradients are averaged; "
                                 "rank 0 prints and writes the files (needs the mpi extra)")
