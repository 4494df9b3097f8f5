"""``lstmkit translate train/run/evaluate`` and ``lstmkit inspect`` on a translation model.

Witnesses: a synthetic task with a known answer (date normalisation: the references are the ISO
dates ``synthetic_pairs`` wrote), ``sacrebleu`` called here on the files the commands wrote, the
files' bytes before and after a refused or interrupted command, and the LSTM identity
``c_t = f_t c_{t-1} + i_t g_t`` for the gates the report draws.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lstmkit.apps.translate_synthetic import synthetic_pairs
from lstmkit.cli import main
from shared_data import SHARED, require

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = ["--embed-dim", "32", "--units", "32", "--decoder-units", "64", "--dropout", "0"]
TINY += ["--lr", "0.005", "--batch-size", "32"]


def _write_pairs(path, sources, targets, header=("source", "target")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(zip(sources, targets))
    return path


def _read_pairs(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return [r[0] for r in rows[1:]], [r[1] for r in rows[1:]]


def _refs_by_source(sources, targets):
    refs = {}
    for s, t in zip(sources, targets):
        refs.setdefault(s, []).append(t)
    return list(refs), list(refs.values())


@pytest.fixture(scope="module")
def dates(tmp_path_factory):
    """A date normaliser trained through the CLI (about 10 s): ``(dir, model, stdout)``."""
    d = tmp_path_factory.mktemp("dates")
    data = _write_pairs(d / "dates.csv", *synthetic_pairs("dates", 2500, seed=0))
    model = d / "dates.lstmkit"
    argv = ["translate", "train", str(data), "--out", str(model), *TINY, "--epochs", "3"]
    argv += ["--source-level", "char", "--target-level", "char"]
    out = _run_main(argv)
    return d, model, out


def _run_main(argv, status=0):
    import contextlib
    import io

    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        try:
            got = main(argv)
        except SystemExit as e:  # argparse refuses a bad command line this way
            got = e.code
    assert got == status, (got, err.getvalue(), buf.getvalue())
    return buf.getvalue() if status == 0 else err.getvalue()


def test_train_prints_progress_and_writes_the_model_and_its_validation_pairs(dates):
    d, model, out = dates
    assert re.search(r"epoch 1: loss [\d.]+, val_loss [\d.]+, val_bleu [\d.]+", out), out
    assert "target tokens/s" in out and "greedy, on all of" in out
    assert model.is_file() and Path(f"{model}.valid.csv").is_file()
    src, _tgt = _read_pairs(f"{model}.valid.csv")
    train_src, _ = _read_pairs(d / "dates.csv")
    assert len(src) == 250  # a tenth of the pairs
    # no validation source is a training source: the split holds out whole groups
    counts = {s: train_src.count(s) for s in set(src)}
    assert all(counts[s] == src.count(s) for s in counts)


def test_run_translates_dates_and_evaluate_agrees_with_sacrebleu(dates, tmp_path):
    import sacrebleu

    _d, model, _ = dates
    src, tgt = _read_pairs(f"{model}.valid.csv")
    sources, refs = _refs_by_source(src, tgt)
    inp = tmp_path / "in.txt"
    inp.write_text("".join(f"{s}\n" for s in sources), encoding="utf-8")
    hyp_path = tmp_path / "hyp.txt"
    _run_main(["translate", "run", str(model), "--input", str(inp), "--out", str(hyp_path)])
    hyps = hyp_path.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(hyps) == len(sources)
    exact = np.mean([h in r for h, r in zip(hyps, refs)])
    assert exact >= 0.8, exact  # the known answer: the ISO date
    out = _run_main(["translate", "evaluate", str(model), f"{model}.valid.csv"])
    m = re.search(r"BLEU ([\d.]+), chrF ([\d.]+), exact match ([\d.]+)", out)
    width = max(map(len, refs))
    streams = [[r[j] if j < len(r) else None for r in refs] for j in range(width)]
    bleu = sacrebleu.corpus_bleu(hyps, streams, tokenize="zh").score
    chrf = sacrebleu.corpus_chrf(hyps, streams).score
    assert float(m.group(1)) == pytest.approx(bleu, abs=0.006), out
    assert float(m.group(2)) == pytest.approx(chrf, abs=0.006), out
    assert float(m.group(3)) == pytest.approx(exact, abs=1e-4), out
    assert "copy baseline: BLEU" in out and "-> " in out


def test_unknown_characters_and_empty_lines(dates, tmp_path):
    _, model, _ = dates
    inp = tmp_path / "in.txt"
    inp.write_text("3 May 2001\n\n   \n日本語 Ω ✓\nMarch 9, 1999\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    _run_main(["translate", "run", str(model), "--input", str(inp), "--out", str(out)])
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 6
    assert lines[1] == "" and lines[2] == ""
    printed = _run_main(["translate", "run", str(model), "--text", "日本語 Ω", "--beam", "3"])
    assert printed.count("\n") == 1


def test_outputs_never_replace_inputs(dates, tmp_path):
    d, model, _ = dates
    inp = tmp_path / "in.txt"
    inp.write_text("3 May 2001\n", encoding="utf-8")
    before = inp.read_bytes(), model.read_bytes()
    err = _run_main(["translate", "run", str(model), "--input", str(inp), "--out", str(inp)], 2)
    assert "--out" in err and "input" in err and err.count("\n") == 1
    err = _run_main(["translate", "run", str(model), "--input", str(inp), "--out", str(model)], 2)
    assert "--out" in err
    assert (inp.read_bytes(), model.read_bytes()) == before
    data = d / "dates.csv"
    err = _run_main(["translate", "train", str(data), "--out", str(data)], 2)
    assert "--out" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--source-column", "en"], ["source_column", "'en'"]),
        (["--beam", "0"], ["--beam", "0"]),
        (["--source-level", "byte"], ["--source-level", "byte"]),
        (["--max-minutes", "-1"], ["--max-minutes", "-1"]),
    ],
)
def test_bad_train_arguments_are_one_line_and_leave_no_model(tmp_path, argv, words):
    data = _write_pairs(tmp_path / "p.csv", *synthetic_pairs("reverse", 50))
    out = tmp_path / "m.lstmkit"
    if argv[0] == "--beam":  # a decoding argument: refused by run
        cmd = ["translate", "run", str(out), "--text", "x", *argv]
    else:
        cmd = ["translate", "train", str(data), "--out", str(out), *argv]
    err = _run_main(cmd, 2)
    assert err.count("\n") == 1 and all(w in err for w in words), err
    assert sorted(os.listdir(tmp_path)) == ["p.csv"]


def test_bad_files_are_refused_and_leave_no_model(tmp_path):
    out = tmp_path / "m.lstmkit"
    one = _write_pairs(tmp_path / "one.csv", ["a"], ["b"])
    err = _run_main(["translate", "train", str(one), "--out", str(out)], 2)
    assert "too few sentence pairs" in err and "got 1" in err
    empty = tmp_path / "empty.csv"
    empty.write_text("source,target\n,\n ,x\n", encoding="utf-8")
    err = _run_main(["translate", "train", str(empty), "--out", str(out)], 2)
    assert "got 0" in err, err
    assert not out.exists() and not Path(f"{out}.valid.csv").exists()


def test_run_refuses_a_model_of_another_kind(tmp_path):
    from lstmkit.layers import LSTM, Dense
    from lstmkit.models import Sequential

    other = tmp_path / "f.lstmkit"
    Sequential([LSTM(4, input_shape=(5, 1)), Dense(1)]).save(other)
    err = _run_main(["translate", "run", str(other), "--text", "hello"], 2)
    assert "not a translation model" in err and str(other) in err and err.count("\n") == 1


def test_max_minutes_stops_and_keeps_the_best_checkpoint(tmp_path):
    data = _write_pairs(tmp_path / "d.csv", *synthetic_pairs("dates", 1500, seed=1))
    model = tmp_path / "m.lstmkit"
    argv = ["translate", "train", str(data), "--out", str(model), *TINY, "--epochs", "1000"]
    argv += ["--patience", "1000", "--max-minutes", "0.1", "--source-level", "char"]
    t0 = time.monotonic()
    out = _run_main(argv)
    assert time.monotonic() - t0 < 60
    assert "stopped: time" in out, out
    best = re.search(r"best epoch (\d+): validation BLEU ([\d.]+)", out)
    # the file holds the best epoch: its greedy BLEU on the validation pairs is the one printed
    ev = _run_main(["translate", "evaluate", str(model), f"{model}.valid.csv", "--beam", "1"])
    got = float(re.search(r"BLEU ([\d.]+)", ev).group(1))
    assert got == pytest.approx(float(best.group(2)), abs=0.006), (out, ev)


RUN = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from lstmkit.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_ctrl_c_while_training_keeps_the_previous_model(dates, tmp_path):
    _d, model, _ = dates
    out = tmp_path / "m.lstmkit"
    out.write_bytes(model.read_bytes())
    before, listing = out.read_bytes(), sorted(os.listdir(tmp_path))
    data = _write_pairs(tmp_path / "big.csv", *synthetic_pairs("dates", 4000, seed=2))
    listing.append("big.csv")
    argv = ["translate", "train", str(data), "--out", str(out), *TINY, "--batch-size", "4"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        line = ""
        while "batch 50/" not in line:  # training has started (900 batches an epoch)
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert stderr.splitlines() == ["lstmkit translate: interrupted; nothing written"], stderr
    assert out.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == sorted(listing)


def test_inspect_writes_the_attention_heatmap_and_the_decoder_gates(dates, tmp_path):
    from lstmkit.apps.translate import align, load, translate

    _, model, _ = dates
    text = "March 3, 2020"
    out = _run_main(["inspect", str(model), "--text", text, "--out", str(tmp_path / "r")])
    r = tmp_path / "r"
    assert (r / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (r / "decoder_gates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (r / "report.html").read_text(encoding="utf-8")
    assert "attention.png" in page and "decoder_gates.png" in page and "saturation of f" in page
    m = load(model)
    a = align(m, text)
    assert a.translation == translate(m, [text], beam=1)[0] and a.translation in out
    assert a.attention.shape == (len(a.target_tokens), len(a.source_tokens))
    np.testing.assert_allclose(a.attention.sum(1), 1, rtol=1e-5)
    g, c = a.decoder, a.decoder["c"]
    c_prev = np.concatenate([g.initial["c"][:, None], c[:, :-1]], axis=1)
    # the gates are labelled as the LSTM used them: c_t = f c_{t-1} + i g
    np.testing.assert_allclose(c, g["f"] * c_prev + g["i"] * g["g"], rtol=1e-4, atol=1e-5)
    assert g["i"].shape == (1, len(a.target_tokens), 64)


def test_inspect_text_on_another_model_is_refused(tmp_path):
    from lstmkit.layers import LSTM, Dense
    from lstmkit.models import Sequential

    other = tmp_path / "f.lstmkit"
    Sequential([LSTM(4, input_shape=(5, 1)), Dense(1)]).save(other)
    err = _run_main(["inspect", str(other), "--text", "hi", "--out", str(tmp_path / "r")], 2)
    assert "--text" in err and "not" in err


@pytest.mark.slow
def test_end_to_end_on_a_slice_of_tatoeba_beats_the_copy_baseline(tmp_path):
    """The real data, word -> char detected, a small model for a fixed number of epochs (so the
    result does not depend on the machine's load): greedy chrF well above the copy baseline."""
    path = SHARED / "translation" / "tatoeba_en_zh" / "train.csv"
    require(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[:6001]
    data = _write_pairs(tmp_path / "slice.csv", [r[0] for r in rows[1:]], [r[1] for r in rows[1:]])
    model = tmp_path / "m.lstmkit"
    argv = ["translate", "train", str(data), "--out", str(model), "--epochs", "6", "--lr", "0.003"]
    argv += ["--embed-dim", "64", "--units", "64", "--decoder-units", "128", "--valid", "300"]
    out = _run_main(argv)
    assert "levels word -> char" in out, out
    ev = _run_main(["translate", "evaluate", str(model), f"{model}.valid.csv", "--beam", "1"])
    m = re.search(r"greedy: BLEU ([\d.]+), chrF ([\d.]+)", ev)
    copy = re.search(r"copy baseline: BLEU ([\d.]+), chrF ([\d.]+)", ev)
    assert float(m.group(2)) > float(copy.group(2)) + 3, ev
    assert float(m.group(1)) > float(copy.group(1)), ev
