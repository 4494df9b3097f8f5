"""``forecast train``'s two fits and the anchors shared by this process and a child process.

``forecast train`` fits two independent ensembles: one on each series minus its last ``horizon``
values, scored against the anchors (the held-out table), and the one it saves, on every value.
On small panels each is bound by Python (steps of a few milliseconds): a second thread does not
speed it up, a second process does. With two CPUs or more (``forecast_run.default_jobs``) the
work is cut into tasks (``plan_of``): one per ensemble member of each fit (a member that trains
for an early-stopped peer's best epoch count, ``validate_members``, names that peer) and one
for the anchors on the held-out window. ``python -m lstmkit.apps.forecast_heldout DIR`` (on
one thread, ``LSTMKIT_NUM_THREADS=1``) and this process (``one_thread``) take them in the same
order (``work``), each the next one nobody has claimed (an ``O_EXCL`` claim file in ``DIR``)
whose peers are done, here or there (their results are files in ``DIR``), so the two cores end
close together whichever fit early-stops late.

The child is started first (``helper_started``: it imports lstmkit and loads the compiled
kernels while this process reads the data) and waits on its stdin for the input: the whole
panel as arrays (``.npz``, read with ``allow_pickle=False``) and the settings as JSON. Its
results come back as forecaster files (``GlobalForecaster.save``: safetensors and JSON) and
``.npz``; nothing is unpickled either way. Each member is the same computation wherever it runs
(same seed, lookback, windows and peers), so the table and the saved model are the ones
``forecast_run.evaluate`` and ``fit`` give in one process on one thread
(``tests/test_forecast_heldout.py``).

The child never outlives the block (``helper_started``): leaving it by an error or Ctrl-C kills
and reaps a child still running. A task a failed child leaves undone is done here when it is
the saved fit's (the model always stands); a missing held-out or anchors result costs the table
(a note says why).

``forecast train --no-evaluate`` (``fit_saved``) shares the saved fit's members the same way:
the same plan without the held-out members and the anchors (``plan_of(..., evaluate=False)``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .forecast_backtest import BacktestResult
from .forecast_child import ONE_THREAD, ended, running
from .forecast_config import ForecastConfig
from .panel import Panel

#: the child's command line before its directory argument
CHILD = (sys.executable, "-m", "lstmkit.apps.forecast_heldout")
#: one thread in the child: lstmkit's kernels, BLAS, numba (``forecast_child.ONE_THREAD``)
CHILD_ENV = {**ONE_THREAD, "LSTMKIT_NUM_THREADS": "1"}
#: what the child reads and writes inside its directory (besides its tasks' claims and results)
IN, ERR = "input.npz", "stderr.txt"


#: the parent's line on the child's stdin once the input is written
GO = b"go\n"


@contextlib.contextmanager
def helper_started():
    """Start the child now: it imports lstmkit and loads the compiled kernels while this process
    reads the data and waits on its stdin for ``Helper.give``. Yields the ``Helper``; leaving
    the block (the fits collected, an error, Ctrl-C) kills and reaps a child still running."""
    with tempfile.TemporaryDirectory(prefix="lstmkit-heldout-") as d:
        d = Path(d)
        with running([*CHILD, str(d)], d / ERR, child_env(), stdin=subprocess.PIPE) as proc:
            yield Helper(d, proc)


@dataclasses.dataclass
class Helper:
    """The started child (``process``) and the directory the two processes share."""

    directory: Path
    process: subprocess.Popen

    def give(self, panel: Panel, config: ForecastConfig, anchors=None, evaluate=True) -> None:
        """The panel and settings to the child (``input.npz``), then its go line."""
        write_input(self.directory / IN, panel, config, anchors, evaluate)
        with contextlib.suppress(OSError):  # a child already gone: ``ended`` says how
            self.process.stdin.write(GO)
            self.process.stdin.close()

    def ended(self) -> str | None:
        """None when the child exited cleanly, else how it ended (its status, last line)."""
        status = self.process.wait()
        return None if status == 0 else ended(status, self.directory / ERR)


def child_env() -> dict:
    """This environment, one thread (``CHILD_ENV``), and, when this process's lstmkit comes from
    a source tree (``PYTHONPATH=src``, an editable install), that tree first on the path: the
    child runs the same code as its parent. An installed lstmkit (in ``site-packages``) is what
    the same interpreter finds anyway; that directory is not put on ``PYTHONPATH``, where it
    would come before the standard library."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, **CHILD_ENV}
    if root.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def one_thread():
    """lstmkit's kernels and this thread's BLAS on one thread for the block (the other core is
    the child's); as before afterwards."""
    from ..ops.backend import get_backend

    if get_backend() != "numba":
        yield
        return
    from ..ops.fast.common import limited_threads

    with limited_threads(1):
        yield


# -- the files between the two processes ----------------------------------------------------------
#: Panel fields that may be None, written only when present
OPTIONAL = ("times", "past", "future", "future_ahead")


def panel_arrays(panel: Panel) -> dict:
    """Every field of ``panel`` as arrays ``np.savez`` writes without pickling."""
    arrays = {
        "values": panel.values, "offsets": panel.offsets,
        "ids": np.asarray([str(s) for s in panel.ids], dtype=str),
        "season": np.int64(panel.season),
        "past_names": np.asarray(panel.past_names, dtype=str),
        "future_names": np.asarray(panel.future_names, dtype=str),
        "notes": np.asarray(panel.notes, dtype=str),
    }  # fmt: skip
    arrays.update({k: getattr(panel, k) for k in OPTIONAL if getattr(panel, k) is not None})
    if panel.freq is not None:
        arrays["freq"] = np.asarray(panel.freq, dtype=str)
    return arrays


def panel_of(z) -> Panel:
    """The panel of ``panel_arrays`` read back (``z``: an opened ``.npz``)."""

    def names(key):
        return tuple(str(s) for s in z[key])

    return Panel(
        z["values"], z["offsets"], z["ids"], z.get("times"),
        str(z["freq"]) if "freq" in z else None, int(z["season"]),
        z.get("past"), names("past_names"),
        z.get("future"), names("future_names"),
        z.get("future_ahead"), names("notes"),
    )  # fmt: skip


def write_input(path, panel: Panel, config: ForecastConfig, anchors=None, evaluate=True) -> None:
    np.savez(
        path, **panel_arrays(panel), config=np.asarray(json.dumps(config.to_dict())),
        default_anchors=np.bool_(anchors is None), anchors=np.asarray(anchors or (), dtype=str),
        evaluate=np.bool_(evaluate),
    )  # fmt: skip


# -- the tasks the two processes share ---------------------------------------------------------
#: seconds between two looks for a peer member that the other process trains
POLL = 0.02


@dataclasses.dataclass(frozen=True)
class Task:
    """One piece of ``forecast train``'s work: ensemble member(s) ``members`` of the held-out
    or the saved fit (``fit``), which need the results of its members ``peers`` (tasks of the
    same fit), or the anchors on the held-out window (``fit`` None)."""

    name: str
    fit: str | None = None
    members: tuple = ()
    peers: tuple = ()


@dataclasses.dataclass(frozen=True)
class Plan:
    """Both fits' data, facts, settings (validated, ``horizon`` set) and tasks: each process
    computes the same plan from the same panel and settings. Without the held-out fit
    (``--no-evaluate``): the saved fit's only (``window`` None, no anchors)."""

    panel: Panel
    config: ForecastConfig
    anchors: tuple | None
    horizon: int
    window: object  # forecast_backtest.Window: the held-out window (None: no held-out fit)
    facts: dict  # fit -> fit_global's facts of its panel
    tasks: tuple

    def data(self, fit: str) -> Panel:
        return self.window.train if fit == "heldout" else self.panel


def plan_of(panel: Panel, config: ForecastConfig, anchors=None, evaluate=True) -> Plan:
    """The tasks in the order the processes take them (each the first one whose peers are
    done): the members that early-stop (the long, unforeseeable ones), the anchors, then the
    members that train for a peer's best epoch count (short: they even out the two ends).
    ``evaluate`` False: the saved fit's members only (``--no-evaluate``: no window, no
    anchors), in the same order."""
    from .forecast_backtest import rolling_origins
    from .forecast_global import _check_panel, _facts
    from .forecast_run import horizon_of

    H = horizon_of(panel, config)
    config = config.replace(horizon=H).validate()
    window = rolling_origins(panel, H, 1)[0] if evaluate else None  # evaluate's one window
    fits = (("heldout", window.train),) if evaluate else ()
    facts, lstm = {}, []
    for fit, data in (*fits, ("saved", panel)):
        _check_panel(data, "fit_global")
        facts[fit] = _facts(data, config)
        lstm += member_tasks(config, facts[fit], fit)
    lstm.sort(key=lambda t: bool(t.peers))  # (stable)
    first = sum(not t.peers for t in lstm)
    tasks = (*lstm[:first], *((Task("anchors"),) if evaluate else ()), *lstm[first:])
    anchors = None if anchors is None else tuple(anchors)
    return Plan(panel, config, anchors, H, window, facts, tasks)


def member_tasks(config: ForecastConfig, facts, fit: str) -> list[Task]:
    """One task per member of ``fit``, with its peers as ``fit_global`` finds them
    (``forecast_global.peer_indices``, known before training: from ``validate_members`` on, the
    earlier members of its lookback and trend group that had no peers); one task for the whole
    ensemble under a time budget (``max_minutes``: members in order until it is spent)."""
    from .forecast_global import peer_indices

    if config.max_minutes:
        return [Task(f"{fit}-all", fit, tuple(range(config.ensemble)))]
    tasks, stopped = [], []  # stopped: the members without peers (they early-stop)
    for i in range(config.ensemble):
        peers = tuple(f"{fit}-{j}" for j in peer_indices(config, facts, stopped, i))
        if not peers:
            stopped.append(i)
        tasks.append(Task(f"{fit}-{i}", fit, (i,), peers))
    return tasks


def do(plan: Plan, task: Task, done: dict, progress=None):
    """A task's result: its ``Member``s (a list), or the anchors' ``(forecasts, notes)``;
    ``done`` holds its peers' results. None when a peer has none (it failed)."""
    if task.fit is None:
        from .forecast_anchors import anchor_forecasts

        notes: list[str] = []
        train, levels = plan.window.train, tuple(plan.config.levels)
        fc = anchor_forecasts(train, plan.horizon, models=plan.anchors, levels=levels,
                              notes=notes)  # fmt: skip
        return fc, notes
    from .forecast_global import _fit_member, fit_global, train_ids

    data, config = plan.data(task.fit), plan.config
    if config.max_minutes:  # the whole ensemble: the budget (and each member's) is fit_global's
        return fit_global(data, config, progress).members
    if any(done[p] is None for p in task.peers):
        return None
    peers = [done[p][0] for p in task.peers]
    id_index = train_ids(data, config)
    (i,) = task.members
    m = _fit_member(data, plan.facts[task.fit], config, i, None, id_index, None, peers)
    if progress:
        progress(f"{task.fit} fit, member {i + 1}/{config.ensemble}: lookback {m.lookback}, "
                 f"seed {m.seed}, best epoch {m.best_epoch}")  # fmt: skip
    return [m]


def claim(directory: Path, task: Task) -> bool:
    """Whether this process takes ``task``: the first to create its claim file does."""
    try:
        os.close(os.open(directory / f"{task.name}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def work(directory: Path, plan: Plan, done: dict, other_alive, run, alone_stops=False) -> None:
    """Take tasks until none is left: each time the first of the plan's order that is not yet
    taken and whose peers are done (here, in ``done``, or by the other process: its result
    files, read into ``done``), and ``done[name] = run(task)``. Waits while every task left
    needs a peer the other process trains, until ``other_alive()`` says it ended;
    ``alone_stops``: stop then whatever is left (the child, whose parent has gone)."""
    left = list(plan.tasks)
    while left:
        if alone_stops and not other_alive():
            return
        task = next((t for t in left if _peers_done(directory, plan, t, done)), None)
        if task is None:
            if not other_alive():
                return
            time.sleep(POLL)
            continue
        left.remove(task)
        if claim(directory, task):
            done[task.name] = run(task)


def _peers_done(directory, plan, task, done) -> bool:
    for p in task.peers:
        if p not in done:
            peer = next(t for t in plan.tasks if t.name == p)
            if failed_path(directory, peer).exists():
                done[p] = None  # failed in the parent: the member that needs it has no result
            elif result_path(directory, peer).exists():
                done[p] = read_result(directory, plan, peer)
            else:
                return False
    return True


def failed_path(directory: Path, task: Task) -> Path:
    """What the parent leaves for a held-out peer that failed in it (the child skips the
    members that need it instead of waiting for them)."""
    return directory / f"{task.name}.failed"


def result_path(directory: Path, task: Task) -> Path:
    return directory / (f"{task.name}.npz" if task.fit is None else f"{task.name}.lstmkit")


def write_result(directory: Path, plan: Plan, task: Task, out) -> None:
    """The child's result of ``task``, whole or none: members as a forecaster file (safetensors,
    ``GlobalForecaster.save``), the anchors as ``.npz`` (``forecast_child.write_anchors``)."""
    from .forecast_child import write_anchors
    from .forecast_global import GlobalForecaster

    if task.fit is None:
        write_anchors(result_path(directory, task), *out)
    else:
        # the fit's facts: a whole forecaster file, which the reader checks as any other
        GlobalForecaster(plan.config, plan.facts[task.fit], out).save(result_path(directory, task))


def read_result(directory: Path, plan: Plan, task: Task):
    """``write_result``'s file read back (None: the child did not finish the task)."""
    from .forecast_child import read_anchors
    from .forecast_global import GlobalForecaster

    path = result_path(directory, task)
    if not path.exists():
        return None
    if task.fit is None:
        return read_anchors(path, plan.config.levels)
    return GlobalForecaster.load(path).members


# -- the parent's side ------------------------------------------------------------------------------
def fit_both(helper: Helper, panel: Panel, config: ForecastConfig, *, anchors=None,
             progress=None):  # fmt: skip
    """``forecast train``'s two fits shared with the started child: ``(H, BacktestResult,
    GlobalForecaster)`` as ``forecast_run.evaluate`` and ``fit`` give them on one thread.

    Both processes take the tasks of ``plan_of`` (``share``); a missing held-out or anchors
    result leaves the table out, a note saying why."""
    plan = plan_of(panel, config, anchors)
    helper.give(panel, config, anchors)
    done, notes, why = share(helper, plan, progress)
    model = assemble(plan, "saved", done)
    return plan.horizon, table(plan, done, notes or [f"its process {why}"]), model


def fit_saved(helper: Helper, panel: Panel, config: ForecastConfig, *, progress=None):
    """``forecast train --no-evaluate``'s one fit shared with the started child: the
    ``GlobalForecaster`` ``forecast_run.fit`` gives on one thread (``plan_of(...,
    evaluate=False)``: the saved fit's members, taken by both processes, ``share``)."""
    plan = plan_of(panel, config, evaluate=False)
    helper.give(panel, config, evaluate=False)
    done, _, _ = share(helper, plan, progress)
    return assemble(plan, "saved", done)


def share(helper: Helper, plan: Plan, progress=None):
    """``plan``'s tasks taken by both processes (``work``; the child has its input); then this
    one waits for the child and reads its results. A saved-fit task the child did not finish
    (it failed) is done here: the saved model always stands. Returns ``(done, notes, why)``:
    every task's result (None: missing), this process's notes on its failed held-out tasks,
    and how the child ended (None: cleanly)."""
    done, notes, mine = {}, [], []  # mine: the tasks this process took
    needed = {p for t in plan.tasks for p in t.peers}  # results the child may wait for

    def alive():
        return helper.process.poll() is None

    def run(task):
        mine.append(task.name)
        out = _do_here(plan, task, done, notes, progress)
        if task.name in needed:
            if out is None:
                failed_path(helper.directory, task).touch()
            else:
                write_result(helper.directory, plan, task, out)
        return out

    with one_thread():
        work(helper.directory, plan, done, alive, run)
    why = helper.ended()
    if progress:
        theirs = [t.name for t in plan.tasks if t.name not in mine]
        progress(f"the child process took {len(theirs)} of {len(plan.tasks)} tasks: {theirs}")
    for task in plan.tasks:  # (peers before the members that need them)
        if task.name not in done:
            done[task.name] = read_result(helper.directory, plan, task)
        if done[task.name] is None and task.fit == "saved":
            with one_thread():
                done[task.name] = do(plan, task, done, progress)
    return done, notes, why


def _do_here(plan, task, done, notes, progress):
    if task.fit == "saved":
        return do(plan, task, done, progress)
    try:  # the table's part: a failure costs the table only, as the child's would
        return do(plan, task, done, progress)
    except Exception as e:  # noqa: BLE001  (any error: the saved model still stands)
        notes.append(f"{task.name} failed ({type(e).__name__}: {e})")
        return None


def assemble(plan: Plan, fit: str, done: dict):
    """The ``GlobalForecaster`` of ``fit``'s members (in index order, as ``fit_global``)."""
    from .forecast_global import GlobalForecaster

    members = {}
    for task in plan.tasks:
        if task.fit == fit:
            members.update(zip(task.members, done[task.name]))
    return GlobalForecaster(plan.config, plan.facts[fit], [members[i] for i in sorted(members)])


def said_once(notes) -> str:
    """``notes`` joined by "; ", a reason that several tasks failed for said once after their
    names (``heldout-0 failed (E)`` and ``heldout-1 failed (E)``: ``heldout-0, heldout-1 failed
    (E)``), in the order the reasons first came."""
    names: dict[str, list] = {}
    for note in notes:
        who, sep, reason = note.partition(" failed ")
        names.setdefault(reason if sep else note, []).extend([who] if sep else [])
    return "; ".join(f"{', '.join(n)} failed {r}" if n else r for r, n in names.items())


def table(plan: Plan, done: dict, why) -> BacktestResult:
    """The held-out table: ``backtest`` of the assembled held-out forecaster on the window,
    the anchors' forecasts beside it; without rows when a part is missing (``why``)."""
    from .forecast_backtest import backtest

    if any(done[t.name] is None for t in plan.tasks if t.fit != "saved"):
        return BacktestResult(notes=[f"the held-out table is left out: {said_once(why)}"])
    model = assemble(plan, "heldout", done)
    anchors = done["anchors"]

    @contextlib.contextmanager
    def anchors_done(*_):
        yield lambda: anchors

    def fit_predict(train, horizon, levels):
        return model.predict(train, horizon, levels)

    return backtest(fit_predict, plan.panel, plan.horizon, 1, levels=plan.config.levels,
                    anchors=plan.anchors, start_anchors=anchors_done)  # fmt: skip


# -- the child's side ------------------------------------------------------------------------------
def run(directory) -> None:
    """The child: lstmkit and its kernels loaded, it waits for the parent's go line, reads the
    panel and settings in ``directory/input.npz`` and takes tasks as the parent does, writing
    each result into ``directory`` (``write_result``); it stops waiting for a peer when its
    parent has ended."""
    from ..ops.backend import get_backend
    from . import forecast_backtest, forecast_global  # noqa: F401  (loaded while waiting)

    if get_backend() == "numba":  # the compiled kernels loaded while the parent reads the data
        from ..ops import fast  # noqa: F401
    parent = os.getppid()
    if sys.stdin.buffer.readline() != GO:
        return  # the parent stopped before its input
    d = Path(directory)
    with np.load(d / IN, allow_pickle=False) as z:
        panel = panel_of(z)
        config = ForecastConfig.from_dict(json.loads(str(z["config"])))
        anchors = None if bool(z["default_anchors"]) else tuple(str(s) for s in z["anchors"])
        evaluate = bool(z["evaluate"])
    plan = plan_of(panel, config, anchors, evaluate)
    done: dict = {}

    def run_task(task):
        out = do(plan, task, done)
        if out is not None:
            write_result(d, plan, task, out)
        return out

    work(d, plan, done, lambda: os.getppid() == parent, run_task, alone_stops=True)


if __name__ == "__main__":
    from .._system import skip_final_collection

    try:
        run(sys.argv[1])
    finally:  # the parent waits for this process to end: no final collection
        skip_final_collection()
