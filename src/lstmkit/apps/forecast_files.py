"""Files around a forecaster: the CSV series a saved model continues, the PNG of history and
forecast, and labels for the steps after the last row. Used by ``lstmkit forecast``; matplotlib
is imported only when a plot is drawn."""

from __future__ import annotations

import csv
import io

from ..data import read_series_csv
from .forecast import forecaster_meta


def _csv_header(path):
    """The header cells of a CSV file, or [] when it cannot be read (the reader reports why)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            for row in csv.reader(stream):
                if any(cell.strip() for cell in row):
                    return [cell.strip() for cell in row]
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return []


def read_history(path, model, *, column=None, time_column=None, fill="none", min_rows=1):
    """Read the series a saved forecaster should continue: ``column`` defaults to the one it was
    trained on, ``time_column`` too when the file has it. Returns ``(values, index, column,
    time_column)``."""
    meta = forecaster_meta(model)
    column = column or meta.get("column")
    if time_column is None and meta.get("time_column") in _csv_header(path):
        time_column = meta["time_column"]
    values, index = read_series_csv(
        path,
        column,
        time_column=time_column,
        fill=fill,
        min_rows=min_rows,
    )
    return values, index, column, time_column


def plot_png(history_index, history, future_index, fc, actual=None, title="") -> bytes:
    """PNG bytes of the history and the forecast (matplotlib imported here: an optional extra).
    Rendered in memory so that callers can write every output only once all of them exist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def pos(labels):  # numeric labels (years) plot on a numeric axis, others by position
        try:
            return [float(v) for v in labels]
        except (TypeError, ValueError):
            return None

    n = min(len(history), 120)
    hx, fx = pos(history_index[-n:]), pos(future_index)
    if hx is None or fx is None:  # the future follows the history's last position
        hx, fx = list(range(n)), list(range(n, n + len(fc)))
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
    try:
        ax.plot(hx, history[-n:], color="0.3", lw=1.2, label="history")
        ax.plot(fx, fc, color="tab:red", lw=1.8, marker="o", ms=3, label="LSTM forecast")
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


def future_labels(index, horizon):
    """Labels for the steps after the last index: numeric indices continue, else ``+k``."""
    try:
        last = float(index[-1])
        step = float(index[-1]) - float(index[-2]) if len(index) > 1 else 1.0
        return [_num(last + step * k) for k in range(1, horizon + 1)]
    except (ValueError, IndexError):
        return [f"{index[-1]}+{k}" for k in range(1, horizon + 1)]


def _num(v):
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
