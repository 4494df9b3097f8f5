"""Rolling-origin backtests of any forecaster on a panel, with the classical anchors beside it.

Window ``w`` of ``K`` (``w = 0`` the oldest, ``K - 1`` the last) holds out, from each series of
length ``T``, the ``H`` values after the origin ``T - H - (K - 1 - w) * step``: the last window
forecasts each series' last ``H`` values from the rest, as the M competitions do. A series whose
training part would be shorter than ``min_train`` is left out of that window (with a note).

A forecaster is any callable ``fit_predict(train_panel, horizon, levels) -> (point (n, H),
{level: (lo (n, H), hi (n, H))})``: it is trained on the window's training panel only (whose
``future_ahead`` holds the held-out rows' future-known covariates, when the panel has any) and
forecasts every one of its series. Metrics are those of ``forecast_metrics``; MASE is scaled
by each series' training part of that window.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .forecast_anchors import anchor_forecasts
from .forecast_metrics import mean_metrics, naive_scales, series_metrics, summary_table
from .panel import Panel

__all__ = ["BacktestResult", "Window", "backtest", "rolling_origins"]


@dataclass(frozen=True)
class Window:
    """One origin: ``train`` (the panel cut at the origin), ``target (n, H)`` the held-out
    values, ``index (n,)`` the positions of ``train``'s series in the full panel, and
    ``number`` (0 = the oldest window)."""

    train: Panel
    target: np.ndarray
    index: np.ndarray
    number: int


def _cut(panel: Panel, keep_rows: np.ndarray, index: np.ndarray, counts: np.ndarray, ahead):
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)

    def take(a):
        return None if a is None else a[keep_rows]

    return Panel(
        panel.values[keep_rows], offsets, panel.ids[index], take(panel.times), panel.freq,
        panel.season, take(panel.past), panel.past_names, take(panel.future),
        panel.future_names, ahead, panel.notes,
    )  # fmt: skip


def _positive(value, arg: str, func: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{func}: argument {arg!r} got {value!r}, expected an int >= 1")
    return int(value)


def rolling_origins(
    panel: Panel, horizon: int, windows: int = 1, step: int | None = None, min_train: int = 2
) -> list[Window]:
    """The ``windows`` last origins, ``step`` apart (default ``horizon``), oldest first
    (module docstring). ``min_train`` is the fewest training values a series needs in a
    window (default 2: a naive scale needs two values)."""
    func = "rolling_origins"
    H = _positive(horizon, "horizon", func)
    K = _positive(windows, "windows", func)
    step = H if step is None else _positive(step, "step", func)
    min_train = _positive(min_train, "min_train", func)
    n = panel.n_series
    code = np.repeat(np.arange(n), panel.lengths)
    pos = np.arange(panel.values.size) - panel.offsets[code]
    out = []
    for w in range(K):
        cut = panel.lengths - H - (K - 1 - w) * step  # (n,) training values per series
        index = np.flatnonzero(cut >= min_train)
        if index.size == 0:
            raise ValueError(
                f"{func}: arguments 'horizon' ({H}), 'windows' ({K}) and 'step' ({step}) leave "
                f"no series with {min_train} training values in window {w}; the longest series "
                f"has {int(panel.lengths.max())} values"
            )
        ok = np.isin(code, index)
        train_rows = np.flatnonzero(ok & (pos < cut[code]))
        test_rows = np.flatnonzero(ok & (pos >= cut[code]) & (pos < cut[code] + H))
        target = panel.values[test_rows].reshape(index.size, H)
        ahead = None
        if panel.future is not None:
            ahead = panel.future[test_rows].reshape(index.size, H, -1)
        train = _cut(panel, train_rows, index, cut[index], ahead)
        if index.size < n:
            note = f"window {w}: {n - index.size} series left out (fewer than {min_train} values)"
            train = _with_note(train, note)
        out.append(Window(train, target, index, w))
    return out


def _with_note(panel: Panel, note: str) -> Panel:
    p = panel
    return Panel(
        p.values, p.offsets, p.ids, p.times, p.freq, p.season, p.past, p.past_names, p.future,
        p.future_names, p.future_ahead, p.notes + (note,),
    )  # fmt: skip


def _checked(out, n: int, H: int, levels, name: str):
    """The forecaster's ``(point, intervals)``, checked: shapes, finiteness, every level."""
    func = "backtest"
    try:
        point, intervals = out
    except (TypeError, ValueError):
        raise ValueError(
            f"{func}: forecaster {name!r} must return (point, {{level: (lo, hi)}}); got "
            f"{type(out).__name__}"
        ) from None
    point = np.asarray(point, dtype=np.float64)
    if point.shape != (n, H) or not np.isfinite(point).all():
        raise ValueError(
            f"{func}: forecaster {name!r} returned point forecasts of shape {point.shape} "
            f"(finite: {bool(np.isfinite(point).all())}), expected finite ({n}, {H})"
        )
    intervals = dict(intervals or {})
    missing = [lv for lv in levels if lv not in intervals]
    if missing:
        raise ValueError(f"{func}: forecaster {name!r} returned no intervals for levels {missing}")
    return point, {lv: intervals[lv] for lv in levels}


@dataclass
class BacktestResult:
    """``rows``: one dict per (window, series, model) with ``window``, ``unique_id``,
    ``model`` and every metric; ``summary``: ``{model: {metric: mean over windows and
    series}}``; ``notes``: what was left out and why."""

    rows: list[dict] = field(default_factory=list)
    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def table(self, columns=None) -> str:
        """The summary as text, one line per model (``summary_table``)."""
        if columns is None:
            columns = ["MAE", "RMSE", "MASE", "sMAPE"]
            extra = {c for m in self.summary.values() for c in m}
            columns += sorted(c for c in extra if c.startswith("coverage-"))
            columns += sorted(c for c in extra if c.startswith("pinball-") and "." not in c)
        return summary_table(self.summary, columns)


def _score(result, per_model, window: Window, name: str, point, intervals, scale) -> None:
    metrics = series_metrics(window.target, point, scale=scale, intervals=intervals)
    per_model.setdefault(name, []).append(metrics)
    ids = window.train.ids
    for k in range(ids.size):
        row = {"window": window.number, "unique_id": str(ids[k]), "model": name}
        row.update({m: float(v[k]) for m, v in metrics.items()})
        result.rows.append(row)


@contextmanager
def _anchors_here(train, horizon, models, levels):
    """The anchors computed in this process when collected (after the forecaster)."""

    def collect():
        notes: list[str] = []
        fc = anchor_forecasts(train, horizon, models=models, levels=levels, notes=notes)
        return fc, notes

    yield collect


def _in_window(fit_predict, window, windows, step, horizon, levels):
    """``fit_predict`` on one window's training part; its ValueError (a series too short, ...)
    says which window, and how much shorter than the file its series are there."""
    try:
        return fit_predict(window.train, horizon, levels)
    except ValueError as e:
        if windows == 1:
            raise
        cut = horizon + (windows - 1 - window.number) * step
        raise ValueError(
            f"{e} (in backtest window {window.number + 1} of {windows}, where each series ends "
            f"{cut} values before its last: fewer 'windows' leave longer series)"
        ) from e


def backtest(
    fit_predict: Callable,
    panel: Panel,
    horizon: int,
    windows: int = 1,
    levels=(),
    anchors=None,
    *,
    step: int | None = None,
    min_train: int = 2,
    name: str = "lstmkit",
    start_anchors=None,
) -> BacktestResult:
    """Rolling-origin cross-validation of ``fit_predict`` over the last ``windows`` origins.

    Args:
        fit_predict: ``(train_panel, horizon, levels) -> (point (n, H), {level: (lo, hi)})``.
        panel, horizon, windows, step, min_train: as ``rolling_origins``.
        levels: interval levels in percent; coverage and pinball loss are reported for each.
        anchors: classical methods scored beside it (``forecast_anchors``): None for
            ``DEFAULT_ANCHORS`` (statsforecast's left out with a note when not installed),
            ``()`` for none, or names (a missing extra is then an error).
        name: the forecaster's row label.
        start_anchors: how the anchors run: None here, after the forecaster; else a context
            manager factory ``(train, horizon, models, levels)`` entered before the forecaster
            fits and yielding ``collect() -> (forecasts, notes)`` (``forecast_child.
            anchors_apart``: a child process on the other core).

    Returns:
        ``BacktestResult`` (per-window per-series rows, the summary, ``table()``).
    """
    levels = tuple(levels)
    result = BacktestResult()
    per_model: dict[str, list[dict]] = {}
    for window in rolling_origins(panel, horizon, windows, step, min_train):
        train, n = window.train, window.train.n_series
        result.notes += [nt for nt in train.notes if nt.startswith("window ")]
        scale = naive_scales(train)
        models = None if anchors is None else tuple(anchors)
        with (start_anchors or _anchors_here)(train, horizon, models, levels) as collect:
            out = _checked(_in_window(fit_predict, window, windows, step or horizon, horizon,
                                      levels), n, horizon, levels, name)  # fmt: skip
            fc, notes = collect()
        _score(result, per_model, window, name, *out, scale)
        result.notes += [nt for nt in notes if nt not in result.notes]
        for anchor, (point, intervals) in fc.items():
            _score(result, per_model, window, anchor, point, intervals, scale)
    for model, parts in per_model.items():
        merged = {m: np.concatenate([p[m] for p in parts]) for m in parts[0]}
        result.summary[model] = mean_metrics(merged)
    return result
