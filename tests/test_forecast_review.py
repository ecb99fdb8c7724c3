"""Forecasting review fixes: periodic checkpoints, the memory of prediction intervals, messages naming flags."""

import csv
import datetime as dt
import tracemalloc

import numpy as np
import pytest

import rnnkit.estimator
import rnnkit.train.loop
from rnnkit.cli.main import main
from rnnkit.errors import DataError, HyperparameterError, NotFittedError
from rnnkit.forecast import RNNForecaster
from rnnkit.train.checkpoint import load_checkpoint


def _sine(T=300, period=25):
    return np.sin(2 * np.pi * np.arange(T) / period)


def _saved_steps(monkeypatch):
    """Record the step of every checkpoint the train loop writes (read back from the file)."""
    steps, real = [], rnnkit.train.loop.save_checkpoint

    def spy(path, state):
        real(path, state)
        steps.append(load_checkpoint(path).step)
    monkeypatch.setattr(rnnkit.train.loop, "save_checkpoint", spy)
    return steps


# -- 1. checkpoints every checkpoint_every steps ----------------------------------------------
def test_checkpoint_every_writes_checkpoints_during_an_epoch(tmp_path, monkeypatch):
    steps = _saved_steps(monkeypatch)
    ckpt = tmp_path / "m.ckpt.npz"
    # one epoch of ~36 batches, stopped after 5 steps: no epoch end before the stop
    f = RNNForecaster(lookback=5, hidden_size=4, batch_size=8, epochs=1, max_steps=5, checkpoint_every=2)
    f.fit(_sine(), checkpoint_path=ckpt)
    assert steps == [2, 4, 5]                 # a kill -9 after step 4 loses at most 1 step
    assert load_checkpoint(ckpt).step == 5


def test_checkpoint_every_default_none_and_check(tmp_path, monkeypatch):
    assert RNNForecaster().checkpoint_every == 100
    steps = _saved_steps(monkeypatch)
    RNNForecaster(lookback=5, hidden_size=4, batch_size=8, epochs=2, checkpoint_every=None,
                  calibration_fraction=0).fit(
        _sine(), checkpoint_path=tmp_path / "m.ckpt.npz")
    assert steps[:2] == [37, 74]              # None: at each epoch's end only (37 batches an epoch)
    with pytest.raises(HyperparameterError, match=r"checkpoint_every \(--checkpoint-every\) must be"):
        RNNForecaster(checkpoint_every=0).fit(_sine())
    # without a checkpoint path the setting is harmless
    assert RNNForecaster(lookback=5, hidden_size=4, epochs=1, checkpoint_every=3).fit(_sine(60)).history_.steps


def _prices(tmp_path, n=80):
    path = tmp_path / "prices.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Date", "Close"])
        for i in range(n):
            w.writerow([(dt.date(2020, 1, 1) + dt.timedelta(days=i)).isoformat(), 100 + np.sin(i / 3)])
    return str(path)


def test_forecast_train_has_checkpoint_every_and_backtest_has_not(tmp_path, monkeypatch, capsys):
    steps = _saved_steps(monkeypatch)
    data, out = _prices(tmp_path), str(tmp_path / "m.npz")
    code = main(["forecast", "train", data, "--lookback", "5", "--hidden-size", "4", "--batch-size", "8",
                 "--epochs", "1", "--max-steps", "5", "--checkpoint-every", "2", "--out", out])
    assert code == 0, capsys.readouterr()
    assert steps == [2, 4, 5]
    assert "--checkpoint-every" in _help(capsys, ["forecast", "train", "--help"])
    for cmd in ("backtest", "stock"):         # they train without a checkpoint
        assert "--checkpoint-every" not in _help(capsys, ["forecast", cmd, "--help"])


def _help(capsys, argv):
    assert main(argv) == 0
    return capsys.readouterr().out


# -- 2. the memory of sample paths is estimated before they are built -----------------------------
@pytest.fixture
def fitted():
    return RNNForecaster(lookback=5, hidden_size=4, epochs=1, n_samples=100_000).fit(_sine(60))


def test_huge_sample_paths_are_refused_before_allocating(fitted, monkeypatch):
    from rnnkit.forecast.predicting import sample_path_bytes
    monkeypatch.setattr(rnnkit.estimator, "available_memory", lambda: 2 << 30)   # 2 GiB
    need = sample_path_bytes(fitted, 100_000)
    assert need > 3.2e11                        # 100,000 x 100,000 float64 paths, four times over
    tracemalloc.start()
    try:
        with pytest.raises(HyperparameterError) as e:
            fitted.predict_interval(0.9, horizon=100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20                      # refused before any big array
    msg = str(e.value)
    assert "--horizon 100000" in msg and "--n-samples 100000" in msg and "2.0 GiB is available" in msg
    assert "GiB of memory" in msg and "\n" not in msg


def test_small_intervals_and_point_forecasts_still_work(fitted, monkeypatch):
    monkeypatch.setattr(rnnkit.estimator, "available_memory", lambda: 2 << 30)
    assert fitted.predict(100_000).shape == (100_000,)                 # the mean path needs no samples
    fitted.set_params(n_samples=50)
    lo, hi = fitted.predict_interval(0.9, horizon=5)
    assert lo.shape == hi.shape == (5,) and np.all(lo <= hi)


def test_forecast_predict_refuses_in_one_line(tmp_path, monkeypatch, capsys):
    data, out = _prices(tmp_path), str(tmp_path / "m.npz")
    assert main(["forecast", "train", data, "--lookback", "5", "--hidden-size", "4", "--epochs", "1",
                 "--n-samples", "100000", "--out", out]) == 0
    capsys.readouterr()
    monkeypatch.setattr(rnnkit.estimator, "available_memory", lambda: 1 << 30)
    assert main(["forecast", "predict", out, "--horizon", "100000"]) == 2
    err = capsys.readouterr().err
    assert "--horizon 100000" in err and "--n-samples" in err and "Traceback" not in err


# -- 3. messages name flags, not Python keywords ----------------------------------------------------
def test_prediction_messages_name_flags():
    y = _sine(80)
    direct = RNNForecaster(lookback=5, horizon=3, strategy="direct", hidden_size=4, epochs=1).fit(y)
    with pytest.raises(HyperparameterError) as e:
        direct.predict(5)
    assert "--horizon" in str(e.value) and "--strategy recursive" in str(e.value) and "='" not in str(e.value)
    point = RNNForecaster(lookback=5, head="point", hidden_size=4, epochs=1).fit(y)
    with pytest.raises(HyperparameterError) as e:
        point.predict_interval(0.9, method="head")
    assert "--head point" in str(e.value) and "='" not in str(e.value)
    quant = RNNForecaster(lookback=5, horizon=2, strategy="direct", head="quantile", hidden_size=4,
                          epochs=1).fit(y)
    with pytest.raises(HyperparameterError) as e:
        quant.predict_interval(0.99, method="head")
    assert "--coverage" in str(e.value) and "--quantiles" in str(e.value)
    with pytest.raises(HyperparameterError) as e:
        RNNForecaster(head="quantile").fit(y)
    assert "--head quantile needs --strategy direct" in str(e.value) and "='" not in str(e.value)


def test_data_messages_name_flags():
    with pytest.raises(DataError, match="--transform log takes logarithms.*--transform level"):
        RNNForecaster(lookback=5, transform="log", hidden_size=4, epochs=1).fit(_sine(60))
    from rnnkit.forecast.data import series_from_columns
    with pytest.raises(DataError, match="^--fill: expected one of"):
        series_from_columns({"Date": ["2020-01-01"], "Close": ["1"]}, date="Date", target="Close", fill="nope")
    from rnnkit.forecast.metrics import mase_scale
    with pytest.raises(DataError, match="--seasonal-period 12"):
        mase_scale(np.arange(5.0), 12)


# -- the estimator contract, from a new user's probe of the Python API (2026-12-05) ----------------------------
def _small(**kw):
    return RNNForecaster(**dict(dict(lookback=8, hidden_size=4, epochs=2, progress=False, random_state=0), **kw))


@pytest.mark.parametrize("change", [dict(lookback=12), dict(horizon=3), dict(transform="diff"),
                                    dict(strategy="direct"), dict(head="point")])
def test_a_model_setting_changed_after_fit_is_refused_at_use_and_save(change, tmp_path):
    # predict read the new lookback/strategy (wrong windows, other numbers, no error); save wrote a file
    # that load refused ("the last y rows have shape (12, 1), expected (24, 1)")
    m = _small().fit(_sine(120))
    before = m.predict(3)
    m.set_params(**change)
    (name, value), = change.items()
    for use in (lambda: m.predict(3), lambda: m.predict_interval(0.9, horizon=3), lambda: m.save(tmp_path / "m.npz")):
        with pytest.raises(NotFittedError, match=rf"changed since it was fitted \({name} \(--.*set them back, or fit"):
            use()
    assert not (tmp_path / "m.npz").exists()
    m.set_params(**{name: _small().get_params()[name]})
    np.testing.assert_array_equal(m.predict(3), before)               # set back: the model as it was


def test_prediction_settings_are_checked_at_use():
    m = _small().fit(_sine(120))
    m.set_params(n_samples=0)                       # was "TypeError: 'NoneType' object is not subscriptable"
    with pytest.raises(HyperparameterError, match=r"n_samples \(--n-samples\) must be >= 1, got 0"):
        m.predict_interval(0.9, horizon=2, method="head")
    m.set_params(n_samples=200, epochs=9, progress=True)              # training settings: nothing to refuse
    assert m.predict(2).shape == (2,)


def test_an_interrupted_or_failed_calibration_leaves_the_fitted_model_as_it_was(monkeypatch):
    import rnnkit.forecast.estimator as fe
    m = _small().fit(_sine(120))
    before, history, cal = m.predict(3), m.history_, m.calibration_

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(fe, "calibration_scores", interrupted)
    with pytest.raises(KeyboardInterrupt):
        m.set_params(epochs=5).fit(_sine(200) * 3)
    assert m.history_ is history and m.calibration_ is cal
    np.testing.assert_array_equal(m.predict(3), before)
    fresh = _small()
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(_sine(120))
    assert not hasattr(fresh, "history_") and not hasattr(fresh, "net_")


def test_series_is_checked_before_training_and_meta_is_set_by_fit(monkeypatch):
    import rnnkit.forecast.estimator as fe
    monkeypatch.setattr(fe.RNNForecaster, "_fit_loop", lambda *a, **k: pytest.fail("trained before the check"))
    with pytest.raises(HyperparameterError, match="series: the recorded series field 'date_column' should be"):
        _small().fit(_sine(120), series={"name": "sales"})          # it trained fully, then raised ValueError
    monkeypatch.undo()
    assert _small().fit(_sine(120)).meta_ == {}                     # the docstring lists it; only load set it


def test_quantile_levels_given_as_an_array_are_saved_as_a_list(tmp_path):
    m = _small(head="quantile", strategy="direct", horizon=2, quantiles=np.array([0.05, 0.5, 0.95])).fit(_sine(120))
    m.save(tmp_path / "q.npz")                      # was "ndarray is not JSON-able"
    back = RNNForecaster.load(tmp_path / "q.npz")
    assert tuple(back.quantiles) == (0.05, 0.5, 0.95)
    np.testing.assert_array_equal(back.predict(2), m.predict(2))


def test_resuming_with_random_state_none_continues_the_checkpoints_run(tmp_path):
    # the docstring promised it; the resume check refused "--random-state 0, not --random-state none"
    ckpt = tmp_path / "f.ckpt.npz"
    whole = _small(max_steps=6, epochs=50).fit(_sine(120))
    _small(max_steps=3, epochs=50).fit(_sine(120), checkpoint_path=ckpt)
    resumed = _small(max_steps=6, epochs=50, random_state=None).fit(_sine(120), checkpoint_path=ckpt, resume=True)
    assert resumed.random_state == 0 and resumed.history_.steps == 6
    np.testing.assert_array_equal(resumed.predict(3), whole.predict(3))
    with pytest.raises(Exception, match="trained with --random-state 0, not --random-state 5"):
        _small(max_steps=9, epochs=50, random_state=5).fit(_sine(120), checkpoint_path=ckpt, resume=True)


def test_a_refused_resume_leaves_the_finished_checkpoint_as_it_was(tmp_path):
    # resume stripped the calibration scores from the checkpoint before its checks: a refused resume left a
    # checkpoint that forecast with uncalibrated intervals; under MPI rank 1 raced rank 0's rewrite and
    # refused the resume as "trained on other data"
    ckpt = tmp_path / "f.ckpt.npz"
    first = _small(max_steps=4, epochs=50).fit(_sine(120), checkpoint_path=ckpt)
    before = ckpt.read_bytes()
    assert load_checkpoint(ckpt).config["fitted"]["calibration"] is not None
    with pytest.raises(Exception, match="--learning-rate"):
        _small(max_steps=8, epochs=50, learning_rate=0.5).fit(_sine(120), checkpoint_path=ckpt, resume=True)
    assert ckpt.read_bytes() == before
    longer = _small(max_steps=8, epochs=50).fit(_sine(120), checkpoint_path=ckpt, resume=True)
    whole = _small(max_steps=8, epochs=50).fit(_sine(120))
    np.testing.assert_array_equal(longer.predict_interval(0.9, horizon=2)[1], whole.predict_interval(0.9, horizon=2)[1])
    assert load_checkpoint(ckpt).config["fitted"]["calibration"] == whole._fitted["calibration"]
    assert first.history_.steps == 4
