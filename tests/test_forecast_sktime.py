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


def test_adapter_intervals_are_the_conformal_ones():
    from sktime.datasets import load_airline

    from rnnkit.forecast.sktime_adapter import SktimeRNNForecaster

    y = load_airline()
    f = SktimeRNNForecaster(lookback=12, transform="log_return", epochs=3, random_state=0).fit(y, fh=[1, 2, 3])
    assert [len(z) for z in f.forecaster_.calibration_] == [29, 28, 27]     # calibrated for each step of fh
    iv = f.predict_interval(fh=[1, 3], coverage=[0.8, 0.9])
    lo, hi = f.forecaster_.predict_interval(0.9, 3, y=y.to_numpy(dtype=float))
    np.testing.assert_allclose(iv[("Number of airline passengers", 0.9, "lower")].to_numpy(), lo[[0, 2], 0])
    np.testing.assert_allclose(iv[("Number of airline passengers", 0.9, "upper")].to_numpy(), hi[[0, 2], 0])
    q = f.predict_quantiles(fh=[1, 2, 3], alpha=[0.1, 0.9])
    np.testing.assert_allclose(q.to_numpy(), f.forecaster_.predict_quantiles([0.1, 0.9], 3,
                                                                              y=y.to_numpy(dtype=float))[..., 0])
    # levels asked out of order: each column holds its own level (they came back sorted, labelled as asked)
    swapped = f.predict_quantiles(fh=[1, 2, 3], alpha=[0.9, 0.1])
    name = "Number of airline passengers"
    np.testing.assert_allclose(swapped[(name, 0.9)].to_numpy(), q[(name, 0.9)].to_numpy())
    np.testing.assert_allclose(swapped[(name, 0.1)].to_numpy(), q[(name, 0.1)].to_numpy())
    assert (q[(name, 0.1)] < q[(name, 0.9)]).all()
    g = SktimeRNNForecaster(lookback=12, transform="log_return", epochs=3, random_state=0, interval_method="head")
    head = g.fit(y, fh=[1, 2, 3]).predict_interval(fh=[1, 3], coverage=0.9)
    assert not np.allclose(head.to_numpy(), iv.xs(0.9, axis=1, level=1).to_numpy())
