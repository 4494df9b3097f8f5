"""fpp2 series and panels: the global LSTM forecaster beside statsforecast, one season ahead.

    PYTHONPATH=src python benchmarks/forecast_fpp2.py                 # last season held out
    PYTHONPATH=src python benchmarks/forecast_fpp2.py --split tune    # the season before it
    PYTHONPATH=src python benchmarks/forecast_fpp2.py --split tune2   # two seasons before (tune3)
    PYTHONPATH=src python benchmarks/forecast_fpp2.py --split tune --set trend="'hedge'"

Single series (monthly and quarterly, default settings): RMSE of the last season forecast from
the rest, beside AutoETS, AutoTheta, AutoARIMA, Naive and SeasonalNaive. Panels: mean MASE
(scaled by the in-sample seasonal-naive MAE) and the wall-clock time of each method run as a user
meets it: a fresh Python process that imports, fits and forecasts (statsforecast's numba
compilation included, lstmkit's too; lstmkit's process reads the CSV with its own reader, as
``lstmkit forecast train`` does, statsforecast's with pandas, which its API takes). Also the 80%
interval coverage of lstmkit.
The data are GPL-3 (fpp2): read from ``../shared/data``, never copied into the repository.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FPP2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "forecasting" / "fpp2"
SINGLES = ("a10", "h02", "usmelec", "auscafe", "elecequip", "ausbeer", "qcement")
PANELS = ("visnights", "prisonLF", "arrivals", "departures")
SF = ("AutoETS", "AutoTheta", "AutoARIMA", "Naive", "SeasonalNaive")
SPLITS = {"official": 0, "tune": 1, "tune2": 2, "tune3": 3}  # seasons dropped from the end


def load(name, split="official"):
    """``(ids, train list, test (n, m), times list, freq, m)``: each series' last season held out
    (``tune``: the season before it, the last one dropped; ``tune2``/``tune3``: two/three seasons
    before it, for a check on more than one window)."""
    import pandas as pd

    df = pd.read_csv(FPP2 / f"{name}.csv", parse_dates=["ds"])
    if "unique_id" not in df:
        df.insert(0, "unique_id", name)
    months = np.diff(df["ds"].iloc[:2].to_numpy().astype("datetime64[M]").astype(int))[0]
    freq, m = ("QS", 4) if months == 3 else ("MS", 12)
    out = ([], [], [], [])
    for uid, g in df.groupby("unique_id", sort=False):
        y, t = g["y"].to_numpy(np.float64), g["ds"].to_numpy()
        cut = SPLITS[split] * m
        if cut:
            y, t = y[:-cut], t[:-cut]
        for lst, v in zip(out, (str(uid), y[:-m], y[-m:], t[:-m])):
            lst.append(v)
    return out[0], out[1], np.asarray(out[2]), out[3], freq, m


def lstmkit_panel(name, split):
    """The training panel of ``load(name, split)`` read as ``lstmkit forecast train`` reads the
    file (``read_panel``: lstmkit's own CSV reader; a user of lstmkit does not import pandas),
    then cut the same way."""
    from lstmkit.apps.panel import Panel
    from lstmkit.apps.panel_io import read_panel

    full = read_panel(FPP2 / f"{name}.csv")
    m = int(full.season)
    cut = (SPLITS[split] + 1) * m  # the dropped seasons and the held-out one
    ids = [str(i) for i in full.ids] if name in PANELS else [name]
    train = [full.series(k)[:-cut] for k in range(full.n_series)]
    times = [full.times[full.span(k)][:-cut] for k in range(full.n_series)]
    return Panel.from_arrays(train, ids, times=times, freq=full.freq)


def fit_lstm(name, split, ensemble, sets=None):
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import fit_global

    panel = lstmkit_panel(name, split)
    over = dict(sets or {}) | ({"ensemble": ensemble} if ensemble else {})
    cfg = ForecastConfig(**over).validate()
    point, iv = fit_global(panel, cfg).predict(panel, levels=(80,))
    return {"lstmkit": point, "lo80": iv[80][0], "hi80": iv[80][1]}


def fit_sf(name, split, method):
    ids, train, _, _, _, m = load(name, split)
    return sf_forecast(ids, train, m, method)


def sf_forecast(ids, train, m, method, h=None):
    """``{method: forecasts (n, h)}`` of one statsforecast model, ``h`` steps (default one
    season, ``m``) ahead."""
    import pandas as pd
    import statsforecast.models as sfm
    from statsforecast import StatsForecast

    df = pd.concat([pd.DataFrame({"unique_id": i, "ds": np.arange(len(y)), "y": y})
                    for i, y in zip(ids, train)], ignore_index=True)  # fmt: skip
    kw = {} if method == "Naive" else {"season_length": m}
    sf = StatsForecast(models=[getattr(sfm, method)(**kw)], freq=1, n_jobs=1)
    fc = sf.forecast(df=df, h=h or m)
    col = next(c for c in fc.columns if c not in ("unique_id", "ds"))
    return {method: np.stack([fc.loc[fc.unique_id == i, col].to_numpy() for i in ids])}


def timed(name, split, method, ensemble, script=__file__, extra=()):
    """Run one method in a fresh process (``script --one name method OUT --split split
    [extra]``); ``(forecasts dict, (CPU s, wall s))``."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "fc.npz"
        args = [sys.executable, "-W", "ignore", script, "--one", name, method, str(out),
                "--split", split] + (["--ensemble", str(ensemble)] if ensemble else [])  # fmt: skip
        args += list(extra)
        t, c = time.perf_counter(), _child_cpu()
        subprocess.run(args, check=True)
        secs, cpu = time.perf_counter() - t, _child_cpu() - c
        with np.load(out) as z:
            return dict(z), (cpu, secs)


def _child_cpu():
    """CPU seconds (user + system) of the finished child processes: on a busy machine the
    wall clock measures the neighbours too, the CPU time only the method."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def mase(train, test, fc, m):
    return float(np.mean([np.mean(np.abs(b - c)) / np.mean(np.abs(a[m:] - a[:-m]))
                          for a, b, c in zip(train, test, fc)]))  # fmt: skip


def rmse(test, fc):
    return float(np.sqrt(np.mean((test - fc) ** 2)))


def _sets(items):
    """``key=value`` settings (Python literals; tuples for lists) -> dict."""
    import ast

    out = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in items)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


def run(name, split, ensemble, sets=()):
    ids, train, test, _, _, m = load(name, split)
    extra = ["--set", *sets] if sets else []
    res, secs = timed(name, split, "lstmkit", ensemble, extra=extra)
    times = {"lstmkit": secs}
    for method in SF:
        fc, times[method] = timed(name, split, method, None)
        res.update(fc)
    cov = float(np.mean((test >= res["lo80"]) & (test <= res["hi80"])))
    return ids, train, test, m, res, times, cov


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=tuple(SPLITS), default="official")
    ap.add_argument("--ensemble", type=int, default=None)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--set", nargs="*", default=[], help="lstmkit settings key=value (literals)")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        name, method, out = a.one
        fc = (
            fit_lstm(name, a.split, a.ensemble, _sets(a.set))
            if method == "lstmkit"
            else fit_sf(name, a.split, method)
        )
        np.savez(out, **fc)
        return
    names = ["lstmkit", *SF]
    print(f"fpp2, split {a.split}: single series, RMSE of the last season (ratio to AutoETS)")
    print(f"{'series':<11}" + "".join(f"{n:>14}" for n in names) + f"{'lstm/ETS':>10}{'cov80':>7}")
    for name in [s for s in SINGLES if a.only is None or s in a.only]:
        _, _, test, _, res, _, cov = run(name, a.split, a.ensemble, a.set)
        r = {n: rmse(test, res[n]) for n in names}
        print(f"{name:<11}" + "".join(f"{r[n]:>14.4g}" for n in names)
              + f"{r['lstmkit'] / r['AutoETS']:>10.3f}{cov:>7.2f}", flush=True)  # fmt: skip
    print(f"\nfpp2 panels, split {a.split}: mean MASE (CPU s / wall s, fresh process each)")
    print(f"{'panel':<11}" + "".join(f"{n:>24}" for n in names) + f"{'cov80':>7}")
    for name in [s for s in PANELS if a.only is None or s in a.only]:
        _, train, test, m, res, times, cov = run(name, a.split, a.ensemble, a.set)
        cells = "".join(f"{mase(train, test, res[n], m):>9.3f} ({times[n][0]:>5.1f}/{times[n][1]:>5.1f})"
                        for n in names)  # fmt: skip
        print(f"{name:<11}{cells}{cov:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
