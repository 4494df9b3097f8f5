"""The jobs behind ``lstmkit forecast train | predict | backtest | demo`` on a panel: read the
file, train the global forecaster (``forecast_global``), score it against the classical anchors
(``forecast_backtest``), and lay its forecasts out as CSV rows and plots.

``train`` scores a model fitted on each series minus its last ``horizon`` values (the held-out
window) against the anchors fitted on the same data, and fits the model it saves on every
value (``evaluate_and_fit``: the two fits at once, in two processes, with ``jobs >= 2``);
``train --no-evaluate`` only the latter (``fit``: its members in two processes, ``shared``).
``demo`` does both with ``DEMO_CHANGES`` on the packaged M1 yearly panel.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from .forecast_config import ForecastConfig
from .panel import Panel

#: what ``lstmkit forecast demo`` changes in ``ForecastConfig()``: 3 ensemble members instead of
#: 5 keep ``make demo`` under a minute on 2 cores (docs/forecast.md: ``ensemble=3`` roughly
#: halves the time at a small cost in accuracy); M1 yearly is forecast 6 years ahead
DEMO_PANEL = "m1_yearly"
DEMO_CHANGES = {"horizon": 6, "ensemble": 3, "levels": (80, 95)}


def time_column_of(path, time_column: str | None, explicit: bool) -> str | None:
    """The time column to read: the one named; the default one only when the file has it (a
    single series without dates is read in file order, as ``forecast train`` always did)."""
    from .panel_io import csv_header

    if time_column is None or explicit:
        return time_column
    return time_column if time_column in csv_header(path) else None


def read_data(path, config: ForecastConfig, *, time_column, fill="none", season=None) -> Panel:
    """The panel of ``path`` with ``config``'s columns; ``season`` overrides the detected one."""
    from .panel_io import read_panel

    panel = read_panel(
        path,
        id_column=config.id_column,
        time_column=time_column,
        column=config.column,
        past_covariates=config.past_covariates,
        future_covariates=config.future_covariates,
        horizon=config.horizon if config.future_covariates else None,
        fill=fill,
    )
    if season is not None:
        panel = dataclasses.replace(panel, season=int(season))
    return panel


def check_window(panel: Panel, config: ForecastConfig, season=None) -> None:
    """``forecast train`` and ``backtest``: a ``--lookback`` or ``--season`` longer than every
    series of the file is refused before any window is built (a longer window holds only
    padding, and its windows cost series x lookback: 10**9 steps asked for 8 GB and more)."""
    longest = int(panel.lengths.max())
    for arg, v in (("--lookback", max(config.lookbacks, default=0)), ("--season", season or 0)):
        if v > longest:
            raise ValueError(
                f"argument '{arg}' got {v}, expected at most {longest}, the longest series' length"
            )


def horizon_of(panel: Panel, config: ForecastConfig) -> int:
    """The horizon ``fit_global`` uses on ``panel`` (``config.horizon`` or its default rule)."""
    from .forecast_global import _facts

    return int(_facts(panel, config)["horizon"])


def with_levels(config: ForecastConfig, levels) -> ForecastConfig:
    """``config`` training every interval of ``levels`` too (``--level 90`` trains 90%)."""
    have = tuple(config.interval_levels)
    extra = tuple(a for a in levels if a not in have)
    return config.replace(levels=tuple(levels), interval_levels=have + extra)


def _fitter(config: ForecastConfig, progress, distribute=None, fitted=None):
    from .forecast_global import fit_global

    def fit_predict(train, horizon, levels):
        model = fit_global(train, config.replace(horizon=horizon), progress, distribute)
        if fitted is not None:
            fitted.append(model)
        return model.predict(train, horizon, levels)

    return fit_predict


def evaluate(panel, config, *, windows=1, anchors=None, progress=None, distribute=None,
             fitted=None, apart=False):  # fmt: skip
    """Rolling-origin backtest of the global forecaster over the last ``windows`` windows of
    ``panel``, beside ``anchors`` (None: naive, seasonal naive, AutoETS, AutoTheta when
    statsforecast is installed). Returns ``(horizon, BacktestResult)``. ``fitted``: a list that
    receives each window's fitted ``GlobalForecaster``. ``apart``: the anchors run in a child
    process while the LSTM trains (``forecast_child.anchors_apart``: the second core's work)."""
    from .forecast_backtest import backtest

    H = horizon_of(panel, config)
    start = None
    if apart:
        from .forecast_child import anchors_apart as start
    result = backtest(
        _fitter(config, progress, distribute, fitted),
        panel,
        H,
        windows,
        levels=config.levels,
        anchors=anchors,
        start_anchors=start,
    )
    return H, result


def default_jobs() -> int:
    """``forecast train``'s processes by default: 2 (the held-out fit in a child beside the
    saved fit) when this process may use 2 CPUs or more, else 1 (one fit after the other)."""
    from .._system import usable_cpus

    return 2 if usable_cpus() >= 2 else 1


def evaluate_and_fit(panel, config, *, progress=None, distribute=None, jobs=1, helper=None):
    """``forecast train``'s two fits: the held-out table (``evaluate``) and the model to save
    (``fit``). Returns ``(H, BacktestResult, GlobalForecaster)``.

    ``jobs >= 2`` (and no ``distribute``): the work is shared with a child process
    (``forecast_heldout.fit_both``: each takes the next of the two fits' member groups and the
    anchors, one thread each); the table and the model are the ones ``jobs=1`` gives.
    ``helper``: that child, started earlier (``forecast_heldout.helper_started``: it loads
    lstmkit meanwhile). A failed child costs time, or the table (a note says why), never the
    saved model. ``jobs=1``: the held-out fit (its anchors in a child, ``evaluate(...,
    apart=True)``; its failure costs the table, as above), then the saved fit."""
    if jobs < 2 or distribute is not None:
        H = horizon_of(panel, config)
        try:  # the table's part: a failure costs the table only, as with jobs >= 2
            _, result = evaluate(panel, config, progress=progress, distribute=distribute,
                                 apart=True)  # fmt: skip
        except Exception as e:  # noqa: BLE001  (any error: the saved model still stands)
            from .forecast_backtest import BacktestResult

            why = f"the held-out fit failed ({type(e).__name__}: {e})"
            result = BacktestResult(notes=[f"the held-out table is left out: {why}"])
        return H, result, fit(panel, config.replace(horizon=H), progress, distribute)
    from .forecast_heldout import fit_both, helper_started

    if helper is not None:
        return fit_both(helper, panel, config, progress=progress)
    with helper_started() as started:
        return fit_both(started, panel, config, progress=progress)


def shared(config: ForecastConfig, jobs: int, distribute=None, evaluate=True) -> bool:
    """Whether ``forecast train`` shares its work with a child process
    (``forecast_heldout``): ``jobs >= 2`` and no ``distribute``; without the held-out fit
    (``evaluate`` False) also only when the saved fit is more than one task
    (``forecast_heldout.member_tasks``: a time budget or one member is one)."""
    if jobs < 2 or distribute is not None:
        return False
    return evaluate or (not config.max_minutes and config.ensemble >= 2)


def fit(panel, config, progress=None, distribute=None, *, jobs=1, helper=None):
    """The model to save: trained on every value of ``panel`` (``distribute``: a
    ``lstmkit.distributed.RayStrategy``). ``shared(config, jobs, distribute, evaluate=False)``:
    its members shared with a child process (``forecast_heldout.fit_saved``; ``helper``: that
    child, started earlier, as in ``evaluate_and_fit``), the model ``jobs=1`` gives on one
    thread; a failed child costs time (its members are trained here), never the model."""
    from .forecast_global import fit_global

    if not shared(config, jobs, distribute, evaluate=False):
        return fit_global(panel, config, progress, distribute)
    from .forecast_heldout import fit_saved, helper_started

    if helper is not None:
        return fit_saved(helper, panel, config, progress=progress)
    with helper_started() as started:
        return fit_saved(started, panel, config, progress=progress)


# -- forecasts as rows ------------------------------------------------------------------------------
def date_labels(times: np.ndarray) -> list[str]:
    """ISO dates (``2020-01-01``; with the time of day for sub-daily data)."""
    unit = "D" if times.dtype == np.dtype("datetime64[D]") else "s"
    return np.datetime_as_string(times, unit=unit).tolist()


def future_labels(panel: Panel, horizon: int) -> np.ndarray:
    """``(n, horizon)`` labels of the steps after each series' end: real dates
    (``future_times``) or, without dates, the row positions after the last (0-based)."""
    from .panel_time import future_times

    if panel.times is not None and panel.freq is not None:
        t = future_times(panel, horizon)
        return np.asarray(date_labels(t.ravel()), dtype=object).reshape(t.shape)
    steps = panel.lengths[:, None] + np.arange(horizon)[None, :]
    return steps.astype(str).astype(object)


def interval_columns(levels) -> list[str]:
    return [f"{side}-{_level_name(a)}" for a in levels for side in ("lo", "hi")]


def _level_name(a) -> str:
    return str(int(a)) if float(a).is_integer() else str(a)


def forecast_table(panel: Panel, point, intervals, levels, *, time_header, single: bool):
    """``(header, rows)`` of the CSV ``forecast predict`` writes: ``unique_id, ds, forecast[,
    lo-*, hi-*]`` for a panel; a single series keeps ``<time>, forecast[, lo-*, hi-*]``."""
    H = point.shape[1]
    labels = future_labels(panel, H)
    header = [time_header, "forecast", *interval_columns(levels)]
    if not single:
        header = ["unique_id", *header]
    rows = []
    for k in range(panel.n_series):
        for h in range(H):
            row = [labels[k, h], float(point[k, h])]
            for a in levels:
                lo, hi = intervals[a]
                row += [float(lo[k, h]), float(hi[k, h])]
            rows.append(row if single else [str(panel.ids[k]), *row])
    return header, rows


def history_labels(panel: Panel, k: int) -> list[str]:
    span = panel.span(k)
    if panel.times is not None:
        return date_labels(panel.times[span])
    return [str(i) for i in range(span.stop - span.start)]


def plot_series(panel: Panel, k: int, point, intervals, levels, title="") -> bytes:
    """PNG bytes of series ``k``'s history and forecast (``forecast_files.plot_png``)."""
    from .forecast_files import plot_png

    labels = future_labels(panel, point.shape[1])[k].tolist()
    band = None
    if levels:  # the widest interval
        a = max(levels)
        band = (f"{_level_name(a)}% interval", intervals[a][0][k], intervals[a][1][k])
    history = panel.series(k)
    return plot_png(history_labels(panel, k), history, labels, point[k], title=title, band=band)


def series_index(panel: Panel, ids, arg="--plot-ids") -> list[int]:
    """Positions of ``ids`` in the panel; an unknown id is an error listing a few known ones."""
    known = {str(s): k for k, s in enumerate(panel.ids)}
    missing = [s for s in ids if s not in known]
    if missing:
        shown = list(known)[:5]
        raise ValueError(
            f"argument {arg!r} got {missing}, which are not series of the file; expected ids "
            f"such as {shown} ({len(known)} series)"
        )
    return [known[s] for s in ids]


def plot_name(out, series_id: str) -> str:
    """``FORECAST-<id>.png`` beside ``out`` (characters other than letters, digits, ``._-``
    in the id become ``_``)."""
    import re

    stem, _ = os.path.splitext(os.fspath(out))
    return f"{stem}-{re.sub(r'[^A-Za-z0-9._-]', '_', series_id)}.png"


def is_global_file(path) -> bool:
    """Whether ``path`` holds a global forecaster (``GlobalForecaster.save``) rather than a
    single-series model file: the format field of its safetensors header."""
    from .. import _safetensors_np as stnp
    from .._modelfile import MAX_DEPTH, MAX_HEADER
    from .forecast_global import FORMAT

    try:
        header = stnp.read_header(os.fspath(path), MAX_HEADER, MAX_DEPTH)
    except (OSError, stnp.SafetensorsError):
        return False  # load_model says what is wrong with it
    return (header.metadata or {}).get("format") == FORMAT


#: ``forecast predict`` runs the NumPy reference instead of the compiled kernels when the
#: forecast is at most ``SMALL_WORK`` multiply-adds and none of its products can reach
#: OpenBLAS's threading threshold (:func:`predict_work`): loading numba and the kernels costs
#: about 0.65 CPU s of the process, the reference about 0.3 ns a multiply-add (at the bound ~25
#: ms; arrivals: 2 ms either way), and on one BLAS thread only (the reference does not hold BLAS
#: to one thread; a second thread waiting on a busy core made such products 20-35x slower).
#: docs/forecast.md, "Fixed costs of the two commands".
SMALL_WORK = 1 << 26


def predict_work(model, panel: Panel) -> tuple[int, int]:
    """Bounds on ``model.predict(panel)``'s multiply-adds: ``(all of them, the largest single
    product)``. A member's product has at most series x lookback rows (the input projection
    of every step at once; a step's recurrent product has the series as rows) and at most its
    largest parameter's size as ``k * m``; all of them, at most series x lookback x its
    parameter count."""
    n = int(panel.n_series)
    total = largest = 0
    for m in model.members:
        rows, sizes = n * int(m.lookback), [int(v.size) for v in m.model.params.values()]
        total += rows * sum(sizes)
        largest = max(largest, rows * max(sizes, default=0))
    return total, largest


def predict_scope(model, panel: Panel):
    """The scope ``forecast predict`` forecasts in: the NumPy reference under the ``"auto"``
    backend when the forecast is small (``SMALL_WORK``, and every product below
    ``OPENBLAS_THREADING_MACS``, so BLAS runs it on one thread): the same forecasts to float32
    rounding, in a process that then never imports numba; else nothing changes."""
    import contextlib

    from ..ops import backend
    from ..ops.blas_threads import OPENBLAS_THREADING_MACS

    total, largest = predict_work(model, panel)
    small = total <= SMALL_WORK and largest < OPENBLAS_THREADING_MACS
    return backend.reference_when_auto() if small else contextlib.nullcontext()
