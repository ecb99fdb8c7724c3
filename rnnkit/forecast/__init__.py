"""Time-series and stock-price forecasting with recurrent networks (issue 5).

``RNNForecaster`` is the estimator (the shared contract of :mod:`rnnkit.estimator`);
``backtest`` evaluates it by rolling origin beside the naive, seasonal-naive and
drift baselines; ``metrics`` and ``baselines`` hold the pieces; ``data`` reads
CSV files and the embedded stock prices. :mod:`rnnkit.forecast.api` (train,
predict, backtest from CSV files) and :mod:`rnnkit.forecast.stock` are the
functions behind ``rnnkit forecast ...`` (``rnnkit.forecast.cli``, a thin layer).
"""

from .backtest import BacktestResult, backtest, rolling_origin_splits
from .baselines import drift, naive, seasonal_naive
from .estimator import RNNForecaster
from .scaling import SeriesScaler

__all__ = ["RNNForecaster", "SeriesScaler", "backtest", "rolling_origin_splits", "BacktestResult",
           "naive", "seasonal_naive", "drift"]
