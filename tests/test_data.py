"""lstmkit.data: windows, splits, scalers, CSV I/O, built-in series, seasonality, baselines.

Witnesses: hand-built arrays, plain Python loops written independently of the vectorised code,
statsmodels (the source of the built-in series and of an ACF implementation), and round trips.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit.data import (
    DataFileNotFoundError,
    MinMaxScaler,
    StandardScaler,
    acf,
    builtin_path,
    chronological_split,
    detect_season,
    list_builtin,
    list_builtin_panels,
    load_panel,
    load_series,
    mae,
    make_windows,
    mase,
    naive_forecast,
    read_series_csv,
    rmse,
    seasonal_naive_forecast,
    write_csv_atomic,
)

# --------------------------------------------------------------------------- windows


def test_make_windows_hand_built_1d():
    series = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    X, Y = make_windows(series, lookback=3, horizon=2)
    # n = 7 - 3 - 2 + 1 = 3 windows
    expected_X = np.array([[1, 2, 3], [2, 3, 4], [3, 4, 5]], dtype=float)[:, :, None]
    expected_Y = np.array([[4, 5], [5, 6], [6, 7]], dtype=float)
    assert X.shape == (3, 3, 1) and Y.shape == (3, 2)
    np.testing.assert_array_equal(X, expected_X)
    np.testing.assert_array_equal(Y, expected_Y)


def test_make_windows_hand_built_2d_and_target():
    # feature 0 = 10, 20, ..., feature 1 = 1, 2, ...
    series = np.array([[10, 1], [20, 2], [30, 3], [40, 4], [50, 5]], dtype=float)
    X, Y = make_windows(series, lookback=2, horizon=1)
    assert X.shape == (3, 2, 2) and Y.shape == (3, 1)
    np.testing.assert_array_equal(X[0], [[10, 1], [20, 2]])
    np.testing.assert_array_equal(X[2], [[30, 3], [40, 4]])
    np.testing.assert_array_equal(Y[:, 0], [30, 40, 50])
    _, Y1 = make_windows(series, lookback=2, horizon=1, target=1)
    np.testing.assert_array_equal(Y1[:, 0], [3, 4, 5])


def test_make_windows_returns_fresh_writable_arrays():
    series = np.arange(10.0)
    X, Y = make_windows(series, 3, 2)
    X[0, 0, 0] = -1.0
    Y[0, 0] = -1.0
    assert series[0] == 0.0 and series[3] == 3.0
    assert X.flags.c_contiguous and Y.flags.c_contiguous


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 30),
    f=st.integers(1, 3),
    lookback=st.integers(1, 10),
    horizon=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_make_windows_matches_plain_loop(n, f, lookback, horizon, seed):
    series = np.random.default_rng(seed).normal(size=(n, f))
    if n < lookback + horizon:
        with pytest.raises(ValueError, match="argument 'series' is too short"):
            make_windows(series, lookback, horizon)
        return
    X, Y = make_windows(series, lookback, horizon)
    xs, ys = [], []
    start = 0
    while start + lookback + horizon <= n:  # independent restatement of the definition
        xs.append([list(series[start + j]) for j in range(lookback)])
        ys.append([series[start + lookback + j][0] for j in range(horizon)])
        start += 1
    np.testing.assert_array_equal(X, np.array(xs))
    np.testing.assert_array_equal(Y, np.array(ys))


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"series": np.arange(10.0), "lookback": 0, "horizon": 1}, "lookback"),
        ({"series": np.arange(10.0), "lookback": 2, "horizon": True}, "horizon"),
        ({"series": np.arange(10.0), "lookback": 2.0, "horizon": 1}, "lookback"),
        ({"series": np.zeros((4, 2, 2)), "lookback": 1, "horizon": 1}, "series"),
        ({"series": np.array([1.0, np.nan, 3.0, 4.0]), "lookback": 1, "horizon": 1}, "series"),
        ({"series": np.array(["a", "b", "c"]), "lookback": 1, "horizon": 1}, "series"),
        ({"series": np.arange(5.0), "lookback": 3, "horizon": 3}, "series"),
        ({"series": np.zeros((6, 2)), "lookback": 2, "horizon": 1, "target": 2}, "target"),
        ({"series": np.zeros((6, 2)), "lookback": 2, "horizon": 1, "target": 1.0}, "target"),
    ],
)
def test_make_windows_errors_name_the_argument(kwargs, arg):
    with pytest.raises(ValueError, match=f"make_windows: argument '{arg}'"):
        make_windows(**kwargs)


# --------------------------------------------------------------------------- split and scalers


def test_chronological_split_default_sizes():
    train, val, test = chronological_split(100)
    assert (train, val, test) == (range(70), range(70, 85), range(85, 100))


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(3, 5000),
    a=st.floats(0.05, 0.9),
    b=st.floats(0.0, 0.5),
)
def test_chronological_split_never_leaks(n, a, b):
    b = min(b, 1.0 - a)
    fractions = (a, b, 1.0 - a - b)
    try:
        split = chronological_split(n, fractions)
    except ValueError as e:
        assert "argument 'n' is too small" in str(e)
        return
    train, val, test = split
    # consecutive, disjoint, covering, in time order: train before val before test
    assert train.start == 0 and train.stop == val.start and val.stop == test.start
    assert test.stop == n and len(train) >= 1
    if len(val) and len(train):
        assert max(train) < min(val)
    if len(test) and len(val):
        assert max(val) < min(test)
    assert len(train) + len(val) + len(test) == n
    assert abs(len(train) - n * fractions[0]) <= 1


@pytest.mark.parametrize(
    "n, fractions, arg",
    [
        (100, (0.7, 0.2, 0.2), "fractions"),
        (100, (0.0, 0.5, 0.5), "fractions"),
        (100, (0.5, 0.5), "fractions"),
        (100, (0.7, -0.1, 0.4), "fractions"),
        (2, (0.7, 0.15, 0.15), "n"),
        (0, (0.7, 0.15, 0.15), "n"),
    ],
)
def test_chronological_split_errors(n, fractions, arg):
    with pytest.raises(ValueError, match=f"chronological_split: argument '{arg}'"):
        chronological_split(n, fractions)


def test_scaler_fitted_on_train_only():
    # The test period holds values far outside the training range: if the scaler had seen them,
    # the training part would not span [0, 1] and the test part would not exceed 1.
    series = np.concatenate([np.linspace(0.0, 10.0, 70), np.full(15, 5.0), np.full(15, 100.0)])
    train, _, test = chronological_split(series.size)
    scaler = MinMaxScaler().fit(series[train])
    assert scaler.get_config()["data_min"] == [0.0] and scaler.get_config()["data_max"] == [10.0]
    scaled = scaler.transform(series)
    assert scaled[train].min() == 0.0 and scaled[train].max() == 1.0
    np.testing.assert_allclose(scaled[test], 10.0)
    std = StandardScaler().fit(series[train])
    assert std.get_config()["mean"] == [pytest.approx(5.0)]
    assert std.get_config()["scale"] == [pytest.approx(float(np.std(np.linspace(0, 10, 70))))]


@pytest.mark.parametrize("cls", [MinMaxScaler, StandardScaler])
@pytest.mark.parametrize("shape", [(50,), (50, 1), (50, 3)])
def test_scaler_round_trip_and_json_config(cls, shape):
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 7.0, size=shape)
    scaler = cls().fit(x)
    z = scaler.transform(x)
    assert z.shape == x.shape
    np.testing.assert_allclose(scaler.inverse_transform(z), x, rtol=0, atol=1e-12)
    # The config is plain JSON; the restored scaler gives bit-identical results.
    config = json.loads(json.dumps(scaler.get_config()))
    restored = cls.from_config(config)
    np.testing.assert_array_equal(restored.transform(x), z)
    np.testing.assert_array_equal(restored.inverse_transform(z), scaler.inverse_transform(z))


def test_scaler_textbook_formulas():
    x = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    z = MinMaxScaler(feature_range=(-1, 1)).fit(x).transform(x)
    np.testing.assert_allclose(z, [[-1, -1], [0, 1], [1, 0]])
    z = StandardScaler().fit(x).transform(x)
    sd0 = math.sqrt(((1 - 3) ** 2 + 0 + (5 - 3) ** 2) / 3)
    np.testing.assert_allclose(z[:, 0], [(1 - 3) / sd0, 0, (5 - 3) / sd0])


def test_scaler_windows_and_target_inverse():
    # Scale (N, F), window it, and map forecasts of feature 0 back with feature=0.
    rng = np.random.default_rng(2)
    series = np.column_stack([rng.normal(100, 10, 40), rng.normal(0, 1, 40)])
    scaler = StandardScaler().fit(series[:30])
    X, Y = make_windows(scaler.transform(series), lookback=5, horizon=3)
    np.testing.assert_allclose(scaler.inverse_transform(X), make_windows(series, 5, 3)[0])
    np.testing.assert_allclose(
        scaler.inverse_transform(Y, feature=0), make_windows(series, 5, 3)[1]
    )


def test_scaler_constant_feature_and_errors():
    x = np.column_stack([np.full(5, 4.0), np.arange(5.0)])
    z = MinMaxScaler().fit(x).transform(x)
    np.testing.assert_array_equal(z[:, 0], 0.0)
    assert np.all(np.isfinite(StandardScaler().fit(x).transform(x)))
    with pytest.raises(RuntimeError, match="not fitted"):
        MinMaxScaler().transform(x)
    with pytest.raises(ValueError, match="argument 'x'"):
        MinMaxScaler().fit(x).transform(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="argument 'feature_range'"):
        MinMaxScaler(feature_range=(1, 0))
    with pytest.raises(ValueError, match="argument 'x'"):
        StandardScaler().fit([1.0, np.nan])
    with pytest.raises(ValueError, match="argument 'scale'"):
        StandardScaler(mean=[0.0], scale=[0.0])


# --------------------------------------------------------------------------- CSV


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_series_csv_reads_values_and_index(tmp_path):
    p = _write(
        tmp_path / "s.csv", "\ufeffdate, value ,other\n2020,1.5,x\n\n2021,-2,y\n2022,3e2,z\n"
    )
    values, index = read_series_csv(p, "value", time_column="date")
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [1.5, -2.0, 300.0])
    assert index == ["2020", "2021", "2022"]
    _, index = read_series_csv(p, "value")
    assert index == ["0", "1", "2"]


def test_read_series_csv_missing_file(tmp_path):
    with pytest.raises(ValueError, match="read_series_csv: argument 'path'.*does not exist") as e:
        read_series_csv(tmp_path / "nope.csv", "value")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, DataFileNotFoundError)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_read_series_csv_empty_file(tmp_path, text):
    p = _write(tmp_path / "e.csv", text)
    with pytest.raises(ValueError, match="argument 'path' got an empty file"):
        read_series_csv(p, "value")


def test_read_series_csv_missing_column_lists_available(tmp_path):
    p = _write(tmp_path / "s.csv", "year,sunspots\n1700,5\n")
    with pytest.raises(ValueError, match="argument 'column'") as e:
        read_series_csv(p, "volume")
    assert "'volume'" in str(e.value) and "['year', 'sunspots']" in str(e.value)
    with pytest.raises(ValueError, match="argument 'time_column'.*'date'"):
        read_series_csv(p, "sunspots", time_column="date")
    with pytest.raises(ValueError, match="argument 'column'.*got 1, expected one of"):
        read_series_csv(p, 1)


def test_read_series_csv_non_numeric_cells_report_line_and_cell(tmp_path):
    p = _write(tmp_path / "s.csv", "t,v\n1,1.0\n2,abc\n3,4\n4,inf\n")
    with pytest.raises(ValueError, match="argument 'column' \\('v'\\)") as e:
        read_series_csv(p, "v")
    msg = str(e.value)
    assert "'abc' on line 3" in msg and "'inf' on line 5" in msg  # header is line 1


def test_read_series_csv_gaps(tmp_path):
    p = _write(tmp_path / "s.csv", "t,v\n1,1.0\n2,\n3,NA\n4,7.0\n5,9\n")
    with pytest.raises(ValueError, match="argument 'column' \\('v'\\).*2 missing") as e:
        read_series_csv(p, "v")
    assert "line 3" in str(e.value) and "line 4" in str(e.value)
    assert "fill='interpolate'" in str(e.value)
    values, _ = read_series_csv(p, "v", fill="interpolate")
    np.testing.assert_allclose(values, [1.0, 3.0, 5.0, 7.0, 9.0])  # linear between 1 and 7
    edge = _write(tmp_path / "edge.csv", "t,v\n1,\n2,2\n3,3\n")
    with pytest.raises(
        ValueError, match="argument 'fill'.*start or end of column 'v'.*line\\(s\\) 2, expected"
    ):
        read_series_csv(edge, "v", fill="interpolate")
    with pytest.raises(ValueError, match="argument 'fill'"):
        read_series_csv(p, "v", fill="ffill")
    all_missing = _write(tmp_path / "none.csv", "t,v\n1,\n2,na\n")
    with pytest.raises(ValueError, match="argument 'column' \\('v' of .*no values at all"):
        read_series_csv(all_missing, "v", fill="interpolate")


def test_read_series_csv_min_rows_and_ragged_rows(tmp_path):
    p = _write(tmp_path / "s.csv", "t,v\n1,1\n2,2\n3,3\n")
    with pytest.raises(
        ValueError, match="argument 'path'.*got 3, expected at least 10 \\(min_rows"
    ):
        read_series_csv(p, "v", min_rows=10)
    assert read_series_csv(p, "v", min_rows=3)[0].size == 3
    header_only = _write(tmp_path / "h.csv", "t,v\n")
    with pytest.raises(ValueError, match="too few data rows: got 0"):
        read_series_csv(header_only, "v")
    ragged = _write(tmp_path / "r.csv", "t,v\n1,1\n2\n3,3,3\n")
    with pytest.raises(ValueError, match="argument 'path'.*wrong length.*3 \\(1 fields\\)"):
        read_series_csv(ragged, "v")


def test_write_csv_atomic_round_trips_floats_bit_identically(tmp_path):
    rng = np.random.default_rng(3)
    values = rng.normal(size=20) * 10.0 ** rng.integers(-8, 8, size=20)
    p = write_csv_atomic(tmp_path / "out.csv", ["i", "v"], ((i, v) for i, v in enumerate(values)))
    back, index = read_series_csv(p, "v", time_column="i")
    np.testing.assert_array_equal(back, values)
    assert index == [str(i) for i in range(20)]
    assert os.listdir(tmp_path) == ["out.csv"]  # no temporary file left behind


def test_write_csv_atomic_leaves_existing_file_untouched_on_failure(tmp_path):
    target = _write(tmp_path / "out.csv", "old,content\n1,2\n")
    before = target.read_bytes()

    with pytest.raises(ValueError, match="argument 'rows'.*got 1 fields, expected 2"):
        write_csv_atomic(target, ["a", "b"], [(1, 2), (3, 4), (5,)])
    assert target.read_bytes() == before

    def rows():
        yield (1, 2)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_csv_atomic(target, ["a", "b"], rows())
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.csv"]

    with pytest.raises(ValueError, match="argument 'path'.*directory does not exist"):
        write_csv_atomic(tmp_path / "missing" / "out.csv", ["a"], [])
    with pytest.raises(ValueError, match="argument 'header'"):
        write_csv_atomic(target, "ab", [])
    assert target.read_bytes() == before


# --------------------------------------------------------------------------- built-in series


def test_builtin_listing_and_paths():
    assert list_builtin() == ["nile", "sunspots"]
    for name in list_builtin():
        p = builtin_path(name)
        assert p.is_file() and p.stat().st_size < 10_000
    with pytest.raises(
        ValueError, match="load_series: argument 'name'.*'co2'.*\\['nile', 'sunspots'\\]"
    ):
        load_series("co2")
    with pytest.raises(ValueError, match="builtin_path: argument 'name'"):
        builtin_path("co2")


@pytest.mark.parametrize(
    "name, module, time_col, value_col",
    [("sunspots", "sunspots", "YEAR", "SUNACTIVITY"), ("nile", "nile", "year", "volume")],
)
def test_builtin_series_equal_statsmodels_exactly(name, module, time_col, value_col):
    datasets = pytest.importorskip("statsmodels.api").datasets
    df = getattr(datasets, module).load_pandas().data
    values, index, meta = load_series(name)
    np.testing.assert_array_equal(values, df[value_col].to_numpy(dtype=np.float64))
    assert index == [str(int(y)) for y in df[time_col]]
    assert meta["n"] == len(df) and meta["start"] == index[0] and meta["end"] == index[-1]
    assert "public domain" in meta["license"]
    # the file on disk is what read_series_csv reads too
    v2, i2 = read_series_csv(builtin_path(name), meta["column"], time_column=meta["time_column"])
    np.testing.assert_array_equal(v2, values)
    assert i2 == index


def test_builtin_sunspots_published_facts():
    # statsmodels' description: yearly, 1700-2008, 309 observations
    values, index, _ = load_series("sunspots")
    assert (values.size, index[0], index[-1]) == (309, "1700", "2008")
    assert values[:3].tolist() == [5.0, 11.0, 16.0]


def test_data_package_imports_numpy_only():
    code = (
        "import sys, lstmkit.data as d; d.load_series('sunspots'); "
        "bad = [m for m in ('pandas', 'statsmodels', 'matplotlib', 'scipy', 'torch') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- seasonality


def test_acf_matches_statsmodels():
    stattools = pytest.importorskip("statsmodels.tsa.stattools")
    values, _, _ = load_series("sunspots")
    np.testing.assert_allclose(acf(values, 40), stattools.acf(values, nlags=40), rtol=0, atol=1e-12)


def test_detect_season_sunspots_solar_cycle():
    # The Schwabe cycle averages ~11 years; the ACF peak of this series sits at 10-11.
    values, _, meta = load_series("sunspots")
    assert 9 <= detect_season(values) <= 12
    assert 9 <= detect_season(values, max_period=60) <= 12
    assert meta["season"] == 11


def test_detect_season_synthetic():
    t = np.arange(240)
    assert detect_season(np.sin(2 * np.pi * t / 12)) == 12
    assert detect_season(10 + 3 * np.sin(2 * np.pi * t / 12), max_period=40) == 12
    rng = np.random.default_rng(0)
    assert detect_season(np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.5, t.size)) == 12
    assert detect_season(np.tile([1.0, -1.0], 50)) == 2


@pytest.mark.parametrize("seed", range(10))
def test_detect_season_white_noise_is_1(seed):
    assert detect_season(np.random.default_rng(seed).normal(size=300)) == 1


def test_detect_season_nile_and_constant():
    values, _, meta = load_series("nile")
    assert detect_season(values) == meta["season"] == 1
    assert detect_season(np.full(50, 3.0)) == 1


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"values": np.arange(5.0)}, "values"),
        ({"values": np.zeros((10, 2))}, "values"),
        ({"values": np.r_[np.arange(20.0), np.nan]}, "values"),
        ({"values": np.arange(20.0), "max_period": 1}, "max_period"),
        ({"values": np.arange(20.0), "max_period": 19}, "max_period"),
        ({"values": np.arange(20.0), "max_period": 5.0}, "max_period"),
    ],
)
def test_detect_season_errors(kwargs, arg):
    with pytest.raises(ValueError, match=f"detect_season: argument '{arg}'"):
        detect_season(**kwargs)


# --------------------------------------------------------------------------- baselines


def test_naive_forecasts_hand_built():
    history = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    np.testing.assert_array_equal(naive_forecast(history, 3), [7.0, 7.0, 7.0])
    # last season of 3 is (5, 6, 7); it repeats
    np.testing.assert_array_equal(seasonal_naive_forecast(history, 7, 3), [5, 6, 7, 5, 6, 7, 5])
    np.testing.assert_array_equal(seasonal_naive_forecast(history, 2, 1), [7, 7])
    with pytest.raises(ValueError, match="argument 'history'.*got 7 values, expected at least 8"):
        seasonal_naive_forecast(history, 2, 8)
    with pytest.raises(ValueError, match="argument 'horizon'"):
        naive_forecast(history, 0)


def test_mae_rmse_hand_built():
    y, p = [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 8.0]  # errors 1, 0, 2, 4
    assert mae(y, p) == 7 / 4
    assert rmse(y, p) == math.sqrt(21 / 4)
    with pytest.raises(ValueError, match="argument 'y_pred'"):
        mae(y, p[:3])


def test_mase_hand_built():
    # scale (lag 1) = mean(|2-1|, |3-2|, |5-3|) = 4/3; MAE = mean(|6-5|, |7-9|) = 1.5
    assert mase([6.0, 7.0], [5.0, 9.0], insample=[1.0, 2.0, 3.0, 5.0]) == pytest.approx(1.125)
    # scale (lag 2) = mean(|3-1|, |5-2|) = 2.5; MAE 1.5 -> 0.6
    assert mase([6.0, 7.0], [5.0, 9.0], [1.0, 2.0, 3.0, 5.0], season=2) == pytest.approx(0.6)


def _mase_loop(y_true, y_pred, insample, season):
    """MASE written from the paper's formula with Python loops, independent of the library."""
    total = 0.0
    for a, b in zip(y_true, y_pred):
        total += abs(a - b)
    num = total / len(y_true)
    diffs = []
    for t in range(season, len(insample)):
        diffs.append(abs(insample[t] - insample[t - season]))
    return num / (sum(diffs) / len(diffs))


@pytest.mark.parametrize("season", [1, 4, 11])
def test_mase_matches_independent_loop(season):
    rng = np.random.default_rng(season)
    insample = rng.normal(size=60).cumsum()
    y_true, y_pred = rng.normal(size=12), rng.normal(size=12)
    expected = _mase_loop(y_true.tolist(), y_pred.tolist(), insample.tolist(), season)
    assert mase(y_true, y_pred, insample, season) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("season", [1, 11])
def test_mase_of_in_sample_seasonal_naive_is_one(season):
    # By construction, the one-step seasonal naive forecast scored on its own training data has
    # MASE exactly 1 (Hyndman & Koehler 2006) -- a recomputation invariant.
    values, _, _ = load_series("sunspots")
    got = mase(values[season:], values[:-season], insample=values, season=season)
    assert got == pytest.approx(1.0, rel=1e-12)


def test_mase_errors():
    with pytest.raises(ValueError, match="argument 'insample' gives a scale of 0"):
        mase([1.0], [2.0], insample=[3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="argument 'insample'.*got 2 values, expected at least 3"):
        mase([1.0], [2.0], insample=[1.0, 2.0], season=2)
    with pytest.raises(ValueError, match="argument 'season'"):
        mase([1.0], [2.0], insample=[1.0, 2.0], season=0)


def test_builtin_panel_m1_yearly_equals_the_shared_file_and_pandas():
    from shared_data import SHARED, require

    shared = SHARED / "forecasting" / "m1_yearly" / "m1_yearly.csv"
    require(shared)
    assert list_builtin_panels() == ["m1_yearly"]
    path = builtin_path("m1_yearly")
    assert path.read_bytes() == shared.read_bytes()
    assert (path.parent / "m1_yearly.md").is_file()
    panel, meta = load_panel("m1_yearly")
    df = pd.read_csv(shared)
    assert panel.ids.tolist() == list(pd.unique(df["unique_id"])) and meta["horizon"] == 6
    for k, (_, g) in enumerate(df.groupby("unique_id", sort=False)):
        np.testing.assert_array_equal(panel.series(k), g["y"].to_numpy())
    assert panel.freq == "YS" and panel.season == 1
    with pytest.raises(ValueError, match=r"load_series: argument 'name' got 'm1_yearly'.*panel"):
        load_series("m1_yearly")
    with pytest.raises(ValueError, match=r"load_panel: argument 'name'.*'nile'"):
        load_panel("nile")
