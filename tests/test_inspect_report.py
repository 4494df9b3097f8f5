"""The report and ``lstmkit inspect``: inputs, vocabularies, a self-contained HTML page, the CLI,
and the adding-problem comparison of a plain RNN, a GRU and LSTMs (the figure in docs/inspect.md).
"""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest

import lstmkit
from lstmkit import LSTM, Bidirectional, Dense, Embedding, SimpleRNN
from lstmkit.cli import inspect as cli_inspect
from lstmkit.data.text import UNK_ID, Vocabulary
from lstmkit.inspect.compare import compare_cells
from lstmkit.inspect.inputs import encode_text, load_input, text_codec
from lstmkit.inspect.report import write_cell_comparison, write_report
from lstmkit.models import Sequential


def _cli(argv):
    parser = argparse.ArgumentParser(prog="lstmkit inspect")
    cli_inspect.register(parser)
    args = parser.parse_args(argv)
    return args.func(args)


def _numeric_model():
    lstmkit.set_random_seed(11)
    model = Sequential(
        [
            Bidirectional(LSTM(4, return_sequences=True), input_shape=(9, 3), name="bi"),
            SimpleRNN(3, go_backwards=True, name="rnn"),
            Dense(1, name="out"),
        ]
    )
    model.compile(loss="mse")
    return model


def _assert_self_contained(page):
    # every image is inline; nothing is fetched (links to the PNG files are plain anchors)
    srcs = re.findall(r'<img src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "<script src" not in page


def test_numeric_report_from_npy_and_csv(tmp_path, capsys):
    model = _numeric_model()
    path = tmp_path / "m.lstmkit"
    model.save(path)
    x = np.random.default_rng(0).normal(size=(2, 9, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.array([[0.5], [-0.5]]))
    assert (
        _cli(
            [
                str(path),
                "--input",
                str(tmp_path / "x.npy"),
                "--target",
                str(tmp_path / "y.npy"),
                "--out",
                str(tmp_path / "a"),
                "--units",
                "1",
                "2",
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(
        ["report.html", "gradient_flow.png"]
        + [
            f"{n}_{k}.png"
            for n in ("bi-forward", "bi-backward", "rnn")
            for k in ("gates", "states")
        ]
    )
    page = (tmp_path / "a" / "report.html").read_text(encoding="utf-8")
    _assert_self_contained(page)
    for text in (
        "bi/forward (LSTM, 4 units)",
        "rnn (SimpleRNN, 3 units)",
        "saturation of f",
        "time-scale -1/ln f",
        "Most active units",
        "the loss on the given targets",
    ):
        assert text in page

    # a CSV is one sequence: rows are steps, a header row is skipped
    rows = "a,b,c\n" + "\n".join(",".join(f"{v:.6f}" for v in r) for r in x[0])
    (tmp_path / "x.csv").write_text(rows + "\n", encoding="utf-8")
    x_csv, tokens = load_input(model, tmp_path / "x.csv")
    assert tokens is None and x_csv.shape == (1, 9, 3)
    np.testing.assert_allclose(x_csv[0], x[0], atol=1e-6)
    assert _cli([str(path), "--input", str(tmp_path / "x.csv"), "--out", str(tmp_path / "b")]) == 0
    assert "largest output" in (tmp_path / "b" / "report.html").read_text(encoding="utf-8")


def test_input_errors_name_the_problem(tmp_path):
    model = _numeric_model()
    (tmp_path / "t.txt").write_text("abc", encoding="utf-8")
    with pytest.raises(ValueError, match="'--input' must be a .npy or .csv"):
        load_input(model, tmp_path / "t.txt")
    np.save(tmp_path / "bad.npy", np.zeros((2, 9)))
    with pytest.raises(ValueError, match=r"shape \(batch, 9, 3\)"):
        load_input(model, tmp_path / "bad.npy")
    with pytest.raises(FileNotFoundError):
        load_input(model, tmp_path / "missing.csv")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):  # no pickles
        load_input(model, tmp_path / "obj.npy")
    with pytest.raises(ValueError, match="MODEL and --input"):
        _cli(["--out", str(tmp_path)])
    x = np.zeros((1, 9, 3), "float32")
    with pytest.raises(ValueError, match="'units'"):
        write_report(model, x, tmp_path / "r", units=[4])


def test_vocabulary_formats():
    assert text_codec({}) is None
    assert text_codec({"app": "forecast", "lookback": 3}) is None
    codec = text_codec({"app": "text", "vocab": "ab"})
    assert codec.level == "char" and codec.tokenize("ba") == ["b", "a"]
    assert codec.ids(["b", "a"]).tolist() == [1, 0]
    assert text_codec({"vocab": {"a": 3, "<unk>": 4}}).ids(["a", "z"]).tolist() == [3, 4]
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        text_codec({"vocab": ["x"]}).ids(["y"])
    with pytest.raises(ValueError, match="no 'vocabulary'"):
        text_codec({"app": "text"})


def test_text_inputs_ids_and_one_hot(tmp_path):
    lstmkit.set_random_seed(12)
    onehot = Sequential([LSTM(2, input_shape=(4, 3))])
    onehot.metadata = {"app": "text", "vocab": "abc"}
    x, tokens = encode_text(onehot, "cabbage")  # fixed length 4: the first 4 characters
    assert tokens == list("cabb") and x.shape == (1, 4, 3)
    assert x[0].argmax(-1).tolist() == [2, 0, 1, 1]
    with pytest.raises(ValueError, match="exactly 4 char tokens"):
        encode_text(onehot, "ab")
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        encode_text(onehot, "abcd")
    onehot.save(tmp_path / "t.lstmkit")
    (tmp_path / "in.txt").write_text("abca", encoding="utf-8")
    argv = [str(tmp_path / "t.lstmkit"), "--input", str(tmp_path / "in.txt")]
    assert _cli([*argv, "--out", str(tmp_path / "o")]) == 0
    page = (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    _assert_self_contained(page)
    assert 'id="text-view"' in page and page.count('class="ch"') == 4
    assert (tmp_path / "o" / "text.png").exists()


def test_word_models_of_the_text_app(tmp_path):
    """``lstmkit text`` models keep a :class:`Vocabulary` under metadata["vocabulary"]; a word
    model's report shows words, separated by spaces, unknown words read as <unk>."""
    corpus = "the cat sat on the mat .\nthe dog sat ."
    vocab = Vocabulary.build(corpus, level="word")
    lstmkit.set_random_seed(14)
    model = Sequential(
        [
            Embedding(len(vocab), 3, mask_zero=True, input_shape=(None,)),
            LSTM(3, return_sequences=True, stateful=True, name="lm"),
        ]
    )
    model.metadata = {"app": "text", "vocabulary": vocab.to_dict(), "settings": {}}
    x, tokens = encode_text(model, "the bird sat .\nthe cat")
    assert tokens == ["the", "bird", "sat", ".", "\n", "the", "cat"]
    assert x[0].tolist() == vocab.encode("the bird sat .\nthe cat").tolist()
    assert x[0, 1] == UNK_ID
    page = write_report(model, x, tmp_path, text=tokens).read_text(encoding="utf-8")
    assert '<span class="ch" data-t="0">the</span> <span class="ch" data-t="1">bird</span>' in page
    assert model.layers[1].states is None  # the stateful LSTM was not advanced
    with pytest.raises(ValueError, match="one token per step"):
        write_report(model, x, tmp_path, text=tokens[:-1])


def test_html_escapes_text_and_data(tmp_path):
    lstmkit.set_random_seed(13)
    chars = sorted(set('</script>&"'))
    model = Sequential(
        [Embedding(len(chars), 2, input_shape=(None,)), LSTM(2, return_sequences=True)]
    )
    model.metadata = {"app": "text", "vocab": chars}
    x, text = encode_text(model, '</script>&"')
    page = write_report(model, x, tmp_path, text=text).read_text(encoding="utf-8")
    assert "</script>&" not in page.split("<script")[0]  # escaped in the character spans
    assert page.count("</script>") == 2  # the data block and the code, nothing injected


def test_adding_problem_lstm_hears_lag_100_orders_of_magnitude_above_rnn(tmp_path):
    """The docs/inspect.md figure, small: at initialisation on the adding problem, an LSTM with
    its forget gate starting near 1 passes gradient to lag 100 orders of magnitude above a
    SimpleRNN; Keras' forget bias 1 does not (f ≈ 0.73 forgets within a few dozen steps)."""
    report, cmp, rows = write_cell_comparison(tmp_path, T=100, units=16, batch=8, seeds=(0, 1))
    by = {r["cell"]: r for r in rows}
    assert by["LSTM (forget bias 5)"]["ratio_min"] > 1e3
    assert by["LSTM (forget bias 1)"]["ratio_max"] < 1.0
    assert by["GRU"]["ratio_max"] < 1e-6
    page = report.read_text(encoding="utf-8")
    _assert_self_contained(page)
    assert "ratio to SimpleRNN (median)" in page and (tmp_path / "gradient_flow_cells.png").exists()
    # every curve starts where the loss is: lag 0 norms are of order one
    for label in cmp.curves:
        assert 0.05 < cmp.median(label)[0] < 20
    with pytest.raises(ValueError, match="'seeds'"):
        compare_cells(seeds=())


def test_lstmkit_main_runs_the_inspect_group(tmp_path, monkeypatch, capsys):
    """Through ``lstmkit.cli.main`` (the group is registered in ``cli.GROUPS``): errors come back
    as exit code 2 with the message, not a traceback."""
    from lstmkit import cli

    monkeypatch.setitem(cli.GROUPS, "inspect", "Look inside a model: gates, states, gradients.")
    model = _numeric_model()
    model.save(tmp_path / "m.lstmkit")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    argv = ["inspect", str(tmp_path / "m.lstmkit"), "--input", str(tmp_path / "notes.txt")]
    assert cli.main(argv) == 2
    assert "must be a .npy or .csv" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "inspect",
                "--compare-cells",
                "--length",
                "12",
                "--seeds",
                "1",
                "--hidden",
                "4",
                "--lag",
                "10",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    assert "ratio to SimpleRNN" in capsys.readouterr().out
    assert (tmp_path / "c" / "cells.html").exists()
