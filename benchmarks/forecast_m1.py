"""M1 yearly, horizon 6: the global LSTM forecaster beside statsforecast, mean MASE.

    PYTHONPATH=src python benchmarks/forecast_m1.py                  # the official split
    PYTHONPATH=src python benchmarks/forecast_m1.py --split tune     # ends 6 points earlier

MASE: mean absolute error over the 6 held-out points divided by the in-sample one-step naive
MAE (m=1), averaged over the 181 series (as the Monash archive and the data README). Settings
are chosen on ``--split tune`` (the series cut 6 points earlier, its last 6 as the test);
the official split is reported once per kept setting. Also prints the 80%/95% interval coverage
and the wall-clock times (train + predict; statsforecast's include its numba compilation).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "forecasting"
M1 = DATA / "m1_yearly" / "m1_yearly.csv"
H = 6


def load_m1(split="official"):
    """``(ids, train list, test (n, 6))``: the last 6 points (``tune``: the 6 before them)."""
    import pandas as pd

    df = pd.read_csv(M1)
    cut = 6 if split == "tune" else 0
    ids, train, test = [], [], []
    for uid, g in df.groupby("unique_id", sort=False):
        y = g["y"].to_numpy(np.float64)
        y = y[: len(y) - cut]
        ids.append(str(uid))
        train.append(y[:-H])
        test.append(y[-H:])
    return ids, train, np.asarray(test)


def mase(train, test, fc, m=1):
    """Mean over series of MAE / in-sample seasonal-naive MAE."""
    return float(np.mean([
        np.mean(np.abs(b - c)) / np.mean(np.abs(a[m:] - a[:-m])) for a, b, c in zip(train, test, fc)
    ]))  # fmt: skip


def coverage(test, lo, hi):
    return float(np.mean((test >= lo) & (test <= hi)))


def run_lstm(ids, train, config, freq="YS"):
    from lstmkit.apps.forecast_global import fit_global
    from lstmkit.apps.panel import Panel

    panel = Panel.from_arrays(train, ids, freq=freq)
    t, c = time.perf_counter(), time.process_time()
    model = fit_global(panel, config)
    point, iv = model.predict(panel, levels=(80, 95))
    return point, iv, (time.process_time() - c, time.perf_counter() - t)


def run_statsforecast(
    ids,
    train,
    h,
    season,
    freq,
    models=("AutoETS", "AutoTheta", "AutoARIMA", "Naive", "SeasonalNaive"),
):
    """``{name: (forecast (n, h), seconds)}``; each model fitted alone in a fresh process would
    pay numba's compilation once: here the first model of the run pays it (timed separately by
    ``--sf-time``)."""
    import pandas as pd
    import statsforecast.models as sfm
    from statsforecast import StatsForecast

    rows = [
        pd.DataFrame({"unique_id": i, "ds": np.arange(len(y)), "y": y}) for i, y in zip(ids, train)
    ]
    df = pd.concat(rows, ignore_index=True)
    out = {}
    for name in models:
        kw = {"season_length": season} if name != "Naive" else {}
        t, c = time.perf_counter(), time.process_time()
        sf = StatsForecast(
            models=[getattr(sfm, name)(**kw)], freq=1, n_jobs=1, fallback_model=sfm.Naive()
        )
        fc = sf.forecast(df=df, h=h)
        col = next(c for c in fc.columns if c not in ("unique_id", "ds"))
        pred = np.stack([fc.loc[fc.unique_id == i, col].to_numpy() for i in ids])
        out[name] = (pred, (time.process_time() - c, time.perf_counter() - t))
    return out


def main(argv=None):
    from lstmkit.apps.forecast_config import ForecastConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("official", "tune"), default="official")
    ap.add_argument("--ensemble", type=int, default=ForecastConfig.ensemble)
    ap.add_argument(
        "--set", nargs="*", default=[], help="config overrides key=value (python literals)"
    )
    ap.add_argument("--no-statsforecast", action="store_true")
    a = ap.parse_args(argv)
    import ast

    over = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in a.set)}
    config = ForecastConfig(horizon=H, ensemble=a.ensemble, **over).validate()
    ids, train, test = load_m1(a.split)
    point, iv, secs = run_lstm(ids, train, config)
    print(
        f"M1 yearly, split {a.split}, h={H}, {len(ids)} series; lstmkit settings {over or 'default'}, ensemble {a.ensemble}"
    )
    print(f"{'method':<16}{'MASE':>8}{'cov80':>8}{'cov95':>8}{'CPU s':>9}{'wall s':>9}")
    print(f"{'lstmkit global':<16}{mase(train, test, point):>8.3f}{coverage(test, *iv[80]):>8.3f}"
          f"{coverage(test, *iv[95]):>8.3f}{secs[0]:>9.1f}{secs[1]:>9.1f}")  # fmt: skip
    if not a.no_statsforecast:
        for name, (fc, s) in run_statsforecast(ids, train, H, 1, "YS").items():
            print(f"{name:<16}{mase(train, test, fc):>8.3f}{'':>16}{s[0]:>9.1f}{s[1]:>9.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
