"""The sktime adapter passes sktime's own conformance suite (sktime is a test dependency)."""

import warnings

import numpy as np
import pytest

sktime = pytest.importorskip("sktime")


def test_check_estimator_passes():
    from sktime.utils.estimator_checks import check_estimator

    from rnnkit.forecast.sktime_adapter import SktimeRNNForecaster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(SktimeRNNForecaster, verbose=False)
    failed = {name: str(v)[:300] for name, v in results.items() if v != "PASSED"}
    assert len(results) > 100
    assert not failed, failed


def test_adapter_forecasts_airline_with_intervals():
    from sktime.datasets import load_airline

    from rnnkit.forecast.sktime_adapter import SktimeRNNForecaster

    y = load_airline()
    f = SktimeRNNForecaster(lookback=24, transform="log_return", epochs=5, random_state=0).fit(y[:-12])
    pred = f.predict(fh=np.arange(1, 13))
    assert list(pred.index) == list(y.index[-12:])
    iv = f.predict_interval(fh=[1, 6, 12], coverage=0.9)
    lower, upper = iv.iloc[:, 0].to_numpy(), iv.iloc[:, 1].to_numpy()
    assert np.all(lower < upper)
