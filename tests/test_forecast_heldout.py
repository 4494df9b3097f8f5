"""``forecast train``'s held-out fit in a child process beside the saved fit
(``lstmkit.apps.forecast_heldout``, ``forecast_run.evaluate_and_fit``, ``--jobs``).

Witnesses: the held-out window fitted and scored in this process on one thread (``fit_global``,
``anchor_forecasts``, ``series_metrics`` on ``rolling_origins``'s window: not the backtest
loop); the panel's own fields after the trip through ``.npz``; ``--jobs 1``'s table and model
(every fit on one thread); the child's exit status and the model file a failed child leaves.
The Ctrl-C test with ``--jobs 2`` is in ``test_forecast_child.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lstmkit.apps import forecast_heldout
from lstmkit.apps.forecast_anchors import anchor_forecasts
from lstmkit.apps.forecast_backtest import rolling_origins
from lstmkit.apps.forecast_config import ForecastConfig
from lstmkit.apps.forecast_global import GlobalForecaster, fit_global
from lstmkit.apps.forecast_metrics import naive_scales, series_metrics
from lstmkit.apps.panel_io import read_panel
from lstmkit.cli import main

H = 4
TINY = ForecastConfig(horizon=H, units=8, epochs=4, patience=2, ensemble=2, batch_size=32,
                      levels=(80,))  # fmt: skip
ANCHORS = ("naive", "seasonal_naive")
FAST = ["--horizon", str(H), "--units", "4", "--epochs", "2", "--patience", "1",
        "--ensemble", "1", "--batch-size", "32", "--level", "80"]  # fmt: skip


def _frame(n=40, covariates=False, future_rows=0):
    rng = np.random.default_rng(7)
    parts = []
    for j, sid in enumerate(("A", "B", "C")):
        m = n + 3 * j  # unequal lengths
        ds = pd.date_range("2015-01-01", periods=m + future_rows, freq="MS")
        t = np.arange(m + future_rows)
        y = 50 + 10 * j + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, t.size).cumsum()
        df = pd.DataFrame({"unique_id": sid, "ds": ds.strftime("%Y-%m-%d"), "y": y})
        if covariates:
            df["price"] = rng.normal(size=t.size)
            df["promo"] = (t % 3 == 0).astype(float)
            df.loc[m:, ["y", "price"]] = np.nan  # future rows
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def cov_panel(tmp_path_factory):
    path = tmp_path_factory.mktemp("heldout") / "cov.csv"
    _frame(covariates=True, future_rows=H).to_csv(path, index=False)
    return read_panel(path, past_covariates=("price",), future_covariates=("promo",), horizon=H)


def test_a_panel_crosses_to_the_child_whole_and_unpickled(cov_panel, tmp_path):
    # the window's training panel: dates, both covariates and the held-out future rows
    train = rolling_origins(cov_panel, H, 1)[0].train
    assert train.future_ahead is not None and train.times is not None and train.freq == "MS"
    path = tmp_path / "p.npz"
    np.savez(path, **forecast_heldout.panel_arrays(train))
    with np.load(path, allow_pickle=False) as z:
        back = forecast_heldout.panel_of(z)
    for name in ("values", "offsets", "ids", "times", "past", "future", "future_ahead"):
        want, got = getattr(train, name), getattr(back, name)
        assert got.dtype == want.dtype or name == "ids", name
        np.testing.assert_array_equal(got, want, err_msg=name)
    for name in ("freq", "season", "past_names", "future_names", "notes"):
        assert getattr(back, name) == getattr(train, name), name


def _in_process(panel, config):
    """The held-out window fitted and scored here, on one thread: ``{(model, id): metrics}``."""
    window = rolling_origins(panel, H, 1)[0]
    train, levels = window.train, config.levels
    with forecast_heldout.one_thread():
        model = fit_global(train, config.replace(horizon=H))
    fc = {"lstmkit": model.predict(train, H, levels)}
    fc.update(anchor_forecasts(train, H, models=ANCHORS, levels=levels))
    scale = naive_scales(train)
    out = {}
    for name, (point, intervals) in fc.items():
        m = series_metrics(window.target, point, scale=scale, intervals=intervals)
        for k, sid in enumerate(train.ids):
            out[name, str(sid)] = {key: float(v[k]) for key, v in m.items()}
    return out


def _child(panel, config):
    with forecast_heldout.heldout_apart(panel, config, anchors=ANCHORS) as collect:
        h, result = collect()
    assert collect.process.returncode == 0 and h == H, result.notes
    return {(r["model"], r["unique_id"]): {k: v for k, v in r.items()
            if k not in ("window", "unique_id", "model")} for r in result.rows}  # fmt: skip


def test_the_child_table_is_the_one_fitted_in_this_process(cov_panel):
    config = TINY.replace(past_covariates=("price",), future_covariates=("promo",))
    want, got = _in_process(cov_panel, config), _child(cov_panel, config)
    assert sorted(got) == sorted(want) and len(want) == 3 * 3
    for key in want:  # bit for bit: same settings, same data, one thread on both sides
        assert got[key] == want[key], key
    # the comparison sees a child that trained otherwise (another seed): the planted difference
    other = _child(cov_panel, config.replace(seed=1))
    assert other["lstmkit", "A"] != want["lstmkit", "A"]
    assert other["naive", "A"] == want["naive", "A"]


# -- through the CLI ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("heldout_cli") / "panel.csv"
    _frame().to_csv(path, index=False)
    return path


def _train(panel_csv, out, jobs, capsys):
    capsys.readouterr()
    argv = ["forecast", "train", str(panel_csv), *FAST, "--jobs", str(jobs), "--out", str(out)]
    assert main(argv) == 0
    return capsys.readouterr().out


def _table(text):
    lines = text.splitlines()
    start = next(i for i, s in enumerate(lines) if s.startswith("held out"))
    end = next(i for i, s in enumerate(lines) if s.startswith("saved model"))
    return lines[start:end]


def test_jobs_2_prints_the_table_and_saves_the_model_of_jobs_1(panel_csv, tmp_path, capsys,
                                                               monkeypatch):  # fmt: skip
    monkeypatch.setenv("LSTMKIT_NUM_THREADS", "1")  # every fit on one thread, as the child's
    seen = []  # the command lines of the child processes started (the anchors' one too)
    popen = subprocess.Popen

    def spy(*a, **k):
        seen.append(a[0][:3])
        return popen(*a, **k)

    monkeypatch.setattr(subprocess, "Popen", spy)  # (the module every child starts through)
    texts, forecasts, started = {}, {}, {}
    for jobs in (1, 2):
        out = tmp_path / f"m{jobs}.lstmkit"
        texts[jobs] = _train(panel_csv, out, jobs, capsys)
        started[jobs] = [cmd for cmd in seen if cmd == list(forecast_heldout.CHILD)]
        seen.clear()
        model = GlobalForecaster.load(out)
        forecasts[jobs] = model.predict(read_panel(panel_csv), levels=(80,))
    assert len(started[1]) == 0 and len(started[2]) == 1
    assert _table(texts[2]) == _table(texts[1]) and "lstmkit " in texts[2]
    np.testing.assert_array_equal(forecasts[2][0], forecasts[1][0])
    np.testing.assert_array_equal(forecasts[2][1][80][0], forecasts[1][1][80][0])


def test_a_failed_child_loses_only_the_table(panel_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        forecast_heldout, "CHILD", (sys.executable, "-c", "raise SystemExit('boom')")
    )
    out = tmp_path / "m.lstmkit"
    out.write_bytes(b"the previous model")
    text = _train(panel_csv, out, 2, capsys)
    assert "the held-out table is left out: its process ended with status 1: boom" in text
    assert "MASE" not in text and "saved model (1 members)" in text
    point, _ = GlobalForecaster.load(out).predict(read_panel(panel_csv))
    assert point.shape == (3, H) and np.isfinite(point).all()


def test_jobs_is_refused_by_the_single_engine(panel_csv, tmp_path, capsys):
    out = tmp_path / "s.lstmkit"
    argv = ["forecast", "train", str(panel_csv), "--engine", "single", "--column", "y",
            "--jobs", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    assert "argument '--jobs' applies to --engine global only" in capsys.readouterr().err
    assert not out.exists()


def test_child_path_puts_a_source_tree_first_but_never_site_packages(monkeypatch, tmp_path):
    """The child runs its parent's lstmkit: a source tree goes first on PYTHONPATH; an installed
    lstmkit is found by the same interpreter anyway, and site-packages on PYTHONPATH would come
    before the standard library (a backport there would shadow it)."""
    from lstmkit.apps import forecast_heldout as fh

    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    tree = tmp_path / "src"
    monkeypatch.setattr(fh, "__file__", str(tree / "lstmkit" / "apps" / "forecast_heldout.py"))
    env = fh.child_env()
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tree.resolve()), "/elsewhere"]
    assert env["LSTMKIT_NUM_THREADS"] == "1"
    site = tmp_path / "lib" / "site-packages"
    monkeypatch.setattr(fh, "__file__", str(site / "lstmkit" / "apps" / "forecast_heldout.py"))
    assert fh.child_env()["PYTHONPATH"] == "/elsewhere"
