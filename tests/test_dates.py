"""Dates in a forecast CSV: formats, frequency, order, repeats, gaps, and the dates forecast.

Witness: pandas, which lstmkit does not use (``date_range`` makes the dates and the dates that
follow them, ``strftime`` writes them, ``sort_values``/``duplicated`` find the order and the
repeats, ``reindex(...).interpolate(method="time")`` fills gaps). The CSV files written by
``forecast predict`` are read back with the ``csv`` module; the plot's x data is captured from
matplotlib's ``Axes.plot``.
"""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from lstmkit.cli import main
from lstmkit.data import SeriesIndex, read_series_csv

# pandas frequency, the last row's date, how the dates are written, lstmkit's frequency name
FREQUENCIES = [
    ("D", "2019-12-31", "%Y-%m-%d", "daily"),
    ("W-MON", "2019-12-30", "%Y-%m-%d", "weekly"),
    ("3D", "2019-12-31", "%Y-%m-%d", "every 3 days"),
    ("MS", "2019-12-01", "%Y-%m-%d", "monthly"),  # 2019-12-01 -> 2020-01-01 (issue 17)
    ("ME", "2019-12-31", "%Y-%m-%d", "monthly"),  # month ends: 2020-01-31, 2020-02-29, ...
    ("MS", "2019-12-01", "%Y-%m", "monthly"),
    ("QS-JAN", "2019-10-01", "%Y-%m-%d", "quarterly"),
    ("QS-JAN", "2019-10-01", "quarter", "quarterly"),
    ("YS", "2019-01-01", "%Y", "yearly"),
    ("YS", "2019-01-01", "%Y-%m-%d", "yearly"),
    ("h", "2019-12-31 23:00", "%Y-%m-%d %H:%M", "hourly"),
    ("h", "2019-12-31 23:00", "%Y-%m-%dT%H", "hourly"),
    ("15min", "2019-12-31 23:45", "%Y-%m-%dT%H:%M", "every 15 minutes"),
    ("s", "2019-12-31 23:59:59", "%Y-%m-%dT%H:%M:%S", "every second"),
    ("B", "2019-12-27", "%Y-%m-%d", "business-daily"),  # a Friday: Monday 2019-12-30 next
]


def _labels(dates, fmt):
    if fmt == "quarter":
        return list(dates.to_period("Q").strftime("%Y-Q%q"))
    return list(dates.strftime(fmt))


def _write(path, rows, header=("date", "y")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.mark.parametrize("freq, last, fmt, name", FREQUENCIES)
def test_frequency_and_future_dates_match_pandas(tmp_path, freq, last, fmt, name):
    n, h = 30, 7  # the 7 dates after the 30 rows start a new year in every case
    first = pd.date_range(end=last, periods=n, freq=freq)[0]
    dates = pd.date_range(first, periods=n + h, freq=freq)
    labels = _labels(dates, fmt)
    values = np.arange(n, dtype=float)
    path = _write(tmp_path / "s.csv", zip(labels[:n], values.tolist()))
    got, index = read_series_csv(path, "y", time_column="date")
    np.testing.assert_array_equal(got, values)
    assert index == labels[:n] and index.kind == "dates"
    assert index.frequency.name == name
    assert index.future(h) == labels[n:]


def test_semi_monthly_dates_are_refused_as_uneven(tmp_path):
    dates = pd.date_range("2020-01-01", periods=12, freq="SMS")  # 1st and 15th: 14 or 16+ days
    path = _write(tmp_path / "s.csv", [(d, i) for i, d in enumerate(dates.strftime("%Y-%m-%d"))])
    with pytest.raises(ValueError, match="argument 'time_column' .* is not evenly spaced: got"):
        read_series_csv(path, "y", time_column="date")


def test_series_index_is_a_sequence_of_its_labels(tmp_path):
    labels = list(pd.date_range("2020-01-01", periods=10, freq="D").strftime("%Y-%m-%d"))
    path = _write(tmp_path / "s.csv", [(d, i) for i, d in enumerate(labels)])
    _, index = read_series_csv(path, "y", time_column="date")
    assert isinstance(index, SeriesIndex) and len(index) == 10
    assert list(index) == labels and index == labels and index != labels[:-1]
    assert index[0] == "2020-01-01" and index[-1] == "2020-01-10"
    assert index[3:5] == labels[3:5] and index[::3] == labels[::3]
    assert index[-4:].future(2) == ["2020-01-11", "2020-01-12"]
    with pytest.raises(IndexError):
        index[10]


def test_a_column_of_years_and_a_column_of_numbers(tmp_path):
    years = _write(tmp_path / "y.csv", [(1990 + i, i) for i in range(30)])
    _, index = read_series_csv(years, "y", time_column="date")
    assert index.kind == "dates" and index.frequency.name == "yearly"
    # a later number that is no 4-digit year: the column holds numbers, labels in file order
    numbers = _write(tmp_path / "n.csv", [(9990 + i, i) for i in range(20)])
    _, index = read_series_csv(numbers, "y", time_column="date")
    assert index.kind == "labels" and index == [str(9990 + i) for i in range(20)]
    assert index.future(2) == ["10010", "10011"]
    # an empty or text cell among years is an error, as among other dates
    rows = [(1990 + i, i) for i in range(30)]
    rows[12] = ("", 12)
    with pytest.raises(ValueError, match="got '' on line 14, not a date of the form 2020 like"):
        read_series_csv(_write(tmp_path / "e.csv", rows), "y", time_column="date")


# ----------------------------------------------------------------------------- order and repeats


def _daily_frame(n, seed):
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2021-03-01", periods=n, freq="D").strftime("%Y-%m-%d")
    return pd.DataFrame({"date": dates, "y": np.round(rng.normal(10, 3, n), 6)})


def test_unsorted_dates_are_sorted_and_the_output_says_so(tmp_path, capsys):
    df = _daily_frame(80, 0)
    shuffled = df.sample(frac=1.0, random_state=1).reset_index(drop=True)
    path = _write(tmp_path / "s.csv", shuffled.itertuples(index=False))
    values, index = read_series_csv(path, "y", time_column="date")
    witness = shuffled.sort_values("date", kind="stable")
    np.testing.assert_array_equal(values, witness["y"].to_numpy())
    assert index == list(witness["date"])
    sorted_notes = [s for s in index.notes if s.startswith("sorted the 80 rows by 'date'")]
    assert len(sorted_notes) == 1 and "not in time order" in sorted_notes[0]
    # the CLI prints it as one line
    argv = ["forecast", "train", str(path), "--column", "y", "--time-column", "date"]
    argv += [
        "--lookback",
        "6",
        "--horizon",
        "2",
        "--units",
        "3",
        "--epochs",
        "1",
        "--engine",
        "single",
    ]
    assert main([*argv, "--transform", "none", "--out", str(tmp_path / "m.lstmkit")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("sorted the 80 rows by 'date'") for line in out) == 1


def test_repeated_dates_are_refused_naming_the_first_repeat(tmp_path):
    df = _daily_frame(40, 2)
    df.loc[25, "date"] = df.loc[9, "date"]  # the first repeat in file order
    df.loc[31, "date"] = df.loc[4, "date"]
    df.loc[33, "date"] = df.loc[4, "date"]
    df = df.sample(frac=1.0, random_state=3).reset_index(drop=True)  # unsorted as well
    path = _write(tmp_path / "s.csv", df.itertuples(index=False))
    later = df["date"].duplicated(keep="first")
    row = int(np.flatnonzero(later.to_numpy())[0])  # the first row repeating an earlier date
    date = df.loc[row, "date"]
    first = int(np.flatnonzero((df["date"] == date).to_numpy())[0])
    n_dates = df.loc[later, "date"].nunique()
    with pytest.raises(ValueError) as e:
        read_series_csv(path, "y", time_column="date")
    msg = str(e.value)
    assert msg.startswith("read_series_csv: argument 'time_column' ('date' of ")
    # file lines are rows + 2 (the header is line 1)
    assert f"got {date} on lines {first + 2} and {row + 2} (the first repeat in the file; " in msg
    assert f"{n_dates} date(s) repeat in all" in msg


# ----------------------------------------------------------------------------- gaps


def test_missing_dates_are_refused_or_interpolated_in_time(tmp_path):
    df = _daily_frame(60, 4)
    df.loc[20, "y"] = np.nan  # a missing value as well
    kept = df.drop(index=[5, 6, 7, 30, 44]).reset_index(drop=True)
    path = _write(tmp_path / "s.csv", kept.astype(object).fillna("").itertuples(index=False))
    with pytest.raises(ValueError, match="argument 'column'.*1 missing value"):
        read_series_csv(path, "y", time_column="date")
    no_gap = kept.dropna().reset_index(drop=True)
    path2 = _write(tmp_path / "s2.csv", no_gap.itertuples(index=False))
    with pytest.raises(ValueError) as e:
        read_series_csv(path2, "y", time_column="date")
    n_missing = 60 - len(no_gap)  # dates from the first to the last, less the rows
    assert f"has {n_missing} missing date(s) in a daily series: got gaps 3 days missing after " \
           f"2021-03-05 (line 6)" in str(e.value)  # fmt: skip
    assert "fill='interpolate'" in str(e.value)

    values, index = read_series_csv(path, "y", time_column="date", fill="interpolate")
    s = pd.Series(kept["y"].to_numpy(), index=pd.to_datetime(kept["date"]))
    full = pd.date_range(s.index[0], s.index[-1], freq="D")
    witness = s.reindex(full).interpolate(method="time")
    np.testing.assert_allclose(values, witness.to_numpy(), rtol=0, atol=1e-12)
    assert index == list(full.strftime("%Y-%m-%d"))
    inserted = len(full) - len(kept)
    assert any(note.startswith(f"inserted {inserted} missing date(s) in 3 gap(s), the first after "
                               "2021-03-05") for note in index.notes)  # fmt: skip


def test_filling_refuses_to_invent_a_long_series(tmp_path):
    rows = [("2020-01-01", 1), ("2020-01-02", 2), ("2020-01-03", 3), ("2202-01-04", 4)]
    path = _write(tmp_path / "s.csv", rows)
    missing = len(pd.date_range("2020-01-01", "2202-01-04", freq="D")) - 4
    with pytest.raises(ValueError, match=f"argument 'fill' .* would insert {missing} missing dates into "
                       "the 4 rows .* expected at most 1004 .* from 2020-01-03 \\(line 4\\) to "
                       "2202-01-04 \\(line 5\\): is a date wrong"):  # fmt: skip
        read_series_csv(path, "y", time_column="date", fill="interpolate")


def test_a_cell_that_is_not_a_date_of_the_column_form(tmp_path):
    for bad, why in [("2020-02-30", "no such date"), ("2020-2-3", "not a date of the form 2020-01-31"),
                     ("", "not a date of the form 2020-01-31")]:  # fmt: skip
        rows = [("2020-02-27", 1), ("2020-02-28", 2), (bad, 3), ("2020-03-01", 4)]
        path = _write(tmp_path / "s.csv", rows)
        with pytest.raises(ValueError) as e:
            read_series_csv(path, "y", time_column="date")
        assert f"got {bad!r} on line 4, {why}" in str(e.value)


# ----------------------------------------------------------------------------- forecasts


FAST = ["--lookback", "6", "--horizon", "4", "--units", "3", "--epochs", "2", "--patience", "1"]
FAST += ["--transform", "none", "--engine", "single"]  # the one-series engine


@pytest.mark.parametrize(
    "freq, fmt", [("MS", "%Y-%m-%d"), ("QS-JAN", "quarter"), ("h", "%Y-%m-%d %H:%M")]
)
def test_predict_writes_and_plots_real_future_dates(tmp_path, capsys, monkeypatch, freq, fmt):  # fmt: skip
    n, h = 48, 4
    dates = pd.date_range("2015-12-01" if freq != "h" else "2019-12-31 00:00", periods=n + h,
                          freq=freq)  # fmt: skip
    labels = _labels(dates, fmt)
    rng = np.random.default_rng(0)
    rows = [(d, 10 + np.sin(i / 2) + rng.normal(0, 0.1)) for i, d in enumerate(labels[:n])]
    data = _write(tmp_path / "s.csv", rows)
    model = tmp_path / "m.lstmkit"
    argv = ["forecast", "train", str(data), "--column", "y", "--time-column", "date", *FAST]
    assert main([*argv, "--out", str(model)]) == 0

    import matplotlib.axes

    plotted = []
    original = matplotlib.axes.Axes.plot

    def plot(self, x, *args, **kwargs):
        plotted.append((kwargs.get("label"), np.asarray(x)))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    out = tmp_path / "fc.csv"
    assert main(["forecast", "predict", str(model), str(data), "--out", str(out)]) == 0
    header, written = _read(out)
    assert header == ["date", "forecast"]
    assert [r[0] for r in written] == labels[n:]  # e.g. 2016-01-01 after 2015-12-01
    assert not any("+" in r[0] for r in written)
    x = dict(plotted)["LSTM forecast"]
    want = dates[n:].to_numpy().astype("datetime64[s]")
    if fmt == "quarter":
        want = dates[n:].to_period("Q").start_time.to_numpy().astype("datetime64[s]")
    np.testing.assert_array_equal(x.astype("datetime64[s]"), want)


def test_predict_with_labels_that_are_not_dates_writes_steps(tmp_path, capsys):
    n = 40
    names = [f"week {i} of the trial" for i in range(n)]
    rng = np.random.default_rng(1)
    data = _write(tmp_path / "s.csv", [(s, rng.normal()) for s in names])
    model = tmp_path / "m.lstmkit"
    argv = ["forecast", "train", str(data), "--column", "y", "--time-column", "date", *FAST]
    assert main([*argv, "--out", str(model)]) == 0
    out = tmp_path / "fc.csv"
    capsys.readouterr()
    assert main(["forecast", "predict", str(model), str(data), "--out", str(out)]) == 0
    header, written = _read(out)
    assert header == ["step", "forecast"] and [r[0] for r in written] == ["40", "41", "42", "43"]
    text = capsys.readouterr().out
    assert "'date' holds neither dates nor numbers: the forecast rows are labelled by step" in text
    # numbers continue as numbers (their last step)
    data2 = _write(tmp_path / "n.csv", [(0.5 * i, rng.normal()) for i in range(n)])
    assert main(["forecast", "predict", str(model), str(data2), "--out", str(out)]) == 0
    header, written = _read(out)
    assert header == ["date", "forecast"] and [r[0] for r in written] == [
        "20",
        "20.5",
        "21",
        "21.5",
    ]
