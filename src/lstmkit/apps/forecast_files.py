"""Files around a forecaster: the CSV series a saved model continues, the PNG of history and
forecast, and labels for the steps after the last row. Used by ``lstmkit forecast``; matplotlib
is imported only when a plot is drawn.

The steps after the last row are labelled by ``SeriesIndex.future``: real dates for a date
column (``2020-01-01`` after ``2019-12-01``, never ``2019-12-01+1``), the next numbers for a
column of numbers, and otherwise the row positions after the last row (``future_is_steps``),
written under the header ``step``."""

from __future__ import annotations

import io

from ..data import SeriesIndex, read_series_csv
from .forecast import forecaster_meta
from .panel_io import csv_header


def read_history(
    path, model, *, column=None, time_column=None, fill="none", min_rows=1, progress=None
):
    """Read the series a saved forecaster should continue: ``column`` defaults to the one it was
    trained on, ``time_column`` too when the file has it. Returns ``(values, index, column,
    time_column)``; ``progress`` as in ``read_series_csv``."""
    meta = forecaster_meta(model)
    column = column or meta.get("column")
    if time_column is None and meta.get("time_column") in csv_header(path):
        time_column = meta["time_column"]
    values, index = read_series_csv(
        path,
        column,
        time_column=time_column,
        fill=fill,
        min_rows=min_rows,
        progress=progress,
    )
    return values, index, column, time_column


def plot_png(history_index, history, future_index, fc, actual=None, title="", band=None) -> bytes:
    """PNG bytes of the history and the forecast (matplotlib imported here: an optional extra),
    with ``band = (label, lo, hi)`` shaded when given. Rendered in memory so that callers can
    write every output only once all of them exist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(history), 120)
    hx, fx = _axis(list(history_index[-n:]), list(future_index))
    if hx is None:  # the future follows the history's last position
        hx, fx = list(range(n)), list(range(n, n + len(fc)))
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
    try:
        ax.plot(hx, history[-n:], color="0.3", lw=1.2, label="history")
        ax.plot(fx, fc, color="tab:red", lw=1.8, marker="o", ms=3, label="LSTM forecast")
        if band is not None:
            ax.fill_between(fx, band[1], band[2], color="tab:red", alpha=0.15, label=band[0])
        if actual is not None:
            ax.plot(fx, actual, color="tab:blue", lw=1.2, ls="--", label="actual")
        ax.set_title(title)
        ax.legend(loc="upper left", frameon=False)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def _axis(history_labels, future_labels):
    """x positions of the history and the future: dates on a date axis (datetime64), years and
    other numbers on a numeric axis; ``(None, None)`` for other labels (plotted by position)."""
    both = SeriesIndex.from_labels(history_labels + future_labels)
    if both.kind == "dates" and both.date_format.name != "year":  # years: a numeric axis
        # quarters and months are month counts: as seconds, matplotlib draws them as dates
        x = both.datetimes().astype("datetime64[s]")
        return x[: len(history_labels)], x[len(history_labels) :]
    try:
        x = [float(v) for v in both]
    except (TypeError, ValueError):
        return None, None
    return x[: len(history_labels)], x[len(history_labels) :]


def future_labels(index, horizon):
    """Labels of the ``horizon`` steps after the last row of ``index`` (a ``SeriesIndex`` or a
    list of labels): next dates, next numbers, or next row positions (module docstring)."""
    return SeriesIndex.from_labels(index).future(horizon)
