"""``forecast predict`` on a small panel runs the NumPy reference instead of loading numba and
the compiled kernels (``apps.forecast_run.predict_scope``, ``ops.backend.reference_when_auto``).

Witnesses: the compiled path's forecasts (``LSTMKIT_BACKEND=numba`` in a fresh process: another
implementation of the cell) to float32 rounding; a fresh interpreter's ``sys.modules``; the
work bound recomputed by hand from the parameter shapes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from lstmkit.apps import forecast_run
from lstmkit.cli import main
from lstmkit.ops import backend

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = ["--horizon", "4", "--units", "8", "--epochs", "3", "--patience", "1", "--ensemble", "2"]

# `forecast predict` in a fresh process; then whether numba and the kernels were imported
PREDICT = """
import sys
from lstmkit.cli import main
assert main(sys.argv[1:]) == 0
print(sorted(m for m in ("numba", "lstmkit.ops.fast", "scipy.linalg") if m in sys.modules))
"""


def _panel(path, n_series=3, n=36):
    rng = np.random.default_rng(5)
    parts = []
    for k in range(n_series):
        t = np.arange(n + k)
        y = 20 + 3 * k + 4 * np.sin(2 * np.pi * t / 4) + rng.normal(0, 0.5, t.size)
        ds = pd.date_range("2010-01-01", periods=t.size, freq="QS").strftime("%Y-%m-%d")
        parts.append(pd.DataFrame({"unique_id": f"s{k}", "ds": ds, "y": y}))
    pd.concat(parts).to_csv(path, index=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    data, model = d / "p.csv", d / "m.lstmkit"
    _panel(data)
    argv = ["forecast", "train", str(data), "--out", str(model), "--no-evaluate", *FAST]
    assert main([*argv, "--level", "80"]) == 0
    return d, data, model


def _predict(d, data, model, name, *extra, **env):
    out = d / f"{name}.csv"
    argv = ["forecast", "predict", str(model), str(data), "--out", str(out), *extra]
    env = {k: v for k, v in os.environ.items() if k != "LSTMKIT_BACKEND"} | env
    env["PYTHONPATH"] = str(SRC)
    run = subprocess.run([sys.executable, "-c", PREDICT, *argv], env=env, check=False,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    return pd.read_csv(out), run.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("extra", [(), ("--holdout",)])
def test_a_small_panel_is_forecast_without_numba_as_the_compiled_kernels_do(files, extra):
    d, data, model = files
    small, loaded = _predict(d, data, model, "small", "--level", "80", *extra)
    # --holdout scores the anchors too: statsforecast imports numba (not lstmkit's kernels)
    assert loaded == ("['numba', 'scipy.linalg']" if extra else "[]")
    compiled, loaded_c = _predict(d, data, model, "compiled", "--level", "80", *extra,
                                  LSTMKIT_BACKEND="numba")  # fmt: skip
    assert "'numba'" in loaded_c
    assert list(small.columns) == list(compiled.columns)
    assert small["unique_id"].tolist() == compiled["unique_id"].tolist()
    for col in ("forecast", "lo-80", "hi-80"):
        a, b = small[col].to_numpy(), compiled[col].to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(b).max())


def test_a_backend_asked_for_by_name_stands(files):
    d, data, model = files
    _, loaded = _predict(d, data, model, "named", LSTMKIT_BACKEND="numba")
    assert "'lstmkit.ops.fast'" in loaded


def _model(lookbacks, shapes):
    params = {f"p{i}": np.zeros(s, np.float32) for i, s in enumerate(shapes)}
    members = [SimpleNamespace(lookback=L, model=SimpleNamespace(params=params)) for L in lookbacks]
    return SimpleNamespace(members=members)


def test_predict_work_counts_by_hand():
    """Members of lookback 4 and 8 on 3 series, parameters 4x128, 32x128 and 128: all
    multiply-adds at most 3 x (4 + 8) x 4736, the largest product at most 3 x 8 rows x 4096."""
    model = _model([4, 8], [(4, 128), (32, 128), (128,)])
    panel = SimpleNamespace(n_series=3)
    assert forecast_run.predict_work(model, panel) == (3 * 12 * 4736, 3 * 8 * 4096)


LSTM32 = [(4, 128), (32, 128), (128,)]  # arrivals' LSTM(32)
LSTM128 = [(4, 512), (128, 512), (512,)]  # --units 128


@pytest.mark.parametrize(
    ("n_series", "lookback", "shapes", "small"),
    [
        (4, 8, LSTM32, True),  # arrivals: 131072 multiply-adds in the largest product
        (7, 8, LSTM32, True),
        (8, 8, LSTM32, False),  # 2^18: OpenBLAS may thread it
        (20, 24, LSTM128, False),  # within SMALL_WORK, but 20 x 24 x 65536 a product
        (1, 10**5, LSTM32, False),  # a long lookback: 10^5 rows
    ],
)
def test_predict_scope_runs_the_reference_only_for_small_forecasts(n_series, lookback, shapes,
                                                                     small):  # fmt: skip
    model = _model([lookback], shapes)
    with forecast_run.predict_scope(model, SimpleNamespace(n_series=n_series)):
        inside = backend._AUTO_IS_REFERENCE.get()
    assert inside is small
    assert backend._AUTO_IS_REFERENCE.get() is False


def test_predict_scope_bounds_the_whole_work(monkeypatch):
    """Products each small, too many of them: ``SMALL_WORK`` decides."""
    model = _model([8] * 3, LSTM32)  # 3 members, 4 series: 3 x 32 x 4736 multiply-adds
    panel = SimpleNamespace(n_series=4)
    for bound, small in ((3 * 32 * 4736, True), (3 * 32 * 4736 - 1, False)):
        monkeypatch.setattr(forecast_run, "SMALL_WORK", bound)
        with forecast_run.predict_scope(model, panel):
            assert backend._AUTO_IS_REFERENCE.get() is small


def test_reference_when_auto_leaves_a_named_backend_and_other_threads(monkeypatch):
    """Inside: ``"auto"`` resolves to the reference; another thread keeps its ``"auto"``; a
    backend named inside the block stands, and stays named after it; an error leaves the scope
    too."""
    import threading

    monkeypatch.setattr(backend, "_choice", "auto")
    monkeypatch.setattr(backend, "_resolve_auto", lambda: "numba")  # what "auto" is elsewhere
    seen = {}
    with backend.reference_when_auto():
        assert backend.get_backend() == "numpy"
        t = threading.Thread(target=lambda: seen.update(other=backend.get_backend()))
        t.start()
        t.join()
        monkeypatch.setattr(backend, "_choice", "numba")  # as set_backend("numba") sets it
        assert backend.get_backend() == "numba"
    assert seen["other"] == "numba"
    assert backend._choice == "numba"  # not put back to "auto"
    monkeypatch.setattr(backend, "_choice", "auto")
    with pytest.raises(KeyError), backend.reference_when_auto():
        raise KeyError("inside")
    assert backend.get_backend() == "numba"
