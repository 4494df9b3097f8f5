"""Scale of input: season detection, CSV reading and `forecast train` on long series.

Witnesses: statsmodels' direct (non-FFT) ACF; counts of the FFT lengths actually computed and
CPU-time ratios between all lags and a few lags of one series (never an absolute time); tracemalloc
peaks for files of N and 8N rows (the growth per row, not an absolute size); and a model trained
on the most recent rows of a long file compared bit for bit with one trained on a file that
holds only those rows.

The full case, an 11-million-row (about 250 MB) file trained end to end, is ``slow``
(``make slow``).
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from lstmkit.cli import forecast_single as cli_forecast  # the single-series engine
from lstmkit.cli import main
from lstmkit.data import SEASON_WINDOW, acf, detect_season, read_series_csv
from lstmkit.data import rows as csv_rows
from lstmkit.saving import load_model

# ----------------------------------------------------------------------------- season detection


def test_acf_equals_statsmodels_direct_sum_on_a_long_series():
    stattools = pytest.importorskip("statsmodels.tsa.stattools")
    rng = np.random.default_rng(0)
    t = np.arange(5000)
    x = np.sin(2 * np.pi * t / 37) + rng.normal(0, 1, t.size) + 0.001 * t
    got = acf(x, 1666)
    want = stattools.acf(x, nlags=1666, fft=False)  # the sums of products, lag by lag
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # lags beyond the series have no pairs: 0, as the definition gives
    np.testing.assert_array_equal(acf(x[:10], 15)[10:], 0.0)


def _seasonal(n, period, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 3 * np.sin(2 * np.pi * t / period) + rng.normal(0, 0.5, n)


def test_detect_season_reads_only_the_recent_window():
    # Before the window: a stronger cycle of 7 and a NaN. The answer is the window's cycle of
    # 12, the NaN is never read (reading it would be an error), and the result is the one for
    # the window alone.
    recent = _seasonal(SEASON_WINDOW, 12, 1)
    older = 10 * _seasonal(30_000, 7, 2)
    older[100] = np.nan
    x = np.concatenate([older, recent])
    assert detect_season(x) == 12 == detect_season(recent)
    assert detect_season(older[200:], window=None) == 7  # the older part alone has 7
    with pytest.raises(ValueError, match="argument 'values' got NaN"):
        detect_season(x, window=None)  # reading everything does meet the NaN
    with pytest.raises(ValueError, match="argument 'window' got 4"):
        detect_season(x, window=4)


def test_detect_season_fft_lengths_do_not_grow_with_the_series(monkeypatch):
    sizes = []
    rfft = np.fft.rfft

    def counting_rfft(a, n=None, *args, **kwargs):
        sizes.append(np.shape(a)[-1] if n is None else n)
        return rfft(a, n, *args, **kwargs)

    monkeypatch.setattr(np.fft, "rfft", counting_rfft)
    for n in (100_000, 800_000):
        sizes.clear()
        assert detect_season(_seasonal(n, 24, n)) == 24
        # one FFT of the last SEASON_WINDOW values padded to a power of two >= 2W - 1
        assert sizes == [2 * SEASON_WINDOW]


def _cpu_seconds(fn, repeats=5):
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def test_acf_costs_one_fft_whatever_the_number_of_lags(monkeypatch):
    # One FFT of length < 4N: O(N log N) for any number of lags. The old lag-by-lag sums cost
    # N * max_lag: all N/3 lags of 32768 values took about 1000 times as long as 10 lags.
    x = _seasonal(32768, 12, 3)
    few = _cpu_seconds(lambda: acf(x, 10))
    every = _cpu_seconds(lambda: acf(x, x.size // 3))
    assert every / max(few, 1e-6) < 5, (few, every)
    sizes = []
    rfft = np.fft.rfft
    monkeypatch.setattr(np.fft, "rfft", lambda a, n=None, *r, **k: sizes.append(n) or rfft(a, n))
    acf(x, x.size // 3)
    assert sizes == [2 * x.size]


# ----------------------------------------------------------------------------- CSV reading


def _write_csv(path, n, wide_note=False, start="1800-01-01"):
    days = np.datetime64(start) + np.arange(n)
    values = _seasonal(n, 7, n)
    note = "x" * 100 if wide_note else "ok"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "note", "y"])
        w.writerows(zip(days.astype(str).tolist(), [note] * n, values.tolist()))
    return path, values


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_memory_grows_by_the_arrays_not_the_text(tmp_path):
    # rows of ~130 bytes of text (a wide column that is not read): what grows with the rows
    # must be the float64 value and the int64 date, 16 bytes, plus transient copies
    n = 12_500  # above the reader's chunk of 4096 rows, whose text is a constant
    small, _ = _write_csv(tmp_path / "small.csv", n, wide_note=True)
    large, values = _write_csv(tmp_path / "large.csv", 8 * n, wide_note=True)
    peaks = []
    for path in (small, large):
        peaks.append(_peak_bytes(lambda p=path: read_series_csv(p, "y", time_column="date")))
    per_row = (peaks[1] - peaks[0]) / (7 * n)
    assert per_row < 48, f"{per_row:.0f} bytes per row (peaks {peaks})"
    got, index = read_series_csv(large, "y", time_column="date")
    np.testing.assert_array_equal(got, values)  # repr of floats reads back bit for bit
    assert (index[0], index[-1], len(index)) == ("1800-01-01", str(np.datetime64("1800-01-01")
                                                  + 8 * n - 1), 8 * n)  # fmt: skip


def test_reading_reports_progress(tmp_path, monkeypatch):
    path, _ = _write_csv(tmp_path / "p.csv", 20_000)
    monkeypatch.setattr(csv_rows, "PROGRESS_EVERY", 0.0)  # a line after every chunk
    lines = []
    read_series_csv(path, "y", progress=lines.append)
    assert len(lines) >= 4
    counts = [int(re.match(r"reading p\.csv: ([\d,]+) rows, \d+ of \d+ MB$", s)[1].replace(",", ""))
              for s in lines]  # fmt: skip
    assert counts == sorted(counts) and counts[-1] == 20_000


def test_cli_reports_reading_and_epochs_for_big_inputs(tmp_path, monkeypatch, capsys):
    path, _ = _write_csv(tmp_path / "d.csv", 3000)
    monkeypatch.setattr(csv_rows, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr(cli_forecast, "BIG_FILE_BYTES", 1000)  # "big" without --verbose
    monkeypatch.setattr(cli_forecast, "BIG_ROWS", 1000)
    argv = [
        "forecast",
        "train",
        str(path),
        "--column",
        "y",
        "--lookback",
        "8",
        "--horizon",
        "2",
        "--engine",
        "single",
    ]
    argv += ["--units", "3", "--epochs", "2", "--transform", "none", "--out", str(tmp_path / "m")]
    assert main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("reading d.csv: ") for line in err)
    windows = round(3000 * 0.7) - 8 - 2 + 1  # training windows: lookback 8, horizon 2
    batches = -(-windows // 16)  # batch size 16
    assert [line for line in err if line.startswith("training ")] == [
        f"training with transform none: up to 2 epochs of {batches} batches"
    ]
    epochs = [line for line in err if line.startswith("epoch ")]
    assert [e.split(":")[0] for e in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("loss" in e and "val_loss" in e for e in epochs)


# ----------------------------------------------------------------------------- bounded training


def _plain_csv(path, values):
    with open(path, "w", newline="") as f:
        f.write("y\n")
        f.write("".join(f"{v!r}\n" for v in values.tolist()))
    return path


TINY = [
    "--lookback",
    "12",
    "--horizon",
    "3",
    "--units",
    "4",
    "--epochs",
    "2",
    "--patience",
    "1",
    "--engine",
    "single",
]
TINY += ["--batch-size", "32", "--transform", "none", "--season", "12"]


def test_train_uses_only_the_most_recent_rows_and_says_so(tmp_path, capsys):
    values = _seasonal(24_000, 12, 5)
    long_csv = _plain_csv(tmp_path / "long.csv", values)
    recent_csv = _plain_csv(tmp_path / "recent.csv", values[-600:])
    a, b = tmp_path / "a.lstmkit", tmp_path / "b.lstmkit"
    argv = ["forecast", "train", str(long_csv), "--column", "y", *TINY, "--max-rows", "600"]
    assert main([*argv, "--out", str(a)]) == 0
    out = capsys.readouterr().out
    assert "using the most recent 600 of 24000 rows (23400..23999); --max-rows sets how many" in out
    assert (
        main(["forecast", "train", str(recent_csv), "--column", "y", *TINY, "--out", str(b)]) == 0
    )
    wa, wb = load_model(a).get_weights(), load_model(b).get_weights()
    assert len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def test_train_memory_does_not_grow_with_rows_beyond_the_cap(tmp_path, capsys):
    n = 6000  # above the reader's chunk of 4096 rows, whose text is a constant
    peaks = []
    for rows in (n, 8 * n):
        path = _plain_csv(tmp_path / f"s{rows}.csv", _seasonal(rows, 12, rows))
        argv = ["forecast", "train", str(path), "--column", "y", *TINY, "--max-rows", "600"]
        argv += ["--out", str(tmp_path / f"m{rows}.lstmkit")]
        peaks.append(_peak_bytes(lambda a=argv: main(a)))
        assert f"using the most recent 600 of {rows} rows" in capsys.readouterr().out
    # 42000 more rows may cost their float64 values and transient copies, not their windows
    # (12 inputs each: 96 bytes a row in float64, more once encoded)
    per_row = (peaks[1] - peaks[0]) / (7 * n)
    assert per_row < 40, f"{per_row:.0f} bytes per row (peaks {peaks})"


def test_library_windows_are_views_of_the_series():
    from lstmkit.apps.forecast import _windows

    values = np.arange(100.0)
    X, Y = _windows(values, range(30, 50), 12, 3)
    assert np.shares_memory(X, values) and np.shares_memory(Y, values)
    np.testing.assert_array_equal(X[0], values[18:30])  # inputs before the origin t = 30
    np.testing.assert_array_equal(Y[-1], values[49:52])  # targets from the last origin on


# ----------------------------------------------------------------------------- the full case


def _write_big(path, n_rows):
    """``n_rows`` rows of minute timestamps and values, written in blocks (about 23 bytes a
    row)."""
    start = np.datetime64("2000-01-01T00:00", "m")
    rng = np.random.default_rng(0)
    block = 1_000_000
    with open(path, "w") as f:
        f.write("time,y\n")
        for lo in range(0, n_rows, block):
            t = np.arange(lo, min(lo + block, n_rows))
            y = 50 + 20 * np.sin(2 * np.pi * t / 1440) + rng.normal(0, 2, t.size)
            stamps = np.datetime_as_string(start + t, unit="m")
            f.write("\n".join(f"{s},{v:.2f}" for s, v in zip(stamps.tolist(), y.tolist())))
            f.write("\n")


@pytest.mark.slow
def test_eleven_million_rows_train_on_a_bounded_window(tmp_path):
    n_rows = 11_000_000
    data = tmp_path / "big.csv"
    _write_big(data, n_rows)
    assert os.path.getsize(data) > 200e6
    code = "import sys; from lstmkit.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-u", "-c", code, "forecast", "train", str(data), "--column", "y"]
    cmd += ["--time-column", "time", "--epochs", "1", "--units", "8", "--engine", "single"]
    cmd += ["--out", str(tmp_path / "m.lstmkit")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)  # fmt: skip
    stamped = [(time.monotonic(), line.rstrip("\n")) for line in proc.stdout]
    assert proc.wait() == 0, "\n".join(s for _, s in stamped)
    text = [s for _, s in stamped]
    read_at = next(t for t, s in stamped if s.startswith(f"read {n_rows} rows"))
    first_epoch_at = next(t for t, s in stamped if s.startswith("epoch 1/1"))
    assert sum(s.startswith("training with transform ") for s in text) == 3  # auto: 3 networks
    assert any(s.startswith("reading big.csv: ") for s in text)  # progress while reading
    assert f"using the most recent 100000 of {n_rows} rows" in "\n".join(text)
    assert first_epoch_at - read_at < 60, "\n".join(text)
    assert "dates 2000-01-01T00:00..2020-11-29T21:19, every minute" in "\n".join(text)
    import resource

    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert peak_mib < 1500, peak_mib  # the old code peaked at about 8 GB
