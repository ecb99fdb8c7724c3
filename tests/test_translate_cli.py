"""`rnnkit translate`: the three forms side by side, and clear one-line errors (no traceback) for bad input."""

import io
import os
import sys

import numpy as np
import pytest

from rnnkit.cli.main import main
from rnnkit.io.modelfile import save_model_file

pytestmark = pytest.mark.usefixtures("one_blas_thread")


PAIRS = [("I am tired.", "Je suis fatigué."), ("He is tall.", "Il est grand."), ("We are ready.", "Nous sommes prêts."),
         ("She is here.", "Elle est ici."), ("I am happy.", "Je suis content."), ("You are late.", "Tu es en retard."),
         ("They are young.", "Ils sont jeunes."), ("He is rich.", "Il est riche."), ("Go!", "Va !"),
         ("I am cold.", "J'ai froid.")] * 2
SMALL = ["--embedding-size", "16", "--hidden-size", "24", "--batch-size", "8", "--learning-rate", "0.01",
         "--dropout", "0", "--no-progress"]


def _run(capsys, argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("translate")
    pairs = d / "pairs.tsv"
    pairs.write_text("".join(f"{en}\t{fr}\tCC-BY 2.0 (France) Attribution: tatoeba.org\n" for en, fr in PAIRS),
                     encoding="utf-8")
    model = d / "fr-en.npz"
    code = main(["translate", "train", str(pairs), "--src-col", "1", "--tgt-col", "0", "--attention", "bahdanau",
                 "--beam", "2", "--epochs", "40", "--validation-fraction", "0", "--test-fraction", "0.1",
                 "--out", str(model)] + SMALL)
    assert code == 0
    return d, pairs, model


def test_train_then_translate_both_forms(files, capsys):
    d, pairs, model = files
    assert model.exists()
    code, out, err = _run(capsys, ["translate", str(model), "je suis fatigué ."])
    assert code == 0 and out == "i am tired .\n"
    code, out, _ = _run(capsys, ["translate", "--beam", "3", "--n-best", "2", str(model), "Il est grand."])
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and lines[0].startswith("1\t") and lines[0].endswith("he is tall .")


def test_options_before_between_and_after_positionals(files, capsys):
    _, pairs, model = files
    for argv in ([str(model), "--beam", "2", "je suis fatigué ."], [str(model), "je", "--beam", "2", "suis fatigué ."],
                 ["--threads", "1", str(model), "je suis fatigué .", "--beam", "2"]):
        code, out, err = _run(capsys, ["translate"] + argv)
        assert code == 0 and out == "i am tired .\n", (argv, err)
    code, out, err = _run(capsys, ["translate", "eval", "--beam", "2", str(model), "--max-length", "20", str(pairs)])
    assert code == 0 and "beam 2: BLEU" in out, err


def test_a_checkpoint_works_as_model(files, capsys):
    d, pairs, model = files
    ckpt = d / "fr-en.ckpt.npz"                                   # written beside --out by the training
    assert ckpt.exists()
    for form in (["translate", str(ckpt), "--beam", "2", "il est riche ."], ["translate", "eval", str(ckpt), str(pairs)]):
        code, out, err = _run(capsys, form)
        assert code == 0 and out.strip(), err
    assert _run(capsys, ["translate", str(ckpt), "il est riche ."])[1] == _run(capsys, ["translate", str(model), "il est riche ."])[1]


def test_translate_reads_stdin_and_keeps_blank_lines(files, capsys, monkeypatch):
    _, _, model = files
    code, out, err = _run(capsys, ["translate", str(model), "--beam", "2"], stdin="il est riche .\n\nva !\n",
                          monkeypatch=monkeypatch)
    assert code == 0 and out == "he is rich .\n\ngo !\n"


def test_unknown_words_are_reported(files, capsys):
    _, _, model = files
    code, out, err = _run(capsys, ["translate", str(model), "je suis xylophone ."])
    assert code == 0 and out.strip()
    assert "unknown word(s) read as <unk>: 'xylophone'" in err


def test_attention_plot(files, capsys):
    d, _, model = files
    png = d / "att.png"
    code, _, err = _run(capsys, ["translate", str(model), "nous sommes prêts .", "--attention-plot", str(png)])
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]       # written atomically


def test_attention_plot_over_the_model_is_refused(files, capsys):
    _, _, model = files
    before = model.read_bytes()
    code, _, err = _run(capsys, ["translate", str(model), "va !", "--attention-plot", str(model)])
    assert code == 2 and f"--attention-plot {model} is also the input MODEL" in err
    assert model.read_bytes() == before


def test_eval_uses_the_training_columns(files, capsys):
    _, pairs, model = files
    code, out, _ = _run(capsys, ["translate", "eval", str(model), str(pairs)])
    assert code == 0 and "BLEU" in out and "chrF" in out and "exact" in out
    assert float(out.split("exact ")[1].split("%")[0]) >= 90.0


def test_train_builtin_numbers_task(tmp_path, capsys):
    pytest.importorskip("num2words")
    model = tmp_path / "num.npz"
    code, out, _ = _run(capsys, ["translate", "train", "--numbers", "0-40", "--epochs", "25",
                                   "--validation-fraction", "0", "--test-fraction", "0", "--out", str(model)]
                        + SMALL)
    assert code == 0 and "numbers 0-40, English words -> French words" in out and model.exists()
    code, out, _ = _run(capsys, ["translate", str(model), "twenty-seven"])
    assert code == 0 and out == "vingt-sept\n"


@pytest.mark.parametrize("numbers, message", [
    ("5-3", "expected a range LOW-HIGH with 0 <= LOW <= HIGH, got 5-3"),
    ("0-99999999999", "holds 100,000,000,000 numbers and the built-in task takes at most 100,000"),
    ("a-b", "expected a range LOW-HIGH such as 0-999, got 'a-b'"),
])
def test_a_bad_numbers_range_is_refused_before_any_work(tmp_path, capsys, numbers, message):
    pytest.importorskip("num2words")            # a huge range once wrote words for minutes, growing without end
    code, out, err = _run(capsys, ["translate", "train", "--numbers", numbers, "--out", str(tmp_path / "m.npz")])
    assert code == 2 and message in err and err.count("\n") == 1 and out == "", (out, err)
    assert not list(tmp_path.iterdir())


def test_numbers_with_a_pairs_file_is_refused_not_ignored(files, tmp_path, capsys):
    _, pairs, _ = files
    code, out, err = _run(capsys, ["translate", "train", str(pairs), "--numbers", "1-5",
                                   "--out", str(tmp_path / "m.npz")])
    assert code == 2 and "numbers (--numbers) sets the range of the built-in task" in err and out == "", err
    assert not list(tmp_path.iterdir())


def test_builtin_task_without_num2words_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "num2words", None)        # makes `import num2words` fail
    code, _, err = _run(capsys, ["translate", "train", "--out", str(tmp_path / "m.npz")])
    assert code == 2 and "pip install 'rnnkit[translate]'" in err and "num2words" in err


@pytest.mark.parametrize("content, argv_extra, message", [
    ("a\tb\nno tab\n", [], "line 2: no tab character"),
    ("a\tb\nc\td\n", ["--src-col", "3"], "line 1: 2 columns, but column 3 is needed"),
    ("a b\tc\n", ["--max-words", "1"], "no sentence pairs left after filtering"),
    ("a b\tc\n", ["--prefix-filter", "target"], "no sentence pairs left after filtering"),
    ("".join(f"w{i}\tmot{i}\tCC-BY same\n" for i in range(60)), ["--src-col", "2"],    # one source sentence
     "the 60 pairs form only 1 sentence group(s) (pairs sharing a source or target sentence stay on one side of "
     "the split), so nothing is left to train on; check --src-col and --tgt-col"),
])
def test_bad_pairs_files(tmp_path, capsys, content, argv_extra, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    code, out, err = _run(capsys, ["translate", "train", str(path), "--out", str(tmp_path / "m.npz")] + argv_extra)
    assert code == 2 and message in err and err.startswith("rnnkit: error:")


def test_missing_files(tmp_path, capsys, files):
    _, pairs, model = files
    code, _, err = _run(capsys, ["translate", "train", str(tmp_path / "nope.tsv"), "--out", str(tmp_path / "m")])
    assert code == 2 and "PAIRS" in err and "nope.tsv: no such file" in err
    code, _, err = _run(capsys, ["translate", str(tmp_path / "nope.npz"), "bonjour"])
    assert code == 2 and "nope.npz" in err
    code, _, err = _run(capsys, ["translate", "eval", str(model), str(tmp_path / "nope.tsv")])
    assert code == 2 and "nope.tsv: no such file" in err


def test_model_file_of_another_application(tmp_path, capsys):
    other = tmp_path / "f.npz"
    save_model_file(str(other), kind="forecaster", config={}, arrays={"w": np.zeros(3)}, meta={})
    code, _, err = _run(capsys, ["translate", str(other), "bonjour"])
    assert code == 2 and "forecaster model file, not a translator" in err


def test_crafted_model_file_is_refused_in_one_line(files, tmp_path, capsys):
    from rnnkit.translate.translator import Translator
    _, _, model = files
    tr = Translator.load(model)
    config = {"params": dict(tr.get_params(), hidden_size=10 ** 6), "fitted": tr._fitted_config()}
    bad = tmp_path / "crafted.npz"
    save_model_file(str(bad), kind="translator", config=config, arrays=tr.model_.state_dict(), meta={})
    code, _, err = _run(capsys, ["translate", str(bad), "va !"])
    assert code == 2 and "configuration does not match the stored arrays" in err and len(err.splitlines()) == 1


def test_nothing_to_translate_and_bad_flags(files, capsys, monkeypatch):
    _, _, model = files
    code, _, err = _run(capsys, ["translate", str(model)], stdin="\n  \n", monkeypatch=monkeypatch)
    assert code == 2 and "nothing to translate" in err
    code, _, err = _run(capsys, ["translate", str(model), "va !", "--n-best", "3"])
    assert code == 2 and "n_best (--n-best) must be <= the beam size 1, got 3; raise --beam too" in err
    code, _, err = _run(capsys, ["translate", str(model), "va !", "--beam", "100000"])
    assert code == 2 and "beam (--beam) must be <= 1000, got 100000" in err
    code, _, err = _run(capsys, ["translate", "eval", str(model), str(model), "--max-length", "100000"])
    assert code == 2 and "max_length (--max-length) must be <= 10000" in err
    code, _, err = _run(capsys, ["translate", "train", "--out", "x.npz", "--attention", "concat"])
    assert code == 2 and "invalid choice" in err


def test_help_lists_the_three_forms(capsys):
    code, out, _ = _run(capsys, ["translate", "--help"])
    assert code == 0 and "translate train" in out and "translate eval" in out and "MODEL [TEXT ...]" in out
    code, out, err = _run(capsys, ["translate"])
    assert code == 2


@pytest.mark.parametrize("flags,expect", [
    (["--learning-rate", "0"], "learning_rate (--learning-rate) must be > 0"),
    (["--max-vocab", "0"], "max_vocab (--max-vocab) must be an integer >= 5 or none"),
    (["--min-freq", "0"], "min_freq (--min-freq) must be >= 1"),
    (["--ss-k", "-1"], "ss_k (--ss-k) must be > 0"),
    (["--ss-k", "0.5"], "ss_k (--ss-k) must be >= 1 for --scheduled-sampling inverse_sigmoid"),
    (["--ss-k", "2", "--scheduled-sampling", "exponential"],
     "ss_k (--ss-k) must be in (0, 1] for --scheduled-sampling exponential"),
    (["--max-words", "-1"], "max_words (--max-words) must be >= 1, got -1"),
    (["--max-words", "0"], "max_words (--max-words) must be >= 1, got 0"),
    (["--dropout", "1.5"], "dropout (--dropout) must be in [0, 1)"),
    (["--embedding-size", "0"], "embedding_size (--embedding-size) must be >= 1"),
    (["--random-state", "-1"], "random_state (--random-state) must be"),
    (["--validation-fraction", "0.6", "--test-fraction", "0.5"], "must be < 1"),
    (["--length-penalty", "nan"], "length_penalty (--length-penalty) must be >= 0, got nan"),
    (["--beam", "0"], "beam (--beam) must be >= 1, got 0"),
    (["--beam", "100000"], "beam (--beam) must be <= 1000, got 100000"),
    (["--hidden-size", "100000000"], "of memory"),
    (["--attention", "dot"], "add --no-bidirectional"),
    (["--resume"], "--resume: there is no checkpoint {tmp}/m.ckpt.npz beside --out {tmp}/m.npz"),
    (["--out", "{tmp}"], "--out {tmp}: is a directory"),
    (["--out", ""], "--out: the path is empty"),
    (["--out", "{tmp}/no/such/dir/m.npz"], "directory does not exist"),
    (["--out", "{tmp}/" + "x" * 300 + ".npz"], "the file name is 304 bytes long"),
    (["--out", "{pairs}"], "--out {pairs} is also the input PAIRS"),
    # the old spellings are gone
    (["--lr", "0.1"], "unrecognized arguments: --lr"),
    (["--seed", "1"], "unrecognized arguments: --seed"),
    (["--progress", "false"], "unrecognized arguments: false"),
    (["--checkpoint-path", "{tmp}/c.npz"], "unrecognized arguments: --checkpoint-path"),
    (["--test", "0"], "unrecognized arguments: --test"),           # no abbreviations of the canonical flags
    (["--hidden", "8"], "unrecognized arguments: --hidden"),
])
def test_train_refuses_bad_flags_before_training(files, tmp_path, capsys, flags, expect):
    _, pairs, _ = files
    before = pairs.read_bytes()
    argv = ["translate", "train", str(pairs), "--out", str(tmp_path / "m.npz"), "--max-steps", "1"] + SMALL
    fill = lambda f: f.replace("{tmp}", str(tmp_path)).replace("{pairs}", str(pairs))
    code, _, err = _run(capsys, argv + [fill(f) for f in flags])
    assert code == 2 and fill(expect) in err, err
    assert len(err.strip().splitlines()) <= 2 and err.strip().splitlines()[-1].startswith(("rnnkit: error:", "usage"))
    assert not list(tmp_path.rglob("*.npz")) and ".tmp" not in err   # refused before training or saving
    assert pairs.read_bytes() == before


def test_fifo_as_pairs_is_refused(tmp_path, capsys):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "pairs.fifo"
    os.mkfifo(fifo)                       # opening it for reading would block forever
    code, _, err = _run(capsys, ["translate", "train", str(fifo), "--out", str(tmp_path / "m.npz")])
    assert code == 2 and "is a FIFO, which may never end" in err
    code, _, err = _run(capsys, ["translate", "train", "/dev/zero", "--out", str(tmp_path / "m.npz")])
    assert code == 2 and "/dev/zero: is a device" in err


def test_closed_stdin_reads_as_no_input(files):
    """`rnnkit translate MODEL <&-`: "nothing to translate" (exit 2), not a traceback from a None stdin."""
    import os
    import shlex
    import subprocess
    if sys.platform == "win32":
        pytest.skip("needs a POSIX shell to close the descriptor")
    _, _, model = files
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "import sys; from rnnkit.cli.main import main; sys.exit(main(sys.argv[1:]))"
    cmd = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} translate {shlex.quote(str(model))} <&-"
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=root))
    assert proc.returncode == 2 and "nothing to translate" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_with_other_settings_names_the_flag(files, tmp_path, capsys):
    _, pairs, _ = files
    argv = ["translate", "train", str(pairs), "--out", str(tmp_path / "m.npz")] + SMALL
    assert _run(capsys, argv + ["--max-steps", "2"])[0] == 0
    assert (tmp_path / "m.ckpt.npz").exists()                      # the checkpoint lies beside --out
    code, _, err = _run(capsys, argv + ["--max-steps", "4", "--resume", "--hidden-size", "32"])
    assert code == 2 and "trained with --hidden-size 24, not --hidden-size 32" in err, err
    assert len(err.splitlines()) == 1 and len(err) < 300           # one line, not a list of weight names
    code, out, err = _run(capsys, argv + ["--max-steps", "4", "--resume"])
    assert code == 0 and "trained 4 steps" in out, err


@pytest.mark.parametrize("training", ["x", {"columns": {"src_col": "a"}}, {"columns": [1]},
                                      {"columns": {"tgt_col": -1}}])
def test_eval_refuses_an_edited_record_of_the_training_columns(files, capsys, tmp_path, training):
    from rnnkit.io.modelfile import load_model_file
    _, pairs, model = files
    m = load_model_file(model)
    bad = tmp_path / "edited.npz"         # a valid checksum over a wrong type: it once raised AttributeError
    save_model_file(bad, kind=m.kind, config=m.config, arrays=m.arrays, meta=dict(m.meta, training=training))
    code, _, err = _run(capsys, ["translate", "eval", str(bad), str(pairs)])
    assert code == 2 and "the recorded training columns are malformed" in err and err.count("\n") == 1, err
    code, out, _ = _run(capsys, ["translate", "eval", str(bad), str(pairs), "--src-col", "1", "--tgt-col", "0"])
    assert code == 0 and "BLEU" in out


@pytest.mark.parametrize("typo, action", [("trian", "train"), ("evl", "eval")])
def test_a_mistyped_action_is_named_not_taken_for_a_model_file(tmp_path, capsys, monkeypatch, typo, action):
    monkeypatch.chdir(tmp_path)
    code = main(["translate", typo, "pairs.tsv"])
    err = capsys.readouterr().err
    assert code == 2 and f"did you mean 'rnnkit translate {action}'?" in err and err.count("\n") == 1, err
