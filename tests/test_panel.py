"""read_panel, future_times and calendar_features (issue 18), witnessed by pandas.

pandas reads the same files independently: its groupby gives the ids (in order of first row),
lengths and values of each series; ``pd.to_datetime`` the dates; ``pd.infer_freq`` the
frequency; ``pd.date_range`` the future dates; the ``.dt`` accessors the calendar. Every bad
input gives its own error, whose message is checked for the series and the problem.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from lstmkit.apps.panel import Panel
from lstmkit.apps.panel_io import read_panel
from lstmkit.apps.panel_time import calendar_features, future_times
from lstmkit.data import DataFileNotFoundError
from shared_data import SHARED, require

FC = SHARED / "forecasting"
REAL = [FC / "m1_yearly" / "m1_yearly.csv"] + [
    FC / "fpp2" / f"{n}.csv" for n in ("visnights", "prisonLF", "arrivals", "departures", "a10")
]
# our alias -> the pandas aliases infer_freq may give for it
PANDAS_FREQ = {"YS": ("YS", "AS"), "QS": ("QS",), "MS": ("MS",), "M": ("ME", "M"),
               "Q": ("QE", "Q"), "Y": ("YE", "A", "Y"), "D": ("D",), "W": ("W",), "h": ("h", "H"),
               "B": ("B",), "2D": ("2D",), "15min": ("15min", "15T")}  # fmt: skip


def pandas_panel(path, time_column="ds"):
    """(ids in order of first row, {id: values}, {id: datetime64[ns]}) read by pandas."""
    df = pd.read_csv(path, dtype={"unique_id": str, time_column: str})
    ids = list(pd.unique(df["unique_id"])) if "unique_id" in df else ["y"]
    if "unique_id" not in df:
        df["unique_id"] = "y"
    dt = df[time_column]
    df["t"] = pd.to_datetime(dt, format="%Y") if dt.str.len().max() == 4 else pd.to_datetime(dt)
    df = df.sort_values(["t"], kind="stable")
    groups = {k: g for k, g in df.groupby("unique_id", sort=False)}
    return ids, {k: g["y"].to_numpy() for k, g in groups.items()}, groups


def check_against_pandas(panel: Panel, path):
    ids, values, groups = pandas_panel(path)
    assert panel.ids.tolist() == ids
    assert panel.lengths.tolist() == [len(values[i]) for i in ids]
    for k, sid in enumerate(ids):
        np.testing.assert_array_equal(panel.series(k), values[sid])
        t = groups[sid]["t"].to_numpy().astype(panel.times.dtype)
        np.testing.assert_array_equal(panel.times[panel.span(k)], t)
    inferred = pd.infer_freq(pd.DatetimeIndex(groups[ids[0]]["t"]))
    assert inferred.split("-")[0] in PANDAS_FREQ[panel.freq], (inferred, panel.freq)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_panels_read_as_pandas_reads_them(path):
    require(path)
    panel = read_panel(path)
    check_against_pandas(panel, path)
    assert panel.season == {"YS": 1, "QS": 4, "MS": 12}[panel.freq]


def write(tmp_path, df: pd.DataFrame, name="p.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def generated(freq: str, n_series=4, seed=0):
    """A panel of unequal lengths and starts at ``freq``, in long format, rows shuffled."""
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(n_series):
        n = int(rng.integers(5, 30))
        start = pd.Timestamp("2001-01-01") + pd.offsets.Day(int(rng.integers(0, 40)))
        if freq in ("MS", "QS", "YS", "ME", "QE", "YE", "B"):
            start = pd.tseries.frequencies.to_offset(freq).rollforward(start)
        ds = pd.date_range(start, periods=n, freq=freq)
        parts.append(pd.DataFrame({"unique_id": f"s{k}", "ds": ds, "y": rng.normal(size=n)}))
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize(
    "freq,ours,fmt",
    [
        ("D", "D", None), ("W", "W", None), ("MS", "MS", None), ("ME", "M", None),
        ("QS", "QS", None), ("QE", "Q", None), ("YS", "YS", None), ("h", "h", None),
        ("B", "B", None), ("2D", "2D", None), ("15min", "15min", None),
        ("MS", "MS", lambda s: s.dt.strftime("%Y-%m")),
        ("YS", "YS", lambda s: s.dt.year),
        ("QS", "QS", lambda s: s.dt.year.astype(str) + "-Q" + s.dt.quarter.astype(str)),
    ],
)  # fmt: skip
def test_frequencies_and_grouping_of_shuffled_rows(tmp_path, freq, ours, fmt):
    df = generated(freq)
    times = df["ds"]  # the dates pandas generated, before they are written in another form
    if fmt is not None:
        df = df.assign(ds=fmt(df["ds"]))
    shuffled = df.sample(frac=1.0, random_state=1)
    panel = read_panel(write(tmp_path, shuffled))
    assert panel.freq == ours
    expected_ids = list(pd.unique(shuffled["unique_id"]))
    assert panel.ids.tolist() == expected_ids
    df = df.assign(t=times).sort_values("t", kind="stable")
    for k, (sid, g) in enumerate(df.groupby("unique_id", sort=False)):
        j = expected_ids.index(sid)
        np.testing.assert_allclose(panel.series(j), g["y"].to_numpy(), rtol=1e-15)
        got = panel.times[panel.span(j)].astype("datetime64[s]")
        np.testing.assert_array_equal(got, g["t"].to_numpy().astype("datetime64[s]"))
    assert (
        "grouped the rows by id and sorted each series by date: the file is not in that order"
        in panel.notes
    )


@pytest.mark.parametrize("freq", ["D", "W", "MS", "ME", "QS", "QE", "YS", "h", "B", "15min"])
def test_future_times_are_pandas_date_ranges(tmp_path, freq):
    df = generated(freq, n_series=3, seed=2)
    panel = read_panel(write(tmp_path, df))
    got = future_times(panel, 7)
    assert got.shape == (3, 7)
    for k in range(3):
        last = pd.Timestamp(panel.times[panel.offsets[k + 1] - 1])
        want = pd.date_range(last, periods=8, freq=freq)[1:]
        np.testing.assert_array_equal(
            got[k].astype("datetime64[s]"), want.values.astype("datetime64[s]")
        )


def test_calendar_features_against_pandas_accessors():
    t = pd.date_range("2019-12-25", periods=500, freq="13h")
    v = t.values.astype("datetime64[s]")
    two_pi = 2 * np.pi
    month = calendar_features(v.astype("datetime64[D]"), "MS")
    np.testing.assert_allclose(month[:, 0], np.sin(two_pi * (t.month - 1) / 12), atol=1e-6)
    np.testing.assert_allclose(month[:, 1], np.cos(two_pi * (t.month - 1) / 12), atol=1e-6)
    quarter = calendar_features(v, "QS")
    np.testing.assert_allclose(quarter[:, 0], np.sin(two_pi * (t.quarter - 1) / 4), atol=1e-6)
    daily = calendar_features(v, "D")
    np.testing.assert_allclose(daily[:, 0], np.sin(two_pi * t.dayofweek / 7), atol=1e-6)
    leap = 365 + t.is_leap_year.astype(int)
    np.testing.assert_allclose(daily[:, 3], np.cos(two_pi * (t.dayofyear - 1) / leap), atol=1e-6)
    hourly = calendar_features(v, "h")
    np.testing.assert_allclose(hourly[:, 0], np.sin(two_pi * t.hour / 24), atol=1e-6)
    np.testing.assert_allclose(hourly[:, 3], np.cos(two_pi * t.dayofweek / 7), atol=1e-6)
    assert calendar_features(v, "YS").shape == (500, 0)
    assert daily.dtype == np.float32


def test_one_series_without_an_id_column(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("ds,sales\n2020-01,1\n2020-02,2\n2020-03,4\n")
    panel = read_panel(path, column="sales")
    assert panel.ids.tolist() == ["sales"] and panel.series(0).tolist() == [1, 2, 4]
    assert panel.freq == "MS" and any("one series" in n for n in panel.notes)


def test_integer_time_steps_and_no_time_column(tmp_path):
    path = tmp_path / "int.csv"
    path.write_text("unique_id,ds,y\na,1,1\na,2,2\nb,5,3\nb,6,4\nb,7,5\n")
    panel = read_panel(path)
    assert panel.times is None and panel.lengths.tolist() == [2, 3]
    panel = read_panel(path, time_column=None)
    assert panel.series(1).tolist() == [3, 4, 5]


def test_covariates_and_future_rows(tmp_path):
    path = tmp_path / "cov.csv"
    rows = ["unique_id,ds,y,price,promo"]
    rows += [f"a,2020-0{m},{m},{m * 10},{m % 2}" for m in range(1, 6)]
    rows += ["a,2020-06,,60,0", "a,2020-07,,70,1"]
    rows += [f"b,2020-0{m},{m + 100},{m * 11},0" for m in range(3, 8)]
    rows += ["b,2020-08,,88,1", "b,2020-09,,99,0"]
    path.write_text("\n".join(rows) + "\n")
    panel = read_panel(path, past_covariates=["price"], future_covariates=["promo"], horizon=2)
    assert panel.lengths.tolist() == [5, 5]
    assert panel.past_names == ("price",) and panel.future_names == ("promo",)
    np.testing.assert_array_equal(panel.past[:5, 0], [10, 20, 30, 40, 50])
    assert panel.future_ahead.shape == (2, 2, 1)
    np.testing.assert_array_equal(panel.future_ahead[:, :, 0], [[0, 1], [1, 0]])
    np.testing.assert_array_equal(
        future_times(panel, 2), np.array([["2020-06-01", "2020-07-01"],
                                          ["2020-08-01", "2020-09-01"]], "datetime64[D]")
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"future_covariates.*'b'.*2 of 3 future rows"):
        read_panel(path, future_covariates=["promo"], horizon=3)
    no_cov = read_panel(path)
    assert no_cov.future_ahead is None and any("ignored 4 future row" in n for n in no_cov.notes)


def test_interpolate_fills_missing_dates_and_values_as_pandas_does(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text(
        "unique_id,ds,y\na,2020-01-01,1\na,2020-01-02,\na,2020-01-05,7\nb,2020-01-01,5\n"
        "b,2020-01-02,6\n"
    )
    panel = read_panel(path, fill="interpolate")
    s = pd.Series([1, np.nan, np.nan, np.nan, 7.0], pd.date_range("2020-01-01", periods=5))
    np.testing.assert_allclose(panel.series(0), s.interpolate(method="time").to_numpy())
    np.testing.assert_array_equal(panel.times[:5], s.index.values.astype("datetime64[D]"))


# -- bad input: each a clear error naming the series and the problem ---------------------------
BAD = {
    "missing id column": ("uid,ds,y\na,2020,1\n", {"id_column": "id"}, r"'id_column'.*'id'"),
    "missing time column": ("unique_id,date,y\na,2020,1\n", {}, r"'time_column'.*'ds'"),
    "missing value column": ("unique_id,ds,value\na,2020,1\n", {}, r"'column'.*'y'"),
    "repeated date": ("unique_id,ds,y\na,2020,1\nb,2020,1\nb,2021,2\nb,2020,3\n", {},
                      r"repeated date in series 'b' at 2020 \(line 5\).*first on line 3"),
    "gap": ("unique_id,ds,y\na,2020-01,1\na,2020-02,1\nb,2020-01,1\nb,2020-04,2\n", {},
            r"2 missing date.*1 series.*series 'b' at 2020-01 \(line 4\).*next date 2020-04"),
    "unparseable date": ("unique_id,ds,y\na,2020-01-01,1\nb,2020-02-30,2\n", {},
                         r"'2020-02-30' on line 3 \(series 'b'.*no such date"),
    "text date": ("unique_id,ds,y\na,2020-01-01,1\nb,yesterday,2\n", {},
                  r"'yesterday' on line 3 \(series 'b'"),
    "NaN in y": ("unique_id,ds,y\na,2020,1\na,2021,nan\na,2022,3\n", {},
                 r"missing value.*series 'a' at 2021 \(line 3\)"),
    "inf in y": ("unique_id,ds,y\na,2020,1\nb,2021,inf\n", {},
                 r"'inf' on line 3 \(series 'b'.*finite decimal"),
    "text in y": ("unique_id,ds,y\na,2020,1\nb,2021,12x\n", {}, r"'12x' on line 3 \(series 'b'"),
    "irregular": ("unique_id,ds,y\na,2020-01-06,1\na,2020-01-13,1\na,2020-01-20,1\n"
                  + "b,2020-01-06,1\nb,2020-01-16,1\n", {},
                  r"irregular date in series 'b' at 2020-01-16 \(line 6\).*weekly"),
    "short series": ("unique_id,ds,y\na,2020,1\na,2021,2\nb,2020,1\n",
                     {"min_length": 2, "short": "error"}, r"1 series shorter than 2.*'b' \(1\)"),
    "all short": ("unique_id,ds,y\na,2020,1\n", {"min_length": 2}, r"shorter than 2"),
    "no values": ("unique_id,ds,y\na,2020,1\nb,2020,\n", {}, r"series 'b' with no value"),
    "ragged": ("unique_id,ds,y\na,2020,1\na,2021\n", {}, r"wrong length.*2 fields on line 3"),
    "empty id": ("unique_id,ds,y\na,2020,1\n,2021,3\n", {}, r"'id_column'.*line 3"),
    "missing past covariate": ("unique_id,ds,y,p\na,2020,1,1\na,2021,2,\n",
                               {"past_covariates": ["p"]}, r"'p' in series 'a' at 2021"),
    "empty file": ("", {}, r"empty file"),
    "header only": ("unique_id,ds,y\n", {}, r"no data rows"),
    "NUL byte": ("unique_id,ds,y\na,2020,1\x00\n", {}, r"not valid CSV|'1\\x00' on line 2"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_clear_error(tmp_path, case):
    text, kwargs, pattern = BAD[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern) as err:
        read_panel(path, **kwargs)
    assert str(err.value).startswith("read_panel: ")


def test_short_series_are_dropped_with_a_note(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("unique_id,ds,y\na,2020,1\na,2021,2\nb,2020,1\nc,2019,1\nc,2020,2\n")
    panel = read_panel(path, min_length=2)
    assert panel.ids.tolist() == ["a", "c"]
    assert any("dropped 1 series shorter than 2 values: 'b' (1)" in n for n in panel.notes)


def test_missing_file_binary_file_and_huge_field(tmp_path):
    with pytest.raises(DataFileNotFoundError):
        read_panel(tmp_path / "nope.csv")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"unique_id,ds,y\n" + bytes(range(256)) * 64)
    with pytest.raises(ValueError, match=r"not UTF-8|not valid CSV"):
        read_panel(binary)
    huge = tmp_path / "huge.csv"
    huge.write_text("unique_id,ds,y\na,2020," + "1" * 200_000 + "\n")
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(ValueError, match=r"not valid CSV.*field larger than field limit"):
            read_panel(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.process_time() - start < 1.0 and peak < 16e6


def test_unbounded_future_rows_are_refused_before_allocating(tmp_path):
    # one series with many future rows and 10^4 series without: (n, H, F) would be 10^4 x 10^4
    lines = ["unique_id,ds,y,f"] + [f"s{k},2020-01-01,1,0" for k in range(10_000)]
    lines += [f"s0,{d},,1" for d in pd.date_range("2020-01-02", periods=10_000).strftime("%F")]
    path = tmp_path / "future.csv"
    path.write_text("\n".join(lines) + "\n")
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"'horizon'.*'s0' has 10000 future rows"):
            read_panel(path, future_covariates=["f"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6  # the refused array would be 800 MB


def test_interpolate_in_monthly_and_integer_panels_as_pandas_does(tmp_path):
    path = tmp_path / "monthly.csv"
    path.write_text(
        "unique_id,ds,y,p\nb,2020-11-30,1,5\na,2020-01-31,2,1\na,2020-04-30,8,4\nb,2021-02-28,4,2\n"
        "a,2020-05-31,3,3\nb,2021-03-31,0,0\n"
    )
    panel = read_panel(path, fill="interpolate", past_covariates=["p"])
    assert panel.freq == "M" and panel.ids.tolist() == ["b", "a"]
    for k, sid in enumerate(["b", "a"]):
        df = pd.read_csv(path, parse_dates=["ds"]).query("unique_id == @sid").set_index("ds")
        df = df[["y", "p"]].resample("ME").mean().interpolate()
        np.testing.assert_allclose(panel.series(k), df["y"].to_numpy())
        np.testing.assert_allclose(panel.past[panel.span(k), 0], df["p"].to_numpy())
        np.testing.assert_array_equal(panel.times[panel.span(k)], df.index.values.astype("M8[D]"))
    path = tmp_path / "int.csv"
    path.write_text("unique_id,ds,y\na,10,1\na,12,2\na,18,5\n")
    panel = read_panel(path, fill="interpolate")
    np.testing.assert_allclose(panel.series(0), [1, 2, 3, 4, 5])  # steps of 2: 10..18


def test_dates_after_the_detection_sample_are_checked_too(tmp_path, monkeypatch):
    from lstmkit.apps import panel_time

    monkeypatch.setattr(panel_time, "SAMPLE", 4)  # detect on the first 4 rows only
    path = tmp_path / "late.csv"
    path.write_text(
        "unique_id,ds,y\na,2020-01-01,1\na,2020-02-01,1\na,2020-03-01,1\na,2020-04-01,1\n"
        "b,2020-01-01,1\nb,2020-02-15,1\n"
    )
    with pytest.raises(ValueError, match=r"irregular date in series 'b' at 2020-02-15.*monthly"):
        read_panel(path)


def test_a_header_of_200000_cells_is_handled_in_linear_time(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("unique_id,ds,y" + "," * 200_000 + "\n")  # 200000 empty names: repeated
    start = time.process_time()
    with pytest.raises(ValueError, match=r"repeated column names \[''\]"):
        read_panel(path)
    assert time.process_time() - start < 2.0


def test_four_digit_steps_that_pass_9999_in_a_later_chunk_are_integer_steps(tmp_path, monkeypatch):
    from lstmkit.apps import panel_stream

    monkeypatch.setattr(panel_stream, "CHUNK_ROWS", 16)  # the first chunk holds only 'years'
    path = tmp_path / "steps.csv"
    path.write_text("unique_id,ds,y\n" + "".join(f"a,{9980 + i},{i}\n" for i in range(40)))
    panel = read_panel(path)
    assert panel.times is None and panel.series(0).tolist() == list(range(40))
    path.write_text(
        "unique_id,ds,y\n" + "".join(f"a,{9980 + i},{i}\n" for i in range(40) if i != 30)
    )
    with pytest.raises(ValueError, match=r"missing date.*series 'a' at 10009"):
        read_panel(path)


def test_long_time_labels_are_refused_without_a_wide_copy(tmp_path):
    path = tmp_path / "long.csv"
    rows = "".join(f"a,{'x' * 100_000},{i}\n" for i in range(300))  # 30 MB of labels
    path.write_text("unique_id,ds,y\na,1,0\n" + rows)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"'xxx.*' on line 3 \(series 'a'\)"):
            read_panel(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 80e6  # as a NumPy str array (4 bytes a character) they would take 120 MB


def test_small_chunks_and_growing_columns_read_the_same(monkeypatch):
    from lstmkit.apps import panel_stream

    require(REAL[0])
    monkeypatch.setattr(panel_stream, "CHUNK_ROWS", 100)  # 46 chunks, columns grow 3 times
    check_against_pandas(read_panel(REAL[0]), REAL[0])
