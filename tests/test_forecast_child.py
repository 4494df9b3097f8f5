"""The anchors in a child process (``lstmkit.apps.forecast_child``) while the LSTM trains.

Witnesses: ``anchor_forecasts`` run in this process (the same table, array for array); the
operating system's view of the child (``/proc/<pid>``, its exit status); a real SIGINT to a
real ``lstmkit forecast train``. The child never outlives its block, whatever ends it, and its
failure costs only statsforecast's rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lstmkit.apps import forecast_child
from lstmkit.apps.forecast_anchors import anchor_forecasts, seasonal_naive
from lstmkit.apps.forecast_backtest import backtest, rolling_origins
from lstmkit.apps.panel import Panel

SRC = Path(__file__).resolve().parents[1] / "src"
SLEEPER = (sys.executable, "-c", "import time; time.sleep(120)")


def _panel():
    rng = np.random.default_rng(5)
    t = np.arange(40)
    series = [20 + 5 * np.sin(2 * np.pi * t[: 40 - k] / 4) + rng.normal(0, 1, 40 - k)
              for k in (0, 3, 7)]  # fmt: skip
    return Panel.from_arrays(series, ["a", "b", "c"], season=4)


def _alive(pid) -> bool:
    """Whether ``pid`` is a process that still runs (a zombie has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _naive_fit(train, h, levels):
    return seasonal_naive(train, h, levels)


def test_the_child_gives_the_anchors_of_this_process():
    train = rolling_origins(_panel(), 4, 1)[0].train
    models = ("naive", "seasonal_naive", "AutoTheta")
    want = anchor_forecasts(train, 4, models=models, levels=(80, 95))
    with forecast_child.anchors_apart(train, 4, models, (80, 95)) as collect:
        got, notes = collect()
    assert notes == [] and list(got) == list(models)
    for name in models:
        np.testing.assert_allclose(got[name][0], want[name][0], rtol=1e-12)
        for a in (80, 95):
            for side in (0, 1):
                np.testing.assert_allclose(got[name][1][a][side], want[name][1][a][side],
                                           rtol=1e-12)  # fmt: skip


def _apart_seen(seen):
    """``anchors_apart`` that records each child process (``collect.process``)."""

    def start(*args):
        cm = forecast_child.anchors_apart(*args)
        collect = cm.__enter__()
        seen.append(collect.process)

        class Wrap:
            def __enter__(self):
                return collect

            def __exit__(self, *exc):
                return cm.__exit__(*exc)

        return Wrap()

    return start


def test_an_error_in_the_fit_kills_the_child(monkeypatch):
    monkeypatch.setattr(forecast_child, "CHILD", SLEEPER)
    seen = []

    def broken(train, h, levels):
        raise RuntimeError("the LSTM failed")

    with pytest.raises(RuntimeError, match="the LSTM failed"):
        backtest(broken, _panel(), 4, levels=(80,), start_anchors=_apart_seen(seen))
    (proc,) = seen
    assert proc.returncode == -signal.SIGKILL  # killed, and reaped (returncode set)
    assert not _alive(proc.pid)


def test_a_failed_child_keeps_the_lstm_result_and_the_naive_anchors(monkeypatch):
    monkeypatch.setattr(forecast_child, "CHILD", (sys.executable, "-c", "raise SystemExit('boom')"))
    result = backtest(_naive_fit, _panel(), 4, levels=(80,),
                      start_anchors=forecast_child.anchors_apart)  # fmt: skip
    assert list(result.summary) == ["lstmkit", "naive", "seasonal_naive"]
    assert any("status 1: boom" in n for n in result.notes), result.notes
    here = backtest(_naive_fit, _panel(), 4, levels=(80,), anchors=("naive", "seasonal_naive"))
    assert result.summary == here.summary


# a test run in the background inherits SIGINT ignored: restore Python's handler first; warm the
# kernels (a SIGINT during numba's compilation is swallowed, see test_cli_interrupt); the anchors'
# child sleeps, so it is certainly running when the signal comes
RUN = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "import numpy as np; from lstmkit.layers import LSTM, Dense; "
    "from lstmkit.models import Sequential; "
    "m = Sequential([LSTM(8, input_shape=(8, 3)), Dense(4)]); m.compile('adam', 'mse'); "
    "x, y = np.zeros((40, 8, 3), 'float32'), np.zeros((40, 4), 'float32'); "
    "m.fit(x, y, batch_size=16, verbose=0); m.predict(x); "
    "from lstmkit.apps import forecast_child; "
    f"forecast_child.CHILD = {SLEEPER!r}; "
    "from lstmkit.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _children(pid):
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


# --jobs 1: the anchors' child (the sleeper); --jobs 2: the held-out fit's child
# (lstmkit.apps.forecast_heldout, the real one: it trains 300 epochs too); --jobs 2
# --no-evaluate: the same child, sharing the saved fit's two members
@pytest.mark.parametrize("jobs", [["1"], ["2"], ["2", "--no-evaluate", "--ensemble", "2"]],
                         ids=["jobs-1", "jobs-2", "jobs-2-no-evaluate"])  # fmt: skip
def test_ctrl_c_during_training_leaves_no_child_and_the_old_model(tmp_path, jobs):
    rng = np.random.default_rng(0)
    with open(tmp_path / "p.csv", "w") as f:
        f.write("unique_id,ds,y\n")
        for k in range(3):
            y = 50 + rng.normal(size=400).cumsum()
            f.writelines(f"s{k},{t},{v:.4f}\n" for t, v in enumerate(y))
    out = tmp_path / "m.lstmkit"
    out.write_bytes(b"the previous model")
    argv = ["forecast", "train", str(tmp_path / "p.csv"), "--out", str(out), "--horizon", "4",
            "--units", "8", "--epochs", "300", "--patience", "300", "--ensemble", "1",
            "--jobs", *jobs]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([sys.executable, "-c", RUN, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)  # fmt: skip
    try:
        assert proc.stdout.readline().startswith("read "), proc.stderr.read()
        deadline = time.monotonic() + 60
        while not (kids := _children(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(kids) == 1, f"{len(kids)} child processes started, expected 1"
        cmdline = Path(f"/proc/{kids[0]}/cmdline").read_bytes().split(b"\0")
        assert (b"lstmkit.apps.forecast_heldout" in cmdline) == (jobs[0] == "2"), cmdline
        time.sleep(1.0)  # training: 300 epochs take far longer
        assert proc.poll() is None and all(_alive(k) for k in kids)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert not any(_alive(k) for k in kids)
    assert out.read_bytes() == b"the previous model"


def test_no_child_without_statsforecast_models(monkeypatch):
    monkeypatch.setattr(forecast_child, "CHILD", (sys.executable, "-c", "raise SystemExit(1)"))
    result = backtest(_naive_fit, _panel(), 4, levels=(80,), anchors=("naive",),
                      start_anchors=forecast_child.anchors_apart)  # fmt: skip
    assert list(result.summary) == ["lstmkit", "naive"] and result.notes == []
