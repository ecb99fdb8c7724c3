"""rnnkit.plotting writes every figure atomically: a failing save leaves the previous PNG whole."""

import os

import pytest

pytest.importorskip("matplotlib")

from rnnkit import plotting  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _curve(path, **kw):
    return plotting.save_loss_curve(str(path), [(0, 2.0), (1, 1.5), (2, 1.2)], [(2, 1.3)], ylabel="nats", **kw)


def test_loss_curve_is_a_png_under_exactly_the_given_name(tmp_path):
    path = tmp_path / "curve"                       # no extension: PNG, and no ".png" appended
    assert _curve(path) == str(path)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert os.listdir(tmp_path) == ["curve"]        # no temporary file left beside it


def test_failing_savefig_leaves_the_previous_png_intact(tmp_path, monkeypatch):
    import matplotlib.figure
    import matplotlib.pyplot as plt

    path = tmp_path / "loss.png"
    _curve(path)
    before = path.read_bytes()
    assert before.startswith(PNG_MAGIC)

    def half_then_fail(self, target, *args, **kwargs):
        # what a full disk or a crash does mid-save: some bytes reach the file, then the save fails
        if hasattr(target, "write"):
            target.write(b"\x89PNG half a figure")
        else:
            with open(target, "wb") as f:
                f.write(b"\x89PNG half a figure")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_then_fail)
    open_before = len(plt.get_fignums())
    with pytest.raises(OSError) as info:
        _curve(path, what="--plot")
    assert path.read_bytes() == before                       # the previous figure is whole
    assert sorted(os.listdir(tmp_path)) == ["loss.png"]      # and no temporary file is left
    assert "--plot" in str(info.value) and str(path) in str(info.value) and "unchanged" in str(info.value)
    assert len(plt.get_fignums()) == open_before             # the figure was closed anyway


def test_a_title_from_a_non_utf8_file_name_is_drawn(tmp_path):
    """`rnnkit charlm train $'\\xff.txt'` trained, saved, then crashed drawing the loss curve."""
    import os
    from rnnkit.plotting import save_loss_curve
    title = "charlm on " + os.fsdecode(b"\xff.txt")            # a lone surrogate, as Python decodes the name
    path = save_loss_curve(tmp_path / "l.png", [(1, 2.0), (2, 1.5)], title=title)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
