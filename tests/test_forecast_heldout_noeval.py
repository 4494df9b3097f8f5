"""``forecast train --no-evaluate`` with ``--jobs 2``: the saved fit's members shared with the
child process of the default command (``forecast_heldout.fit_saved``, ``plan_of(...,
evaluate=False)``, ``forecast_run.shared``).

Witnesses: the model file ``--jobs 1 --no-evaluate`` writes (every tensor and the metadata, read
by the ``safetensors`` package, not lstmkit); the command lines of the processes started
(``subprocess.Popen``); the tasks this process ran (``forecast_heldout.do``, wherever it is
called from). Which process takes a task is forced by refusing this process's claim of it
(``test_forecast_heldout._child_takes``). The Ctrl-C test is in ``test_forecast_child.py``.
"""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
from safetensors import safe_open

from lstmkit.apps import forecast_heldout
from lstmkit.cli import main
from test_forecast_heldout import BOOM, TINY, _child_takes, _frame

H = 4
# three members: member 2 trains for member 0's best epoch count (a peer across processes)
FAST = ["--horizon", str(H), "--units", "4", "--epochs", "3", "--patience", "1",
        "--ensemble", "3", "--batch-size", "32", "--level", "80", "--no-evaluate"]  # fmt: skip


@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("noeval") / "panel.csv"
    _frame().to_csv(path, index=False)
    return path


def _train(panel_csv, out, jobs, *extra):
    argv = ["forecast", "train", str(panel_csv), *FAST, *extra, "--jobs", str(jobs)]
    assert main([*argv, "--out", str(out)]) == 0


def _tensors(path):
    """The file's tensors and metadata, as the ``safetensors`` package reads them, with each
    member's layer names (``dense_6``: numbered by a per-process counter, so they depend on
    what the process built before) renamed in their order in the member's config (``#2``)."""
    with safe_open(str(path), framework="np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        meta = f.metadata()
    members, renamed = [], {}
    for i, member in enumerate(json.loads(meta.pop("members"))):
        text = json.dumps(member)
        layers = dict.fromkeys(re.findall(r'"name": "([a-z_]+_\d+)"', text))  # (in order)
        renamed[f"member{i}"] = {old: f"#{k}" for k, old in enumerate(layers)}
        for old, new in renamed[f"member{i}"].items():
            text = re.sub(rf"\b{old}\b", new, text)
        members.append(text)
    out = {}
    for key, value in tensors.items():  # member<i>/<layer>.<weight>
        member, rest = key.split("/")
        layer, weight = rest.rsplit(".", 1)
        out[f"{member}/{renamed[member][layer]}.{weight}"] = value
    return out, {**meta, "members": members}


def _same_file(got, want):
    (a, meta_a), (b, meta_b) = _tensors(got), _tensors(want)
    assert sorted(a) == sorted(b) and meta_a == meta_b
    for name in b:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture(scope="module")
def jobs_1(panel_csv, tmp_path_factory):
    """``--jobs 1 --no-evaluate``'s model file, trained on one thread (as in the child)."""
    out = tmp_path_factory.mktemp("noeval1") / "m1.lstmkit"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LSTMKIT_NUM_THREADS", "1")
        _train(panel_csv, out, 1)
    return out


def _spies(monkeypatch):
    """The command lines of the processes started and the tasks run in this process."""
    started, here = [], []
    popen, do = subprocess.Popen, forecast_heldout.do

    def spy_popen(*a, **k):
        started.append(tuple(a[0][:3]))
        return popen(*a, **k)

    def spy_do(plan, task, done, progress=None):
        here.append(task.name)
        return do(plan, task, done, progress)

    monkeypatch.setattr(subprocess, "Popen", spy_popen)
    monkeypatch.setattr(forecast_heldout, "do", spy_do)
    return started, here


def test_the_plan_without_the_held_out_fit_is_the_saved_fits_tasks(panel_csv):
    from lstmkit.apps.panel_io import read_panel

    panel = read_panel(panel_csv)
    both = forecast_heldout.plan_of(panel, TINY.replace(ensemble=3))
    plan = forecast_heldout.plan_of(panel, TINY.replace(ensemble=3), evaluate=False)
    assert plan.tasks == tuple(t for t in both.tasks if t.fit == "saved")
    assert [(t.name, t.peers) for t in plan.tasks] == [
        ("saved-0", ()), ("saved-1", ()), ("saved-2", ("saved-0",))]  # fmt: skip
    assert plan.window is None and list(plan.facts) == ["saved"]
    assert plan.facts["saved"] == both.facts["saved"] and plan.config == both.config


def test_no_evaluate_jobs_2_shares_the_members_and_saves_the_model_of_jobs_1(
    panel_csv, tmp_path, monkeypatch, jobs_1
):
    monkeypatch.setenv("LSTMKIT_NUM_THREADS", "1")  # every fit on one thread, as the child's
    started, here = _spies(monkeypatch)
    # member 0 in the child, its follower (member 2) here, read from the child's file
    _child_takes(monkeypatch, {"saved-0"}, reserve={"saved-1", "saved-2"})
    out = tmp_path / "m2.lstmkit"
    _train(panel_csv, out, 2)
    assert started == [forecast_heldout.CHILD]
    assert sorted(here) == ["saved-1", "saved-2"]  # saved-0: the child's (none done again)
    _same_file(out, jobs_1)


def test_no_evaluate_a_child_failing_at_once_costs_nothing_but_time(panel_csv, tmp_path,
                                                                    monkeypatch, jobs_1):  # fmt: skip
    monkeypatch.setenv("LSTMKIT_NUM_THREADS", "1")
    monkeypatch.setattr(forecast_heldout, "CHILD", BOOM)
    started, here = _spies(monkeypatch)
    _child_takes(monkeypatch, {"saved-1"})  # left to the child, which fails
    out = tmp_path / "m.lstmkit"
    out.write_bytes(b"the previous model")
    _train(panel_csv, out, 2)
    assert started == [BOOM] and sorted(here) == ["saved-0", "saved-1", "saved-2"]
    _same_file(out, jobs_1)


@pytest.mark.parametrize(
    "extra",
    [
        ["--ensemble", "1"],  # one member: one task, nothing to share
        ["--max-minutes", "30"],  # a time budget: the ensemble is one task
    ],
)
def test_no_evaluate_starts_no_child_for_one_task(panel_csv, tmp_path, monkeypatch, extra):
    started, here = _spies(monkeypatch)
    _train(panel_csv, tmp_path / "m.lstmkit", 2, *extra)
    assert started == [] and here == []  # fit_global in this process, as with --jobs 1
