"""Where ``forecast train`` + ``forecast predict`` spend their CPU outside the gradient steps
(issue 18, docs/forecast.md "Outside the training steps").

    PYTHONPATH=src python benchmarks/forecast_overhead.py split [--panel arrivals] [--repeats 2]
    PYTHONPATH=src python benchmarks/forecast_overhead.py ab predict|train [--panel arrivals]
        [--rounds 8] --before OLD/src

``split``: ``fit_global`` on the panel's official training part (``forecast_fpp2.lstmkit_panel``,
``ForecastConfig()``), in this process on one thread (``LSTMKIT_NUM_THREADS=1``), the kernels
loaded by a small fit first; CPU seconds (``time.process_time``) inside timers around its parts:
the gradient steps (``Trainable._train_step``), the epochs around them, the batch and epoch
callbacks, the validation, the members' own work. The timers cost about 1 us a call.

``ab``: ``lstmkit forecast predict`` (of one model, trained once by this tree) or ``forecast
train`` on the panel's CSV in fresh processes, the tree on the path and ``--before``'s
interleaved round by round (A B, B A, ...); wall s and CPU s (``os.wait4``: the command and the
children it reaped, the held-out child of ``--jobs 2`` included), medians, the load average; the
forecasts (predict) or the saved models (train) of the two trees compared bit for bit.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def split(panel_name, repeats):
    os.environ.setdefault("LSTMKIT_NUM_THREADS", "1")
    from forecast_fpp2 import lstmkit_panel

    from lstmkit import callbacks as cbm
    from lstmkit.apps import forecast_global as fg
    from lstmkit.apps import forecast_network as fn
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.models import training as tr

    acc, calls = collections.Counter(), collections.Counter()

    def timed(owner, name, key):
        f = getattr(owner, name)

        def w(*a, **k):
            t = time.process_time()
            try:
                return f(*a, **k)
            finally:
                acc[key] += time.process_time() - t
                calls[key] += 1

        setattr(owner, name, w)

    parts = [(tr.Trainable, "fit", "fit"), (tr.Trainable, "_fit_epoch", "epochs"),
             (tr.Trainable, "_train_step", "gradient steps"),
             (tr.Trainable, "_checked_validation_logs", "validation"),
             (cbm.CallbackList, "on_batch_begin", "callbacks, batch begin"),
             (cbm.CallbackList, "on_batch_end", "callbacks, batch end"),
             (cbm.CallbackList, "on_epoch_begin", "callbacks, epoch begin"),
             (cbm.CallbackList, "on_epoch_end", "callbacks, epoch end"),
             (fn, "build_network", "build_network"), (tr.Trainable, "compile", "compile")]  # fmt: skip
    parts += [(fg, n, n) for n in ("_inputs", "_z_scale", "_calibrate", "trend_phi", "_origins")]
    for owner, name, key in parts:
        timed(owner, name, key)
    panel = lstmkit_panel(panel_name, "official")
    fg.fit_global(panel, ForecastConfig(ensemble=1, epochs=2)).predict(panel)  # kernels loaded
    for _ in range(repeats):
        acc.clear()
        calls.clear()
        t = time.process_time()
        model = fg.fit_global(panel, ForecastConfig())
        total = time.process_time() - t
        best = [m.best_epoch for m in model.members]
        print(f"fit_global on {panel_name}: {total:.3f} CPU s, best epochs {best}, "
              f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
        for key, v in acc.most_common():
            print(f"  {key:<24}{v:8.3f} s {calls[key]:7d} calls {1e3 * v / calls[key]:8.3f} ms")


def _command(kind, data, d, tag):
    model = Path(d) / "model.lstmkit"
    if kind == "predict":
        return ["predict", str(model), str(data), "--out", str(Path(d) / f"fc-{tag}.csv")]
    return ["train", str(data), "--out", str(Path(d) / f"model-{tag}.lstmkit")]


def _run(src, args):
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-W", "ignore", "-m", "lstmkit", "forecast", *args]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({status})")
    return time.perf_counter() - t, usage.ru_utime + usage.ru_stime


def ab(kind, panel_name, rounds, before):
    import forecast_cli

    trees = {"before": Path(before), "this tree": HERE.parent / "src"}
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / f"{panel_name}.csv"
        ids, train, _, times, _ = forecast_cli.load(panel_name)
        forecast_cli.write_csv(data, ids, train, times)
        if kind == "predict":  # one model for both trees' predict
            _run(trees["this tree"], ["train", str(data), "--out", str(Path(d) / "model.lstmkit")])
        load0, runs = os.getloadavg()[0], {k: [] for k in trees}
        for r in range(rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for tag in order:
                runs[tag].append(_run(trees[tag], _command(kind, data, d, tag[:4])))
        for tag, v in runs.items():
            print(f"{kind} {panel_name}, {tag}: wall {statistics.median(w for w, _ in v):.3f} s, "
                  f"CPU {statistics.median(c for _, c in v):.3f} s (medians of {len(v)}); "
                  + " ".join(f"{w:.2f}/{c:.2f}" for w, c in v))  # fmt: skip
        print(f"load {load0:.2f}-{os.getloadavg()[0]:.2f}; {_same(kind, Path(d))}")


def _same(kind, d):
    if kind == "predict":
        same = (d / "fc-befo.csv").read_bytes() == (d / "fc-this.csv").read_bytes()
        if same:
            return "forecast files identical: True"
        import pandas as pd  # e.g. one tree on the NumPy reference, the other compiled

        a, b = pd.read_csv(d / "fc-befo.csv"), pd.read_csv(d / "fc-this.csv")
        num = a.select_dtypes("number").columns
        rel = ((a[num] - b[num]).abs() / b[num].abs().clip(lower=1e-12)).to_numpy().max()
        return f"forecast files identical: False (largest relative difference {rel:.2e})"
    import numpy as np

    a, b = _weights(d / "model-befo.lstmkit"), _weights(d / "model-this.lstmkit")
    same = a.keys() == b.keys() and all(
        len(a[i]) == len(b[i]) and all(np.array_equal(x, y) for x, y in zip(a[i], b[i])) for i in a
    )
    return f"saved models' weights identical: {same} ({sum(map(len, a.values()))} arrays)"


def _weights(path):
    """member -> its arrays in layer build order: the names' counters (``dense_8``) depend on
    how many networks the process that trained the member had built, not compared."""
    import re

    from safetensors.numpy import load_file

    out = {}
    for key, v in load_file(path).items():
        member, kind, number, role = re.match(r"member(\d+)/(\D+?)_?(\d*)\.(\w+)$", key).groups()
        out.setdefault(int(member), []).append(((kind, int(number or 0), role), v))
    return {i: [v for _, v in sorted(t, key=lambda kv: kv[0])] for i, t in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("split")
    s.add_argument("--panel", default="arrivals")
    s.add_argument("--repeats", type=int, default=2)
    a = sub.add_parser("ab")
    a.add_argument("kind", choices=("predict", "train"))
    a.add_argument("--panel", default="arrivals")
    a.add_argument("--rounds", type=int, default=8)
    a.add_argument("--before", required=True, metavar="SRC")
    args = ap.parse_args(argv)
    if args.what == "split":
        split(args.panel, args.repeats)
    else:
        ab(args.kind, args.panel, args.rounds, args.before)


if __name__ == "__main__":
    main()
