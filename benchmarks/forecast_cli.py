"""The whole CLI, as a user meets it, beside statsforecast's AutoARIMA: fpp2 panels and M1 yearly.

    PYTHONPATH=src python benchmarks/forecast_cli.py                        # every panel, 3 rounds
    PYTHONPATH=src python benchmarks/forecast_cli.py --only arrivals --rounds 5
    PYTHONPATH=src python benchmarks/forecast_cli.py --before /tmp/base/src   # old vs new
    PYTHONPATH=src python benchmarks/forecast_cli.py --train-args --no-evaluate

Each panel's training part (the last season held out, ``forecast_fpp2.load``; M1: the last 6
years, ``forecast_m1.load_m1``) is written as a long CSV in a temporary directory; then, in
fresh processes, ``lstmkit forecast train DATA --out MODEL`` + ``lstmkit forecast predict MODEL
DATA --out FC.csv`` (default settings) and ``forecast_fpp2.py --one PANEL AutoARIMA`` (import,
numba compilation, fit and forecast), interleaved round by round (cli, arima, cli, arima ...) so
that both meet the same neighbours. Printed: the medians over the rounds of CPU s (user + sys of
the children) and wall s, the ratio of CPU s, the MASE of both forecasts (fpp2: seasonal-naive
scaled; M1: naive scaled), and the load average (1 min, at the start and the end of the panel's
rounds). The data are read from ``../shared/data``.

lstmkit runs from its bytecode, as ``pip install`` leaves it (pip compiles every module at
install time, as it did statsforecast's, numba's and the rest of AutoARIMA's side): each
tree's ``lstmkit`` is compiled once beside its sources (``__pycache__``, ignored by git) before
the rounds, so that the CLI's processes read it even where ``PYTHONDONTWRITEBYTECODE`` is set
(in some shells: every timed process then compiled lstmkit's modules from source, ~0.15-0.2 CPU
s each). Not through ``PYTHONPYCACHEPREFIX``: numba's caches (statsforecast's ``cache=True``
functions in the anchors' task) are looked for under that prefix too, and every process then
compiled them again (~6 CPU s). ``--no-bytecode``: the environment as it is, nothing compiled.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import forecast_fpp2 as fpp2

PANELS = (*fpp2.PANELS, "m1_yearly")


def load(name):
    """``(ids, train list, test (n, H), times list, m)`` of the official split."""
    if name == "m1_yearly":
        import forecast_m1 as m1
        import pandas as pd

        ids, train, test = m1.load_m1("official")
        ds = pd.read_csv(m1.M1).groupby("unique_id", sort=False)["ds"]
        first = {str(k): int(v.iloc[0]) for k, v in ds}
        times = [first[i] + np.arange(len(y)) for i, y in zip(ids, train)]
        return ids, train, test, times, 1
    ids, train, test, times, _, m = fpp2.load(name)
    return ids, train, test, times, m


def write_csv(path, ids, train, times):
    import pandas as pd

    frames = [pd.DataFrame({"unique_id": i, "ds": t, "y": y}) for i, t, y in zip(ids, times, train)]
    pd.concat(frames).to_csv(path, index=False, date_format="%Y-%m-%d")


def cli_env(src=None, bytecode=True) -> dict:
    """The CLI's environment: ``src`` (a source tree) on ``PYTHONPATH``; with ``bytecode``, no
    ``PYTHONPYCACHEPREFIX`` (the processes read the ``__pycache__`` beside the sources)."""
    env = dict(os.environ) | ({"PYTHONPATH": str(src)} if src else {})
    if bytecode:
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def compile_lstmkit(env) -> None:
    """Compile the ``lstmkit`` that ``env`` imports into ``__pycache__`` beside its sources."""
    code = ("import compileall, os, lstmkit; "
            "assert compileall.compile_dir(os.path.dirname(lstmkit.__file__), quiet=1)")  # fmt: skip
    env = {
        k: v for k, v in env.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def run_cli(data, d, train_args=(), env=None):
    """``forecast train`` + ``forecast predict`` in fresh processes: ``(forecast rows, CPU s,
    wall s)``; ``env``: ``cli_env``'s (default: this process's environment)."""
    import pandas as pd

    model, out = Path(d) / "m.lstmkit", Path(d) / "fc.csv"
    cli = [sys.executable, "-W", "ignore", "-m", "lstmkit", "forecast"]
    env = dict(os.environ) if env is None else env
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    t, c = time.perf_counter(), fpp2._child_cpu()
    subprocess.run(
        [*cli, "train", str(data), "--out", str(model), *train_args], check=True, **quiet
    )
    subprocess.run([*cli, "predict", str(model), str(data), "--out", str(out)], check=True, **quiet)
    wall, cpu = time.perf_counter() - t, fpp2._child_cpu() - c
    fc = pd.read_csv(out, dtype={"unique_id": str})
    return fc, cpu, wall


def run_arima(name, ids, train, m, d):
    """AutoARIMA alone in a fresh process (import + numba compilation + fit + forecast)."""
    out = Path(d) / "arima.npz"
    args = [sys.executable, "-W", "ignore", __file__, "--arima", name, str(out)]
    t, c = time.perf_counter(), fpp2._child_cpu()
    subprocess.run(args, check=True)
    wall, cpu = time.perf_counter() - t, fpp2._child_cpu() - c
    with np.load(out) as z:
        return z["AutoARIMA"], cpu, wall


def mase(train, test, fc, m):
    return fpp2.mase(train, test, fc, m)


def bench(name, rounds, train_args, before=None, bytecode=True):
    """``rounds`` interleaved rounds: [the CLI of ``before``,] the CLI, AutoARIMA."""
    ids, train, test, times, m = load(name)
    load0 = os.getloadavg()[0]
    runs = {"before": [], "cli": [], "arima": []}
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / f"{name}.csv"
        write_csv(data, ids, train, times)
        env = cli_env(None, bytecode)
        env_b = cli_env(before, bytecode) if before else None
        for e in (env, env_b) if bytecode else ():
            if e is not None:
                compile_lstmkit(e)
        for _ in range(rounds):
            if before:
                fc_b, *secs = run_cli(data, d, train_args, env_b)
                runs["before"].append(secs)
            fc, *secs = run_cli(data, d, train_args, env)
            runs["cli"].append(secs)
            point_a, *secs = run_arima(name, ids, train, m, d)
            runs["arima"].append(secs)
    point = np.stack([fc.loc[fc.unique_id == i, "forecast"].to_numpy() for i in ids])
    c, a = np.median(runs["cli"], axis=0), np.median(runs["arima"], axis=0)
    print(f"{name:<11}{c[0]:>9.2f}{c[1]:>9.2f}{a[0]:>9.2f}{a[1]:>9.2f}{c[0] / a[0]:>8.2f}"
          f"{mase(train, test, point, m):>9.3f}{mase(train, test, point_a, m):>9.3f}"
          f"   load {load0:.1f}-{os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    if before:
        b = np.median(runs["before"], axis=0)
        point_b = np.stack([fc_b.loc[fc_b.unique_id == i, "forecast"].to_numpy() for i in ids])
        print(f"{'  before':<11}{b[0]:>9.2f}{b[1]:>9.2f}{'':>18}{b[0] / a[0]:>8.2f}"
              f"{mase(train, test, point_b, m):>9.3f}", flush=True)  # fmt: skip
    for key, secs in runs.items():
        if secs:
            print(f"  {key} rounds CPU/wall: " + "; ".join(f"{x:.2f}/{y:.2f}" for x, y in secs))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, choices=PANELS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                    help="extra arguments of `forecast train` (last on the line)")  # fmt: skip
    ap.add_argument("--before", default=None, metavar="SRC",
                    help="also time this lstmkit source tree's CLI, interleaved (e.g. a `git "
                    "archive` of an earlier commit's src/)")  # fmt: skip
    ap.add_argument(
        "--no-bytecode",
        action="store_true",
        help="run lstmkit as the environment has it (no compiled bytecode prepared)",
    )
    ap.add_argument("--arima", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.arima:
        name, out = a.arima
        ids, train, test, _, m = load(name)
        np.savez(out, **fpp2.sf_forecast(ids, train, m, "AutoARIMA", h=test.shape[1]))
        return
    print(f"{'panel':<11}{'CLI CPU':>9}{'CLI wall':>9}{'ARIMA C':>9}{'ARIMA w':>9}{'C ratio':>8}"
          f"{'MASE cli':>9}{'MASE ari':>9}   (medians of {a.rounds} interleaved rounds)")  # fmt: skip
    for name in [p for p in PANELS if a.only is None or p in a.only]:
        bench(name, a.rounds, a.train_args, a.before, not a.no_bytecode)


if __name__ == "__main__":
    main()
