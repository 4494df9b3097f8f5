"""Classical forecasts of a panel, printed beside every lstmkit result: where the LSTM stands.

- ``naive`` (the last value) and ``seasonal_naive`` (the last season; the last value for a
  series shorter than a season), computed here, with the textbook normal intervals of
  Hyndman & Athanasopoulos, *Forecasting: Principles and Practice* (3rd ed.), 5.5::

      sigma = sqrt(mean_t (x_t - x_{t-m})^2)        (in-sample residuals; m = 1 for naive)
      naive:          f_h +- z sigma sqrt(h)
      seasonal naive: f_h +- z sigma sqrt(floor((h - 1) / m) + 1)

- ``AutoETS``, ``AutoTheta``, ``AutoARIMA`` from ``statsforecast`` (the ``forecast`` extra,
  imported only here), with their own intervals. ETS is never hand-written in lstmkit.

``anchor_forecasts`` returns, for each method, ``(point (n, H), {level: (lo, hi)})`` aligned
with the panel's series, the shape every forecaster of ``forecast_backtest`` returns.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from .._optional import MissingExtraError
from .panel import Panel

__all__ = ["ANCHORS", "DEFAULT_ANCHORS", "STATSFORECAST", "anchor_forecasts"]

STATSFORECAST = ("AutoETS", "AutoTheta", "AutoARIMA")
ANCHORS = ("naive", "seasonal_naive", *STATSFORECAST)
# AutoARIMA is the slowest by far: asked for by name only
DEFAULT_ANCHORS = ("naive", "seasonal_naive", "AutoETS", "AutoTheta")


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + float(level) / 200.0)


def _lag_rms(panel: Panel, m: np.ndarray) -> np.ndarray:
    """``(n,)`` sqrt(mean (x_t - x_{t-m_k})^2) within each series ``k`` (0 when too short)."""
    v, off = panel.values, panel.offsets
    code = np.repeat(np.arange(panel.n_series), panel.lengths)
    t = np.arange(v.size)
    lag = m[code]
    ok = t - off[code] >= lag
    sq = np.zeros(v.size)
    sq[ok] = (v[ok] - v[t[ok] - lag[ok]]) ** 2
    total = np.bincount(code, weights=sq, minlength=panel.n_series)
    count = np.bincount(code, weights=ok, minlength=panel.n_series)
    return np.sqrt(total / np.maximum(count, 1))


def seasonal_naive(panel: Panel, horizon: int, levels=(), season: int | None = None):
    """The seasonal-naive forecast of every series (``season`` 1: the naive one) and its
    intervals (module docstring). Series shorter than the season get the naive forecast."""
    season = panel.season if season is None else int(season)
    lengths = panel.lengths
    m = np.where(lengths >= season, season, 1)  # (n,) the lag each series can use
    h = np.arange(horizon)
    end = panel.offsets[1:]
    idx = end[:, None] - m[:, None] + (h[None, :] % m[:, None])  # (n, H) the value repeated
    point = panel.values[idx]
    sigma = _lag_rms(panel, m)
    steps = np.sqrt(np.floor(h[None, :] / m[:, None]) + 1.0)  # sqrt(h) when m = 1
    intervals = {}
    for level in levels:
        half = _z(level) * sigma[:, None] * steps
        intervals[level] = (point - half, point + half)
    return point, intervals


def _statsforecast_models(names, season: int):
    from statsforecast import models as sm

    made = {
        "AutoETS": lambda: sm.AutoETS(season_length=season),
        "AutoTheta": lambda: sm.AutoTheta(season_length=season),
        "AutoARIMA": lambda: sm.AutoARIMA(season_length=season),
    }
    return [made[n]() for n in names]


def _statsforecast(panel: Panel, horizon: int, names, levels):
    """Run statsforecast on the panel (integer time steps, so any frequency works) and put its
    long-format output back into ``(n, H)`` arrays in the panel's series order."""
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    code = np.repeat(np.arange(panel.n_series), panel.lengths)
    step = np.arange(panel.values.size) - panel.offsets[code]
    df = pd.DataFrame({"unique_id": code, "ds": step, "y": panel.values})
    sf = StatsForecast(
        models=_statsforecast_models(names, panel.season),
        freq=1,
        n_jobs=1,
        fallback_model=Naive(),  # a model that fails on one series does not stop the others
    )
    out = sf.forecast(df=df, h=horizon, level=sorted(levels) or None)
    out = out.sort_values(["unique_id", "ds"], kind="stable")
    if len(out) != panel.n_series * horizon:
        raise AssertionError(f"statsforecast returned {len(out)} rows, expected n * H")
    shape = (panel.n_series, horizon)
    result = {}
    for name in names:
        point = out[name].to_numpy(np.float64).reshape(shape)
        intervals = {
            level: (
                out[f"{name}-lo-{level}"].to_numpy(np.float64).reshape(shape),
                out[f"{name}-hi-{level}"].to_numpy(np.float64).reshape(shape),
            )
            for level in levels
        }
        result[name] = (point, intervals)
    return result


def _check(models, levels, func):
    if isinstance(models, str) or any(m not in ANCHORS for m in models):
        raise ValueError(
            f"{func}: argument 'models' got {models!r}, expected a sequence of names from "
            f"{list(ANCHORS)}"
        )
    for level in levels:
        if (
            isinstance(level, bool)
            or not isinstance(level, (int, np.integer))
            or not (0 < level < 100)
        ):
            raise ValueError(
                f"{func}: argument 'levels' got {list(levels)!r}, expected integers in 1..99 "
                "(interval coverage in percent)"
            )


def anchor_forecasts(panel: Panel, horizon: int, *, models=None, levels=(), notes=None):
    """Classical forecasts of every series of ``panel``, ``horizon`` steps on.

    Args:
        panel: the training panel (each series' values up to its forecast origin).
        horizon: steps to forecast.
        models: names from ``ANCHORS``; None: ``DEFAULT_ANCHORS``, leaving out the
            statsforecast ones (with a line in ``notes``) when the ``forecast`` extra is
            missing. Named explicitly, a missing extra is a ``MissingExtraError``.
        levels: interval levels in percent (e.g. ``(80, 95)``).
        notes: a list that receives one line per method left out.

    Returns:
        ``{name: (point (n, H), {level: (lo (n, H), hi (n, H))})}`` in the order of ``models``.
    """
    func = "anchor_forecasts"
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"{func}: argument 'horizon' got {horizon!r}, expected an int >= 1")
    explicit = models is not None
    models = tuple(DEFAULT_ANCHORS if models is None else models)
    levels = tuple(levels)
    _check(models, levels, func)
    wanted = [m for m in models if m in STATSFORECAST]
    if wanted:
        try:
            import statsforecast  # noqa: F401
        except ModuleNotFoundError:
            if explicit:
                raise MissingExtraError(
                    f"{func}: {wanted} need the 'forecast' extra: pip install 'lstmkit[forecast]' "
                    "(no module named 'statsforecast')",
                    name="statsforecast",
                ) from None
            if notes is not None:
                notes.append(
                    f"{', '.join(wanted)} left out: statsforecast is not installed "
                    "(pip install 'lstmkit[forecast]')"
                )
            wanted = []
    fitted = _statsforecast(panel, int(horizon), wanted, levels) if wanted else {}
    result = {}
    for name in models:
        if name == "naive":
            result[name] = seasonal_naive(panel, int(horizon), levels, season=1)
        elif name == "seasonal_naive":
            result[name] = seasonal_naive(panel, int(horizon), levels)
        elif name in fitted:
            result[name] = fitted[name]
    return result
