"""Every argument of ``lstmkit text | classify | lab | inspect | export`` is checked at the door.

A bad number is refused when the command line is parsed, before any file is read: exit status 2
and one line on stderr that names the flag, the value and what is allowed (issue 17, "Silent
nonsense"). The expected lines are the specification, written out in full. Files that are not
UTF-8 are refused with the file, the byte, its offset, line and column, and how to convert.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from lstmkit import cli, tasks
from lstmkit.apps.classify import stratified_split, train_text_classifier
from lstmkit.cli import _args
from lstmkit.cli.lab import MIN_LENGTH
from lstmkit.data.sequences import read_sequence_csv
from lstmkit.data.text import read_labelled_texts

MINE = ("text", "classify", "lab", "inspect", "export")


def run(argv):
    """``lstmkit ARGV`` in-process: ``(exit status, stdout, stderr)``."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as e:  # argparse refuses a command line with status 2
            code = e.code
    return code, out.getvalue(), err.getvalue()


def refused(argv):
    """The one line ``lstmkit ARGV`` writes on stderr, after checking that there is exactly one
    line, no traceback and exit status 2."""
    code, out, err = run(argv)
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.rstrip("\n")


def one_line(prog, message):
    return f"{prog}: error: {message} (see {prog} --help)"


# The corpus / data / model files need not exist: these are refused before anything is read.
TRAIN = ["text", "train", "missing-corpus.txt", "--out", "never-written.lstmkit"]
CTRAIN = ["classify", "train", "missing.csv", "--out", "never-written.lstmkit"]
LAB = ["lab", "adding", "--out", "never-written", "--quiet"]
CASES = [
    # text train: every int and float flag
    (TRAIN + ["--seq-len", "0"], "argument --seq-len: must be a positive integer; got 0"),
    (TRAIN + ["--epochs", "0"], "argument --epochs: must be a positive integer; got 0"),
    (TRAIN + ["--units", "0"], "argument --units: must be a positive integer; got 0"),
    (TRAIN + ["--layers", "0"], "argument --layers: must be a positive integer; got 0"),
    (TRAIN + ["--embed-dim", "-3"], "argument --embed-dim: must be a positive integer; got -3"),
    (TRAIN + ["--batch-size", "0"], "argument --batch-size: must be a positive integer; got 0"),
    (TRAIN + ["--patience", "-1"], "argument --patience: must be an integer >= 0; got -1"),
    (TRAIN + ["--val-fraction", "1"], "argument --val-fraction: must be a number in (0, 1); got 1"),
    (TRAIN + ["--dropout", "-0.5"], "argument --dropout: must be a number in [0, 1); got -0.5"),
    (TRAIN + ["--lr", "0"], "argument --lr: must be a number > 0; got 0"),
    (TRAIN + ["--lr", "nan"], "argument --lr: must be a number > 0; got nan"),
    (TRAIN + ["--clipnorm", "-1"], "argument --clipnorm: must be a number > 0; got -1"),
    (TRAIN + ["--eps", "0"], "argument --eps: must be a number > 0; got 0"),
    (TRAIN + ["--lr-decay", "0"], "argument --lr-decay: must be a number in (0, 1]; got 0"),
    (TRAIN + ["--decay-after", "-1"], "argument --decay-after: must be an integer >= 0; got -1"),
    (TRAIN + ["--max-vocab", "0"], "argument --max-vocab: must be an integer >= 3; got 0"),
    (TRAIN + ["--min-freq", "0"], "argument --min-freq: must be a positive integer; got 0"),
    (TRAIN + ["--max-steps", "0"], "argument --max-steps: must be a positive integer; got 0"),
    (TRAIN + ["--seed", "-1"], "argument --seed: must be an integer >= 0; got -1"),
    (TRAIN + ["--epochs", "2.5"], "argument --epochs: must be a positive integer; got '2.5'"),
    (TRAIN + ["--out", ""], "argument --out: must not be empty; got ''"),
    # text generate / evaluate / next
    (["text", "generate", "m.lstmkit", "--length", "0"],
     "argument --length: must be a positive integer; got 0"),
    (["text", "generate", "m.lstmkit", "--temperature", "-1"],
     "argument --temperature: must be a number >= 0; got -1"),
    (["text", "generate", "m.lstmkit", "--top-k", "0"],
     "argument --top-k: must be a positive integer; got 0"),
    (["text", "evaluate", "m.lstmkit", "f.txt", "--batch-size", "0"],
     "argument --batch-size: must be a positive integer; got 0"),
    (["text", "next", "m.lstmkit", "--top", "-1"],
     "argument --top: must be a positive integer; got -1"),
    (["text", "next", "m.lstmkit", "--top", "0"],
     "argument --top: must be a positive integer; got 0"),
    # classify train
    (CTRAIN + ["--maxlen", "0"], "argument --maxlen: must be a positive integer; got 0"),
    (CTRAIN + ["--epochs", "0"], "argument --epochs: must be a positive integer; got 0"),
    (CTRAIN + ["--test-fraction", "1"],
     "argument --test-fraction: must be a number in (0, 1); got 1"),
    (CTRAIN + ["--val-fraction", "0"],
     "argument --val-fraction: must be a number in (0, 1); got 0"),
    (CTRAIN + ["--dropout", "1"], "argument --dropout: must be a number in [0, 1); got 1"),
    (CTRAIN + ["--max-vocab", "2"], "argument --max-vocab: must be an integer >= 3; got 2"),
    (CTRAIN + ["--min-freq", "0"], "argument --min-freq: must be a positive integer; got 0"),
    (CTRAIN + ["--lr", "-0.001"], "argument --lr: must be a number > 0; got -0.001"),
    (CTRAIN + ["--batch-size", "0"], "argument --batch-size: must be a positive integer; got 0"),
    (CTRAIN + ["--units", "0"], "argument --units: must be a positive integer; got 0"),
    (CTRAIN + ["--patience", "-2"], "argument --patience: must be an integer >= 0; got -2"),
    # lab
    (LAB + ["--length", "0"], "argument --length: must be an integer >= 12; got 0"),
    (["lab", "temporal-order", "--length", "9"],
     "argument --length: must be an integer >= 10; got 9"),
    (["lab", "copy", "--length", "0"], "argument --length: must be a positive integer; got 0"),
    (LAB + ["--units", "0"], "argument --units: must be a positive integer; got 0"),
    (LAB + ["--batch", "0"], "argument --batch: must be a positive integer; got 0"),
    (LAB + ["--budget", "0"], "argument --budget: must be a positive integer; got 0"),
    (LAB + ["--check-every", "0"], "argument --check-every: must be a positive integer; got 0"),
    (LAB + ["--test-size", "0"], "argument --test-size: must be a positive integer; got 0"),
    (LAB + ["--max-wrong", "-1"], "argument --max-wrong: must be an integer >= 0; got -1"),
    (LAB + ["--lr", "0"], "argument --lr: must be a number > 0; got 0"),
    (LAB + ["--clipnorm", "-1"], "argument --clipnorm: must be a number > 0; got -1"),
    (LAB + ["--forget-bias", "inf"], "argument --forget-bias: must be a finite number; got inf"),
    (LAB + ["--seed", "-1"], "argument --seed: must be an integer >= 0; got -1"),
    (["lab", "compare", "--seeds", "-1"],
     "argument --seeds: must be comma-separated integers >= 0; got '-1'"),
    (["lab", "compare", "--seeds", ""],
     "argument --seeds: must be comma-separated integers >= 0; got ''"),
    (["lab", "compare", "--seeds", "0,1,0"],
     "argument --seeds: must not repeat an entry; got '0,1,0' (repeats 0)"),
    (["lab", "compare", "--cells", ""],
     "argument --cells: must be comma-separated cell names; got ''"),
    # export
    (["export", "onnx", "m.lstmkit", "m.onnx", "--opset", "0"],
     "argument --opset: must be an integer >= 13; got 0"),
]  # fmt: skip


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a[:2] + a[-2:]) for a, _ in CASES])
def test_bad_number_is_refused_in_one_line(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prog = "lstmkit " + " ".join(argv[:2])
    assert refused(argv) == one_line(prog, message)
    assert list(tmp_path.iterdir()) == []  # nothing read, nothing written


INSPECT_CASES = [
    (["--compare-cells", "--length", "0"], "argument --length: must be an integer >= 12; got 0"),
    (["--compare-cells", "--seeds", "0"], "argument --seeds: must be a positive integer; got 0"),
    (["--compare-cells", "--hidden", "0"], "argument --hidden: must be a positive integer; got 0"),
    (["--compare-cells", "--lag", "-1"], "argument --lag: must be an integer >= 0; got -1"),
    (["m.lstmkit", "--input", "x.npy", "--sample", "-1"],
     "argument --sample: must be an integer >= 0; got -1"),
    (["m.lstmkit", "--input", "x.npy", "--units", "2", "-1"],
     "argument --units: must be an integer >= 0; got -1"),
]  # fmt: skip


@pytest.mark.parametrize("argv, message", INSPECT_CASES)
def test_inspect_numbers_are_refused_at_parse_time(argv, message, tmp_path, monkeypatch):
    """``inspect`` has no verbs: its parser is built by ``lstmkit.cli`` itself, with the same
    one-line errors."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["inspect", *argv])
    assert code == 2 and "Traceback" not in err
    assert err.rstrip("\n") == one_line("lstmkit inspect", message)
    assert list(tmp_path.iterdir()) == []


def test_inspect_lag_beyond_the_length_is_refused_before_the_work(tmp_path):
    out = tmp_path / "cells"
    argv = ["inspect", "--compare-cells", "--length", "12", "--seeds", "1", "--hidden", "2"]
    err = refused([*argv, "--lag", "13", "--out", str(out)])
    assert err == "lstmkit inspect: error: argument --lag: must be at most --length (12); got 13"
    assert not out.exists()


# -- every numeric flag has a checking type -----------------------------------------------------
def _actions(parser, prog):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{prog} {name}")
        elif action.option_strings:
            yield prog, action


def test_no_flag_of_these_commands_takes_a_bare_int_or_float():
    """A flag typed ``int`` or ``float`` accepts 0, negatives, NaN: every number goes through a
    type of :mod:`lstmkit.cli._args` that says what is allowed."""
    parser = cli.build_parser()
    groups = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = []
    for group in MINE:
        for prog, action in _actions(groups.choices[group], f"lstmkit {group}"):
            if action.type in (int, float):
                bare.append(f"{prog} {action.option_strings[-1]}")
    assert bare == []


def test_float_flags_refuse_nan_and_infinity():
    for text in ("nan", "inf", "-inf"):
        for parse in (_args.positive_float, _args.nonneg_float, _args.finite_float,
                      _args.fraction, _args.dropout_rate):  # fmt: skip
            with pytest.raises(argparse.ArgumentTypeError, match=f"got {text}$"):
                parse(text)


def test_types_accept_the_edges_they_name():
    assert _args.nonneg_int("0") == 0 and _args.positive_int("1") == 1
    assert _args.dropout_rate("0") == 0.0 and _args.float_in(0.0, 1.0, lo_open=True)("1") == 1.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be a number in \(0, 1\); got 0"):
        _args.fraction("0")
    assert _args.comma_list(_args.nonneg_int, "integers >= 0")("0, 2,1") == [0, 2, 1]


# -- no silent fallback: a given value is used, the default only when the flag is absent ---------
def test_text_train_defaults_by_level_apply_only_when_the_flag_is_absent(tmp_path):
    from lstmkit.saving import load_model

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat . " * 120, encoding="utf-8")
    common = ["--epochs", "1", "--units", "4", "--layers", "1", "--embed-dim", "2",
              "--batch-size", "2", "--max-steps", "1", "--no-checkpoints", "--quiet"]  # fmt: skip
    argv = ["text", "train", str(corpus), "--level", "word", "--out", str(tmp_path / "w.lstmkit")]
    assert run([*argv, *common])[0] == 0
    settings = load_model(tmp_path / "w.lstmkit", compile=False).metadata["settings"]
    assert settings["seq_len"] == 35 and settings["max_vocab"] == 10000  # word-level defaults
    argv = ["text", "train", str(corpus), "--out", str(tmp_path / "c.lstmkit")]
    assert run([*argv, *common])[0] == 0
    settings = load_model(tmp_path / "c.lstmkit", compile=False).metadata["settings"]
    assert settings["seq_len"] == 50 and settings["max_vocab"] is None  # char-level defaults
    assert run([*argv, "--seq-len", "7", "--max-vocab", "5", *common])[0] == 0
    settings = load_model(tmp_path / "c.lstmkit", compile=False).metadata["settings"]
    assert settings["seq_len"] == 7 and settings["max_vocab"] == 5


# -- lab: checks that need the task or two flags -----------------------------------------------
def test_lab_min_lengths_are_those_of_the_task_generators():
    makers = {
        "adding": lambda T: tasks.adding_problem(2, T, seed=0),
        "temporal-order": lambda T: tasks.temporal_order(2, T, seed=0),
        "copy": lambda T: tasks.copy_memory(2, T, seed=0),
    }
    assert set(makers) == set(MIN_LENGTH)
    for task, make in makers.items():
        make(MIN_LENGTH[task])  # the minimum is accepted ...
        with pytest.raises(ValueError):  # ... and one less is not
            make(MIN_LENGTH[task] - 1)


def test_lab_checks_that_need_two_flags_run_before_the_work(tmp_path):
    out = tmp_path / "lab"
    err = refused(["lab", "compare", "--length", "5", "--out", str(out), "--quiet"])
    assert err == (
        "lstmkit lab: error: argument --length: must be an integer >= 12 for the adding task; got 5"
    )
    err = refused(["lab", "adding", "--test-size", "3", "--out", str(out), "--quiet"])
    assert err == (
        "lstmkit lab: error: argument --max-wrong: must be below --test-size (3), or the first "
        "check would stop training; got 3"
    )
    assert not out.exists()


# -- files that are not UTF-8 -------------------------------------------------------------------
LATIN1_TEXT = "ok line\nGrüße aus Köln\n"
BAD_AT = len(b"ok line\nGr")  # the first non-ASCII byte: 0xfc, line 2, column 3


def _latin1(path, text=LATIN1_TEXT):
    path.write_bytes(text.encode("latin-1"))
    assert path.read_bytes()[BAD_AT] == 0xFC
    return path


def _utf8_message(what, path, offset, line, column, byte="0xfc"):
    return (
        f"{what}: {str(path)!r} is not UTF-8: byte {byte} at offset {offset} (line {line}, "
        f"column {column}): invalid start byte; save it as UTF-8, e.g. iconv -f latin1 -t utf-8 "
        f"{path.name} > {path.stem}.utf8{path.suffix}"
    )


def test_latin1_corpus_names_the_file_byte_and_offset(tmp_path):
    corpus = _latin1(tmp_path / "notes.txt")
    err = refused(["text", "train", str(corpus), "--out", str(tmp_path / "m.lstmkit")])
    expected = _utf8_message("argument 'corpus'", corpus, BAD_AT, 2, 3)
    assert err == f"lstmkit text: error: {expected}"
    assert not (tmp_path / "m.lstmkit").exists()


def test_latin1_text_to_evaluate_names_the_file(tmp_path):
    from lstmkit.apps.text import build_language_model
    from lstmkit.data.text import Vocabulary

    vocab = Vocabulary.build("abc ", "char")
    model = build_language_model(len(vocab), 2, 2, 1)
    model.build((None, None))
    model.metadata = {"app": "text", "vocabulary": vocab.to_dict(), "settings": {"seq_len": 5}}
    model.save(tmp_path / "m.lstmkit")
    f = _latin1(tmp_path / "eval.txt")
    err = refused(["text", "evaluate", str(tmp_path / "m.lstmkit"), str(f)])
    expected = _utf8_message("argument 'file'", f, BAD_AT, 2, 3)
    assert err == f"lstmkit text: error: {expected}"


def test_latin1_csv_names_the_file_byte_and_offset(tmp_path):
    csv = tmp_path / "reviews.csv"
    csv.write_bytes("text,label\ngood,pos\nschön,pos\n".encode("latin-1"))
    offset = len(b"text,label\ngood,pos\nsch")
    with pytest.raises(ValueError) as e:
        read_labelled_texts(csv)
    assert str(e.value) == _utf8_message(
        "read_labelled_texts: argument 'path'", csv, offset, 3, 4, "0xf6"
    )
    err = refused(["classify", "train", str(csv), "--out", str(tmp_path / "m.lstmkit")])
    assert err == f"lstmkit classify: error: {e.value}"
    frames = tmp_path / "frames.csv"
    frames.write_bytes("utterance,frame,label,c1\nä,0,x,1.0\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"read_sequence_csv: argument 'path': .* byte 0xe4 at "
                       r"offset 25 \(line 2, column 1\)"):  # fmt: skip
        read_sequence_csv(frames)


def test_unreadable_corpus_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    """CI runs as root, which reads any file: the refusal of the OS is simulated."""
    from lstmkit.data import utf8

    def denied(path, mode="r"):
        raise PermissionError(13, "Permission denied", path)

    corpus = tmp_path / "c.txt"
    corpus.write_text("abc", encoding="utf-8")
    monkeypatch.setattr(utf8, "open", denied, raising=False)
    err = refused(["text", "train", str(corpus), "--out", str(tmp_path / "m.lstmkit")])
    assert err == f"lstmkit text: error: argument 'corpus': cannot read {str(corpus)!r}: " + (
        "Permission denied"
    )


def test_utf8_files_with_a_byte_order_mark_read_as_without(tmp_path):
    frames = tmp_path / "frames.csv"
    frames.write_bytes(b"\xef\xbb\xbfutterance,frame,label,c1\nu1,0,x,1.0\nu1,1,x,2.0\n")
    seqs, labels, features = read_sequence_csv(frames)  # the first column is "utterance"
    assert labels == ["x"] and features == ["c1"] and seqs[0][:, 0].tolist() == [1.0, 2.0]
    texts = tmp_path / "t.csv"
    texts.write_bytes("\ufefftext,label\nschön,pos\n".encode())
    assert read_labelled_texts(texts) == (["schön"], ["pos"])


# -- classify: fractions and splits that leave nothing ----------------------------------------
def test_classify_fraction_one_is_refused_by_the_config():
    texts, labels = ["good", "bad"] * 10, ["pos", "neg"] * 10
    with pytest.raises(ValueError) as e:
        train_text_classifier(texts, labels, test_fraction=1.0)
    assert str(e.value) == "ClassifyConfig: argument 'test_fraction' must be in (0, 1); got 1.0"


def test_classify_empty_test_split_says_how_many_and_what_is_needed(tmp_path):
    texts, labels = ["good film", "bad film"] * 2, ["pos", "neg"] * 2
    with pytest.raises(ValueError) as e:
        train_text_classifier(texts, labels, epochs=1, units=2, embed_dim=2)
    assert str(e.value) == (
        "train_text_classifier: the test split is empty: test_fraction=0.2 of 4 examples ('neg': "
        "2, 'pos': 2) holds out round(n * 0.2) = 0 examples of every class; at this test_fraction "
        "a class needs at least 3 examples; give more examples, a larger test_fraction or a "
        "separate test set (lstmkit classify train --test)"
    )
    csv = tmp_path / "small.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(texts, labels)))
    err = refused(["classify", "train", str(csv), "--out", str(tmp_path / "m.lstmkit")])
    assert err == f"lstmkit classify: error: {e.value}"
    assert not (tmp_path / "m.lstmkit").exists()


def test_classify_empty_training_split_is_refused():
    texts, labels = ["good film", "bad film"] * 2, ["pos", "neg"] * 2
    with pytest.raises(ValueError) as e:
        train_text_classifier(texts, labels, test_fraction=0.5, val_fraction=0.9)
    assert str(e.value) == (
        "train_text_classifier: the training split is empty: val_fraction=0.9 of 2 examples left "
        "after the test split ('neg': 1, 'pos': 1) holds out every example; give more examples or "
        "a smaller val_fraction"
    )


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2, 0.25, 1 / 3, 0.45, 0.5])
def test_the_needed_count_in_the_message_is_what_the_split_needs(fraction):
    """The count the message asks for is the fewest examples per class from which
    ``stratified_split`` holds one out, found here by trying every count."""
    need = next(n for n in range(1, 100) if len(stratified_split(np.zeros(n, int), fraction, 0)[1]))
    assert need > 1  # the message needs a count of one less that holds nothing out
    k = need - 1
    with pytest.raises(ValueError) as e:
        train_text_classifier(["good"] * k + ["bad"] * k, ["a"] * k + ["b"] * k,
                              test_fraction=fraction)  # fmt: skip
    assert f"a class needs at least {need} examples;" in str(e.value)
