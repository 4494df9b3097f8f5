"""``forecast train``'s held-out fit in a child process, beside the saved fit in this one.

``forecast train`` fits two independent ensembles: one on each series minus its last ``horizon``
values, scored against the anchors (the held-out table), and the one it saves, on every value.
On small panels each is bound by Python (steps of a few milliseconds): a second thread does not
speed it up, a second process does. With two CPUs or more (``forecast_run.default_jobs``) the
held-out fit and its evaluation (the anchors included, after the LSTM) run in ``python -m
lstmkit.apps.forecast_heldout DIR`` on one thread (``LSTMKIT_NUM_THREADS=1``) while this process
fits the saved model on one thread too (``one_thread``): each fit keeps one core.

The table is the one the same evaluation gives in this process on one thread
(``tests/test_forecast_heldout.py``): the child receives the whole panel as arrays (``.npz``,
read with ``allow_pickle=False``) and the settings as JSON, and returns the table's rows, summary
and notes as JSON (nothing unpickled either way). The saved model is trained on one thread
meanwhile; a second thread may only change the order of the kernels' weight-gradient sums (two
time chunks instead of one), and changed no forecast of the benchmark panels (docs/forecast.md,
"The whole CLI against AutoARIMA").

The child never outlives the block (``heldout_apart``): leaving it by an error or Ctrl-C kills
and reaps a child still running. A failed child loses only the table (a note says why), never
the saved model.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from .forecast_backtest import BacktestResult
from .forecast_child import ONE_THREAD, ended, running
from .forecast_config import ForecastConfig
from .panel import Panel

#: the child's command line before its directory argument
CHILD = (sys.executable, "-m", "lstmkit.apps.forecast_heldout")
#: one thread in the child: lstmkit's kernels, BLAS, numba (``forecast_child.ONE_THREAD``)
CHILD_ENV = {**ONE_THREAD, "LSTMKIT_NUM_THREADS": "1"}
#: what the child reads and writes inside its directory
IN, OUT, ERR = "input.npz", "table.json", "stderr.txt"


@contextlib.contextmanager
def heldout_apart(panel: Panel, config: ForecastConfig, *, anchors=None):
    """Start the child on ``panel``; yield ``collect``, which waits for it and returns ``(H,
    BacktestResult)`` as ``forecast_run.evaluate(panel, config, anchors=anchors)`` would on one
    thread, or ``(None, BacktestResult(notes=[why]))`` when the child failed."""
    with tempfile.TemporaryDirectory(prefix="lstmkit-heldout-") as d:
        d = Path(d)
        write_input(d / IN, panel, config, anchors)
        with running([*CHILD, str(d)], d / ERR, child_env()) as proc:

            def collect():
                status = proc.wait()
                if status == 0 and (d / OUT).exists():
                    return read_output(d / OUT)
                note = f"the held-out table is left out: its process {ended(status, d / ERR)}"
                return None, BacktestResult(notes=[note])

            collect.process = proc  # (tests: its pid and exit status)
            yield collect


def child_env() -> dict:
    """This environment, one thread (``CHILD_ENV``), and, when this process's lstmkit comes from
    a source tree (``PYTHONPATH=src``, an editable install), that tree first on the path: the
    child runs the same code as its parent. An installed lstmkit (in ``site-packages``) is what
    the same interpreter finds anyway; that directory is not put on ``PYTHONPATH``, where it
    would come before the standard library."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **CHILD_ENV}
    if root.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def one_thread():
    """lstmkit's kernels and this thread's BLAS on one thread for the block (the other core is
    the child's); as before afterwards."""
    from ..ops.backend import get_backend

    if get_backend() != "numba":
        yield
        return
    from ..ops.fast.common import limited_threads

    with limited_threads(1):
        yield


# -- the files between the two processes ----------------------------------------------------------
#: Panel fields that may be None, written only when present
OPTIONAL = ("times", "past", "future", "future_ahead")


def panel_arrays(panel: Panel) -> dict:
    """Every field of ``panel`` as arrays ``np.savez`` writes without pickling."""
    arrays = {
        "values": panel.values, "offsets": panel.offsets,
        "ids": np.asarray([str(s) for s in panel.ids], dtype=str),
        "season": np.int64(panel.season),
        "past_names": np.asarray(panel.past_names, dtype=str),
        "future_names": np.asarray(panel.future_names, dtype=str),
        "notes": np.asarray(panel.notes, dtype=str),
    }  # fmt: skip
    arrays.update({k: getattr(panel, k) for k in OPTIONAL if getattr(panel, k) is not None})
    if panel.freq is not None:
        arrays["freq"] = np.asarray(panel.freq, dtype=str)
    return arrays


def panel_of(z) -> Panel:
    """The panel of ``panel_arrays`` read back (``z``: an opened ``.npz``)."""

    def names(key):
        return tuple(str(s) for s in z[key])

    return Panel(
        z["values"], z["offsets"], z["ids"], z.get("times"),
        str(z["freq"]) if "freq" in z else None, int(z["season"]),
        z.get("past"), names("past_names"),
        z.get("future"), names("future_names"),
        z.get("future_ahead"), names("notes"),
    )  # fmt: skip


def write_input(path, panel: Panel, config: ForecastConfig, anchors=None) -> None:
    np.savez(
        path, **panel_arrays(panel), config=np.asarray(json.dumps(config.to_dict())),
        default_anchors=np.bool_(anchors is None), anchors=np.asarray(anchors or (), dtype=str),
    )  # fmt: skip


def read_output(path):
    """``(H, BacktestResult)`` of the child's JSON."""
    d = json.loads(Path(path).read_text())
    return int(d["horizon"]), BacktestResult(d["rows"], d["summary"], d["notes"])


def run(directory) -> None:
    """The child: ``forecast_run.evaluate`` of the panel in ``directory/input.npz`` (the anchors
    after the LSTM, in this process), its table written to ``directory/table.json``."""
    from .forecast_run import evaluate

    d = Path(directory)
    with np.load(d / IN, allow_pickle=False) as z:
        panel = panel_of(z)
        config = ForecastConfig.from_dict(json.loads(str(z["config"])))
        anchors = None if bool(z["default_anchors"]) else tuple(str(s) for s in z["anchors"])
    H, result = evaluate(panel, config, anchors=anchors)
    text = json.dumps({"horizon": H, "rows": result.rows, "summary": result.summary,
                       "notes": result.notes})  # fmt: skip
    atomic_write(d / OUT, lambda tmp: Path(tmp).write_text(text))  # whole or none for the parent


if __name__ == "__main__":
    run(sys.argv[1])
