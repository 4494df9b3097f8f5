"""No command writes over one of its inputs, or one output over another (issue 17).

Every case runs the real command through ``lstmkit.cli.main`` with an output path that is an
input under another name: the same spelling, ``./x`` and ``../dir/x``, a hard link, a symbolic
link either way, and derived outputs (``predict``'s default plot beside its CSV, ``inspect``'s
files inside ``--out DIR``). The witness is the file system itself: the input's bytes and
``st_mtime_ns`` before and after, and the listing of the directory. The settings keep the
training short so that, without the check, each command would finish and destroy its input
within seconds (which is how these tests were seen to fail).
"""

from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest

from lstmkit import _paths
from lstmkit.cli import build_parser, main

FAST = ["--lookback", "12", "--horizon", "4", "--units", "4", "--epochs", "1", "--patience", "1"]
FAST += ["--transform", "none", "--engine", "single"]  # the one-series engine
TEXT_FAST = ["--epochs", "1", "--max-steps", "2", "--units", "4", "--embed-dim", "4"]
TEXT_FAST += ["--batch-size", "2", "--seq-len", "5", "--quiet", "--no-checkpoints"]
CLASSIFY_FAST = ["--epochs", "1", "--units", "4", "--embed-dim", "4", "--min-freq", "1"]


def _write_series(path, n=120):
    t = np.arange(n)
    y = 20 + 8 * np.sin(2 * np.pi * t / 12) + 0.05 * t
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["month", "y"])
        w.writerows((2000 + i, repr(float(v))) for i, v in enumerate(y))
    return path


def _write_labelled(path, n=40):
    words = {"pos": "good great fine nice", "neg": "bad awful poor sad"}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            label = "pos" if i % 2 else "neg"
            w.writerow([f"{words[label]} item {i}", label])
    return path


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    data = _write_series(d / "data.csv")
    out = d / "model.lstmkit"
    argv = ["forecast", "train", str(data), "--column", "y", *FAST, "--out", str(out)]
    assert main(argv) == 0
    return out


@pytest.fixture
def work(tmp_path, trained_model, monkeypatch):
    """A working directory ``tmp/w`` holding every kind of input a command reads."""
    w = tmp_path / "w"
    w.mkdir()
    monkeypatch.chdir(w)
    _write_series(w / "data.csv")
    shutil.copyfile(trained_model, w / "model.lstmkit")
    (w / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    _write_labelled(w / "labelled.csv")
    _write_labelled(w / "test.csv", 20)
    return w


def _state(path):
    st = os.stat(path)
    return path.read_bytes(), st.st_mtime_ns, st.st_ino


def _refused(capsys, argv, protected, arg, out_spelling, in_spelling, in_arg):
    """Run ``argv``; it must exit 2 with one line naming ``arg`` and both paths, print nothing
    else, and leave ``protected`` byte-identical with the same mtime and inode."""
    before = _state(protected)
    listing = sorted(os.listdir(protected.parent))
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    line = lines[0]
    assert f"argument '{arg}'" in line and repr(out_spelling) in line, line
    assert f"input '{in_arg}' {in_spelling!r}" in line, line
    assert captured.out == ""  # refused before any work
    assert _state(protected) == before
    assert sorted(os.listdir(protected.parent)) == listing  # nothing created, no temp files


# -- the same file under every spelling ---------------------------------------------------------
def _spell(work, kind):
    """``(output spelling, input spelling)`` that name the same file ``data.csv``."""
    if kind == "same":
        return "data.csv", "data.csv"
    if kind == "dot":
        return "./data.csv", "data.csv"
    if kind == "dotdot":
        return "data.csv", "../w/data.csv"
    if kind == "absolute":
        return str(work / "data.csv"), "data.csv"
    if kind == "hardlink":
        os.link(work / "data.csv", work / "hard.csv")
        return "hard.csv", "data.csv"
    if kind == "symlink-out-to-input":
        os.symlink("data.csv", work / "link.csv")
        return "link.csv", "data.csv"
    if kind == "symlink-input-to-out":
        os.symlink("data.csv", work / "link.csv")
        return "data.csv", "link.csv"
    raise AssertionError(kind)


SPELLINGS = [
    "same", "dot", "dotdot", "absolute", "hardlink", "symlink-out-to-input", "symlink-input-to-out"
]  # fmt: skip


@pytest.mark.parametrize("kind", SPELLINGS)
def test_train_refuses_out_onto_its_data(work, capsys, kind):
    out, data = _spell(work, kind)
    argv = ["forecast", "train", data, "--column", "y", *FAST, "--out", out]
    _refused(capsys, argv, work / "data.csv", "--out", out, data, "data")


@pytest.mark.parametrize("kind", SPELLINGS)
def test_predict_refuses_out_onto_its_data(work, capsys, kind):
    out, data = _spell(work, kind)
    argv = ["forecast", "predict", "model.lstmkit", data, "--out", out, "--plot", "p.png"]
    _refused(capsys, argv, work / "data.csv", "--out", out, data, "data")


def test_the_messages_say_how_two_names_are_one_file(work, capsys):
    os.link(work / "data.csv", work / "hard.csv")
    os.symlink("data.csv", work / "link.csv")
    for out, how in [("hard.csv", "(a hard link)"), ("link.csv", "(through a symbolic link)")]:
        argv = ["forecast", "train", "data.csv", "--column", "y", "--out", out]
        assert main(argv) == 2
        assert how in capsys.readouterr().err


# -- every command, every output argument -------------------------------------------------------
CASES = {
    # id: (argv, protected input, output argument, output spelling, input argument)
    "predict --out MODEL": (
        ["forecast", "predict", "model.lstmkit", "data.csv", "--out", "model.lstmkit"],
        "model.lstmkit", "--out", "model.lstmkit", "model",
    ),
    "predict --plot DATA": (
        ["forecast", "predict", "model.lstmkit", "data.csv", "--out", "f.csv", "--plot",
         "./data.csv"],
        "data.csv", "--plot", "./data.csv", "data",
    ),
    "predict --plot MODEL": (
        ["forecast", "predict", "model.lstmkit", "data.csv", "--out", "f.csv", "--plot",
         "model.lstmkit"],
        "model.lstmkit", "--plot", "model.lstmkit", "model",
    ),
    "predict default plot onto MODEL": (  # m.png is the model; --out m.csv plots to m.png
        ["forecast", "predict", "m.png", "data.csv", "--out", "m.csv"],
        "m.png", "--plot (default: --out with .png)", "m.png", "model",
    ),
    "predict default plot onto DATA": (
        ["forecast", "predict", "model.lstmkit", "series.png", "--out", "series.csv"],
        "series.png", "--plot (default: --out with .png)", "series.png", "data",
    ),
    "export onnx": (
        ["export", "onnx", "model.lstmkit", "model.lstmkit"],
        "model.lstmkit", "out", "model.lstmkit", "model",
    ),
    "export torch": (["export", "torch", "m.pt", "./m.pt"], "m.pt", "out", "./m.pt", "model"),
    "export lstmkit --quantize": (
        ["export", "lstmkit", "model.lstmkit", "./model.lstmkit", "--quantize", "int8"],
        "model.lstmkit", "out", "./model.lstmkit", "model",
    ),
    "export keras": (
        ["export", "keras", "m.keras", "../w/m.keras"], "m.keras", "out", "../w/m.keras", "model",
    ),
    "text train --out CORPUS": (
        ["text", "train", "corpus.txt", *TEXT_FAST, "--out", "corpus.txt"],
        "corpus.txt", "--out", "corpus.txt", "corpus",
    ),
    "classify train --out DATA": (
        ["classify", "train", "labelled.csv", *CLASSIFY_FAST, "--out", "labelled.csv"],
        "labelled.csv", "--out", "labelled.csv", "data",
    ),
    "classify train --out TEST": (
        ["classify", "train", "labelled.csv", "--test", "test.csv", *CLASSIFY_FAST, "--out",
         "./test.csv"],
        "test.csv", "--out", "./test.csv", "--test",
    ),
    "inspect --out MODEL": (
        ["inspect", "model.lstmkit", "--input", "x.csv", "--out", "model.lstmkit"],
        "model.lstmkit", "--out", "model.lstmkit", "model",
    ),
    "inspect --out DIR/report.html -> input": (  # a symlink in DIR that the report would follow
        ["inspect", "model.lstmkit", "--input", "x.csv", "--out", "rep"],
        "x.csv", "--out", "rep/report.html", "--input",
    ),
    "inspect --input -> DIR/report.html": (  # the input is a symlink to a file DIR would get
        ["inspect", "model.lstmkit", "--input", "in.csv", "--out", "rep"],
        "rep/report.html", "--out", "rep/report.html", "--input",
    ),
}  # fmt: skip


def _prepare(work):
    shutil.copyfile(work / "model.lstmkit", work / "m.png")
    shutil.copyfile(work / "model.lstmkit", work / "m.pt")
    shutil.copyfile(work / "model.lstmkit", work / "m.keras")
    shutil.copyfile(work / "data.csv", work / "series.png")
    rows = np.random.default_rng(0).normal(size=(12, 1))  # one window of the model
    np.savetxt(work / "x.csv", rows, delimiter=",")
    (work / "rep").mkdir()
    np.savetxt(work / "rep" / "real.csv", rows, delimiter=",")


@pytest.mark.parametrize("case", list(CASES))
def test_every_command_refuses_an_output_onto_an_input(work, capsys, case):
    argv, protected, arg, out_spelling, in_arg = CASES[case]
    _prepare(work)
    in_spelling = protected
    if case == "inspect --out DIR/report.html -> input":
        os.symlink("../x.csv", work / "rep" / "report.html")
        in_spelling = "x.csv"
    if case == "inspect --input -> DIR/report.html":
        shutil.copyfile(work / "x.csv", work / "rep" / "report.html")
        os.symlink("rep/report.html", work / "in.csv")
        in_spelling = "in.csv"
    _refused(capsys, argv, work / protected, arg, out_spelling, in_spelling, in_arg)


# -- one output over another --------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, arg, other",
    [
        (["forecast", "predict", "model.lstmkit", "data.csv", "--out", "x.png"],
         "--plot (default: --out with .png)", "--out"),
        (["forecast", "predict", "model.lstmkit", "data.csv", "--out", "f.csv", "--plot",
          "./f.csv"], "--plot", "--out"),
        (["text", "train", "corpus.txt", "--out", "m.lstmkit", "--checkpoint-dir", "m.lstmkit"],
         "--checkpoint-dir", "--out"),
    ],
)  # fmt: skip
def test_one_output_never_overwrites_another(work, capsys, argv, arg, other):
    before = sorted(os.listdir(work))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert f"argument '{arg}'" in err and f"argument '{other}'" in err, err
    assert sorted(os.listdir(work)) == before


# -- outputs that are not where a file can go ---------------------------------------------------
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["forecast", "train", "data.csv", "--column", "y", *FAST, "--out", "data.csv/m"],
         "is not a directory"),
        (["forecast", "train", "data.csv", "--column", "y", *FAST, "--out", "sub"],
         "got a directory 'sub'"),
        (["lab", "adding", "--length", "12", "--budget", "64", "--check-every", "32",
          "--test-size", "32", "--quiet", "--out", "data.csv"], "is not a directory"),
        (["export", "onnx", "model.lstmkit", "sub"], "got a directory 'sub'"),
    ],
)  # fmt: skip
def test_an_output_path_through_a_file_or_onto_a_directory_is_refused(work, capsys, argv, needle):
    (work / "sub").mkdir()
    before = _state(work / "data.csv")
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1 and needle in captured.err, captured.err
    assert captured.out == ""
    assert _state(work / "data.csv") == before


# -- what is allowed ----------------------------------------------------------------------------
def _check(argv):
    return _paths.check_args(build_parser().parse_args(argv))


def test_outputs_beside_the_inputs_and_new_directories_are_allowed(work):
    (work / "rep").mkdir()
    shutil.copyfile(work / "model.lstmkit", work / "rep" / "model.lstmkit")
    np.savetxt(work / "rep" / "x.csv", np.zeros((4, 1)), delimiter=",")
    # inspect's usual layout: the model and input inside the report directory
    _check(["inspect", "rep/model.lstmkit", "--input", "rep/x.csv", "--out", "rep"])
    _check(["forecast", "predict", "model.lstmkit", "data.csv", "--out", "data-forecast.csv"])
    outs = _check(["forecast", "train", "data.csv", "--column", "y", "--out", "a/b/m.lstmkit"])
    assert [o.path for o in outs] == ["a/b/m.lstmkit"]
    assert not (work / "a").exists()  # created when written, not by the check
    assert not [n for n in os.listdir(work) if n.startswith(".")]  # no probe file left


def test_a_missing_parent_directory_is_created_when_the_output_is_written(work, capsys):
    argv = ["forecast", "train", "data.csv", "--column", "y", *FAST, "--out", "new/dir/m.lstmkit"]
    assert main(argv) == 0
    assert (work / "new" / "dir" / "m.lstmkit").is_file()
    assert os.listdir(work / "new" / "dir") == ["m.lstmkit"]
