"""Classifiers on texts and numeric sequences, and the bag-of-words baseline.

Witnesses:

- the regression objective's gradient against central finite differences (binary and softmax);
  at the optimum the gradient vanishes (first-order optimality of a convex problem), and L-BFGS
  and the NumPy-only Nesterov fallback reach the same objective value;
- bag-of-words features counted by hand;
- learning: keyword sentiment and Japanese Vowels end far above the majority class;
- CSV readers: orders, errors named by line and column.

Slow (``make slow``): the full Rotten Tomatoes and Japanese Vowels runs of docs/text.md.
"""

from __future__ import annotations

import numpy as np
import pytest

import lstmkit
from lstmkit.apps.bow import LogisticRegression, bow_features
from lstmkit.apps.classify import (
    encode_texts,
    evaluate_file,
    predict_sequences,
    predict_texts,
    stratified_split,
    train_sequence_classifier,
    train_text_classifier,
)
from lstmkit.data.sequences import LabelEncoder, SequenceScaler, read_sequence_csv
from lstmkit.data.text import Vocabulary, read_labelled_texts
from shared_data import SHARED, require

VOWELS = SHARED / "japanese_vowels"
RT = SHARED / "sentiment" / "rt_snippets.csv"


def needs_vowels():
    require(VOWELS / "train.csv", VOWELS / "test.csv")  # a failure, not a skip, when missing


POS = ["great", "wonderful", "moving", "superb", "funny"]
NEG = ["dull", "awful", "boring", "clumsy", "tedious"]
FILL = ("the a film movie story plot acting cast was is and but very quite rather its").split()  # noqa: SIM905


def keyword_data(n=400, seed=0):
    """Sentences of filler words with one sentiment word somewhere; the label is its polarity."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        words = list(rng.choice(FILL, size=rng.integers(3, 12)))
        pos = rng.random() < 0.5
        words.insert(rng.integers(0, len(words) + 1), str(rng.choice(POS if pos else NEG)))
        texts.append(" ".join(words))
        labels.append("pos" if pos else "neg")
    return texts, labels


# -- bag-of-words baseline ----------------------------------------------------------------------
def test_bow_features_binary_and_counts():
    v = Vocabulary.build(["a b b c", "c d"], "word")  # ids: b=2 c=3 a=4 d=5 -> columns 0..3
    X = bow_features(v, ["b b a z", "d"], "binary")
    dense = np.zeros(X.shape)
    np.add.at(dense, (X.rows, X.cols), X.vals)
    np.testing.assert_array_equal(dense, [[1, 0, 1, 0], [0, 0, 0, 1]])  # z is unknown: no column
    X = bow_features(v, ["b b a z", "d"], "tf")
    dense[:] = 0
    np.add.at(dense, (X.rows, X.cols), X.vals)
    np.testing.assert_array_equal(dense, [[2, 0, 1, 0], [0, 0, 0, 1]])


@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_objective_gradient_matches_finite_differences(n_classes):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(list("abcdefg"), size=5)) for _ in range(30)]
    X = bow_features(Vocabulary.build(texts, "word"), texts, "tf")
    y = rng.integers(0, n_classes, size=30)
    m = LogisticRegression(n_classes, l2=0.7)
    theta = rng.standard_normal(X.shape[1] * m.K + m.K) * 0.3
    _, g = m.objective(theta, X, y)
    eps = 1e-6
    num = np.array([
        (m.objective(theta + eps * e, X, y)[0] - m.objective(theta - eps * e, X, y)[0]) / (2 * eps)
        for e in np.eye(len(theta))
    ])  # fmt: skip
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-7)


def test_logistic_fit_reaches_the_optimum_with_and_without_scipy():
    texts, labels = keyword_data(200)
    y = LabelEncoder.fit(labels).encode(labels)
    X = bow_features(Vocabulary.build(texts, "word"), texts)
    lbfgs = LogisticRegression(2, l2=1.0, tol=1e-8).fit(X, y)
    theta = np.concatenate([lbfgs.W.ravel(), lbfgs.b])
    J, g = lbfgs.objective(theta, X, y)
    assert lbfgs.optimizer == "lbfgs" and np.abs(g).max() < 1e-4  # dJ = 0 at the optimum
    fallback = LogisticRegression(2, l2=1.0, tol=1e-8)
    theta_n = fallback._nesterov(np.zeros_like(theta), X, y)
    assert fallback.objective(theta_n, X, y)[0] == pytest.approx(J, rel=1e-6)
    assert np.mean(lbfgs.predict(X) == y) == 1.0


# -- text classifier ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyword_report():
    texts, labels = keyword_data()
    return train_text_classifier(texts, labels, epochs=8, units=16, embed_dim=16, dropout=0.2,
                                 learning_rate=1e-2, min_freq=1, patience=8)  # fmt: skip


def test_text_classifier_learns_keywords_far_above_majority(keyword_report):
    t = keyword_report.table
    assert t["bilstm"]["accuracy"] >= 0.95, keyword_report.format_table()
    assert t["majority class"]["accuracy"] < 0.6
    assert t["bow_logreg (binary)"]["accuracy"] >= 0.95
    assert keyword_report.classes == ["neg", "pos"]
    s = keyword_report.sizes
    assert s["test"] == 80 and s["train"] + s["val"] == 320


def test_predict_and_evaluate_a_saved_text_classifier(keyword_report, tmp_path):
    path = tmp_path / "clf.lstmkit"
    keyword_report.model.save(path)
    model = lstmkit.load_model(path)
    preds = predict_texts(model, ["the film was superb", "a tedious and dull plot"])
    assert [p[0] for p in preds] == ["pos", "neg"] and all(0.5 < p[1] <= 1 for p in preds)
    texts, labels = keyword_data(60, seed=5)
    csv = tmp_path / "more.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in zip(texts, labels)))
    r = evaluate_file(model, csv)
    assert r["n"] == 60 and r["accuracy"] >= 0.9


def test_padding_does_not_change_a_prediction(keyword_report):
    model = keyword_report.model
    vocab = Vocabulary.from_dict(model.metadata["vocabulary"])
    text = "the plot was awful"
    short = model.predict(encode_texts(vocab, [text], 4))
    long = model.predict(encode_texts(vocab, [text], model.metadata["maxlen"]))
    np.testing.assert_allclose(short, long, rtol=1e-5)


def test_cli_classify_texts(tmp_path, capsys):
    from lstmkit.cli import classify as cli

    texts, labels = keyword_data(200, seed=1)
    csv = tmp_path / "kw.csv"
    csv.write_text("review,stars\n" + "".join(f'"{t}",{lab}\n' for t, lab in zip(texts, labels)))
    out = tmp_path / "kw.lstmkit"
    assert cli.main([
        "train", str(csv), "--text-column", "review", "--label-column", "stars", "--out", str(out),
        "--epochs", "2", "--units", "8", "--embed-dim", "8", "--min-freq", "1",
    ]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "bow_logreg" in text and "majority class" in text and out.exists()
    assert cli.main(["predict", str(out), "superb film", "dull film"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[2] == "superb film"
    assert cli.main(["evaluate", str(out), str(csv), "--text-column", "review",
                     "--label-column", "stars"]) == 0  # fmt: skip
    assert "accuracy" in capsys.readouterr().out
    assert cli.main(["train", str(csv), "--text-column", "nope"]) == 2
    assert "'text_column' must name a column" in capsys.readouterr().err


# -- numeric sequences --------------------------------------------------------------------------
def test_read_sequence_csv_orders_frames_and_names_errors(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("id,frame,label,a,b\n7,1,x,3,4\n7,0,x,1,2\n2,0,y,5,6\n")
    seqs, labels, feats = read_sequence_csv(p, "id", "label", "frame")
    assert feats == ["a", "b"] and labels == ["x", "y"]
    np.testing.assert_array_equal(seqs[0], [[1, 2], [3, 4]])  # sorted by frame
    p.write_text("id,frame,label,a\n7,0,x,1\n2,0,y,5\n7,1,x,3\n")
    with pytest.raises(ValueError, match="not consecutive"):
        read_sequence_csv(p, "id", "label", "frame")
    p.write_text("id,frame,label,a\n7,0,x,1\n7,1,y,3\n")
    with pytest.raises(ValueError, match="several labels"):
        read_sequence_csv(p, "id", "label", "frame")
    with pytest.raises(ValueError, match="'label_column' must name a column"):
        read_sequence_csv(p, "id", "speaker", "frame")
    with pytest.raises(FileNotFoundError):
        read_sequence_csv(tmp_path / "none.csv")


def test_read_labelled_texts_reports_bad_lines(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('text,label\n"good, really",1\n,0\nbad,\n')
    with pytest.raises(ValueError, match=r"lines \[3, 4\]"):
        read_labelled_texts(p)
    p.write_text('text,label\n"good, really",1\n')
    assert read_labelled_texts(p) == (["good, really"], ["1"])


def test_label_encoder_sorts_numbers_numerically_and_split_is_stratified():
    enc = LabelEncoder.fit(["10", "9", "2", "9"])
    assert enc.classes == ["2", "9", "10"]
    with pytest.raises(ValueError, match="not seen in training"):
        enc.encode(["3"])
    y = np.array([0] * 80 + [1] * 20)
    rest, held = stratified_split(y, 0.25, seed=0)
    assert np.bincount(y[held]).tolist() == [20, 5] and len(np.intersect1d(rest, held)) == 0


def test_scaler_standardises_training_frames():
    seqs = [np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([[5.0, 5.0]])]
    sc = SequenceScaler.fit(seqs)
    z = np.concatenate(sc.transform(seqs))
    np.testing.assert_allclose(z[:, 0].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(z[:, 0].std(), 1)
    np.testing.assert_array_equal(z[:, 1], 0)  # a constant feature keeps scale 1


def synthetic_sequences(n=120, seed=0):
    """Class k: a noisy sine of frequency k + 1 on 3 channels, lengths 5-15."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        k = i % 3
        t = np.arange(rng.integers(5, 16))[:, None]
        seqs.append(
            np.sin((k + 1) * 0.6 * t + rng.random(3)) + 0.1 * rng.standard_normal((len(t), 3))
        )
        labels.append(str(k))
    return seqs, labels


def test_sequence_classifier_learns_and_predicts():
    seqs, labels = synthetic_sequences()
    r = train_sequence_classifier(seqs, labels, epochs=15, units=8, learning_rate=1e-2, patience=15)
    assert r.table["bilstm"]["accuracy"] >= 0.9
    assert r.table["majority class"]["accuracy"] < 0.5
    preds = predict_sequences(r.model, seqs[:6])
    assert [p[0] for p in preds] == labels[:6]


def test_japanese_vowels_short_run_beats_majority_class_by_far():
    needs_vowels()
    train = read_sequence_csv(VOWELS / "train.csv")[:2]
    test = read_sequence_csv(VOWELS / "test.csv")[:2]
    r = train_sequence_classifier(*train, test=test, units=16, epochs=6, batch_size=16,
                                  learning_rate=5e-3, val_fraction=0.15)  # fmt: skip
    assert r.sizes == {"train": 234, "val": 36, "test": 370}  # 4 of each speaker's 30
    assert r.table["bilstm"]["accuracy"] > 0.7  # majority class: 0.08
    assert r.table["majority class"]["accuracy"] < 0.1


def test_cli_classify_japanese_vowels(tmp_path, capsys):
    needs_vowels()
    from lstmkit.cli import classify as cli

    out = tmp_path / "jv.lstmkit"
    assert cli.main([
        "train", str(VOWELS / "train.csv"), "--sequence-column", "utterance", "--time-column",
        "frame", "--label-column", "label", "--test", str(VOWELS / "test.csv"), "--out", str(out),
        "--epochs", "2", "--units", "8",
    ]) == 0  # fmt: skip
    assert "test 370 (test file)" in capsys.readouterr().out
    assert cli.main(["evaluate", str(out), str(VOWELS / "test.csv")]) == 0
    assert "370 examples" in capsys.readouterr().out
    assert cli.main(["predict", str(out), str(VOWELS / "test.csv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 370 and lines[0].split("\t")[1] in {str(k) for k in range(1, 10)}


# -- the full experiments of docs/text.md -------------------------------------------------------
@pytest.mark.slow
def test_japanese_vowels_full_run_reaches_95_percent():
    needs_vowels()
    train = read_sequence_csv(VOWELS / "train.csv")[:2]
    test = read_sequence_csv(VOWELS / "test.csv")[:2]
    r = train_sequence_classifier(*train, test=test, units=32, dropout=0.0, epochs=30,
                                  batch_size=16, patience=5, val_fraction=0.15)  # fmt: skip
    assert r.table["bilstm"]["accuracy"] >= 0.95, r.format_table()


@pytest.mark.slow
def test_rotten_tomatoes_bilstm_reaches_75_percent_and_the_bow_baseline():
    require(RT)
    texts, labels = read_labelled_texts(RT)
    r = train_text_classifier(texts, labels)
    acc = r.table["bilstm"]["accuracy"]
    assert acc >= 0.75 and acc >= r.table["bow_logreg (binary)"]["accuracy"], r.format_table()
