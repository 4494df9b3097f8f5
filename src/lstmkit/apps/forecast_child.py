"""The anchors' forecasts in a child process, while the LSTM trains in this one.

``forecast train`` scores its held-out fit beside naive, seasonal naive, AutoETS and AutoTheta.
statsforecast's part (importing pandas, statsforecast and the statsmodels it imports, then
fitting; statsforecast 2.1.1 compiles nothing with numba: its ETS and ARIMA are C++) is about
two CPU seconds of one thread that the LSTM does not need: run apart, it can take the second
core while the LSTM trains, and the training process never imports pandas or statsforecast.

``anchors_apart`` is a ``start_anchors`` of ``forecast_backtest.backtest``: a context manager
that starts ``python -m lstmkit.apps.forecast_child IN.npz OUT.npz`` on the window's training
panel and yields ``collect() -> (forecasts, notes)``. Data go both ways as ``.npz`` files read
with ``allow_pickle=False`` (nothing unpickled). The child never outlives the block: leaving it
(the table collected, an error, Ctrl-C) kills and reaps a child still running. A failed child
loses only statsforecast's rows: the LSTM's result stands, the naive anchors are computed here,
and a note says what failed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from .forecast_anchors import DEFAULT_ANCHORS, STATSFORECAST, anchor_forecasts
from .panel import Panel

#: the child's command line before its two file arguments
CHILD = (sys.executable, "-m", "lstmkit.apps.forecast_child")
#: the child's one thread: statsforecast runs with n_jobs=1, and idle BLAS or numba pools would
#: only compete with the LSTM's threads for the two cores
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1"}  # fmt: skip


@contextlib.contextmanager
def anchors_apart(train: Panel, horizon: int, models, levels):
    """Start the child on ``train``; yield ``collect``, which waits for it and returns
    ``({name: (point (n, H), {level: (lo, hi)})}, notes)`` as ``anchor_forecasts`` would."""
    models = None if models is None else tuple(models)
    levels = tuple(int(a) for a in levels)
    here = [m for m in (DEFAULT_ANCHORS if models is None else models) if m not in STATSFORECAST]
    if models is not None and len(here) == len(models):  # nothing of statsforecast: no child
        yield lambda: (anchor_forecasts(train, horizon, models=models, levels=levels), [])
        return
    with tempfile.TemporaryDirectory(prefix="lstmkit-anchors-") as d:
        src, out, err = Path(d) / "panel.npz", Path(d) / "anchors.npz", Path(d) / "stderr.txt"
        _write_input(src, train, horizon, models, levels)
        with running([*CHILD, str(src), str(out)], err, {**os.environ, **ONE_THREAD}) as proc:

            def collect():
                status = proc.wait()
                if status == 0 and out.exists():
                    return _read_output(out, models, levels)
                notes = [f"statsforecast's anchors left out: their process {ended(status, err)}"]
                return anchor_forecasts(train, horizon, models=here, levels=levels), notes

            collect.process = proc  # (tests: its pid and exit status)
            yield collect


@contextlib.contextmanager
def running(argv, err: Path, env, stdin=subprocess.DEVNULL):
    """``argv`` started as a child process (no stdout, stderr into the file ``err``, no stdin
    unless ``stdin=subprocess.PIPE``); yields its ``Popen``. Leaving the block (the result
    collected, an error, Ctrl-C) kills and reaps a child still running: it never outlives its
    caller. (Also ``forecast_heldout``'s.)"""
    with open(err, "wb") as log:
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=log,
                                env=env)  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):  # (a pipe the killed child no longer reads)
                proc.stdin.close()


def ended(status, err: Path) -> str:
    """How a failed child ended: its exit status and the last line it wrote to ``err``."""
    lines = [s for s in err.read_text(errors="replace").splitlines() if s.strip()]
    why = f": {lines[-1].strip()}" if lines else ""
    return f"ended with status {status}{why}"


def _write_input(path, train: Panel, horizon, models, levels):
    np.savez(
        path, values=train.values, offsets=train.offsets, season=np.int64(train.season),
        horizon=np.int64(horizon), default=np.bool_(models is None),
        models=np.asarray(models or (), dtype=str), levels=np.asarray(levels, dtype=np.int64),
    )  # fmt: skip


def _read_output(path, models, levels):
    with np.load(path, allow_pickle=False) as z:
        names = [str(s) for s in z["names"]]
        notes = [str(s) for s in z["notes"]]
        fc = {
            name: (
                z[f"{name}/point"],
                {a: (z[f"{name}/lo{a}"], z[f"{name}/hi{a}"]) for a in levels},
            )
            for name in names
        }
    return fc, notes


def write_anchors(out, fc, notes) -> None:
    """``anchor_forecasts``'s result and notes as one ``.npz`` (``_read_output`` reads it)."""
    arrays = {"names": np.asarray(list(fc), dtype=str), "notes": np.asarray(notes, dtype=str)}
    for name, (point, intervals) in fc.items():
        arrays[f"{name}/point"] = point
        for a, (lo, hi) in intervals.items():
            arrays[f"{name}/lo{a}"], arrays[f"{name}/hi{a}"] = lo, hi
    # the parent reads a whole file or none (".npz": np.savez would append it to another name)
    atomic_write(out, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")


def read_anchors(path, levels):
    """``(forecasts, notes)`` of ``write_anchors``'s file."""
    return _read_output(path, None, tuple(levels))


def run(src, out) -> None:
    """The child: the anchors of the panel in ``src`` written to ``out`` (``.npz``)."""
    with np.load(src, allow_pickle=False) as z:
        values, offsets = z["values"], z["offsets"]
        season, horizon = int(z["season"]), int(z["horizon"])
        models = None if bool(z["default"]) else tuple(str(s) for s in z["models"])
        levels = tuple(int(a) for a in z["levels"])
    ids = np.arange(len(offsets) - 1).astype(str)
    panel = Panel(values, offsets, ids, season=season)
    notes: list[str] = []
    fc = anchor_forecasts(panel, horizon, models=models, levels=levels, notes=notes)
    write_anchors(out, fc, notes)


if __name__ == "__main__":
    from .._system import skip_final_collection

    try:
        run(*sys.argv[1:3])
    finally:  # the parent waits for this process to end: no final collection
        skip_final_collection()
