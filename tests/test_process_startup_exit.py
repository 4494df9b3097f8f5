"""What a command-line process pays before and after its work (docs/forecast.md, "Outside the
training steps"): the entry points end without the interpreter's final garbage collection
(``lstmkit._system.skip_final_collection``), and the panel paths of ``forecast train`` and
``predict`` do not import the single-series app.

Witnesses, none of them a timing: ``sys.modules`` of a fresh process;
``gc.get_freeze_count()`` read by an ``atexit`` handler of the process, which runs after the
entry point has returned.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _python(code, *args, stdin=None):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, stdin=stdin, check=False)  # fmt: skip


# the entry point run as `python -m ...` would run it; an atexit handler registered before it
# (so it runs after the entry point returned) prints the freeze count
AT_EXIT = (
    "import atexit, gc, runpy, sys\n"
    "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, flush=True))\n"
    "runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
)


@pytest.mark.parametrize(
    "module, args",
    [
        ("lstmkit", ["--version"]),  # (the command line ends by SystemExit)
        ("lstmkit.apps.forecast_heldout", ["DIR"]),  # its parent gone before the input
        ("lstmkit.apps.forecast_child", ["missing.npz", "out.npz"]),  # ends by an error
    ],
)
def test_entry_points_end_without_the_final_collection(module, args, tmp_path):
    if module != "lstmkit":
        args = [str(tmp_path) if a == "DIR" else str(tmp_path / a) for a in args]
    out = _python(AT_EXIT.format(module=module), *args, stdin=subprocess.DEVNULL)
    assert out.stdout.strip().splitlines()[-1] == "frozen True", (out.stdout, out.stderr)


def test_main_itself_leaves_the_collector_alone(tmp_path, capsys):
    from lstmkit.cli import main

    before = gc.get_freeze_count()
    status = main(["forecast", "predict", str(tmp_path / "none.lstmkit"), str(tmp_path / "d.csv"),
                   "--out", str(tmp_path / "fc.csv")])  # fmt: skip
    assert status == 2 and "none.lstmkit" in capsys.readouterr().err
    assert gc.get_freeze_count() == before


# `forecast train` (the saved fit only) and `forecast predict` on a small panel in one fresh
# process; then the modules neither path needs
PANEL_PATHS = r"""
import sys
from lstmkit.cli import main
csv, model, out = sys.argv[1:4]
fast = ["--horizon", "4", "--units", "4", "--epochs", "2", "--patience", "1", "--ensemble", "1"]
assert main(["forecast", "train", csv, "--out", model, "--no-evaluate", *fast]) == 0
assert main(["forecast", "predict", model, csv, "--out", out]) == 0
print([m for m in ("lstmkit.apps.forecast", "lstmkit.apps.forecast_files") if m in sys.modules])
"""


def test_panel_train_and_predict_do_not_import_the_single_series_app(tmp_path):
    csv = tmp_path / "panel.csv"
    rows = ["unique_id,ds,y"]
    for k, name in enumerate(("A", "B", "C")):
        for t in range(32):
            rows.append(
                f"{name},{2000 + t // 4}-{1 + 3 * (t % 4):02d}-01,{10 + k + (t % 4) + 0.1 * t}"
            )
    csv.write_text("\n".join(rows) + "\n")
    out = _python(PANEL_PATHS, str(csv), str(tmp_path / "m.lstmkit"), str(tmp_path / "fc.csv"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert len((tmp_path / "fc.csv").read_text().splitlines()) == 1 + 3 * 4  # the forecasts
