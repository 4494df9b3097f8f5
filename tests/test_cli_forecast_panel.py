"""``lstmkit forecast train | predict | backtest | demo`` on panels (the global engine), through
``lstmkit.cli.main`` on small generated long-format files.

Witnesses: pandas (``date_range`` for the future dates, ``read_csv`` for the files written and the
held-out values), NumPy recomputations of the naive forecast's errors, PNG signatures, and
byte-for-byte copies of files a failing command must leave alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstmkit.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
H = 4
# a few epochs of a tiny model, one member: these tests are about the plumbing
FAST = ["--horizon", str(H), "--units", "4", "--epochs", "2", "--patience", "1"]
FAST += ["--ensemble", "1", "--batch-size", "32"]


def _frame(ids=("A", "B", "C"), n=40, start="2015-01-01", covariates=False, future_rows=0):
    rng = np.random.default_rng(3)
    parts = []
    for j, sid in enumerate(ids):
        m = n + 3 * j  # unequal lengths
        ds = pd.date_range(start, periods=m + future_rows, freq="MS")
        t = np.arange(m + future_rows)
        y = 50 + 10 * j + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, t.size)
        df = pd.DataFrame({"unique_id": sid, "ds": ds.strftime("%Y-%m-%d"), "y": y})
        if covariates:
            df["price"] = rng.normal(size=t.size)
            df["promo"] = (t % 3 == 0).astype(float)
            df.loc[m:, ["y", "price"]] = np.nan  # future rows: y and the past covariate unknown
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("panel")


@pytest.fixture(scope="module")
def panel_csv(work):
    path = work / "panel.csv"
    _frame().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def panel_model(work, panel_csv):
    path = work / "panel.lstmkit"
    argv = ["forecast", "train", str(panel_csv), *FAST, "--level", "80", "95"]
    assert main([*argv, "--out", str(path)]) == 0
    return path


def test_train_prints_the_held_out_table_beside_the_anchors(work, panel_csv, capsys):
    out = work / "t.lstmkit"
    argv = ["forecast", "train", str(panel_csv), *FAST, "--level", "80", "--out", str(out)]
    assert main(argv) == 0 and out.is_file()
    text = capsys.readouterr().out
    first = {line.split()[0] for line in text.splitlines() if line[:1].isalpha()}
    assert {"lstmkit", "naive", "seasonal_naive", "AutoETS", "AutoTheta"} <= first
    assert "coverage-80" in text and "MASE" in text and "sMAPE" in text


def test_predict_writes_each_series_with_its_real_future_dates(work, panel_model, panel_csv):
    out = work / "fc.csv"
    argv = ["forecast", "predict", str(panel_model), str(panel_csv), "--out", str(out)]
    assert main([*argv, "--level", "80", "95"]) == 0
    fc = pd.read_csv(out)
    assert list(fc.columns) == ["unique_id", "ds", "forecast", "lo-80", "hi-80", "lo-95", "hi-95"]
    data = pd.read_csv(panel_csv, parse_dates=["ds"])
    assert list(fc["unique_id"].unique()) == ["A", "B", "C"]
    for sid, rows in fc.groupby("unique_id"):
        last = data.loc[data["unique_id"] == sid, "ds"].max()
        want = pd.date_range(last, periods=H + 1, freq="MS")[1:]
        assert list(pd.to_datetime(rows["ds"])) == list(want)
    lo95, lo80, f, hi80, hi95 = (fc[c].to_numpy() for c in
                                 ("lo-95", "lo-80", "forecast", "hi-80", "hi-95"))  # fmt: skip
    assert np.isfinite(f).all()
    assert (lo95 <= lo80).all() and (lo80 <= f).all() and (f <= hi80).all() and (hi80 <= hi95).all()
    assert (hi95 > lo95).any()


def test_predict_plots_the_chosen_series(work, panel_model, panel_csv):
    out = work / "plots" / "fc.csv"
    argv = ["forecast", "predict", str(panel_model), str(panel_csv), "--out", str(out)]
    assert main([*argv, "--plot-ids", "A", "C"]) == 0
    assert (work / "plots" / "fc-A.png").read_bytes().startswith(PNG)
    assert (work / "plots" / "fc-C.png").read_bytes().startswith(PNG)
    assert not (work / "plots" / "fc-B.png").exists() and not (work / "plots" / "fc.png").exists()
    assert list(pd.read_csv(out).columns) == ["unique_id", "ds", "forecast"]


def test_an_unknown_plot_id_writes_nothing(work, panel_model, panel_csv, capsys):
    out = work / "none.csv"
    argv = ["forecast", "predict", str(panel_model), str(panel_csv), "--out", str(out)]
    assert main([*argv, "--plot-ids", "A", "Z"]) == 2
    err = capsys.readouterr().err
    assert "argument '--plot-ids' got ['Z']" in err
    assert not out.exists() and not (work / "none-A.png").exists()


def test_predict_refuses_a_level_the_model_was_not_trained_for(work, panel_model, panel_csv,
                                                               capsys):  # fmt: skip
    out = work / "l.csv"
    argv = ["forecast", "predict", str(panel_model), str(panel_csv), "--out", str(out)]
    assert main([*argv, "--level", "50"]) == 2
    assert "[50] not trained" in capsys.readouterr().err and not out.exists()


def test_predict_holdout_gives_the_held_out_values(work, panel_model, panel_csv, capsys):
    out = work / "ho.csv"
    argv = ["forecast", "predict", str(panel_model), str(panel_csv), "--out", str(out)]
    assert main([*argv, "--holdout"]) == 0
    fc = pd.read_csv(out)
    data = pd.read_csv(panel_csv)
    assert list(fc.columns) == ["unique_id", "ds", "forecast", "actual"]
    for sid, rows in fc.groupby("unique_id"):
        tail = data[data["unique_id"] == sid].tail(H)
        assert list(rows["ds"]) == list(tail["ds"])
        np.testing.assert_allclose(rows["actual"], tail["y"])
    assert "naive" in capsys.readouterr().out


def test_backtest_scores_each_window_and_the_naive_rows_match_numpy(work, panel_csv, capsys):
    out = work / "bt.csv"
    argv = ["forecast", "backtest", str(panel_csv), *FAST, "--windows", "2", "--level", "80"]
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for name in ("lstmkit", "naive", "seasonal_naive"):
        assert any(line.startswith(name + " ") for line in text.splitlines()), text
    for col in ("MAE", "RMSE", "MASE", "sMAPE", "coverage-80", "pinball-80"):
        assert col in text
    rows = pd.read_csv(out)
    assert sorted(rows["window"].unique()) == [0, 1]
    data = pd.read_csv(panel_csv)
    for w in (0, 1):  # the naive forecast's MAE, recomputed from the file
        y = data.loc[data["unique_id"] == "B", "y"].to_numpy()
        cut = len(y) - H - (1 - w) * H
        want = np.mean(np.abs(y[cut : cut + H] - y[cut - 1]))
        got = rows[(rows["window"] == w) & (rows["model"] == "naive") & (rows["unique_id"] == "B")]
        np.testing.assert_allclose(got["MAE"], [want], rtol=1e-9)


# -- a single series keeps today's columns ------------------------------------------------------
def test_a_single_series_file_keeps_its_columns(work, capsys):
    df = _frame(ids=("A",), n=48).drop(columns="unique_id").rename(columns={"ds": "month"})
    data = work / "single.csv"
    df.to_csv(data, index=False)
    model = work / "single.lstmkit"
    argv = ["forecast", "train", str(data), "--time-column", "month", *FAST, "--out", str(model)]
    assert main(argv) == 0
    out = work / "single_fc.csv"
    assert main(["forecast", "predict", str(model), str(data), "--out", str(out)]) == 0
    fc = pd.read_csv(out)
    assert list(fc.columns) == ["month", "forecast"]
    want = pd.date_range(df["month"].iloc[-1], periods=H + 1, freq="MS")[1:]
    assert list(pd.to_datetime(fc["month"])) == list(want)
    assert (work / "single_fc.png").read_bytes().startswith(PNG)
    out2 = work / "single_fc80.csv"
    assert main(["forecast", "predict", str(model), str(data), "--out", str(out2), "--level",
                 "80"]) == 0  # fmt: skip
    assert list(pd.read_csv(out2).columns) == ["month", "forecast", "lo-80", "hi-80"]


def test_a_single_column_without_dates_is_labelled_by_step(work):
    data = work / "plain.csv"
    y = 20 + 5 * np.sin(np.arange(60) / 2.0)
    pd.DataFrame({"y": y}).to_csv(data, index=False)
    model = work / "plain.lstmkit"
    assert main(["forecast", "train", str(data), *FAST, "--out", str(model)]) == 0
    out = work / "plain_fc.csv"
    assert main(["forecast", "predict", str(model), str(data), "--out", str(out)]) == 0
    fc = pd.read_csv(out)
    assert list(fc.columns) == ["step", "forecast"] and list(fc["step"]) == [60, 61, 62, 63]


# -- covariates ---------------------------------------------------------------------------------
def test_covariates_end_to_end(work, capsys):
    data = work / "cov.csv"
    _frame(covariates=True, future_rows=H).to_csv(data, index=False)
    model = work / "cov.lstmkit"
    cov = ["--past-covariates", "price", "--future-covariates", "promo"]
    assert main(["forecast", "train", str(data), *FAST, *cov, "--out", str(model)]) == 0
    out = work / "cov_fc.csv"
    assert main(["forecast", "predict", str(model), str(data), "--out", str(out)]) == 0
    fc = pd.read_csv(out)
    frame = pd.read_csv(data)
    for sid, rows in fc.groupby("unique_id"):  # the forecast dates are the file's future rows
        future = frame[(frame["unique_id"] == sid) & frame["y"].isna()]
        assert list(rows["ds"]) == list(future["ds"])
    # the future covariate missing in one future row: an error naming the series
    broken = frame.copy()
    broken.loc[broken.index[(broken["unique_id"] == "B") & broken["y"].isna()][1], "promo"] = np.nan
    bad = work / "cov_bad.csv"
    broken.to_csv(bad, index=False)
    out.write_text("old\n")
    assert main(["forecast", "predict", str(model), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'B'" in err and "promo" in err and out.read_text() == "old\n"


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "problem, extra, message",
    [
        ("duplicate date", [], "'B'"),
        ("no id column named", ["--id-column", "store"], "'store'"),
        ("missing value column", ["--column", "sales"], "'sales'"),
        ("inf value", [], "'C'"),
    ],
)
def test_bad_panels_exit_2_and_keep_the_old_model(work, capsys, problem, extra, message):
    df = _frame()
    if problem == "duplicate date":
        df = pd.concat([df, df[df["unique_id"] == "B"].iloc[[5]]])
    if problem == "inf value":
        df.loc[df.index[df["unique_id"] == "C"][7], "y"] = np.inf
    data = work / "bad.csv"
    df.to_csv(data, index=False)
    out = work / "old.lstmkit"
    out.write_bytes(b"the previous model")
    argv = ["forecast", "train", str(data), *FAST, *extra, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmkit forecast: error: ") and message in err, err
    assert out.read_bytes() == b"the previous model"


def test_single_engine_options_are_refused_with_the_global_engine(work, panel_csv, capsys):
    out = work / "x.lstmkit"
    argv = ["forecast", "train", str(panel_csv), *FAST, "--dropout", "0.1", "--out", str(out)]
    assert main(argv) == 2
    assert "'--dropout' applies to --engine single only" in capsys.readouterr().err
    assert not out.exists()


# -- demo ---------------------------------------------------------------------------------------
def test_demo_trains_on_the_packaged_panel_and_writes_model_forecasts_plots(
    tmp_path, monkeypatch, capsys
):
    from lstmkit.apps import forecast_global, forecast_run

    # the demo's own settings, made tiny (make demo and check-wheel.sh run the real one)
    tiny = {**forecast_run.DEMO_CHANGES, "ensemble": 1, "epochs": 2, "units": 4}
    monkeypatch.setattr(forecast_run, "DEMO_CHANGES", tiny)
    out = tmp_path / "demo"
    assert main(["forecast", "demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert {"lstmkit", "naive", "AutoETS", "AutoTheta"} <= {
        line.split()[0] for line in text.splitlines() if line[:1].isalpha()
    }
    fc = pd.read_csv(out / "forecast.csv")
    assert fc["unique_id"].nunique() == 181 and len(fc) == 181 * 6
    assert list(fc.columns) == ["unique_id", "ds", "forecast", "lo-80", "hi-80", "lo-95", "hi-95"]
    assert sorted(p.name for p in out.glob("forecast-*.png")) == [
        "forecast-T1.png", "forecast-T2.png", "forecast-T3.png"]  # fmt: skip
    model = forecast_global.GlobalForecaster.load(out / "model.lstmkit")
    assert model.horizon == 6 and len(model.members) == 1


def test_train_no_evaluate_skips_the_held_out_fit_and_saves_the_same_model(work, panel_csv,
                                                                           panel_model, capsys,
                                                                           monkeypatch):  # fmt: skip
    import lstmkit.apps.forecast_run as run

    def no_backtest(*a, **k):
        raise AssertionError("--no-evaluate must not run the held-out backtest")

    monkeypatch.setattr(run, "evaluate", no_backtest)
    out = work / "noeval.lstmkit"
    argv = ["forecast", "train", str(panel_csv), *FAST, "--level", "80", "95", "--no-evaluate"]
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "AutoETS" not in text and "held out" not in text
    # the flag changes nothing else: same forecasts as the model trained after the table
    fcs = []
    for model in (panel_model, out):
        path = work / f"fc-{model.stem}.csv"
        assert main(["forecast", "predict", str(model), str(panel_csv), "--out", str(path)]) == 0
        fcs.append(pd.read_csv(path))
    pd.testing.assert_frame_equal(fcs[0], fcs[1])


def test_no_evaluate_is_refused_by_the_single_engine(work, panel_csv, capsys):
    out = work / "single-noeval.lstmkit"
    argv = ["forecast", "train", str(panel_csv), "--engine", "single", "--column", "y",
            "--no-evaluate", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    assert "argument '--no-evaluate' applies to --engine global only" in capsys.readouterr().err
    assert not out.exists()


PREDICT_IMPORTS = """
import sys
from lstmkit.cli import main
assert main(sys.argv[1:]) == 0
heavy = ("pandas", "statsforecast", "matplotlib", "torch", "lstmkit.apps.text",
         "lstmkit.apps.translate", "lstmkit.apps.lab", "lstmkit.cli.text")
print(sorted(m for m in heavy if m in sys.modules))
"""


def test_forecast_predict_imports_neither_the_other_apps_nor_pandas(tmp_path):
    """``forecast predict`` without plots: only the forecast group's command module is imported
    (``build_parser(only=)``), and nothing of pandas, statsforecast, matplotlib or torch. The
    witness is a fresh interpreter's ``sys.modules``."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    data, model = tmp_path / "p.csv", tmp_path / "m.lstmkit"
    _frame().to_csv(data, index=False)
    assert main(["forecast", "train", str(data), "--out", str(model), "--no-evaluate", *FAST]) == 0
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "MPLBACKEND": "Agg"}
    argv = ["forecast", "predict", str(model), str(data), "--out", str(tmp_path / "f.csv")]
    out = subprocess.run([sys.executable, "-c", PREDICT_IMPORTS, *argv], env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out.splitlines()[-1] == "[]", out
