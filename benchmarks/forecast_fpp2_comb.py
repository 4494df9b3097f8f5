"""fpp2 single series: forecast combinations of the global LSTM, judged on the tune seasons.

    PYTHONPATH=src python benchmarks/forecast_fpp2_comb.py fit --split tune --ensemble 15 \
        --out /tmp/comb                      # one npz per series: members' paths and anchors
    PYTHONPATH=src python benchmarks/forecast_fpp2_comb.py table --out /tmp/comb
    PYTHONPATH=src python benchmarks/forecast_fpp2_comb.py table --out /tmp/combG --base /tmp/comb

``fit`` trains ``ForecastConfig(ensemble=N, **--set)`` once per series (in process; member
``i`` is the same with any ``N > i``: ``fit_global``'s docs) and stores, per member, the decoded
median path and the *zero-output decode* (the normalisation's own forecast: level + seasonal
profile, what the member would forecast if the network said 0), beside statsforecast's AutoETS
and SeasonalNaive. ``table`` forms each pre-declared combination from the stored paths and
prints RMSE / AutoETS per series-season, their geometric mean and the count that meets the
issue's target (within 1.10x AutoETS and better than SeasonalNaive).
The data are GPL-3 (fpp2): read from ``../shared/data``, never copied into the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_fpp2 import SINGLES, _sets, load, lstmkit_panel, rmse, sf_forecast


def fit_paths(name, split, ensemble, sets):
    """``(members (N, H), zeros (N, H))``: each member's decoded median and zero-output path."""
    from lstmkit.apps import forecast_windows as fw
    from lstmkit.apps.forecast_config import ForecastConfig
    from lstmkit.apps.forecast_global import _norm, fit_global

    panel = lstmkit_panel(name, split)
    fc = fit_global(panel, ForecastConfig(**(dict(sets) | {"ensemble": ensemble})).validate())
    norm, ids = _norm(fc.facts), fc._id_index(panel)
    members, zeros = [], []
    for m in fc.members:
        out, stats = fc._member_paths(m, panel, ids)
        members.append(fw.decode(out[:, 0] * m.z_scale, stats, norm)[0])
        zeros.append(fw.decode(np.zeros_like(out[:, 0]), stats, norm)[0])
    return np.asarray(members), np.asarray(zeros)


def fit(a):
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in a.only or SINGLES:
        path = out / f"{a.split}-{name}.npz"
        if path.exists():
            continue
        ids, train, test, _, _, m = load(name, a.split)
        members, zeros = fit_paths(name, a.split, a.ensemble, _sets(a.set))
        anchors = {k: sf_forecast(ids, train, m, k)[k][0] for k in ("AutoETS", "SeasonalNaive")}
        np.savez(path, members=members, zeros=zeros, test=test[0], **anchors)
        print(
            f"{a.split} {name}: lstm/ETS {rmse(test[0], np.median(members[:5], 0)) / rmse(test[0], anchors['AutoETS']):.3f}",
            flush=True,
        )


# -- the pre-declared combinations (docs/forecast.md, "Combinations") -----------------------------
def zero3(train, m, H):
    """The zero-output decode of one window of lookback three seasons (log, level = mean of the
    last season, the profile of the last three seasons): ``(H,)``."""
    from lstmkit.apps import forecast_windows as fw

    norm = {"log": bool(np.all(train > 0)), "season": m, "level": "season", "seasonal": True,
            "trend": False, "profile_seasons": 0}  # fmt: skip
    one = (np.array([0]), np.array([len(train)]), np.array([len(train)]))
    stats = fw.encode(train, *one, 3 * m, H, norm)[3]
    return fw.decode(np.zeros((1, H)), stats, norm)[0]


def snaive_drift(train, m, H):
    """Seasonal naive with drift in logs: ``y[T-m+h] * exp(d)``, ``d`` the mean one-season log
    change over the whole series ``train``: ``(H,)`` (``H <= m``)."""
    lg = np.log(train)
    d = float(np.mean(lg[m:] - lg[:-m]))
    return np.exp(lg[len(lg) - m : len(lg) - m + H] + d)


def variants(z):
    med5, med15 = np.median(z["members"][:5], 0), np.median(z["members"], 0)
    zero5, sn, z3 = np.median(z["zeros"][:5], 0), z["SeasonalNaive"], z["zero3"]
    return {
        "A defaults (5, median)": med5,
        "B 1/2 LSTM + 1/2 zero decode": 0.5 * med5 + 0.5 * zero5,
        "C 1/2 LSTM + 1/2 SNaive": 0.5 * med5 + 0.5 * sn,
        "D 15 members, median": med15,
        "E 1/2 LSTM(15) + 1/2 zero decode": 0.5 * med15 + 0.5 * np.median(z["zeros"], 0),
        "F 1/3 LSTM + 1/3 zero + 1/3 SNaive": (med5 + zero5 + sn) / 3,
        "B3 1/2 LSTM + 1/2 three-season zero decode": 0.5 * med5 + 0.5 * z3,
        "H 1/2 LSTM + 1/2 SNaive with drift": 0.5 * med5 + 0.5 * z["drift"],
        "Z zero decode alone (reference)": zero5,
        "HS SNaive with drift alone (reference)": z["drift"],
        "Z3 three-season zero decode alone (reference)": z3,
        "S SeasonalNaive alone (reference)": sn,
    }


SPLITS3 = ("tune", "tune2", "tune3")


def ratios(out, only=None):
    """``{variant: {(split, series): (RMSE / AutoETS's, meets the target)}}`` of the fits
    stored in ``out``."""
    rows = {}
    for split in SPLITS3:
        for name in only or SINGLES:
            path = Path(out) / f"{split}-{name}.npz"
            if not path.exists():
                continue
            with np.load(path) as z:
                z = dict(z)
            _, train, _, _, _, m = load(name, split)
            z["zero3"] = zero3(train[0], m, len(z["test"]))
            z["drift"] = snaive_drift(train[0], m, len(z["test"]))
            ets, sn = rmse(z["test"], z["AutoETS"]), rmse(z["test"], z["SeasonalNaive"])
            for v, f in variants(z).items():
                r = rmse(z["test"], f)
                rows.setdefault(v, {})[(split, name)] = (r / ets, r < sn and r <= 1.1 * ets)
    return rows


def table(a):
    """Per variant and season: geometric mean RMSE / AutoETS's, the count meeting the target,
    each series' ratio; over all: the count of series-seasons better than A (the defaults: the
    first variant, of ``--base`` when given, e.g. another seed's or setting's fit)."""
    rows = ratios(a.out, a.only)
    base = next(iter((ratios(a.base, a.only) if a.base else rows).values()))
    for v, cells in rows.items():
        print(f"\n{v}")
        for split in SPLITS3:
            got = [cells[k] for k in cells if k[0] == split]
            if got:
                each = " ".join(f"{k[1]}={cells[k][0]:.2f}" for k in cells if k[0] == split)
                print(f"  {split:<6} geo {_geo([g[0] for g in got]):.3f} "
                      f"met {sum(g[1] for g in got)}/{len(got)}  {each}")  # fmt: skip
        allr = list(cells.values())
        wins = sum(cells[k][0] < base[k][0] for k in cells if k in base)
        print(f"  all    geo {_geo([g[0] for g in allr]):.3f} met {sum(g[1] for g in allr)}/{len(allr)}"
              f"  better than A on {wins}/{len(allr)}")  # fmt: skip


def _geo(x):
    return float(np.exp(np.mean(np.log(x))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("fit", "table"))
    ap.add_argument("--split", default="tune")
    ap.add_argument("--ensemble", type=int, default=15)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--base", default=None, help="table: count wins against this dir's A")
    a = ap.parse_args(argv)
    fit(a) if a.what == "fit" else table(a)


if __name__ == "__main__":
    main()
