"""``forecast train``'s two fits shared with a child process (``lstmkit.apps.forecast_heldout``,
``forecast_run.evaluate_and_fit``, ``--jobs``).

Witnesses: the held-out window fitted and scored in this process on one thread (``fit_global``,
``anchor_forecasts``, ``series_metrics`` on ``rolling_origins``'s window: not the backtest
loop); ``fit_global``'s own members (weights, best epochs, corrections); the panel's own fields
after the trip through ``.npz``; ``--jobs 1``'s table and model (every fit on one thread); the
child's exit status and the model file a failed child leaves. Which process takes a task is
forced, where a test needs it, by refusing this process's claim of it (``_child_takes``).
The Ctrl-C test with ``--jobs 2`` is in ``test_forecast_child.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lstmkit.apps import forecast_heldout
from lstmkit.apps.forecast_anchors import anchor_forecasts
from lstmkit.apps.forecast_backtest import rolling_origins
from lstmkit.apps.forecast_config import ForecastConfig
from lstmkit.apps.forecast_global import GlobalForecaster, fit_global
from lstmkit.apps.forecast_metrics import naive_scales, series_metrics
from lstmkit.apps.panel_io import read_panel
from lstmkit.cli import main

H = 4
TINY = ForecastConfig(horizon=H, units=8, epochs=4, patience=2, ensemble=2, batch_size=32,
                      levels=(80,))  # fmt: skip
ANCHORS = ("naive", "seasonal_naive")
FAST = ["--horizon", str(H), "--units", "4", "--epochs", "2", "--patience", "1",
        "--ensemble", "1", "--batch-size", "32", "--level", "80"]  # fmt: skip


def _frame(n=40, covariates=False, future_rows=0):
    rng = np.random.default_rng(7)
    parts = []
    for j, sid in enumerate(("A", "B", "C")):
        m = n + 3 * j  # unequal lengths
        ds = pd.date_range("2015-01-01", periods=m + future_rows, freq="MS")
        t = np.arange(m + future_rows)
        y = 50 + 10 * j + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, t.size).cumsum()
        df = pd.DataFrame({"unique_id": sid, "ds": ds.strftime("%Y-%m-%d"), "y": y})
        if covariates:
            df["price"] = rng.normal(size=t.size)
            df["promo"] = (t % 3 == 0).astype(float)
            df.loc[m:, ["y", "price"]] = np.nan  # future rows
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def cov_panel(tmp_path_factory):
    path = tmp_path_factory.mktemp("heldout") / "cov.csv"
    _frame(covariates=True, future_rows=H).to_csv(path, index=False)
    return read_panel(path, past_covariates=("price",), future_covariates=("promo",), horizon=H)


def test_a_panel_crosses_to_the_child_whole_and_unpickled(cov_panel, tmp_path):
    # the window's training panel: dates, both covariates and the held-out future rows
    train = rolling_origins(cov_panel, H, 1)[0].train
    assert train.future_ahead is not None and train.times is not None and train.freq == "MS"
    path = tmp_path / "p.npz"
    np.savez(path, **forecast_heldout.panel_arrays(train))
    with np.load(path, allow_pickle=False) as z:
        back = forecast_heldout.panel_of(z)
    for name in ("values", "offsets", "ids", "times", "past", "future", "future_ahead"):
        want, got = getattr(train, name), getattr(back, name)
        assert got.dtype == want.dtype or name == "ids", name
        np.testing.assert_array_equal(got, want, err_msg=name)
    for name in ("freq", "season", "past_names", "future_names", "notes"):
        assert getattr(back, name) == getattr(train, name), name


def _in_process(panel, config):
    """The held-out window fitted and scored here, on one thread: ``{(model, id): metrics}``."""
    window = rolling_origins(panel, H, 1)[0]
    train, levels = window.train, config.levels
    with forecast_heldout.one_thread():
        model = fit_global(train, config.replace(horizon=H))
    fc = {"lstmkit": model.predict(train, H, levels)}
    fc.update(anchor_forecasts(train, H, models=ANCHORS, levels=levels))
    scale = naive_scales(train)
    out = {}
    for name, (point, intervals) in fc.items():
        m = series_metrics(window.target, point, scale=scale, intervals=intervals)
        for k, sid in enumerate(train.ids):
            out[name, str(sid)] = {key: float(v[k]) for key, v in m.items()}
    return out


def _child(panel, config, child_takes=None, monkeypatch=None, reserve=()):
    if child_takes is not None:
        _child_takes(monkeypatch, child_takes, reserve)
    with forecast_heldout.helper_started() as helper:
        h, result, _ = forecast_heldout.fit_both(helper, panel, config, anchors=ANCHORS)
    assert helper.process.returncode == 0 and h == H, result.notes
    return {(r["model"], r["unique_id"]): {k: v for k, v in r.items()
            if k not in ("window", "unique_id", "model")} for r in result.rows}  # fmt: skip


def _child_takes(monkeypatch, names, reserve=()):
    """This process refuses the tasks ``names`` (it leaves them to the child) and claims the
    tasks ``reserve`` before the child has its input (they are this process's); returns the
    list of the tasks this process takes."""
    claim, give, mine = forecast_heldout.claim, forecast_heldout.Helper.give, []

    def give_reserved(helper, *args, **kwargs):
        for name in reserve:
            (helper.directory / f"{name}.claim").touch()
        give(helper, *args, **kwargs)

    def only_others(directory, task):
        if task.name in names:
            return False
        took = task.name in reserve or claim(directory, task)
        if took:
            mine.append(task.name)
        return took

    monkeypatch.setattr(forecast_heldout.Helper, "give", give_reserved)
    monkeypatch.setattr(forecast_heldout, "claim", only_others)
    return mine


def test_the_child_table_is_the_one_fitted_in_this_process(cov_panel, monkeypatch):
    config = TINY.replace(past_covariates=("price",), future_covariates=("promo",))
    want = _in_process(cov_panel, config)
    # the held-out members and the anchors from the child, the saved fit here
    got = _child(
        cov_panel,
        config,
        {"heldout-0", "heldout-1", "anchors"},
        monkeypatch,
        reserve={"saved-0", "saved-1"},
    )
    assert sorted(got) == sorted(want) and len(want) == 3 * 3
    for key in want:  # bit for bit: same settings, same data, one thread on both sides
        assert got[key] == want[key], key
    # the comparison sees a child that trained otherwise (another seed): the planted difference
    other = _child(cov_panel, config.replace(seed=1))
    assert other["lstmkit", "A"] != want["lstmkit", "A"]
    assert other["naive", "A"] == want["naive", "A"]


def test_a_member_and_its_peer_in_two_processes(cov_panel, monkeypatch):
    # member 2 trains for member 0's best epoch count (their lookback's): the held-out member 0
    # in the child, its follower here (read from the child's file); the saved ones the other way
    config = TINY.replace(ensemble=3, past_covariates=("price",), future_covariates=("promo",))
    want = _in_process(cov_panel, config)
    mine = _child_takes(monkeypatch, {"heldout-0", "saved-2"}, reserve={"heldout-2", "saved-0"})
    with forecast_heldout.helper_started() as helper:
        _, result, model = forecast_heldout.fit_both(helper, cov_panel, config, anchors=ANCHORS)
    assert helper.process.returncode == 0 and {"heldout-2", "saved-0"} <= set(mine)
    assert not {"heldout-0", "saved-2"} & set(mine)
    got = {(r["model"], r["unique_id"]): {k: v for k, v in r.items()
           if k not in ("window", "unique_id", "model")} for r in result.rows}  # fmt: skip
    assert got == want
    with forecast_heldout.one_thread():
        saved = fit_global(cov_panel, config.replace(horizon=H)).members
    _same_members(model.members, saved)


def test_a_peer_failing_here_ends_the_childs_wait_and_costs_the_table(cov_panel, monkeypatch):
    # the held-out member 0 fails here; the child, which took its follower (member 2), must
    # not wait for it (SIGALRM ends the test if it does)
    config = TINY.replace(ensemble=3)
    _child_takes(monkeypatch, {"heldout-2"}, reserve={"heldout-0"})
    do = forecast_heldout.do

    def planted(plan, task, done, progress=None):
        if task.name == "heldout-0":
            raise RuntimeError("planted")
        return do(plan, task, done, progress)

    monkeypatch.setattr(forecast_heldout, "do", planted)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("the two processes wait for each other"))
    signal.alarm(60)
    try:
        with forecast_heldout.helper_started() as helper:
            _, result, model = forecast_heldout.fit_both(helper, cov_panel, config,
                                                         anchors=ANCHORS)  # fmt: skip
    finally:
        signal.alarm(0)
    assert helper.process.returncode == 0
    assert result.rows == [] and result.notes == [
        "the held-out table is left out: heldout-0 failed (RuntimeError: planted)"]  # fmt: skip
    with forecast_heldout.one_thread():
        saved = fit_global(cov_panel, config.replace(horizon=H)).members
    _same_members(model.members, saved)


def _same_members(got, want):
    assert [m.seed for m in got] == [m.seed for m in want]
    for a, b in zip(got, want):
        assert (a.lookback, a.best_epoch, a.correction, a.z_scale, a.trend_choices) == (
            b.lookback, b.best_epoch, b.correction, b.z_scale, b.trend_choices)  # fmt: skip
        for x, y in zip(a.model.params.values(), b.model.params.values(), strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("trend", ["off", "hedge"])
def test_members_fitted_one_by_one_are_fit_globals_members(cov_panel, trend):
    # validate_members=0: members 2, 3 train for members 0, 1's best epoch counts (their
    # group's): "off", two lookbacks: one group per lookback; "hedge", one lookback: one group
    # per trend choice (the even members have none)
    config = TINY.replace(ensemble=4, trend=trend)
    config = (config if trend == "off" else config.replace(lookbacks=(6,))).validate()
    want = fit_global(cov_panel, config).members
    plan = forecast_heldout.plan_of(cov_panel, config)
    saved = {t.name: t for t in plan.tasks if t.fit == "saved"}
    assert {n: t.peers for n, t in saved.items()} == {
        "saved-0": (), "saved-1": (), "saved-2": ("saved-0",), "saved-3": ("saved-1",)}  # fmt: skip
    done = {}
    for name in ("saved-1", "saved-3", "saved-0", "saved-2"):  # not fit_global's order
        done[name] = forecast_heldout.do(plan, saved[name], done)
    _same_members([done[f"saved-{i}"][0] for i in range(4)], want)
    assert [m.best_epoch for m in want[2:]] == [m.best_epoch for m in want[:2]]


# -- through the CLI ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("heldout_cli") / "panel.csv"
    _frame().to_csv(path, index=False)
    return path


def _train(panel_csv, out, jobs, capsys):
    capsys.readouterr()
    argv = ["forecast", "train", str(panel_csv), *FAST, "--jobs", str(jobs), "--out", str(out)]
    assert main(argv) == 0
    return capsys.readouterr().out


def _table(text):
    lines = text.splitlines()
    start = next(i for i, s in enumerate(lines) if s.startswith("held out"))
    end = next(i for i, s in enumerate(lines) if s.startswith("saved model"))
    return lines[start:end]


def _forecasts(out, panel_csv):
    return GlobalForecaster.load(out).predict(read_panel(panel_csv), levels=(80,))


def _same_forecasts(got, want):
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1][80][0], want[1][80][0])
    np.testing.assert_array_equal(got[1][80][1], want[1][80][1])


@pytest.fixture(scope="module")
def jobs_1(panel_csv, tmp_path_factory):
    """``--jobs 1``'s output and forecasts, every fit on one thread (as in the child)."""
    out = tmp_path_factory.mktemp("jobs1") / "m1.lstmkit"
    argv = ["forecast", "train", str(panel_csv), *FAST, "--jobs", "1", "--out", str(out)]
    import contextlib
    import io

    text = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(text):
        mp.setenv("LSTMKIT_NUM_THREADS", "1")
        assert main(argv) == 0
    return text.getvalue(), _forecasts(out, panel_csv)


def test_jobs_2_prints_the_table_and_saves_the_model_of_jobs_1(panel_csv, tmp_path, capsys,
                                                               monkeypatch, jobs_1):  # fmt: skip
    monkeypatch.setenv("LSTMKIT_NUM_THREADS", "1")  # every fit on one thread, as the child's
    seen = []  # the command lines of the child processes started
    popen = subprocess.Popen

    def spy(*a, **k):
        seen.append(a[0][:3])
        return popen(*a, **k)

    monkeypatch.setattr(subprocess, "Popen", spy)  # (the module every child starts through)
    # the saved fit and the anchors from the child, the held-out fit here
    mine = _child_takes(monkeypatch, {"saved-0", "anchors"}, reserve={"heldout-0"})
    out = tmp_path / "m2.lstmkit"
    text = _train(panel_csv, out, 2, capsys)
    assert seen == [list(forecast_heldout.CHILD)] and mine == ["heldout-0"]
    assert _table(text) == _table(jobs_1[0]) and "seasonal_naive " in text
    _same_forecasts(_forecasts(out, panel_csv), jobs_1[1])


BOOM = (sys.executable, "-c", "raise SystemExit('boom')")


def test_a_child_failing_at_once_costs_nothing_but_time(panel_csv, tmp_path, capsys,
                                                        monkeypatch, jobs_1):  # fmt: skip
    monkeypatch.setenv("LSTMKIT_NUM_THREADS", "1")
    monkeypatch.setattr(forecast_heldout, "CHILD", BOOM)
    mine = _child_takes(monkeypatch, set())
    out = tmp_path / "m.lstmkit"
    text = _train(panel_csv, out, 2, capsys)
    assert sorted(mine) == ["anchors", "heldout-0", "saved-0"]  # all done here
    assert _table(text) == _table(jobs_1[0]) and "left out" not in text
    _same_forecasts(_forecasts(out, panel_csv), jobs_1[1])


def test_a_child_failing_in_a_held_out_task_loses_only_the_table(panel_csv, tmp_path, capsys,
                                                                 monkeypatch):  # fmt: skip
    monkeypatch.setattr(forecast_heldout, "CHILD", BOOM)
    _child_takes(monkeypatch, {"heldout-0"})  # ... and it fails
    out = tmp_path / "m.lstmkit"
    out.write_bytes(b"the previous model")
    text = _train(panel_csv, out, 2, capsys)
    assert "the held-out table is left out: its process ended with status 1: boom" in text
    assert "MASE" not in text and "saved model (1 members)" in text
    point, _ = GlobalForecaster.load(out).predict(read_panel(panel_csv))
    assert point.shape == (3, H) and np.isfinite(point).all()


def test_a_saved_fit_task_the_child_left_undone_is_done_here(panel_csv, tmp_path, capsys,
                                                             monkeypatch, jobs_1):  # fmt: skip
    monkeypatch.setenv("LSTMKIT_NUM_THREADS", "1")
    monkeypatch.setattr(forecast_heldout, "CHILD", BOOM)
    _child_takes(monkeypatch, {"saved-0"})  # ... and it fails
    out = tmp_path / "m.lstmkit"
    text = _train(panel_csv, out, 2, capsys)
    assert _table(text) == _table(jobs_1[0]) and "saved model (1 members)" in text
    _same_forecasts(_forecasts(out, panel_csv), jobs_1[1])


def test_jobs_is_refused_by_the_single_engine(panel_csv, tmp_path, capsys):
    out = tmp_path / "s.lstmkit"
    argv = ["forecast", "train", str(panel_csv), "--engine", "single", "--column", "y",
            "--jobs", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    assert "argument '--jobs' applies to --engine global only" in capsys.readouterr().err
    assert not out.exists()


def test_child_path_puts_a_source_tree_first_but_never_site_packages(monkeypatch, tmp_path):
    """The child runs its parent's lstmkit: a source tree goes first on PYTHONPATH; an installed
    lstmkit is found by the same interpreter anyway, and site-packages on PYTHONPATH would come
    before the standard library (a backport there would shadow it)."""
    from lstmkit.apps import forecast_heldout as fh

    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    tree = tmp_path / "src"
    monkeypatch.setattr(fh, "__file__", str(tree / "lstmkit" / "apps" / "forecast_heldout.py"))
    env = fh.child_env()
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tree.resolve()), "/elsewhere"]
    assert env["LSTMKIT_NUM_THREADS"] == "1"
    site = tmp_path / "lib" / "site-packages"
    monkeypatch.setattr(fh, "__file__", str(site / "lstmkit" / "apps" / "forecast_heldout.py"))
    assert fh.child_env()["PYTHONPATH"] == "/elsewhere"


def test_the_child_starts_before_the_data_are_read_and_a_bad_file_ends_it(tmp_path, capsys,
                                                                         monkeypatch):  # fmt: skip
    from lstmkit.apps import forecast_run

    started, at_read = [], []
    popen, read_data = subprocess.Popen, forecast_run.read_data

    def spy(*a, **k):
        started.append(popen(*a, **k))
        return started[-1]

    def read_after(*a, **k):
        at_read.append(len(started))  # children started when the data are read
        return read_data(*a, **k)

    monkeypatch.setattr(subprocess, "Popen", spy)
    monkeypatch.setattr(forecast_run, "read_data", read_after)
    bad = tmp_path / "bad.csv"
    bad.write_text("unique_id,ds,sales\nA,2020-01-01,1\nA,2020-02-01,2\n")  # no column y
    out = tmp_path / "m.lstmkit"
    assert main(["forecast", "train", str(bad), "--jobs", "2", "--out", str(out)]) == 2
    assert "'y'" in capsys.readouterr().err and not out.exists()
    assert at_read == [1] and started[0].args[:3] == list(forecast_heldout.CHILD)
    assert started[0].returncode is not None  # ended (killed while it waited) and reaped


def test_the_plan_orders_early_stopping_members_first_and_keeps_a_budget_whole(cov_panel):
    plan = forecast_heldout.plan_of(cov_panel, TINY.replace(ensemble=3))
    assert [(t.name, t.peers) for t in plan.tasks] == [
        ("heldout-0", ()), ("heldout-1", ()), ("saved-0", ()), ("saved-1", ()), ("anchors", ()),
        ("heldout-2", ("heldout-0",)), ("saved-2", ("saved-0",))]  # fmt: skip
    # validate_members=3: every member early-stops, none waits for another
    plan = forecast_heldout.plan_of(cov_panel, TINY.replace(ensemble=3, validate_members=3))
    assert all(t.peers == () for t in plan.tasks)
    # a time budget spans a fit's members in order: one task per fit
    plan = forecast_heldout.plan_of(cov_panel, TINY.replace(ensemble=3, max_minutes=5.0))
    assert [(t.name, t.members) for t in plan.tasks] == [
        ("heldout-all", (0, 1, 2)), ("saved-all", (0, 1, 2)), ("anchors", ())]  # fmt: skip


def test_under_a_time_budget_each_fit_is_fit_globals(cov_panel, monkeypatch):
    # one member, a budget never reached: the child's whole held-out fit, the saved one here
    config = TINY.replace(ensemble=1, max_minutes=30.0)
    want = _in_process(cov_panel, config)
    got = _child(cov_panel, config, {"heldout-all", "anchors"}, monkeypatch,
                 reserve={"saved-all"})  # fmt: skip
    assert got == want


def test_a_spent_time_budget_stops_the_fit_as_fit_global_does(cov_panel, monkeypatch):
    # a clock that runs 10 minutes a call: the budget is spent at once; fit_global trains its
    # one member until its first deadline check (a member fitted alone would have no budget)
    import time

    config = TINY.replace(ensemble=1, max_minutes=1.0, epochs=50, patience=50)
    plan = forecast_heldout.plan_of(cov_panel, config)
    (task,) = [t for t in plan.tasks if t.name == "saved-all"]
    clock = iter(range(0, 10**9, 600))
    monkeypatch.setattr(time, "monotonic", lambda: float(next(clock)))
    got = forecast_heldout.do(plan, task, {})
    want = fit_global(cov_panel, plan.config).members
    assert len(got) == len(want) == 1 and want[0].best_epoch < 10
    _same_members(got, want)
