"""`rnnkit translate`: the three forms side by side, and clear one-line errors (no traceback) for bad input."""

import io
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
SMALL = ["--embedding-size", "16", "--hidden-size", "24", "--batch-size", "8", "--lr", "0.01", "--dropout", "0",
         "--progress", "false"]


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
                 "--beam", "2", "--epochs", "40", "--valid", "0", "--test", "0.1", "--out", str(model)] + SMALL)
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


def test_eval_uses_the_training_columns(files, capsys):
    _, pairs, model = files
    code, out, _ = _run(capsys, ["translate", "eval", str(model), str(pairs)])
    assert code == 0 and "BLEU" in out and "chrF" in out and "exact" in out
    assert float(out.split("exact ")[1].split("%")[0]) >= 90.0


def test_train_builtin_numbers_task(tmp_path, capsys):
    pytest.importorskip("num2words")
    model = tmp_path / "num.npz"
    code, out, _ = _run(capsys, ["translate", "train", "--numbers", "0-40", "--epochs", "25", "--valid", "0", "--test", "0", "--out", str(model)]
                        + SMALL)
    assert code == 0 and "numbers 0-40, English words -> French words" in out and model.exists()
    code, out, _ = _run(capsys, ["translate", str(model), "twenty-seven"])
    assert code == 0 and out == "vingt-sept\n"


def test_builtin_task_without_num2words_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "num2words", None)        # makes `import num2words` fail
    code, _, err = _run(capsys, ["translate", "train", "--out", str(tmp_path / "m.npz")])
    assert code == 2 and "pip install 'rnnkit[translate]'" in err and "num2words" in err


@pytest.mark.parametrize("content, argv_extra, message", [
    ("a\tb\nno tab\n", [], "line 2: no tab character"),
    ("a\tb\nc\td\n", ["--src-col", "3"], "line 1: 2 columns, but column 3 is needed"),
    ("a\tb\n\nc\td\n", [], "line 2: empty line"),
    ("a b\tc\n", ["--max-words", "1"], "no sentence pairs left after filtering"),
    ("a b\tc\n", ["--prefix-filter", "target"], "no sentence pairs left after filtering"),
])
def test_bad_pairs_files(tmp_path, capsys, content, argv_extra, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    code, out, err = _run(capsys, ["translate", "train", str(path), "--out", str(tmp_path / "m.npz")] + argv_extra)
    assert code == 2 and message in err and err.startswith("rnnkit: error:")


def test_missing_files(tmp_path, capsys, files):
    _, pairs, model = files
    code, _, err = _run(capsys, ["translate", "train", str(tmp_path / "nope.tsv"), "--out", str(tmp_path / "m")])
    assert code == 2 and "nope.tsv: no such file" in err
    code, _, err = _run(capsys, ["translate", str(tmp_path / "nope.npz"), "bonjour"])
    assert code == 2 and "nope.npz" in err
    code, _, err = _run(capsys, ["translate", "eval", str(model), str(tmp_path / "nope.tsv")])
    assert code == 2 and "nope.tsv: no such file" in err


def test_model_file_of_another_application(tmp_path, capsys):
    other = tmp_path / "lm.npz"
    save_model_file(str(other), kind="charlm", config={}, arrays={"w": np.zeros(3)}, meta={})
    code, _, err = _run(capsys, ["translate", str(other), "bonjour"])
    assert code == 2 and "charlm model file, not a translator" in err


def test_nothing_to_translate_and_bad_flags(files, capsys, monkeypatch):
    _, _, model = files
    code, _, err = _run(capsys, ["translate", str(model)], stdin="\n  \n", monkeypatch=monkeypatch)
    assert code == 2 and "nothing to translate" in err
    code, _, err = _run(capsys, ["translate", str(model), "va !", "--n-best", "3"])
    assert code == 2 and "n_best" in err and "--beam" in err
    code, _, err = _run(capsys, ["translate", "train", "--out", "x.npz", "--attention", "concat"])
    assert code == 2 and "invalid choice" in err


def test_help_lists_the_three_forms(capsys):
    code, out, _ = _run(capsys, ["translate", "--help"])
    assert code == 0 and "translate train" in out and "translate eval" in out and "MODEL [TEXT ...]" in out
    code, out, err = _run(capsys, ["translate"])
    assert code == 2


@pytest.mark.parametrize("flags,expect", [
    (["--lr", "0"], "lr (--lr) must be > 0"),
    (["--max-vocab", "0"], "max_vocab (--max-vocab) must be >= 5"),
    (["--min-freq", "0"], "min_freq (--min-freq) must be >= 1"),
    (["--ss-k", "-1"], "ss_k (--ss-k) must be > 0"),
    (["--dropout", "1.5"], "dropout (--dropout) must be in [0, 1)"),
    (["--embedding-size", "0"], "embedding_size (--embedding-size) must be >= 1"),
    (["--length-penalty", "nan"], "length_penalty (--length-penalty): expected a finite alpha >= 0"),
    (["--beam", "0"], "beam (--beam): expected a positive integer"),
    (["--resume"], "(--resume) needs checkpoint_path (--checkpoint-path)"),
    (["--resume", "--checkpoint-path", "{tmp}/none.ckpt.npz"], "no checkpoint to resume from"),
    (["--out", "{tmp}"], "out (--out) {tmp}: is a directory"),
])
def test_train_refuses_bad_flags_before_training(files, tmp_path, capsys, flags, expect):
    _, pairs, _ = files
    argv = ["translate", "train", str(pairs), "--out", str(tmp_path / "m.npz"), "--max-steps", "1"] + SMALL
    code, _, err = _run(capsys, argv + [f.replace("{tmp}", str(tmp_path)) for f in flags])
    assert code == 2 and expect.replace("{tmp}", str(tmp_path)) in err, err
    assert not list(tmp_path.rglob("*.npz")) and ".tmp" not in err   # refused before training or saving


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
    ck = str(tmp_path / "run.ckpt.npz")
    argv = ["translate", "train", str(pairs), "--out", str(tmp_path / "m.npz"), "--checkpoint-path", ck] + SMALL
    assert _run(capsys, argv + ["--max-steps", "2"])[0] == 0
    code, _, err = _run(capsys, argv + ["--max-steps", "4", "--resume", "--hidden-size", "32"])
    assert code == 2 and "trained with --hidden-size 24" in err, err
    assert len(err.splitlines()) == 1 and len(err) < 300           # one line, not a list of weight names
    code, _, err = _run(capsys, argv + ["--max-steps", "4", "--resume"])
    assert code == 0, err
