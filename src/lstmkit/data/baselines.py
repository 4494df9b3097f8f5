"""Baseline forecasts every model must beat, and the errors to compare them with.

Definitions (``h = 1 .. H`` steps after the last observed value ``y_N``, season ``m``)::

    naive:           y_hat[N + h] = y_N
    seasonal naive:  y_hat[N + h] = y[N + h - m * ceil(h / m)]    (the same point one cycle ago)
    MAE  = mean |y - y_hat|        RMSE = sqrt(mean (y - y_hat)^2)
    MASE = MAE / scale,   scale = 1/(T - m) * sum_{t=m+1}^{T} |y_t - y_{t-m}|   (T in-sample points)

MASE is Hyndman & Koehler (2006), "Another look at measures of forecast accuracy", International
Journal of Forecasting 22(4), 679-688, with the seasonal scaling of Hyndman & Athanasopoulos,
*Forecasting: Principles and Practice*; ``m = 1`` gives the original, lag-1 scaling. MASE < 1 means
the forecast beats the in-sample one-step (seasonal) naive forecast on average.
"""

from __future__ import annotations

import numpy as np

from .. import metrics

__all__ = ["mae", "mase", "naive_forecast", "rmse", "seasonal_naive_forecast"]


def _series(x, arg: str, func: str, min_len: int = 1) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "biuf" or a.ndim != 1:
        raise ValueError(
            f"{func}: argument {arg!r} got shape {a.shape} dtype {a.dtype}, expected a 1-D array "
            "of numbers"
        )
    if a.size < min_len:
        raise ValueError(
            f"{func}: argument {arg!r} got {a.size} values, expected at least {min_len}"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{func}: argument {arg!r} got NaN or inf, expected finite numbers")
    return a.astype(np.float64, copy=False)


def _positive_int(value, arg: str, func: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{func}: argument {arg!r} got {value!r}, expected an integer >= 1")
    return int(value)


def naive_forecast(history, horizon: int) -> np.ndarray:
    """Repeat the last observed value ``horizon`` times; shape (horizon,)."""
    h = _series(history, "history", "naive_forecast")
    horizon = _positive_int(horizon, "horizon", "naive_forecast")
    return np.full(horizon, h[-1])


def seasonal_naive_forecast(history, horizon: int, season: int) -> np.ndarray:
    """Repeat the last full season of ``history`` (``len(history) >= season``); shape (horizon,)."""
    func = "seasonal_naive_forecast"
    season = _positive_int(season, "season", func)
    h = _series(history, "history", func, min_len=season)
    horizon = _positive_int(horizon, "horizon", func)
    last_cycle = h[h.size - season :]  # (season,)
    return last_cycle[np.arange(horizon) % season]


def _pair(y_true, y_pred, func: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(
            f"{func}: argument 'y_pred' got shape {p.shape}, expected the shape of y_true {t.shape}"
        )
    if t.size == 0:
        raise ValueError(f"{func}: argument 'y_true' got no values, expected at least one")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise ValueError(f"{func}: arguments 'y_true' and 'y_pred' must be finite; got NaN or inf")
    return t, p


def mae(y_true, y_pred) -> float:
    """Mean absolute error over all elements (any equal shapes)."""
    return metrics.mae(*_pair(y_true, y_pred, "mae"))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error over all elements (any equal shapes)."""
    return metrics.rmse(*_pair(y_true, y_pred, "rmse"))


def mase(y_true, y_pred, insample, season: int = 1) -> float:
    """Mean absolute scaled error (Hyndman & Koehler 2006; see the module docstring).

    Args:
        y_true, y_pred: actual and forecast values, equal shapes (e.g. ``(n, horizon)``).
        insample: ``(T,)`` the training series the scale comes from, ``T > season``.
        season: lag of the scaling differences; 1 for non-seasonal data.

    Raises:
        ValueError: also when the in-sample series repeats itself exactly at lag ``season`` (scale
            0, MASE undefined).
    """
    func = "mase"
    season = _positive_int(season, "season", func)
    t, p = _pair(y_true, y_pred, func)
    y = _series(insample, "insample", func, min_len=season + 1)
    scale = metrics.naive_scale(y, season)
    if scale == 0.0:
        raise ValueError(
            f"{func}: argument 'insample' gives a scale of 0 (every value equals the one {season} "
            "step(s) before), so MASE is undefined; expected a series that varies at that lag"
        )
    return metrics.mase(t, p, scale)
