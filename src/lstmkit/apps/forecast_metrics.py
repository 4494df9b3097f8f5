"""Errors of forecasts of a panel, per series and on average, and a table to print them.

Forecasts are ``(n, H)`` arrays (``n`` series, ``H`` steps) beside the actual values ``y`` of
the same shape; intervals are ``{level: (lo, hi)}`` with ``level`` in percent (80 = the central
80% interval, whose ends are the 0.1 and 0.9 quantiles). Per series ``k``::

    MAE    = mean_h |y - f|                    RMSE  = sqrt(mean_h (y - f)^2)
    MASE   = MAE / scale_k                     scale_k = mean_t |x_t - x_{t-m}| over the series'
                                               training values x (the in-sample seasonal-naive
                                               MAE, Hyndman & Koehler 2006; m = 1 for yearly, as
                                               the M1/Monash figures use)
    sMAPE  = 200 * mean_h |y - f| / (|y| + |f|)   (percent, 0..200; 0/0 counts 0; the M4 form)
    pinball(q) = mean_h max(q (y - f_q), (q - 1)(y - f_q))   for each interval end f_q
    coverage(L) = mean_h [lo_L <= y <= hi_L]

Averages are over series (each series counts once, as in the M competitions). A series whose
training values repeat exactly at lag m has scale 0: its MASE is NaN and left out of the mean
(``mean_metrics`` says how many were).
"""

from __future__ import annotations

import numpy as np

from .panel import Panel

__all__ = [
    "coverage",
    "interval_quantiles",
    "mean_metrics",
    "naive_scales",
    "pinball",
    "series_metrics",
    "summary_table",
]


def _pair(y, f, func: str, arg: str = "point") -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    if y.ndim != 2 or f.shape != y.shape:
        raise ValueError(
            f"{func}: argument {arg!r} must have the shape of 'y', (n_series, horizon) = "
            f"{y.shape}; got {f.shape}"
        )
    if not (np.isfinite(y).all() and np.isfinite(f).all()):
        raise ValueError(f"{func}: arguments 'y' and {arg!r} must be finite; got NaN or inf")
    return y, f


def naive_scales(panel: Panel, season: int | None = None) -> np.ndarray:
    """``(n,)`` the in-sample MAE of the seasonal-naive one-step forecast of each series
    (``season`` defaults to the panel's); NaN where a series has no more than ``season``
    values."""
    m = panel.season if season is None else int(season)
    if m < 1:
        raise ValueError(f"naive_scales: argument 'season' got {season!r}, expected an int >= 1")
    v, off = panel.values, panel.offsets
    code = np.repeat(np.arange(panel.n_series), panel.lengths)
    t = np.arange(v.size)
    ok = t - off[code] >= m  # x_t has x_{t-m} in its own series
    diff = np.zeros(v.size)
    diff[ok] = np.abs(v[ok] - v[t[ok] - m])
    total = np.bincount(code, weights=diff, minlength=panel.n_series)
    count = np.bincount(code, weights=ok, minlength=panel.n_series)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def pinball(y, q_pred, q: float) -> np.ndarray:
    """``(n,)`` mean pinball (quantile) loss of the ``q``-quantile forecasts ``q_pred``."""
    y, f = _pair(y, q_pred, "pinball", "q_pred")
    if not 0.0 < q < 1.0:
        raise ValueError(f"pinball: argument 'q' got {q!r}, expected a number in (0, 1)")
    e = y - f
    return np.maximum(q * e, (q - 1.0) * e).mean(axis=1)


def coverage(y, lo, hi) -> np.ndarray:
    """``(n,)`` the share of ``y`` within ``[lo, hi]`` (ends included)."""
    y, lo = _pair(y, lo, "coverage", "lo")
    _, hi = _pair(y, hi, "coverage", "hi")
    return ((lo <= y) & (y <= hi)).mean(axis=1)


def interval_quantiles(level: float) -> tuple[float, float]:
    """The quantiles at the ends of the central ``level``% interval: 80 -> (0.1, 0.9)."""
    if not 0.0 < float(level) < 100.0:
        raise ValueError(f"interval_quantiles: argument 'level' got {level!r}, expected 0..100")
    a = (100.0 - float(level)) / 200.0
    return a, 1.0 - a


def series_metrics(y, point, *, scale=None, intervals=None) -> dict[str, np.ndarray]:
    """Per-series errors (module docstring): ``{name: (n,) float64}`` with ``MAE``, ``RMSE``,
    ``sMAPE``, ``MASE`` (when ``scale (n,)`` is given), and for each interval level L:
    ``coverage-L``, ``pinball-q`` for both its quantiles and ``pinball-L`` their mean."""
    y, f = _pair(y, point, "series_metrics")
    e = y - f
    out = {"MAE": np.abs(e).mean(axis=1), "RMSE": np.sqrt((e**2).mean(axis=1))}
    denom = np.abs(y) + np.abs(f)
    ratio = np.divide(np.abs(e), denom, out=np.zeros_like(e), where=denom > 0)
    out["sMAPE"] = 200.0 * ratio.mean(axis=1)
    if scale is not None:
        scale = np.asarray(scale, dtype=np.float64)
        if scale.shape != (y.shape[0],):
            raise ValueError(
                f"series_metrics: argument 'scale' must have shape ({y.shape[0]},); got "
                f"{scale.shape}"
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            out["MASE"] = np.where(scale > 0, out["MAE"] / scale, np.nan)
    for level, (lo, hi) in sorted((intervals or {}).items()):
        name = f"{float(level):g}"
        out[f"coverage-{name}"] = coverage(y, lo, hi)
        q_lo, q_hi = interval_quantiles(level)
        out[f"pinball-{q_lo:g}"] = pinball(y, lo, q_lo)
        out[f"pinball-{q_hi:g}"] = pinball(y, hi, q_hi)
        out[f"pinball-{name}"] = 0.5 * (out[f"pinball-{q_lo:g}"] + out[f"pinball-{q_hi:g}"])
    return out


def mean_metrics(per_series: dict[str, np.ndarray]) -> dict[str, float]:
    """The mean over series of each metric; NaN entries (MASE of a scale-0 series) are left
    out, and ``n_undefined_MASE`` counts them when there are any."""
    out = {}
    for name, v in per_series.items():
        v = np.asarray(v, dtype=np.float64)
        ok = ~np.isnan(v)
        out[name] = float(v[ok].mean()) if ok.any() else float("nan")
        if name == "MASE" and not ok.all():
            out["n_undefined_MASE"] = int((~ok).sum())
    return out


def summary_table(rows, columns=None, digits: int = 3) -> str:
    """A plain-text table: ``rows`` is a sequence of ``(label, {metric: value})`` (or a dict
    ``{label: {metric: value}}``); columns are ``columns`` or every metric in order of first
    appearance. Missing values print as ``-``."""
    items = list(rows.items()) if isinstance(rows, dict) else [tuple(r) for r in rows]
    if columns is None:
        columns = []
        for _, metrics in items:
            columns += [c for c in metrics if c not in columns]

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if abs(float(v)) >= 1e9:  # (1e306: a 300-digit number otherwise)
            return f"{float(v):.{digits}e}"
        return f"{float(v):.{digits}f}"

    table = [["model", *columns]] + [[str(label), *(cell(m.get(c)) for c in columns)]
                                     for label, m in items]  # fmt: skip
    widths = [max(len(r[j]) for r in table) for j in range(len(table[0]))]
    lines = []
    for i, r in enumerate(table):
        first = r[0].ljust(widths[0])
        lines.append("  ".join([first] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
