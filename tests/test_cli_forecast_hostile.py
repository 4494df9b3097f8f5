"""``lstmkit forecast`` on input a user could hand it by mistake: each case found by running
the command line on small files (the harden round of 2026-12-07). Each must end in one error line
naming the argument and the value (status 2) with nothing written, or do the right thing.

Witnesses: the dates pandas writes, byte-for-byte copies of files a failing command must leave
alone, and the numbers the error message must state, recomputed here from the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lstmkit
from lstmkit.cli import main

# the children run the lstmkit this process imported (the tree under test)
SRC = Path(lstmkit.__file__).resolve().parents[1]

# a few epochs of a tiny model, one member, one process: these tests are about the checks
FAST = ["--horizon", "4", "--units", "4", "--epochs", "2", "--patience", "1", "--ensemble", "1"]
FAST += ["--jobs", "1", "--no-evaluate"]


def _frame(freq="MS", n=40, ids=("A", "B")):
    rng = np.random.default_rng(5)
    parts = []
    for j, sid in enumerate(ids):
        t = np.arange(n)
        y = 50 + 10 * j + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, n)
        ds = pd.date_range("2015-01-01", periods=n, freq=freq).strftime("%Y-%m-%d")
        parts.append(pd.DataFrame({"unique_id": sid, "ds": ds, "y": y}))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def monthly_model(work):
    data, model = work / "monthly.csv", work / "monthly.lstmkit"
    _frame().to_csv(data, index=False)
    assert main(["forecast", "train", str(data), *FAST, "--out", str(model)]) == 0
    return model


@pytest.mark.parametrize("kind", ["daily dates", "integer steps"])
def test_predict_refuses_data_of_another_frequency_than_the_model(work, monthly_model, capsys,
                                                                  kind):  # fmt: skip
    # a monthly model read daily data (or row numbers) as months: seasonal phase, level and
    # the future dates all wrong, and nothing said
    df = _frame(freq="D")
    if kind == "integer steps":
        df["ds"] = np.tile(np.arange(40), 2)
    data, out = work / "other.csv", work / "other-forecast.csv"
    df.to_csv(data, index=False)
    out.write_text("old\n")
    assert main(["forecast", "predict", str(monthly_model), str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    got = "'D'" if kind == "daily dates" else "None"
    assert "'MS'" in err and got in err and "frequency" in err, err
    assert out.read_text() == "old\n"


@pytest.mark.parametrize("n, status", [(26, 2), (27, 0), (36, 0)])
def test_too_short_series_are_told_the_length_they_need(work, capsys, n, status):
    # three monthly series, the default horizon (the season, 12): a window needs 2 * 12 + K - 1
    # + 3 values for K validation origins. K is 11 (ceil(32 / 3)) where the series have room
    # for them and fewer, down to one, where they have not: 36 values (three years) train with
    # 10, and 27 is the shortest that trains. The message used to say 27 to series of 36
    # values that then failed; the witness is the boundary itself: 27 values train, 26 do not
    data, out = work / f"short{n}.csv", work / f"short{n}.lstmkit"
    _frame(n=n, ids=("A", "B", "C")).to_csv(data, index=False)
    argv = ["forecast", "train", str(data), "--units", "4", "--epochs", "1", "--ensemble", "1"]
    assert main([*argv, "--jobs", "1", "--no-evaluate", "--out", str(out)]) == status
    err = capsys.readouterr().err
    if status == 2:
        assert "shorter than 27 values" in err and "longest has 26" in err, err
        assert "'horizon'" in err and "12" in err and not out.exists()
    else:
        assert out.exists(), err


def _capped(argv, gib=4):
    """``python -m lstmkit *argv`` in a child whose address space is capped at ``gib`` GiB: an
    unbounded allocation fails fast there instead of swapping the machine."""
    import resource

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (gib << 30, gib << 30))

    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "lstmkit", *argv], check=False, text=True,
                          capture_output=True, env=env, preexec_fn=cap, timeout=300)  # fmt: skip


@pytest.mark.parametrize("option", ["--lookback", "--season"])
def test_a_window_longer_than_every_series_is_refused_before_allocating(work, option):
    # --lookback 10**9 (or --season 10**9, whose default lookbacks are 2 and 3 seasons) made
    # NumPy allocate windows of 10**9 steps: 8 GB resident, then a MemoryError traceback after
    # 40 s (here: in a child capped at 4 GiB). The bound is the longest series (a longer window
    # holds only padding), stated with the value
    data, out = work / "panel.csv", work / "huge.lstmkit"
    _frame(n=40).to_csv(data, index=False)
    argv = ["forecast", "train", str(data), *FAST, option, str(10**9), "--out", str(out)]
    run = _capped(argv)
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.startswith(f"lstmkit forecast: error: argument '{option}' got 1000000000")
    assert "at most 40" in run.stderr and not out.exists()


def _edited(src, dst, part, key, value, member=0):
    """A copy of the forecaster file ``src`` with one field of its JSON header changed by hand:
    ``part`` "facts" or "members" (then member ``member``'s), the tensors unchanged."""
    raw = src.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    meta = header["__metadata__"]
    field = json.loads(meta[part])
    (field[member] if part == "members" else field)[key] = value
    meta[part] = json.dumps(field)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    dst.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    return dst


@pytest.mark.parametrize(
    "part, key, value",
    [
        # each of these wrote forecasts without a word, or ended in a traceback / a NumPy error
        ("facts", "season", -3),  # forecasts written
        ("facts", "log", None),  # forecasts written, without the log the model needs
        ("facts", "level", "x"),  # forecasts written
        ("facts", "future", None),  # TypeError traceback
        ("facts", "quantiles", [0.5]),  # "cannot reshape array of size 180..."
        ("facts", "quantiles", [0.1, 0.5]),  # "operands could not be broadcast together"
        ("facts", "horizon", 10**9),  # windows of 10**9 steps
        ("members", "lookback", "x"),  # "invalid literal for int()"
        ("members", "lookback", 10**9),  # windows of 10**9 steps
    ],
)
def test_predict_refuses_a_model_file_edited_by_hand(work, monthly_model, part, key, value):
    model = _edited(monthly_model, work / "edited.lstmkit", part, key, value)
    data, out = work / "monthly.csv", work / "edited-forecast.csv"
    out.write_text("old\n")
    argv = ["forecast", "predict", str(model), str(data), "--out", str(out)]
    run = _capped(argv)
    assert run.returncode == 2, run.stderr[-2000:]
    assert run.stderr.startswith("lstmkit forecast: error: GlobalForecaster.load: "), run.stderr
    assert repr(key) in run.stderr and repr(value) in run.stderr
    assert out.read_text() == "old\n"


def _processes_naming(text):
    """Pids of the processes whose command line holds ``text`` (read from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                pids.append(int(entry))
    return pids


# the kernels warmed before the command (as tests/test_cli_interrupt.py does: a signal must land
# in training, not in numba compiling them on a cold cache), then the ``lstmkit`` script
WARM = (
    "import numpy as np; from lstmkit.layers import LSTM, Dense; "
    "from lstmkit.models import Sequential; "
    "m = Sequential([LSTM(8, input_shape=(12, 1)), Dense(4)]); m.compile('adam', 'mse'); "
    "x, y = np.zeros((40, 12, 1), 'float32'), np.zeros((40, 4), 'float32'); "
    "m.fit(x, y, batch_size=16, verbose=0); m.predict(x); "
    "import sys; from lstmkit.cli import script; sys.exit(script(sys.argv[1:]))"
)


def test_sigterm_during_train_ends_the_child_and_keeps_the_previous_model(tmp_path):
    # ``timeout 60 lstmkit forecast train ...`` (SIGTERM) ended the command at once but left its
    # --jobs child training (a core busy for the rest of its member) and its directory in TMPDIR
    data, out, tmp = tmp_path / "panel.csv", tmp_path / "model.lstmkit", tmp_path / "tmp"
    tmp.mkdir()
    _frame(n=40).to_csv(data, index=False)
    out.write_bytes(b"the previous model")
    argv = ["forecast", "train", str(data), "--horizon", "4", "--units", "8", "--epochs", "100000"]
    argv += ["--patience", "100000", "--ensemble", "2", "--jobs", "2", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(SRC), "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-c", WARM, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        for _ in range(600):  # the child has its input: both processes train
            if list(tmp.glob("lstmkit-heldout-*/input.npz")) or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None and _processes_naming(str(tmp)), proc.communicate()
        time.sleep(1.0)
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=120)
        # (a child killed by its parent is reaped before the parent exits)
        assert _processes_naming(str(tmp)) == [], "the child outlived the command"
    finally:
        for pid in [*_processes_naming(str(tmp)), proc.pid]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 143, (proc.returncode, stderr)
    assert stderr.splitlines() == ["lstmkit forecast: terminated; nothing written"], stderr
    assert "saved" not in stdout and out.read_bytes() == b"the previous model"
    assert os.listdir(tmp) == []  # no temporary directory left behind


@pytest.mark.parametrize("command", ["train", "predict", "backtest"])
def test_a_level_given_twice_is_refused_at_the_door(work, monthly_model, capsys, command):
    # predict --level 80 80 wrote a CSV with the columns lo-80, hi-80 twice (pandas reads them
    # back as lo-80 and lo-80.1); train and backtest scored the level twice
    data, out = work / "monthly.csv", work / "twice.csv"
    argv = {"train": ["train", str(data)], "predict": ["predict", str(monthly_model), str(data)],
            "backtest": ["backtest", str(data)]}[command]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(["forecast", *argv, "--level", "80", "95", "80", "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"lstmkit forecast {command}: error: argument --level: expected "), err
    assert "distinct" in err and "[80, 95, 80]" in err and not out.exists()


def test_the_table_prints_huge_errors_in_scientific_notation(work, capsys):
    # values of -1e306 printed MAE as a 300-digit number, rows 330 characters wide
    df = _frame(n=40)
    df["y"] = -1e306 * (1 + np.random.default_rng(1).uniform(size=len(df)))
    data = work / "huge.csv"
    df.to_csv(data, index=False)
    argv = ["forecast", "train", str(data), "--horizon", "4", "--units", "4", "--epochs", "2"]
    argv += ["--ensemble", "1", "--jobs", "1", "--out", str(work / "huge.lstmkit")]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[next(i for i, s in enumerate(lines) if s.startswith("model ")) :][:7]
    naive = next(s for s in table if s.startswith("naive "))
    assert max(len(s) for s in table) < 80, "\n".join(table)
    # the naive forecast repeats each series' last training value: its MAE, recomputed here
    y = df["y"].to_numpy().reshape(2, 40)
    mae = np.mean(np.abs(y[:, 36:] - y[:, 35:36]))
    assert abs(float(naive.split()[1]) / mae - 1) < 1e-3, (naive, mae)


@pytest.mark.parametrize("value", [0.0, -5.0])
def test_a_log_model_names_the_value_it_cannot_take(work, monthly_model, capsys, value):
    # the message said "the panel has values <= 0": which series, which date, among thousands?
    df = _frame()  # the training data: every value > 0, so the model works on logs
    df.loc[df.index[(df["unique_id"] == "B")][9], "y"] = value
    data, out = work / "nonpositive.csv", work / "nonpositive-forecast.csv"
    df.to_csv(data, index=False)
    out.write_text("old\n")
    assert main(["forecast", "predict", str(monthly_model), str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "series 'B' at 2015-10-01" in err and f"got {value!r}" in err, err
    assert "logs" in err and out.read_text() == "old\n"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_held_out_fit_without_windows_costs_the_table_not_the_model(work, capsys, jobs):
    # three monthly series of 36 values, the default horizon (12): the held-out fit sees 24
    # values a series, fewer than its windows need (27, with one validation origin), the saved
    # fit has room (10 origins). --jobs 2 said so and saved the model; --jobs 1 (the default on
    # one CPU) failed, no model (first seen with 48 values, which the held-out fit now trains
    # on: its origins shrink to fit). Witness: the model --no-evaluate saves
    data = work / "held48.csv"
    _frame(n=36, ids=("A", "B", "C")).to_csv(data, index=False)
    argv = ["forecast", "train", str(data), "--units", "4", "--epochs", "2", "--ensemble", "1"]
    argv += ["--jobs", jobs]
    out, alone = work / f"held48-{jobs}.lstmkit", work / f"held48-{jobs}-noeval.lstmkit"
    assert main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "the held-out table is left out" in text and "shorter than 27 values" in text, text
    assert main([*argv, "--no-evaluate", "--out", str(alone)]) == 0
    fcs = []
    for model in (out, alone):
        path = work / f"fc-{model.stem}.csv"
        assert main(["forecast", "predict", str(model), str(data), "--out", str(path)]) == 0
        fcs.append(pd.read_csv(path))
    pd.testing.assert_frame_equal(fcs[0], fcs[1])


@pytest.mark.parametrize("size", [1e200, 1e308])
def test_a_covariate_too_large_to_standardise_is_named(work, capsys, size):
    # 1e200: its standard deviation overflowed to inf, the covariate became 0 in every window,
    # silently; 1e308: its mean overflowed, "global_forecaster: argument 'x' contains NaN or Inf"
    df = _frame()
    df["price"] = size * np.random.default_rng(2).uniform(0.5, 1.0, len(df))
    data, out = work / "bigcov.csv", work / "bigcov.lstmkit"
    df.to_csv(data, index=False)
    argv = ["forecast", "train", str(data), *FAST, "--past-covariates", "price"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "covariate 'price'" in err and f"{df['price'].abs().max():.3g}" in err, err
    assert not out.exists()


@pytest.mark.parametrize("freq, said, n", [("D", "daily (D)", 60), ("MS", "monthly (MS)", 40)])
def test_dates_written_with_midnight_are_dates(work, capsys, freq, said, n):
    # "2015-01-01 00:00:00" (a database's or spreadsheet's export of dates): daily data were
    # read as a 24-hourly panel (season 1, not 7; the default horizon 6, not 7), monthly and
    # yearly data refused ("an irregular date ... every 31 days"). Witness: the same values
    # with plain dates, whose model and forecast file must be the same
    df = _frame(freq=freq, n=n)
    plain, stamped = work / f"{freq}.csv", work / f"{freq}-midnight.csv"
    df.to_csv(plain, index=False)
    df.assign(ds=df["ds"] + " 00:00:00").to_csv(stamped, index=False)
    argv = ["--units", "4", "--epochs", "2", "--ensemble", "1", "--jobs", "1", "--no-evaluate"]
    fcs = []
    for data in (plain, stamped):
        model, out = data.with_suffix(".lstmkit"), data.with_suffix(".fc.csv")
        capsys.readouterr()
        assert main(["forecast", "train", str(data), *argv, "--out", str(model)]) == 0
        assert f"frequency {said}" in capsys.readouterr().out
        assert main(["forecast", "predict", str(model), str(data), "--out", str(out)]) == 0
        fcs.append(pd.read_csv(out))
    pd.testing.assert_frame_equal(fcs[0], fcs[1])


def test_daily_readings_at_a_fixed_hour_are_daily(work, capsys):
    # one reading a day at 09:00 was a '24h' panel: season 1, the default horizon 6
    df = _frame(freq="D", n=60)
    data, model = work / "nine.csv", work / "nine.lstmkit"
    df.assign(ds=df["ds"] + " 09:00:00").to_csv(data, index=False)
    argv = ["--units", "4", "--epochs", "2", "--ensemble", "1", "--jobs", "1", "--no-evaluate"]
    assert main(["forecast", "train", str(data), *argv, "--out", str(model)]) == 0
    assert "frequency daily (D)" in capsys.readouterr().out
    out = work / "nine.fc.csv"
    assert main(["forecast", "predict", str(model), str(data), "--out", str(out)]) == 0
    fc = pd.read_csv(out)
    assert len(fc) == 2 * 7 and fc["ds"].iloc[0] == "2015-03-02T09:00:00"


@pytest.mark.parametrize(
    "extra, was",
    [
        (["--id-column", "ds"], "a repeated date in series '2015-01-01'"),
        (["--id-column", "y"], "no training window"),
        (["--time-column", "y"], "expected dates"),
    ],
)
def test_one_column_in_two_roles_is_refused(work, monthly_model, capsys, extra, was):
    # each read the file another way and failed later with a message about something else
    data, out = work / "monthly.csv", work / "roles.lstmkit"
    assert main(["forecast", "train", str(data), *FAST, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "must name different columns" in err and f"{extra[1]!r}" in err, (was, err)
    assert not out.exists()


def test_a_reason_several_held_out_members_failed_for_is_said_once(work, capsys):
    # one monthly series of 36 values: the saved fit trains (validation origins shrink to fit),
    # the held-out fit sees 24 and each member that early-stops fails for the same reason; the
    # note said the whole message once per member (two 300-character copies)
    data, out = work / "single36.csv", work / "single36.lstmkit"
    _frame(n=36, ids=("A",)).to_csv(data, index=False)
    argv = ["forecast", "train", str(data), "--units", "4", "--epochs", "1", "--jobs", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    out_err = "".join(capsys.readouterr())
    line = next(s for s in out_err.splitlines() if "held-out table is left out" in s)
    assert line.count("shorter than 27 values") == 1, line
    assert "heldout-0, heldout-1 failed (ValueError: fit_global: no training window" in line, line
    assert out.exists()


def test_a_model_trained_on_days_read_as_hours_still_predicts(work, capsys):
    # before 2026-12-07 dates written with midnight ("2015-01-01 00:00:00") were read as seconds
    # and daily data as '24h' (season 1): such a model file says freq '24h', and the reader now
    # reads the same file as 'D'. The witness: the forecasts the model gives on the panel as
    # the old reader built it (seconds, '24h'), and the next days as the future dates
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import fit_global
    from lstmkit.apps.panel import Panel

    df = _frame(freq="D", n=50)
    data, model, out = work / "old24h.csv", work / "old24h.lstmkit", work / "old24h-fc.csv"
    df.assign(ds=df.ds + " 00:00:00").to_csv(data, index=False)
    groups = list(df.groupby("unique_id", sort=True))
    old = Panel.from_arrays([g.y.to_numpy() for _, g in groups], [k for k, _ in groups],
                            times=[g.ds.to_numpy().astype("datetime64[s]") for _, g in groups],
                            freq="24h", season=1)  # fmt: skip
    cfg = ForecastConfig(horizon=4, units=4, epochs=2, ensemble=1, patience=1)
    fitted = fit_global(old, cfg)
    assert fitted.facts["freq"] == "24h"
    fitted.save(model)
    want, _ = fitted.predict(old)
    assert main(["forecast", "predict", str(model), str(data), "--out", str(out)]) == 0, (
        capsys.readouterr().err
    )
    fc = pd.read_csv(out)
    # (the CLI's small predict runs the NumPy reference: its last bits may differ)
    np.testing.assert_allclose(fc.forecast.to_numpy().reshape(2, 4), want, rtol=1e-6)
    days = pd.to_datetime(fc.ds).dt.normalize().unique()
    assert list(days) == list(pd.date_range("2015-02-20", periods=4, freq="D")), days


def test_a_backtest_window_too_short_says_which_window_and_what_to_change(work, capsys):
    # two monthly series of 40 values, three windows of 12: the oldest window keeps 4 values a
    # series. The message said "the longest has 4" of a file whose series hold 40, and asked
    # for a shorter horizon or longer series; it now names the window and its cut
    data = work / "bt40.csv"
    _frame(n=40).to_csv(data, index=False)
    argv = ["forecast", "backtest", str(data), "--units", "4", "--epochs", "1", "--ensemble", "1"]
    assert main([*argv, "--windows", "3"]) == 2
    err = capsys.readouterr().err
    assert "the longest has 4" in err and "in backtest window 1 of 3" in err, err
    assert "ends 36 values before its last" in err and "fewer 'windows'" in err, err
    assert main([*argv, "--windows", "1"]) == 0, capsys.readouterr().err
