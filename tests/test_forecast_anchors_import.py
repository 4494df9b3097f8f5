"""The anchors import ``statsforecast.models`` without ``statsmodels.api`` (a stand-in during
that import: ``forecast_anchors._import_models``), and forecast exactly as with the plain import.

Witnesses: fresh interpreters, one doing the plain import first (``import
statsforecast.models``), their forecasts compared bit for bit; their ``sys.modules``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("statsforecast")

SRC = Path(__file__).resolve().parents[1] / "src"

RUN = r"""
import sys, types
import numpy as np
mode, out = sys.argv[1:3]
if mode == "plain":
    import statsforecast.models  # what lstmkit did before: statsmodels.api imported with it
if mode == "other_version":
    import importlib.metadata as md
    version = md.version
    md.version = lambda d: "9.0.0" if d == "statsforecast" else version(d)
from lstmkit.apps.forecast_anchors import anchor_forecasts
from lstmkit.apps.panel import Panel

rng = np.random.default_rng(7)
lengths = [30, 34, 28]
t = np.concatenate([np.arange(n) for n in lengths])
values = 40 + 6 * np.sin(2 * np.pi * t / 4) + 0.3 * t + rng.normal(0, 1, t.size)
offsets = np.concatenate([[0], np.cumsum(lengths)])
panel = Panel(values, offsets, np.array(["a", "b", "c"]), season=4)
names = ("AutoARIMA",) if mode == "arima" else ("naive", "seasonal_naive", "AutoETS", "AutoTheta")
res = anchor_forecasts(panel, 4, models=names, levels=(80, 95))
arrays = {}
for name, (point, intervals) in res.items():
    arrays[name] = point
    for level, (lo, hi) in intervals.items():
        arrays[f"{name}-lo-{level}"], arrays[f"{name}-hi-{level}"] = lo, hi
loaded = "statsmodels.api" in sys.modules
if mode == "arima_after":  # AutoARIMA in the process that imported the models without it
    (point, intervals), = anchor_forecasts(panel, 4, models=("AutoARIMA",), levels=(80, 95)).values()
    arrays["AutoARIMA"] = point
    for level, (lo, hi) in intervals.items():
        arrays[f"AutoARIMA-lo-{level}"], arrays[f"AutoARIMA-hi-{level}"] = lo, hi
    import statsmodels.api as sm
    import statsforecast.arima as arima
    assert type(sys.modules["statsmodels.api"]) is types.ModuleType and sm.__file__
    assert arima.sm.OLS is sm.OLS
np.savez(out, **arrays)
print(loaded)
"""


def _run(tmp_path, mode):
    out = tmp_path / f"{mode}.npz"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    run = subprocess.run([sys.executable, "-W", "ignore", "-c", RUN, mode, str(out)], env=env,
                         check=False, capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr
    with np.load(out) as f:
        return {k: f[k] for k in f.files}, run.stdout.strip().splitlines()[-1]


def _same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_the_anchors_forecast_as_with_the_plain_import_without_statsmodels_api(tmp_path):
    plain, plain_loaded = _run(tmp_path, "plain")
    deferred, deferred_loaded = _run(tmp_path, "deferred")
    assert (plain_loaded, deferred_loaded) == ("True", "False")
    assert {"AutoETS", "AutoTheta", "AutoETS-lo-80", "AutoTheta-hi-95"} <= set(deferred)
    _same(plain, deferred)


def test_autoarima_works_asked_first_and_after_the_import_without_statsmodels_api(tmp_path):
    arima, loaded = _run(tmp_path, "arima")
    assert loaded == "True"  # asked for: the plain import
    after, _ = _run(tmp_path, "arima_after")
    assert np.isfinite(arima["AutoARIMA"]).all()
    _same(arima, {k: v for k, v in after.items() if k.startswith("AutoARIMA")})


def test_another_statsforecast_version_takes_the_plain_import(tmp_path):
    other, loaded = _run(tmp_path, "other_version")
    assert loaded == "True"
    plain, _ = _run(tmp_path, "plain")
    _same(plain, other)
