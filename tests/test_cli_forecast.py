"""``lstmkit forecast train | predict | demo`` through ``lstmkit.cli.main`` on small CSV files.

Witnesses: the CSV files written here (row counts, labels, held-out values read back with the
``csv`` module), PNG signatures, and byte-for-byte copies of files that a failing command must
leave alone.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.saving import load_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N, LOOKBACK, HORIZON = 100, 12, 4
# a few epochs of a small model: these tests are about the plumbing, not the accuracy
FAST = ["--lookback", str(LOOKBACK), "--horizon", str(HORIZON), "--units", "6", "--epochs", "3"]
FAST += ["--patience", "2", "--transform", "none", "--engine", "single"]  # one-series engine


def _series(n=N):
    rng = np.random.default_rng(7)
    t = np.arange(n)
    return 20 + 8 * np.sin(2 * np.pi * t / 12) + 0.05 * t + rng.normal(0, 0.5, n)


def _write(path, rows, header=("month", "note", "y")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture
def data_csv(tmp_path):
    # the value column is not the first one, and a text column sits next to it
    rows = [(2000 + i, "ok", repr(float(v))) for i, v in enumerate(_series())]
    return _write(tmp_path / "data.csv", rows)


@pytest.fixture
def model_file(tmp_path, data_csv, capsys):
    path = tmp_path / "model.lstmkit"
    argv = ["forecast", "train", str(data_csv), "--column", "y", "--time-column", "month"]
    assert main([*argv, *FAST, "--out", str(path)]) == 0
    capsys.readouterr()
    return path


def _table_rows(text):
    return {line.split()[0] for line in text.splitlines() if line[:1].isalpha()}


# ----------------------------------------------------------------------------- train


def test_train_saves_a_model_and_prints_the_table(tmp_path, data_csv, capsys):
    out = tmp_path / "m.lstmkit"
    argv = ["forecast", "train", str(data_csv), "--column", "y", "--season", "12", *FAST]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert {"lstm", "naive", "seasonal_naive(m=12)"} <= _table_rows(text)
    assert "season: 12 (given)" in text and "MASE" in text
    meta = load_model(out).metadata
    assert meta["column"] == "y" and meta["season"] == 12 and meta["transform"] == "none"
    assert (meta["lookback"], meta["horizon"]) == (LOOKBACK, HORIZON)


# ----------------------------------------------------------------------------- predict


def test_predict_writes_the_next_horizon_steps_and_a_plot(tmp_path, model_file, data_csv):
    out = tmp_path / "fc.csv"
    # no --column and no --time-column: both come from the model's metadata
    assert main(["forecast", "predict", str(model_file), str(data_csv), "--out", str(out)]) == 0
    header, rows = _read(out)
    assert header == ["month", "forecast"]
    assert [r[0] for r in rows] == [str(2000 + N + k) for k in range(HORIZON)]
    assert all(math.isfinite(float(r[1])) for r in rows)
    assert (tmp_path / "fc.png").read_bytes().startswith(PNG_SIGNATURE)


def test_predict_holdout_backtests_the_last_horizon(tmp_path, model_file, data_csv, capsys):
    out, plot = tmp_path / "bt.csv", tmp_path / "plots" / "bt-plot.png"
    argv = ["forecast", "predict", str(model_file), str(data_csv), "--holdout"]
    assert main([*argv, "--out", str(out), "--plot", str(plot)]) == 0
    header, rows = _read(out)
    assert header == ["month", "forecast", "actual"] and len(rows) == HORIZON
    _, data_rows = _read(data_csv)
    assert [(r[0], float(r[2])) for r in rows] == [(d[0], float(d[2])) for d in data_rows[-4:]]
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    assert not (tmp_path / "bt.png").exists()
    text = capsys.readouterr().out
    assert {"lstm", "naive"} <= _table_rows(text) and "MAE" in text and "RMSE" in text


def test_predict_without_time_column_labels_steps(tmp_path, model_file):
    rows = [(repr(float(v)),) for v in _series(40)]
    data = _write(tmp_path / "plain.csv", rows, header=("y",))
    out = tmp_path / "plain_fc.csv"
    assert main(["forecast", "predict", str(model_file), str(data), "--out", str(out)]) == 0
    header, rows = _read(out)
    assert header == ["step", "forecast"] and [r[0] for r in rows] == ["40", "41", "42", "43"]


# ----------------------------------------------------------------------------- problems


def _bad_csvs(tmp_path):
    ys = [repr(float(v)) for v in _series()]
    text = list(ys)
    text[30] = "twelve"
    gap = list(ys)
    gap[50] = ""
    return {
        "missing column": (_write(tmp_path / "a.csv", [(1, "x", y) for y in ys]), ["--column", "z"],
                           "names no column"),
        "non-numeric cell": (_write(tmp_path / "b.csv", [(1, "x", y) for y in text]), [],
                             "'twelve' on line 32"),
        "too few rows": (_write(tmp_path / "c.csv", [(1, "x", y) for y in ys[:20]]), [],
                         "too few rows: got 20"),
        "NaN gap": (_write(tmp_path / "d.csv", [(1, "x", y) for y in gap]), [],
                    "1 missing value(s): got '' on line 52"),
        "no such file": (tmp_path / "nope.csv", [], "does not exist"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "problem", ["missing column", "non-numeric cell", "too few rows", "NaN gap", "no such file"]
)
def test_train_csv_problems_exit_2_and_keep_the_old_model(tmp_path, problem, capsys):
    path, extra, message = _bad_csvs(tmp_path)[problem]
    out = tmp_path / "old.lstmkit"
    out.write_bytes(b"the previous model")
    argv = ["forecast", "train", str(path), "--column", "y", *FAST, *extra, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmkit forecast: error: ") and message in err
    assert out.read_bytes() == b"the previous model"


@pytest.mark.parametrize(
    "problem", ["missing column", "non-numeric cell", "too few rows", "NaN gap", "no such file"]
)
def test_predict_csv_problems_exit_2_and_keep_old_outputs(tmp_path, model_file, problem, capsys):
    path, extra, message = _bad_csvs(tmp_path)[problem]
    if problem == "too few rows":
        message = "at least lookback=12 values"  # 20 rows are enough to read, not to forecast
        path = _write(tmp_path / "c.csv", [(1, "x", float(y)) for y in _series(10)])
    out, plot = tmp_path / "fc.csv", tmp_path / "fc.png"
    out.write_text("old forecast\n")
    plot.write_bytes(b"old plot")
    argv = ["forecast", "predict", str(model_file), str(path), *extra, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmkit forecast: error: ") and message in err
    assert out.read_text() == "old forecast\n" and plot.read_bytes() == b"old plot"


def test_fill_interpolate_accepts_interior_gaps(tmp_path, capsys):
    path, _, _ = _bad_csvs(tmp_path)["NaN gap"]
    out = tmp_path / "m.lstmkit"
    argv = ["forecast", "train", str(path), "--column", "y", *FAST, "--fill", "interpolate"]
    assert main([*argv, "--out", str(out)]) == 0
    assert out.exists()


def test_predict_with_a_file_that_is_not_a_model(tmp_path, data_csv, capsys):
    out = tmp_path / "fc.csv"
    assert main(["forecast", "predict", str(data_csv), str(data_csv), "--out", str(out)]) == 2
    assert "load_model" in capsys.readouterr().err and not out.exists()


# ----------------------------------------------------------------------------- demo


# the demo (the M1 panel on the global engine) is tested in test_cli_forecast_panel.py


def test_predict_with_a_model_that_is_not_a_forecaster(tmp_path, data_csv, capsys):
    from lstmkit import LSTM, Dense, Sequential

    path = tmp_path / "other.lstmkit"
    Sequential([LSTM(2, input_shape=(3, 1)), Dense(1)]).save(path)
    out = tmp_path / "fc.csv"
    assert main(["forecast", "predict", str(path), str(data_csv), "--out", str(out)]) == 2
    assert "is not a forecaster" in capsys.readouterr().err and not out.exists()


def test_a_single_engine_model_file_refuses_the_panel_options(tmp_path, model_file, data_csv,
                                                              capsys):  # fmt: skip
    out = tmp_path / "fc.csv"
    argv = ["forecast", "predict", str(model_file), str(data_csv), "--out", str(out)]
    assert main([*argv, "--level", "80"]) == 2
    assert "is a single-series model file (--engine single)" in capsys.readouterr().err
    assert not out.exists()
