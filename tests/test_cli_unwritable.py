"""A command whose output location cannot be written fails at once, before it trains (issue 17).

Root ignores permission bits, and CI runs as root, so the commands run in a child process as the
unprivileged user ``nobody`` (65534). ``preexec_fn`` cannot do it here: the interpreter of the
virtual environment may live under ``/root`` (mode 0700, e.g. pyenv), which ``nobody`` cannot
even reach to ``exec`` it. So the child starts as root, imports lstmkit and the modules the
commands use, then drops to ``nobody`` with ``os.setgid``/``os.setuid`` before it calls
``lstmkit.cli.main``: every file-system call of the commands runs under uid 65534. Dropping
privileges must work: if it does not, the test fails (it is never skipped). Run by a user other
than root, the same child runs without dropping, and the read-only bits do the work.

Witnesses: the exit status, the one-line message naming the read-only directory, the time to
fail (the old commands trained first and then died with a ``PermissionError`` traceback), the
untouched directory, and a command into a writable directory that does succeed as ``nobody``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import main

NOBODY = 65534
SRC = Path(__file__).resolve().parents[1] / "src"
FAIL_WITHIN = 5.0  # seconds; the check itself takes milliseconds
FAST = ["--lookback", "12", "--horizon", "4", "--units", "4", "--epochs", "1"]
FAST += ["--transform", "none", "--engine", "single"]  # the one-series engine
WARM_UP = [["forecast", "train", "data.csv", "--column", "y", *FAST, "--out", "warm/m.lstmkit"]]

CHILD = r"""
import contextlib, io, json, os, sys, time
import lstmkit, numpy
from lstmkit import cli
cli.build_parser()  # imports every command module while the interpreter's files are readable

def run(argv):
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(argv)
    except BaseException as e:  # the old behaviour: a traceback after training
        rc = f"{type(e).__name__}: {e}"
    return {"argv": argv, "rc": rc, "out": out.getvalue(), "err": err.getvalue(),
            "seconds": time.perf_counter() - start}

# a warm-up run, still as root, imports whatever the command imports lazily (utf-8-sig ...)
warm = [run(argv) for argv in json.loads(sys.argv[3])]
assert all(r["rc"] == 0 for r in warm), warm
# and every module of lstmkit, so that the commands run even where the clone's directory is one
# ``nobody`` cannot enter (a ``mktemp -d`` checkout is 0700)
import importlib, pkgutil
skip = ("lstmkit.__main__", "lstmkit.distributed")  # a script; ray is for --engine ray only
for m in pkgutil.walk_packages(lstmkit.__path__, "lstmkit."):
    if m.name.startswith(skip):
        continue
    try:
        importlib.import_module(m.name)
    except ImportError:  # an optional extra that is not installed: its commands are not run
        pass
uid = int(sys.argv[1])
if uid >= 0:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
# the commands run in this directory: nobody must be able to read it
unreadable = [p for p in (os.getcwd(),) if not os.access(p, os.R_OK)]
results = [run(argv) for argv in json.loads(sys.argv[2])]
print(json.dumps({"euid": os.geteuid(), "unreadable": unreadable, "results": results}))
"""


def _series_csv(path, n=300):
    t = np.arange(n)
    y = 20 + 8 * np.sin(2 * np.pi * t / 12) + 0.05 * t
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["month", "y"])
        w.writerows((i, repr(float(v))) for i, v in enumerate(y))


def _labelled_csv(path, n=40):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([f"{'good' if i % 2 else 'bad'} thing {i}", i % 2] for i in range(n))


@pytest.fixture
def base():
    """A directory ``nobody`` can enter (pytest's own tmp_path is 0700 root), with inputs, a
    read-only directory ``ro`` and a writable one ``w``."""
    d = Path(tempfile.mkdtemp(prefix="lstmkit-unwritable-"))
    try:
        d.chmod(0o755)
        _series_csv(d / "data.csv")
        (d / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
        _labelled_csv(d / "labelled.csv")
        np.savetxt(d / "x.csv", np.zeros((12, 1)), delimiter=",")
        argv = ["forecast", "train", str(d / "data.csv"), "--column", "y", *FAST]
        assert main([*argv, "--out", str(d / "model.lstmkit")]) == 0
        for name in ("data.csv", "corpus.txt", "labelled.csv", "x.csv", "model.lstmkit"):
            (d / name).chmod(0o644)
        (d / "ro").mkdir(mode=0o555)
        (d / "ro").chmod(0o555)  # mkdir's mode passes through the umask
        (d / "w").mkdir()
        (d / "w").chmod(0o777)  # also HOME, MPLCONFIGDIR and NUMBA_CACHE_DIR of the child
        yield d
    finally:
        shutil.rmtree(d)


def _run_unprivileged(base, commands):
    uid = NOBODY if os.geteuid() == 0 else -1
    # numba's cache stays where pytest's is: the warm-up loads the compiled kernels from it
    env = {**os.environ, "PYTHONPATH": str(SRC), "MPLBACKEND": "Agg"}
    env.update(HOME=str(base / "w"), MPLCONFIGDIR=str(base / "w"), OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(uid), json.dumps(commands), json.dumps(WARM_UP)],
        check=False,
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, (
        f"the unprivileged child failed (cannot drop to uid {uid}?):\n{r.stderr}"
    )
    report = json.loads(r.stdout.splitlines()[-1])
    if uid >= 0:
        assert report["euid"] == NOBODY, report["euid"]
    assert not report["unreadable"], (
        f"uid {NOBODY} cannot read {report['unreadable']}: make the source tree and the virtual "
        "environment world-readable for this test"
    )
    return report["results"]


def test_commands_refuse_a_read_only_output_directory_before_any_work(base):
    ro = str(base / "ro")
    slow = [
        "--lookback",
        "12",
        "--horizon",
        "4",
        "--units",
        "8",
        "--epochs",
        "30",
        "--engine",
        "single",
    ]
    slow += ["--patience", "30", "--transform", "none"]
    commands = {
        "forecast train": ["forecast", "train", "data.csv", "--column", "y", *slow, "--out",
                           "ro/m.lstmkit"],
        "forecast train, missing dir": ["forecast", "train", "data.csv", "--column", "y", *slow,
                                        "--out", "ro/new/m.lstmkit"],
        "forecast predict": ["forecast", "predict", "model.lstmkit", "data.csv", "--out",
                             "ro/f.csv"],
        "forecast predict --plot": ["forecast", "predict", "model.lstmkit", "data.csv", "--out",
                                    "w/f.csv", "--plot", "ro/f.png"],
        "forecast demo": ["forecast", "demo", "--out", "ro/demo"],
        "text train": ["text", "train", "corpus.txt", "--epochs", "1", "--max-steps", "2",
                       "--batch-size", "2", "--seq-len", "5", "--out", "ro/t.lstmkit"],
        "text train checkpoints": ["text", "train", "corpus.txt", "--epochs", "1",
                                   "--max-steps", "2", "--batch-size", "2", "--seq-len", "5",
                                   "--out", "w/t.lstmkit", "--checkpoint-dir", "ro/ckpt"],
        "classify train": ["classify", "train", "labelled.csv", "--epochs", "1", "--min-freq",
                           "1", "--out", "ro/c.lstmkit"],
        "lab": ["lab", "adding", "--length", "12", "--budget", "320", "--check-every", "160",
                "--test-size", "64", "--quiet", "--out", "ro/lab"],
        "inspect": ["inspect", "model.lstmkit", "--input", "x.csv", "--out", "ro/report"],
        "export onnx": ["export", "onnx", "model.lstmkit", "ro/m.onnx"],
        "export torch": ["export", "torch", "model.lstmkit", "ro/m.safetensors"],
    }  # fmt: skip
    results = _run_unprivileged(base, list(commands.values()))
    for name, r in zip(commands, results):
        lines = r["err"].splitlines()
        assert r["rc"] == 2, (name, r["rc"], r["err"][-500:])
        assert len(lines) == 1 and f"directory {ro!r} is not writable" in lines[0], (name, lines)
        assert "permission denied" in lines[0], lines
        assert r["out"] == "", (name, r["out"])  # nothing read, nothing trained
        assert r["seconds"] < FAIL_WITHIN, (name, r["seconds"])
    assert os.listdir(base / "ro") == []
    assert results[0]["err"].strip() == (
        f"lstmkit forecast: error: argument '--out' 'ro/m.lstmkit' cannot be written: "
        f"directory {ro!r} is not writable (permission denied)"
    )


def test_the_same_user_writes_into_a_writable_directory(base):
    """The check is no false alarm: as ``nobody``, into ``w`` (mode 0777), the command trains
    and writes, creating a missing directory on the way."""
    argv = ["forecast", "train", "data.csv", "--column", "y", *FAST, "--out", "w/new/m.lstmkit"]
    [r] = _run_unprivileged(base, [argv])
    assert r["rc"] == 0, r["err"]
    owner = (base / "w" / "new" / "m.lstmkit").stat().st_uid
    assert owner == (NOBODY if os.geteuid() == 0 else os.geteuid())


def test_a_read_only_output_file_is_refused_though_its_directory_is_writable(base):
    """``w`` is writable, so a rename would replace the file: mode 0444 says "keep" (as ``cp``
    does); the old command replaced it."""
    keep = base / "w" / "keep.onnx"
    keep.write_bytes(b"keep me")
    keep.chmod(0o444)
    [r] = _run_unprivileged(base, [["export", "onnx", "model.lstmkit", "w/keep.onnx"]])
    assert r["rc"] == 2, r
    assert r["err"].strip() == (
        "lstmkit export: error: argument 'out' 'w/keep.onnx' is a read-only file"
    )
    assert keep.read_bytes() == b"keep me"
