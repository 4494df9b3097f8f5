"""``lstmkit forecast predict`` against the Python API, with the data read independently.

Witnesses: the input CSV read back with the ``csv`` module (not the library's reader), the saved
model loaded with ``load_model`` and asked through ``lstmkit.apps.forecast.forecast``, and the
written CSV parsed by its header names. Each comparison also checks that the nearest wrong
answer (the series one row short, the actual values) differs, so that it is not vacuous.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from lstmkit.apps.forecast import forecast, train_forecaster
from lstmkit.cli import main
from lstmkit.saving import load_model

N, LOOKBACK, HORIZON = 96, 12, 4
# the written CSV holds floats with repr; allow a formatting of about 10 significant digits
RTOL = 1e-9


def _series(n=N):
    rng = np.random.default_rng(11)
    t = np.arange(n)
    return 30 + 9 * np.sin(2 * np.pi * t / 12) + 0.1 * t + rng.normal(0, 0.8, n)


def _read_columns(path):
    """{header: [cells]} of a CSV file, read with the csv module."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {name: [r[k] for r in body] for k, name in enumerate(header)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A CSV series (a label column, a text column, the value column) and a model trained on it
    through the API, saved to a file."""
    d = tmp_path_factory.mktemp("fc")
    data = d / "series.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["month", "note", "y"])
        w.writerows((2000 + i, "ok", repr(float(v))) for i, v in enumerate(_series()))
    report = train_forecaster(
        _series(),
        lookback=LOOKBACK,
        horizon=HORIZON,
        units=6,
        epochs=4,
        patience=2,
        transform="none",
        column="y",
        time_column="month",
        seed=1,
    )
    model = d / "model.lstmkit"
    report.model.save(model)
    return data, model


def _series_from_file(path):
    cols = _read_columns(path)
    return cols["month"], np.array([float(v) for v in cols["y"]])


def test_cli_forecast_equals_the_api_forecast_from_the_full_series(files, tmp_path, capsys):
    data, model_path = files
    out = tmp_path / "forecast.csv"
    assert main(["forecast", "predict", str(model_path), str(data), "--out", str(out)]) == 0
    capsys.readouterr()
    _, values = _series_from_file(data)
    model = load_model(model_path)
    api = forecast(model, values)
    cli = np.array([float(v) for v in _read_columns(out)["forecast"]])
    assert cli.shape == (HORIZON,)
    np.testing.assert_allclose(cli, api, rtol=RTOL, atol=0)
    # not vacuous: the forecast from the series one row short is a different one
    assert not np.allclose(cli, forecast(model, values[:-1]), rtol=1e-4)


def test_cli_holdout_columns_are_the_actuals_and_the_api_forecast_without_them(
    files, tmp_path, capsys
):
    data, model_path = files
    out = tmp_path / "backtest.csv"
    argv = ["forecast", "predict", str(model_path), str(data), "--holdout", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    labels, values = _series_from_file(data)
    cols = _read_columns(out)
    actual = np.array([float(v) for v in cols["actual"]])
    fc = np.array([float(v) for v in cols["forecast"]])
    # the actual column: the last horizon rows of the file, with their labels
    np.testing.assert_array_equal(actual, values[-HORIZON:])
    assert cols["month"] == labels[-HORIZON:]
    # the forecast column: the API's forecast from the rows before them
    expected = forecast(load_model(model_path), values[:-HORIZON])
    np.testing.assert_allclose(fc, expected, rtol=RTOL, atol=0)
    assert np.abs(fc - actual).min() > 1e-6  # forecasts, not the actuals again
