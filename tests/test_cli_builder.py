"""rnnkit.cli.builder: flags generated from an estimator's signature and docstring, one naming scheme."""

import argparse
from typing import Optional, Sequence, Union

import pytest

from rnnkit.cli import builder
from rnnkit.cli.builder import (SHARED, IntermixedParser, add_estimator_flags, add_output_flags, command,
                                estimator_kwargs, flag, param_docs, subcommands)


class Demo:
    """A demo estimator.

    Some prose that is not a parameter: it mentions cell : nothing.

    Parameters
    ----------
    cell : recurrent cell type.
    hidden_size : units in each
        recurrent layer (continued here).
    dropout : dropout probability.
    max_steps, max_minutes : stop after this many steps / minutes (none: no limit).
    learning_rate : Adam step size.
    progress : show a progress bar.
    quantiles : quantile levels to predict.
    random_state : seed; none draws fresh entropy.
    beam : beam width (none: greedy).
    note : a free text.

    Attributes
    ----------
    history_ : should never become a flag's help.
    """

    _choices = {"cell": ("lstm", "gru", "rnn")}

    def __init__(self, cell: str = "lstm", hidden_size: int = 64, dropout: float = 0.0,
                 max_steps: Optional[int] = None, max_minutes: Union[float, None] = 2.5,
                 learning_rate: float = 1e-3, progress: bool = True, quantiles: Sequence[float] = (0.1, 0.5, 0.9),
                 random_state=0, beam: "int | None" = 4, note: str = "hi"):
        pass


def _parser(**kw):
    top = argparse.ArgumentParser(prog="rnnkit")
    sub = subcommands(top, "action")
    p = command(sub, "train", help="train a demo", func=lambda args: 0)
    names = add_estimator_flags(p, Demo, **kw)
    return top, p, names


def test_param_docs_reads_entries_groups_and_continuations():
    docs = param_docs(Demo)
    assert docs["hidden_size"] == "units in each recurrent layer (continued here)."
    assert docs["max_steps"] == docs["max_minutes"] == "stop after this many steps / minutes (none: no limit)."
    assert "history_" not in docs and docs["cell"] == "recurrent cell type."


def test_flags_follow_the_signature():
    top, p, names = _parser()
    assert names == ["cell", "hidden_size", "dropout", "max_steps", "max_minutes", "learning_rate", "progress",
                     "quantiles", "random_state", "beam", "note"]
    args = top.parse_args(["train"])
    assert estimator_kwargs(args, names) == {
        "cell": "lstm", "hidden_size": 64, "dropout": 0.0, "max_steps": None, "max_minutes": 2.5,
        "learning_rate": 1e-3, "progress": True, "quantiles": (0.1, 0.5, 0.9), "random_state": 0, "beam": 4,
        "note": "hi"}
    args = top.parse_args(["train", "--cell", "gru", "--hidden-size", "8", "--learning-rate", "3e-4",
                           "--max-steps", "100", "--quantiles", "0.5", "0.9", "--no-progress", "--note", "x y"])
    assert (args.cell, args.hidden_size, args.learning_rate, args.max_steps, args.quantiles, args.progress) == \
        ("gru", 8, 3e-4, 100, [0.5, 0.9], False)
    assert isinstance(args.hidden_size, int) and isinstance(args.learning_rate, float)


@pytest.mark.parametrize("argv,attr,value", [
    (["--max-steps", "none"], "max_steps", None),          # Optional[int]
    (["--max-minutes", "None"], "max_minutes", None),      # Union[float, None]
    (["--max-minutes", "1.5"], "max_minutes", 1.5),
    (["--beam", "none"], "beam", None),                    # "int | None" (PEP 604, as a string)
    (["--beam", "7"], "beam", 7),
    (["--random-state", "none"], "random_state", None),    # None = fresh entropy, everywhere
    (["--random-state", "5"], "random_state", 5),
    (["--progress"], "progress", True),
])
def test_optional_none_and_bool(argv, attr, value):
    top, _, _ = _parser()
    assert getattr(top.parse_args(["train"] + argv), attr) == value


@pytest.mark.parametrize("argv,expect", [
    (["--cell", "transformer"], "argument --cell: invalid choice: 'transformer'"),
    (["--hidden-size", "1.5"], "argument --hidden-size: invalid int value: '1.5'"),
    (["--hidden-size", "none"], "argument --hidden-size: invalid int value: 'none'"),  # not Optional
    (["--max-steps", "many"], "argument --max-steps: invalid int value: 'many'"),
    (["--hidden", "3"], "unrecognized arguments: --hidden"),                           # no abbreviations
    (["--progress", "false"], "unrecognized arguments: false"),                        # no --progress BOOL
])
def test_bad_values_are_refused_naming_the_flag(capsys, argv, expect):
    top, _, _ = _parser()
    with pytest.raises(SystemExit) as info:
        top.parse_args(["train"] + argv)
    assert info.value.code == 2 and expect in capsys.readouterr().err


def test_help_shows_docstring_and_defaults(capsys):
    top, _, _ = _parser(defaults={"hidden_size": 128}, helps={"note": "what to say"})
    with pytest.raises(SystemExit):
        top.parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--hidden-size HIDDEN_SIZE units in each recurrent layer (continued here). (default: 128)" in text
    assert "--cell {lstm,gru,rnn} recurrent cell type. (default: lstm)" in text
    assert "--progress, --no-progress show a progress bar. (default: --progress)" in text
    assert "--note NOTE what to say (default: hi)" in text
    assert "--threads N" in text and "(default: auto)" in text


def test_names_exclude_and_cli_defaults():
    top, p, names = _parser(names=["cell", "hidden_size", "dropout"], exclude=["dropout"],
                            defaults={"hidden_size": 32})
    assert names == ["cell", "hidden_size"]
    args = top.parse_args(["train"])
    assert args.hidden_size == 32 and not hasattr(args, "dropout")
    with pytest.raises(KeyError):
        add_estimator_flags(argparse.ArgumentParser(), Demo, names=["nonexistent"])


def test_command_adds_threads_and_func():
    top, p, _ = _parser()
    args = top.parse_args(["train", "--threads", "3"])
    assert args.threads == "3" and args.func(args) == 0
    assert top.parse_args(["train"]).threads == "auto"
    sub = argparse.ArgumentParser().add_subparsers()
    assert "--threads" not in command(sub, "info", help="x", threads=False).format_help()


def test_options_between_positionals_on_every_command():
    # `rnnkit translate MODEL --beam 2 "sentence"`: plain argparse refuses the text after the option
    for make_sub in (lambda top: subcommands(top, "action"), lambda top: top.add_subparsers(dest="command")):
        top = argparse.ArgumentParser(prog="rnnkit")
        p = command(make_sub(top), "go", help="go")
        assert isinstance(p, IntermixedParser)
        p.add_argument("model")
        p.add_argument("text", nargs="*")
        p.add_argument("--beam", type=int, default=1)
        args = top.parse_args(["go", "m.npz", "--beam", "2", "hello", "world"])
        assert (args.model, args.text, args.beam) == ("m.npz", ["hello", "world"], 2)
        args = top.parse_args(["go", "--beam", "3", "m.npz", "hi"])
        assert (args.model, args.text, args.beam) == ("m.npz", ["hi"], 3)
    plain = argparse.ArgumentParser()
    plain.add_argument("model")
    plain.add_argument("text", nargs="*")
    plain.add_argument("--beam", type=int)
    with pytest.raises(SystemExit):                        # what the builder fixes
        plain.parse_args(["m.npz", "--beam", "2", "hello"])


def test_remainder_arguments_still_parse():
    top = argparse.ArgumentParser()
    p = command(top.add_subparsers(dest="c"), "run", help="run")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    assert top.parse_args(["run", "a", "--b"]).rest == ["a", "--b"]


def test_output_flags():
    p = argparse.ArgumentParser()
    add_output_flags(p, out="model.npz", resume=True, progress=True)
    args = p.parse_args([])
    assert (args.out, args.resume, args.progress) == ("model.npz", False, True)
    args = p.parse_args(["--out", "x.npz", "--resume", "--no-progress"])
    assert (args.out, args.resume, args.progress) == ("x.npz", True, False)


def test_shared_names_are_the_flags_of_their_keywords():
    for name, spelled in SHARED.items():
        assert flag(name) == spelled, name
    assert builder.flag("validation_fraction") == "--validation-fraction"


@pytest.mark.parametrize("app", ["charlm", "music"])
def test_an_explicit_none_for_every_budget_is_refused_not_read_as_the_default(app, tmp_path, capsys):
    # "--epochs none --max-steps none" trained the default 10 epochs: none is "no limit", not "unset"
    from rnnkit.cli.main import main
    data = tmp_path / ("t.txt" if app == "charlm" else "m.json")
    data.write_text("abc " * 50 if app == "charlm" else "{}")
    for flags in (["--epochs", "none", "--max-steps", "none"], ["--epochs", "none"],
                  ["--max-minutes", "none", "--epochs", "none"]):
        assert main([app, "train", str(data), "--out", str(tmp_path / "m.npz")] + flags) == 2
        err = capsys.readouterr().err
        assert "training never ends; give one of them a number, or leave them out for the default budget" in err
        assert err.count("\n") == 1 and not (tmp_path / "m.npz").exists()


def test_unset_budget_flags_become_none_and_a_number_anywhere_is_a_budget():
    import argparse
    from rnnkit.cli.builder import UNSET, estimator_kwargs
    ns = argparse.Namespace(epochs=UNSET, max_steps=UNSET, max_minutes=UNSET, hidden_size=8)
    assert estimator_kwargs(ns, ["epochs", "max_steps", "max_minutes", "hidden_size"]) == dict(
        epochs=None, max_steps=None, max_minutes=None, hidden_size=8)            # the estimator's default budget
    ns.epochs, ns.max_steps = None, 3                                          # --epochs none --max-steps 3
    assert estimator_kwargs(ns, ["epochs", "max_steps", "max_minutes"])["max_steps"] == 3
    ns.epochs, ns.max_steps, ns.max_minutes = None, None, None                 # translate-like: no UNSET defaults
    assert estimator_kwargs(ns, ["epochs", "max_steps", "max_minutes"]) == dict(epochs=None, max_steps=None,
                                                                               max_minutes=None)
