"""Ctrl-C ends a command with one line and leaves the previous outputs as they were (issue 17).

The main test sends a real SIGINT to a real ``lstmkit forecast train`` process while it trains.
Witnesses: the exit status (130 = 128 + SIGINT, as shells report it), stderr (exactly one
line, no traceback), the previous model file (bytes, mtime, inode) and the directory listing
(no temporary files). The old ``main`` let the ``KeyboardInterrupt`` escape: a traceback, and
Python's own exit by SIGINT (status -2 to ``subprocess``).
"""

from __future__ import annotations

import csv
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lstmkit import _atomic
from lstmkit.cli import main
from lstmkit.layers import LSTM, Dense
from lstmkit.models import Sequential

SRC = Path(__file__).resolve().parents[1] / "src"
# a test run in the background inherits SIGINT ignored, a user's terminal does not: restore
# Python's own handler (KeyboardInterrupt) first
RUN = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from lstmkit.cli import main; sys.exit(main(sys.argv[1:]))"
)
# The signal must land in training, not in numba compiling the kernels on a cold cache (a fresh
# clone): a SIGINT inside numba's compile callback is swallowed there. So the child first runs
# the kernels the command will run (an LSTM fit, evaluate and predict in float32), then main.
WARM = (
    "import numpy as np; from lstmkit.layers import LSTM, Dense; "
    "from lstmkit.models import Sequential; "
    "m = Sequential([LSTM(32, input_shape=(12, 1)), Dense(4)]); m.compile('adam', 'mse'); "
    "x, y = np.zeros((40, 12, 1), 'float32'), np.zeros((40, 4), 'float32'); "
    "m.fit(x, y, batch_size=16, verbose=0); m.evaluate(x, y, verbose=0); m.predict(x); "
)


def _series_csv(path, n):
    t = np.arange(n)
    y = 20 + 8 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(0, 1, n)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t", "y"])
        w.writerows((i, repr(float(v))) for i, v in zip(t, y))
    return path


def _state(path):
    st = os.stat(path)
    return path.read_bytes(), st.st_mtime_ns, st.st_ino


@pytest.mark.parametrize("engine", ["single", "global"])
def test_ctrl_c_while_training_prints_one_line_and_keeps_the_previous_model(tmp_path, engine):
    data = _series_csv(tmp_path / "long.csv", 3000)
    out = tmp_path / "model.lstmkit"
    model = Sequential([LSTM(4, input_shape=(12, 1)), Dense(4)])
    model.save(out)
    before, listing = _state(out), sorted(os.listdir(tmp_path))
    argv = ["forecast", "train", str(data), "--column", "y", "--lookback", "12", "--horizon", "4"]
    argv += ["--epochs", "300", "--patience", "300", "--transform", "none", "--out", str(out)]
    argv += ["--engine", engine]
    first_words = "read 3000 rows" if engine == "single" else "read 3000 values"
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(
        [sys.executable, "-c", WARM + RUN, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        first = proc.stdout.readline()  # printed after reading, right before training
        assert first.startswith(first_words), first + proc.stderr.read()
        time.sleep(1.5)  # 300 epochs of 2000 windows take far longer than this
        assert proc.poll() is None, "the command ended before it was interrupted"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert stderr.splitlines() == ["lstmkit forecast: interrupted; nothing written"], stderr
    assert "saved" not in stdout
    assert _state(out) == before
    assert sorted(os.listdir(tmp_path)) == listing  # no temporary file left behind


@pytest.fixture
def forecaster(tmp_path):
    data = _series_csv(tmp_path / "s.csv", 120)
    argv = [
        "forecast",
        "train",
        str(data),
        "--column",
        "y",
        "--engine",
        "single",
        "--lookback",
        "12",
        "--horizon",
    ]
    argv += ["4", "--units", "4", "--epochs", "1", "--transform", "none"]
    assert main([*argv, "--out", str(tmp_path / "m.lstmkit")]) == 0
    return tmp_path / "m.lstmkit", data


def test_ctrl_c_between_two_outputs_names_the_one_written(
    tmp_path, forecaster, monkeypatch, capsys
):
    """Ctrl-C arrives while ``predict`` writes its plot, after its CSV: the line names the CSV,
    the previous plot stays, and atomic_write removes its temporary file."""
    from lstmkit import saving

    model, data = forecaster
    csv_out, png_out = tmp_path / "f.csv", tmp_path / "f.png"
    argv = ["forecast", "predict", str(model), str(data), "--out", str(csv_out)]
    assert main(argv) == 0
    png_before = _state(png_out)
    capsys.readouterr()

    def interrupted_png(path, write_fn, suffix=".tmp"):
        def write_then_ctrl_c(tmp):
            write_fn(tmp)  # the temporary file is complete ...
            raise KeyboardInterrupt  # ... when Ctrl-C arrives, before the rename

        return _atomic.atomic_write(path, write_then_ctrl_c, suffix)

    monkeypatch.setattr(saving, "atomic_write", interrupted_png)
    listing = sorted(os.listdir(tmp_path))
    time.sleep(0.01)  # a rewrite of the CSV gets a new mtime even on coarse clocks
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.splitlines() == [f"lstmkit forecast: interrupted; wrote {csv_out}"], err
    assert _state(png_out) == png_before
    assert sorted(os.listdir(tmp_path)) == listing


def test_atomic_write_removes_its_temporary_file_on_ctrl_c(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    before = _state(target)

    def half(tmp):
        with open(tmp, "wb") as f:
            f.write(b"ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _atomic.atomic_write(target, half)
    assert _state(target) == before
    assert os.listdir(tmp_path) == ["t.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_gives_the_mode_the_umask_leaves_or_the_replaced_file_had(tmp_path, umask):
    """A writer that makes its file anew with 0o600 (safetensors' ``save_file`` does) still
    leaves the mode ``open`` would: 0o666 less the umask for a new file, the old file's mode
    when one is replaced. Witnessed against a file that ``open`` creates under the same umask."""

    def private(tmp):  # what safetensors does: a new file, mode 0o600
        os.unlink(tmp)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    old = os.umask(umask)
    try:
        plain = tmp_path / "plain"
        plain.write_bytes(b"")
        _atomic.atomic_write(tmp_path / "new.bin", private)
        replaced = tmp_path / "kept.bin"
        replaced.write_bytes(b"old")
        os.chmod(replaced, 0o640)
        _atomic.atomic_write(replaced, private)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.bin").st_mode) == stat.S_IMODE(
        os.stat(plain).st_mode
    )
    assert stat.S_IMODE(os.stat(replaced).st_mode) == 0o640
