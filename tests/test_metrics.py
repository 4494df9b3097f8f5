"""lstmkit.metrics against scikit-learn and closed forms, and ``compile(metrics=[...])`` end to end.

Witnesses:

- scikit-learn: ``mean_absolute_error``, ``mean_squared_error``, ``accuracy_score``,
  ``f1_score`` (binary, and ``average="macro"``), ``log_loss``;
- closed forms written here with plain Python loops: MASE's denominator (Hyndman & Koehler 2006,
  the in-sample MAE of the seasonal naive forecast ``y_t = y_{t-m}``), bits per character as the
  mean of ``-log2 p(true symbol)``, perplexity as the geometric mean of ``1 / p(true symbol)``
  (``scipy.stats.gmean``), the uniform distribution over V symbols (log2 V bits, perplexity V);
- probabilities from logits through ``scipy.special.expit`` (not the metric's own cut);
- end to end: the value ``evaluate`` and ``fit`` report equals scikit-learn's on the model's own
  predictions (``predict``), with the weights the reported value was computed from.
- metric objects: ``result()`` after ``update_state`` on uneven batches equals the scikit-learn
  or closed-form value on the concatenation (with and without ``sample_weight``); Keras 3 (torch
  backend) for the semantics: its metric classes on the same batches, 2-D and 3-D, with weights
  per sample and per step, ties in top-k, zero targets and zero vectors; and its ``compile``'s
  resolution of ``"accuracy"`` from the shapes.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import statistics

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest
from scipy.special import expit, softmax
from scipy.stats import gmean
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_log_error,
    top_k_accuracy_score,
)
from sklearn.metrics.pairwise import cosine_similarity as cosine_similarity_matrix

from lstmkit import metrics
from lstmkit.layers import LSTM, Dense
from lstmkit.losses import SparseCategoricalCrossentropy
from lstmkit.models import Sequential

REL = 1e-12


def _rng(seed=0):
    return np.random.default_rng(seed)


def _flat(a):
    return np.asarray(a, np.float64).reshape(-1)


# -- regression -----------------------------------------------------------------------------------
SHAPES = [(40,), (40, 1), (12, 3), (5, 4, 2)]


@pytest.mark.parametrize("shape", SHAPES)
def test_mae_mse_rmse_equal_scikit_learn(shape):
    rng = _rng(1)
    t, y = rng.normal(size=shape), rng.normal(size=shape) * 2 + 0.3
    mae_ref = mean_absolute_error(_flat(t), _flat(y))
    mse_ref = mean_squared_error(_flat(t), _flat(y))
    assert metrics.mae(t, y) == pytest.approx(mae_ref, rel=REL)
    assert metrics.mse(t, y) == pytest.approx(mse_ref, rel=REL)
    # the root of the mean over every element (Keras' RootMeanSquaredError), not a mean of
    # per-column roots (scikit-learn's multi-output default)
    assert metrics.rmse(t, y) == pytest.approx(math.sqrt(mse_ref), rel=REL)


def test_a_missing_trailing_axis_of_one_is_accepted_either_way():
    rng = _rng(2)
    t, y = rng.normal(size=30), rng.normal(size=(30, 1))
    ref = mean_absolute_error(t, y[:, 0])
    assert metrics.mae(t, y) == pytest.approx(ref, rel=REL)
    assert metrics.mae(t[:, None], y[:, 0]) == pytest.approx(ref, rel=REL)
    with pytest.raises(ValueError, match="mae: argument 'y_true' must have the shape"):
        metrics.mae(np.zeros(3), np.zeros(4))


def _naive_scale_by_hand(series, m):
    """Hyndman & Koehler: (1 / (n - m)) * sum_{t=m}^{n-1} |y_t - y_{t-m}| (over every column)."""
    rows = [list(np.atleast_1d(r)) for r in np.asarray(series, np.float64)]
    diffs = [abs(a - b) for t in range(m, len(rows)) for a, b in zip(rows[t], rows[t - m])]
    return statistics.fmean(diffs)


@pytest.mark.parametrize("m", [1, 4, 12])
@pytest.mark.parametrize("columns", [None, 3])
def test_naive_scale_and_mase_equal_the_closed_form(m, columns):
    rng = _rng(3 + m)
    shape = (60,) if columns is None else (60, columns)
    t = np.arange(60).reshape(-1, *([1] if columns else [])) % 12 + rng.normal(size=shape)
    scale = metrics.naive_scale(t, m)
    assert scale == pytest.approx(_naive_scale_by_hand(t, m), rel=REL)
    truth, pred = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    errors = [abs(a - b) for a, b in zip(_flat(truth), _flat(pred))]
    assert metrics.mase(truth, pred, scale) == pytest.approx(
        statistics.fmean(errors) / scale, rel=REL
    )
    named = metrics.mase_metric(scale)
    assert named.__name__ == "mase"
    assert named(truth, pred) == pytest.approx(statistics.fmean(errors) / scale, rel=REL)


def test_mase_of_the_seasonal_naive_forecast_in_sample_is_one():
    """The definition's own fixed point: scoring the in-sample seasonal naive forecast by its own
    in-sample MAE gives exactly 1."""
    y = _rng(4).normal(size=50).cumsum()
    m = 7
    assert metrics.mase(y[m:], y[:-m], metrics.naive_scale(y, m)) == pytest.approx(1.0, rel=REL)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.mase(np.ones(3), np.ones(3)), "mase: argument 'scale' is required"),
        (lambda: metrics.mase(np.ones(3), np.ones(3), 0.0), "'scale' must be a positive"),
        (lambda: metrics.mase_metric(-1.0), "'scale' must be a positive"),
        (lambda: metrics.naive_scale(np.ones(5), 0), "'seasonality' must be an int"),
        (lambda: metrics.naive_scale(np.ones(5), 5), "got 5 for len"),
        (lambda: metrics.naive_scale(np.ones(5), 2.0), "got 2.0"),
    ],
)
def test_mase_argument_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- classification -------------------------------------------------------------------------------
def _binary_case(seed, n=200, shape_pred=None):
    rng = _rng(seed)
    t = (rng.random(n) < 0.4).astype(np.float64)
    p = np.clip(0.35 * t + 0.65 * rng.random(n), 0, 1)  # informative but imperfect
    return t, p if shape_pred is None else p.reshape(shape_pred)


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
@pytest.mark.parametrize("column", [False, True], ids=["(n,)", "(n,1)"])
def test_binary_accuracy_and_f1_equal_scikit_learn(threshold, column):
    t, p = _binary_case(5)
    labels = (p > threshold).astype(int)
    y = p[:, None] if column else p
    assert metrics.accuracy(t, y, threshold=threshold) == pytest.approx(
        accuracy_score(t, labels), rel=REL
    )
    assert metrics.f1(t, y, threshold=threshold) == pytest.approx(
        f1_score(t, labels, zero_division=0), rel=REL
    )


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
def test_from_logits_thresholds_the_sigmoid_probability(threshold):
    t, p = _binary_case(6)
    logits = np.log(p + 1e-3) - np.log1p(-p + 1e-3)
    labels = (expit(logits) > threshold).astype(int)
    acc = metrics.accuracy(t, logits[:, None], threshold=threshold, from_logits=True)
    assert acc == pytest.approx(accuracy_score(t, labels), rel=REL)
    f1 = metrics.f1(t, logits[:, None], threshold=threshold, from_logits=True)
    assert f1 == pytest.approx(f1_score(t, labels, zero_division=0), rel=REL)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5])
def test_from_logits_threshold_must_be_a_probability(bad):
    with pytest.raises(ValueError, match=f"accuracy: argument 'threshold' .*got {bad}"):
        metrics.accuracy(np.ones(3), np.ones(3), threshold=bad, from_logits=True)


def test_binary_f1_edge_cases_equal_scikit_learn():
    t = np.array([0, 0, 0, 0.0])
    for p in (np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.9, 0.1, 0.1, 0.1])):
        ref = f1_score(t, (p > 0.5).astype(int), zero_division=0)
        assert metrics.f1(t, p) == ref == 0.0
    perfect = np.array([1, 0, 1, 0.0])
    assert metrics.f1(perfect, perfect * 0.9 + 0.05) == 1.0 == f1_score(perfect, perfect)
    one_tp = np.array([1, 1, 0, 0.0]), np.array([0.9, 0.1, 0.9, 0.1])  # TP=1 FP=1 FN=1
    assert metrics.f1(*one_tp) == pytest.approx(0.5, rel=REL)  # 2*1 / (2*1 + 1 + 1)


def _multiclass_case(seed, shape=(150,), C=4):
    rng = _rng(seed)
    ids = rng.integers(0, C, size=shape)
    logits = rng.normal(size=shape + (C,))
    logits[..., 0] += 0.8  # a favoured class, so that some classes are rarely predicted
    true = np.take_along_axis(logits, ids[..., None], axis=-1)
    np.put_along_axis(logits, ids[..., None], true + 1.2, axis=-1)  # informative, imperfect
    return ids, logits


@pytest.mark.parametrize("shape", [(150,), (10, 7)])
@pytest.mark.parametrize("targets", ["sparse", "sparse_column", "one_hot"])
def test_multiclass_accuracy_and_macro_f1_equal_scikit_learn(shape, targets):
    ids, scores = _multiclass_case(7, shape)
    C = scores.shape[-1]
    t = {"sparse": ids, "sparse_column": ids[..., None], "one_hot": np.eye(C)[ids]}[targets]
    pred = scores.argmax(-1).reshape(-1)
    truth = ids.reshape(-1)
    assert metrics.accuracy(t, scores) == pytest.approx(accuracy_score(truth, pred), rel=REL)
    assert metrics.f1(t, scores) == pytest.approx(
        f1_score(truth, pred, average="macro", zero_division=0), rel=REL
    )


def test_macro_f1_counts_a_class_only_predicted_and_skips_absent_ones():
    truth = np.array([0, 0, 1, 1, 1])
    pred = np.array([0, 2, 1, 1, 0])  # class 2 predicted, never true; class 3 of 4 never seen
    scores = np.eye(4)[pred]
    ref = f1_score(truth, pred, average="macro", zero_division=0)
    assert metrics.f1(truth, scores) == pytest.approx(ref, rel=REL)
    # by hand: class 0 F1 = 2*1/(2+1+1), class 1 = 2*2/(4+0+1), class 2 = 0: mean of three
    assert ref == pytest.approx((0.5 + 0.8 + 0.0) / 3, rel=REL)


def test_classification_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="accuracy: argument 'y_true' must have shape"):
        metrics.accuracy(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="f1: argument 'y_pred' must be a non-empty array"):
        metrics.f1(np.zeros(0), np.zeros(0))


# -- language models ------------------------------------------------------------------------------
def _char_probs(seed, n=300, V=6):
    rng = _rng(seed)
    logits = rng.normal(size=(n, V)) * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ids = np.array([rng.choice(V, p=p) for p in probs])
    return ids, probs


def test_bits_per_char_and_perplexity_from_scikit_learn_log_loss():
    ids, probs = _char_probs(8)
    nats = log_loss(ids, probs, labels=list(range(probs.shape[1])))
    p_true = probs[np.arange(len(ids)), ids]
    bits = statistics.fmean(-math.log2(p) for p in p_true)
    assert metrics.bits_per_char(nats) == pytest.approx(bits, rel=1e-12)
    assert metrics.perplexity(nats) == pytest.approx(gmean(1.0 / p_true), rel=1e-12)
    # the mean cross-entropy the library's own loss returns is what the apps convert
    lib_nats = SparseCategoricalCrossentropy()(ids, probs)
    assert metrics.bits_per_char(lib_nats) == pytest.approx(bits, rel=1e-9)


@pytest.mark.parametrize("V", [2, 27, 65])
def test_uniform_guessing_is_log2_v_bits_and_perplexity_v(V):
    assert metrics.bits_per_char(math.log(V)) == pytest.approx(math.log2(V), rel=1e-15)
    assert metrics.perplexity(math.log(V)) == pytest.approx(V, rel=1e-13)
    assert metrics.bits_per_char(0.0) == 0.0 and metrics.perplexity(0.0) == 1.0


# -- the registry ---------------------------------------------------------------------------------
def _reg_case():
    rng = _rng(9)
    return rng.normal(size=(20, 3)), rng.normal(size=(20, 3))


def _cls_case():
    return _binary_case(10)


def _pos_case():
    rng = _rng(19)
    return rng.uniform(0.5, 3.0, size=(20, 3)), rng.uniform(0.1, 4.0, size=(20, 3))


def _sparse_case():
    return _multiclass_case(20, shape=(40,), C=8)


def _onehot_case():
    ids, scores = _sparse_case()
    return np.eye(scores.shape[-1])[ids], scores


def _log_cosh_closed_form(t, y):
    return statistics.fmean(math.log(math.cosh(b - a)) for a, b in zip(_flat(t), _flat(y)))


def _row_cosines(t, y):
    return np.diag(cosine_similarity_matrix(t, y)).mean()


#: every name ``get`` knows -> (data, scikit-learn or closed-form witness)
WITNESS = {
    "mae": (_reg_case, lambda t, y: mean_absolute_error(_flat(t), _flat(y))),
    "mse": (_reg_case, lambda t, y: mean_squared_error(_flat(t), _flat(y))),
    "rmse": (_reg_case, lambda t, y: math.sqrt(mean_squared_error(_flat(t), _flat(y)))),
    "mape": (_pos_case, lambda t, y: 100 * mean_absolute_percentage_error(_flat(t), _flat(y))),
    "msle": (_pos_case, lambda t, y: mean_squared_log_error(_flat(t), _flat(y))),
    "log_cosh_error": (_reg_case, _log_cosh_closed_form),
    "cosine_similarity": (_reg_case, _row_cosines),
    "accuracy": (_cls_case, lambda t, p: accuracy_score(t, p > 0.5)),
    "binary_accuracy": (_cls_case, lambda t, p: accuracy_score(t, p > 0.5)),
    "sparse_categorical_accuracy": (_sparse_case, lambda t, y: accuracy_score(t, y.argmax(-1))),
    "categorical_accuracy": (
        _onehot_case,
        lambda t, y: accuracy_score(t.argmax(-1), y.argmax(-1)),
    ),
    "sparse_top_k_categorical_accuracy": (
        _sparse_case,
        lambda t, y: top_k_accuracy_score(t, y, k=5, labels=range(y.shape[-1])),
    ),
    "top_k_categorical_accuracy": (
        _onehot_case,
        lambda t, y: top_k_accuracy_score(t.argmax(-1), y, k=5, labels=range(y.shape[-1])),
    ),
    "f1": (_cls_case, lambda t, p: f1_score(t, p > 0.5, zero_division=0)),
}
ALIASES = {
    "mean_absolute_error": "mae",
    "mean_squared_error": "mse",
    "root_mean_squared_error": "rmse",
    "mean_absolute_percentage_error": "mape",
    "mean_squared_logarithmic_error": "msle",
    "logcosh": "log_cosh_error",
    "log_cosh": "log_cosh_error",
    "acc": "accuracy",
    "f1_score": "f1",
}


@pytest.mark.parametrize("name", sorted(metrics.METRICS))
def test_every_registered_name_has_a_witness(name):
    """A name added to ``METRICS`` without a witness here fails this test."""
    if name == "mase":  # needs its scale: compile with metrics.mase_metric(scale)
        with pytest.raises(ValueError, match="mase_metric"):
            metrics.get(name)(np.ones(3), np.ones(3))
        return
    base = ALIASES.get(name, name)
    assert base in WITNESS, f"metrics.METRICS[{name!r}] has no witness in tests/test_metrics.py"
    data, witness = WITNESS[base]
    t, y = data()
    for spelling in (name, name.upper()):
        assert metrics.get(spelling)(t, y) == pytest.approx(witness(t, y), rel=REL)


def test_every_public_function_is_witnessed_here():
    """The functions of lstmkit.metrics, each tested above: a new one must come with its test."""
    public = {
        n
        for n, f in vars(metrics).items()
        if inspect.isfunction(f)
        and f.__module__.startswith(metrics.__name__)  # the package and its modules
        and not n.startswith("_")
    }
    tested = {"mae", "mse", "rmse", "naive_scale", "mase", "mase_metric", "accuracy", "f1"}
    tested |= {"bits_per_char", "perplexity", "get"}
    # registered names witnessed by test_every_registered_name_has_a_witness, the rest below
    tested |= {"mape", "msle", "log_cosh_error", "cosine_similarity", "binary_accuracy"}
    tested |= {"categorical_accuracy", "sparse_categorical_accuracy"}
    tested |= {"top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy"}
    tested |= {"get_metric", "serialize"}
    assert public == tested, f"untested: {sorted(public - tested)}"


def test_get_passes_callables_and_rejects_unknown_names():
    def custom(t, y):
        return 0.0

    assert metrics.get(custom) is custom
    with pytest.raises(ValueError, match="metrics.get: argument 'name' must be one of"):
        metrics.get("r2")


# -- compile(metrics=[...]) end to end -----------------------------------------------------------
def _model(out_units, activation=None, seed=0):
    model = Sequential([LSTM(5, input_shape=(6, 3)), Dense(out_units, activation=activation)])
    model.build()
    rng = _rng(seed)
    model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
    return model


def _x(n=48, seed=11):
    return _rng(seed).normal(size=(n, 6, 3)).astype(np.float32)


def test_regression_metrics_reported_by_evaluate_and_fit_equal_scikit_learn():
    x = _x()
    y = _rng(12).normal(size=(len(x), 2)).astype(np.float32)
    scale = metrics.naive_scale(_rng(13).normal(size=80).cumsum(), 4)
    model = _model(2)
    model.compile(optimizer="adam", loss="mse", metrics=["mae", "rmse", metrics.mase_metric(scale)])
    pred = model.predict(x).astype(np.float64)
    ref = {
        "loss": mean_squared_error(_flat(y), _flat(pred)),
        "mae": mean_absolute_error(_flat(y), _flat(pred)),
        "rmse": math.sqrt(mean_squared_error(_flat(y), _flat(pred))),
        "mase": mean_absolute_error(_flat(y), _flat(pred)) / scale,
    }
    logs = model.evaluate(x, y, batch_size=len(x), return_dict=True)
    assert set(logs) == set(ref)
    for k, v in ref.items():
        assert logs[k] == pytest.approx(v, rel=1e-5), k
    # mean-decomposable metrics are the same whatever the batch size
    batched = model.evaluate(x, y, batch_size=7, return_dict=True)
    for k in ("loss", "mae", "mase"):
        assert batched[k] == pytest.approx(ref[k], rel=1e-5), k
    # fit reports each batch's metric before that batch's update: one batch, one epoch, no
    # dropout, so the epoch's value is the one of the weights fit started from
    history = model.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
    for k in ("mae", "rmse", "mase"):
        assert history.history[k][0] == pytest.approx(ref[k], rel=1e-5), k
    after = model.predict(x).astype(np.float64)
    assert not np.allclose(after, pred)  # the update happened: the check above was not vacuous


def test_binary_classification_metrics_equal_scikit_learn():
    x = _x(seed=14)
    model = _model(1, activation="sigmoid", seed=1)
    p = model.predict(x)[:, 0].astype(np.float64)
    y = (p > np.median(p)).astype(np.float32)  # half positives ...
    flip = _rng(15).random(len(y)) < 0.25
    y[flip] = 1 - y[flip]  # ... not all of them predicted right
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "f1"])
    logs = model.evaluate(x, y, batch_size=len(x), return_dict=True)
    labels = (p > 0.5).astype(int)
    assert logs["accuracy"] == pytest.approx(accuracy_score(y, labels), rel=1e-12)
    assert logs["f1"] == pytest.approx(f1_score(y, labels, zero_division=0), rel=1e-12)
    assert logs["loss"] == pytest.approx(log_loss(y, p), rel=1e-5)
    assert 0.3 < logs["f1"] < 1.0  # neither trivial nor perfect
    history = model.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
    assert history.history["f1"][0] == pytest.approx(logs["f1"], rel=1e-12)


def test_sparse_multiclass_metrics_equal_scikit_learn():
    x = _x(seed=16)
    model = _model(4, seed=2)  # logits
    logits = model.predict(x).astype(np.float64)
    pred = logits.argmax(-1)
    y = pred.copy()
    y[::3] = (y[::3] + 1) % 4  # a third wrong
    loss = SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss=loss, metrics=["acc", "f1_score"])
    logs = model.evaluate(x, y, batch_size=len(x), return_dict=True)
    assert logs["acc"] == pytest.approx(accuracy_score(y, pred), rel=1e-12)
    assert logs["f1_score"] == pytest.approx(
        f1_score(y, pred, average="macro", zero_division=0), rel=1e-12
    )
    assert logs["loss"] == pytest.approx(
        log_loss(y, softmax(logits, -1), labels=range(4)), rel=1e-5
    )
    # accuracy is a mean over samples: batches of any size give the same value
    batched = model.evaluate(x, y, batch_size=5, return_dict=True)
    assert batched["acc"] == pytest.approx(accuracy_score(y, pred), rel=1e-12)


# -- metric objects: exact accumulation over batches ----------------------------------------------
def _labels_case():  # Keras' Accuracy class compares labels with labels
    rng = _rng(21)
    t = rng.integers(0, 3, size=30)
    y = np.where(rng.random(30) < 0.6, t, rng.integers(0, 3, size=30))
    return t, y


def _macro_case():
    return _multiclass_case(22, shape=(45,), C=5)


#: every metric class -> (data, witness on the whole data): the result after update_state on
#: uneven batches must equal the witness on their concatenation
OBJECT_WITNESS = {
    metrics.MeanAbsoluteError: WITNESS["mae"],
    metrics.MeanSquaredError: WITNESS["mse"],
    metrics.RootMeanSquaredError: WITNESS["rmse"],
    metrics.MeanAbsolutePercentageError: WITNESS["mape"],
    metrics.MeanSquaredLogarithmicError: WITNESS["msle"],
    metrics.LogCoshError: WITNESS["log_cosh_error"],
    metrics.CosineSimilarity: WITNESS["cosine_similarity"],
    metrics.BinaryAccuracy: WITNESS["binary_accuracy"],
    metrics.CategoricalAccuracy: WITNESS["categorical_accuracy"],
    metrics.SparseCategoricalAccuracy: WITNESS["sparse_categorical_accuracy"],
    metrics.TopKCategoricalAccuracy: WITNESS["top_k_categorical_accuracy"],
    metrics.SparseTopKCategoricalAccuracy: WITNESS["sparse_top_k_categorical_accuracy"],
    metrics.Accuracy: (_labels_case, accuracy_score),
    metrics.F1: (
        _macro_case,
        lambda t, y: f1_score(t, y.argmax(-1), average="macro", zero_division=0),
    ),
}


def _batches(t, y, sizes=(7, 1)):
    """Uneven batches (7, 1, the rest): a mean of per-batch values would be wrong."""
    edges = np.cumsum(sizes)
    return list(zip(np.split(t, edges), np.split(y, edges), strict=True))


@pytest.mark.parametrize("cls", list(metrics.CLASSES.values()), ids=lambda c: c.__name__)
def test_every_metric_object_accumulates_exactly(cls):
    assert cls in OBJECT_WITNESS, f"metrics.{cls.__name__} has no witness in tests/test_metrics.py"
    data, witness = OBJECT_WITNESS[cls]
    t, y = data()
    m = metrics.get(cls.__name__)  # a Keras class name gives a fresh object
    assert type(m) is cls and m.name == cls().name
    batches = _batches(t, y)
    for bt, by in batches:
        m.update_state(bt, by)
    assert m.result() == pytest.approx(witness(t, y), rel=REL)
    # __call__: the value on one batch alone, the accumulated state untouched
    bt, by = batches[0]
    assert m(bt, by) == pytest.approx(witness(bt, by), rel=REL)
    assert m.result() == pytest.approx(witness(t, y), rel=REL)
    m.reset_state()
    assert m.result() == 0.0
    m.update_state(*batches[-1])
    assert m.result() == pytest.approx(witness(*batches[-1]), rel=REL)


def test_rmse_and_f1_objects_are_not_means_of_batch_values():
    """The known bug the objects fix: averaging per-batch rmse / f1 is not rmse / f1."""
    for cls in (metrics.RootMeanSquaredError, metrics.F1):
        data, witness = OBJECT_WITNESS[cls]
        t, y = data()
        m = cls()
        values, sizes = [], []
        for bt, by in _batches(t, y):
            m.update_state(bt, by)
            values.append(witness(bt, by))
            sizes.append(len(bt))
        batch_mean = np.average(values, weights=sizes)
        assert m.result() == pytest.approx(witness(t, y), rel=REL)
        assert abs(batch_mean - witness(t, y)) > 1e-3, cls.__name__


def test_sample_weights_equal_scikit_learn():
    rng = _rng(23)
    t, y = _reg_case()
    w = rng.uniform(0, 2, size=len(t))
    m = metrics.MeanSquaredError()
    for (bt, by), bw in zip(_batches(t, y), np.split(w, [7, 8]), strict=True):
        m.update_state(bt, by, sample_weight=bw)
    assert m.result() == pytest.approx(mean_squared_error(t, y, sample_weight=w), rel=REL)
    assert metrics.MeanAbsoluteError()(t, y, w) == pytest.approx(
        mean_absolute_error(t, y, sample_weight=w), rel=REL
    )
    tc, pc = _cls_case()
    wc = rng.uniform(0, 2, size=len(tc))
    assert metrics.BinaryAccuracy()(tc, pc, wc) == pytest.approx(
        accuracy_score(tc, pc > 0.5, sample_weight=wc), rel=REL
    )
    assert metrics.F1()(tc, pc, wc) == pytest.approx(
        f1_score(tc, pc > 0.5, sample_weight=wc), rel=REL
    )
    ids, scores = _macro_case()
    wm = rng.uniform(0, 2, size=len(ids))
    f1_macro = metrics.F1()
    for (bt, by), bw in zip(_batches(ids, scores), np.split(wm, [7, 8]), strict=True):
        f1_macro.update_state(bt, by, bw)
    assert f1_macro.result() == pytest.approx(
        f1_score(ids, scores.argmax(-1), average="macro", sample_weight=wm), rel=REL
    )


def test_mase_metric_and_user_functions_accumulate_over_samples():
    t, y = _reg_case()
    scale = 0.7
    m = metrics.get_metric(metrics.mase_metric(scale))
    assert isinstance(m, metrics.MeanMetricWrapper) and m.name == "mase"
    for bt, by in _batches(t, y):
        m.update_state(bt, by)
    assert m.result() == pytest.approx(mean_absolute_error(t, y) / scale, rel=REL)

    def per_sample_max_error(a, b):
        return np.max(np.abs(a - b), axis=-1)

    m = metrics.get_metric(per_sample_max_error)
    assert m.name == "per_sample_max_error"
    for bt, by in _batches(t, y):
        m.update_state(bt, by)
    assert m.result() == pytest.approx(np.mean(np.max(np.abs(t - y), axis=-1)), rel=REL)
    with pytest.raises(ValueError, match="'mase' needs the in-sample scale"):
        metrics.get_metric("mase")


def test_top_k_counts_ties_in_and_is_one_when_k_covers_every_class():
    y = np.array([[0.1, 0.5, 0.5, 0.2], [0.9, 0.1, 0.1, 0.1]])
    # class 2 ties with class 1 for the top score: in the top 1; class 1 of row 2 ties 2nd..4th
    assert metrics.sparse_top_k_categorical_accuracy([2, 1], y, k=1) == 0.5
    assert metrics.sparse_top_k_categorical_accuracy([2, 1], y, k=2) == 1.0
    assert metrics.top_k_categorical_accuracy(np.eye(4)[[3, 3]], y, k=4) == 1.0
    assert metrics.sparse_top_k_categorical_accuracy([3, 3], y, k=9) == 1.0


def test_new_metric_errors_name_argument_and_expected():
    with pytest.raises(
        ValueError, match=r"categorical_accuracy: argument 'y_true' must be one-hot"
    ):
        metrics.categorical_accuracy(np.zeros(4), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"class ids in \[0, 3\); got values in \[0, 3\]"):
        metrics.sparse_categorical_accuracy(np.array([0, 3]), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"'y_true' must hold integer class ids .*\[0.5, 1.0\]"):
        metrics.sparse_top_k_categorical_accuracy(np.array([0.5, 1.0]), np.ones((2, 3)))
    with pytest.raises(ValueError, match="argument 'k' must be a positive int; got 0"):
        metrics.top_k_categorical_accuracy(np.eye(3), np.ones((3, 3)), k=0)
    with pytest.raises(ValueError, match=r"cosine_similarity: argument 'y_pred' must have shape"):
        metrics.cosine_similarity(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"'sample_weight' must have shape \(20,\)"):
        metrics.MeanSquaredError()(*_reg_case(), np.ones(3))
    m = metrics.F1()
    m.update_state(*_cls_case())
    with pytest.raises(ValueError, match="a multiclass batch after binary ones"):
        m.update_state(*_macro_case())


def test_get_keeps_returning_callables_and_serialize_round_trips():
    t, y = _reg_case()
    for identifier in ("mae", metrics.mae, metrics.MeanAbsoluteError(), "MeanAbsoluteError"):
        assert metrics.get(identifier)(t, y) == pytest.approx(
            mean_absolute_error(_flat(t), _flat(y)), rel=REL
        )
    assert type(metrics.get(metrics.RootMeanSquaredError)) is metrics.RootMeanSquaredError
    top3 = metrics.TopKCategoricalAccuracy(k=3, name="top3")
    again = metrics.get(json.loads(json.dumps(metrics.serialize(top3))))
    assert type(again) is metrics.TopKCategoricalAccuracy
    assert again.get_config() == {"name": "top3", "k": 3}
    assert metrics.serialize(metrics.mae) == "mae"
    assert metrics.serialize(metrics.sparse_categorical_accuracy) == "sparse_categorical_accuracy"
    with pytest.raises(ValueError, match="user metrics are not saved"):
        metrics.serialize(lambda a, b: 0.0)


def test_get_metric_names_objects_as_keras_does():
    cases = {
        "mae": (metrics.MeanAbsoluteError, "mae"),
        "mean_squared_error": (metrics.MeanSquaredError, "mean_squared_error"),
        "rmse": (metrics.RootMeanSquaredError, "rmse"),
        "f1": (metrics.F1, "f1"),
        metrics.msle: (metrics.MeanSquaredLogarithmicError, "msle"),
        "LogCoshError": (metrics.LogCoshError, "logcosh"),
    }
    for identifier, (cls, name) in cases.items():
        m = metrics.get_metric(identifier)
        assert type(m) is cls and m.name == name, identifier
    mine = metrics.BinaryAccuracy(threshold=0.3)
    assert metrics.get_metric(mine) is mine


# -- Keras 3 as the witness of the objects' semantics ------------------------------------------
def _keras_data(kind, rng):
    """(y_true, y_pred) of 16 sequences of 3 steps, or 16 rows, with Keras' edge cases."""
    if kind == "regression":
        t, y = rng.normal(size=(16, 3, 4)), rng.normal(size=(16, 3, 4))
        t[0, 0] = 0.0  # a zero target (MAPE divides by eps) and a zero vector (cosine)
        y[1, 2] = 0.0
        return t, y
    if kind == "binary":
        return (rng.random((16, 3, 1)) < 0.5).astype(float), rng.random((16, 3, 1))
    scores = np.round(rng.random((16, 3, 5)), 1)  # ties, for top-k
    ids = rng.integers(0, 5, size=(16, 3))
    if kind == "sparse":
        return ids, scores
    if kind == "one_hot":
        return np.eye(5)[ids], scores
    labels = rng.integers(0, 3, size=(16, 3))  # "labels": Keras' Accuracy compares them
    return labels, np.where(rng.random((16, 3)) < 0.5, labels, 0)


KERAS_PAIRS = [
    (metrics.MeanSquaredError, keras.metrics.MeanSquaredError, {}, "regression"),
    (metrics.MeanAbsoluteError, keras.metrics.MeanAbsoluteError, {}, "regression"),
    (metrics.RootMeanSquaredError, keras.metrics.RootMeanSquaredError, {}, "regression"),
    (
        metrics.MeanAbsolutePercentageError,
        keras.metrics.MeanAbsolutePercentageError,
        {},
        "regression",
    ),
    (
        metrics.MeanSquaredLogarithmicError,
        keras.metrics.MeanSquaredLogarithmicError,
        {},
        "regression",
    ),
    (metrics.LogCoshError, keras.metrics.LogCoshError, {}, "regression"),
    (metrics.CosineSimilarity, keras.metrics.CosineSimilarity, {}, "regression"),
    (metrics.BinaryAccuracy, keras.metrics.BinaryAccuracy, {"threshold": 0.3}, "binary"),
    (metrics.CategoricalAccuracy, keras.metrics.CategoricalAccuracy, {}, "one_hot"),
    (metrics.SparseCategoricalAccuracy, keras.metrics.SparseCategoricalAccuracy, {}, "sparse"),
    (metrics.TopKCategoricalAccuracy, keras.metrics.TopKCategoricalAccuracy, {"k": 2}, "one_hot"),
    (
        metrics.SparseTopKCategoricalAccuracy,
        keras.metrics.SparseTopKCategoricalAccuracy,
        {"k": 2},
        "sparse",
    ),
    (metrics.Accuracy, keras.metrics.Accuracy, {}, "labels"),
]


@pytest.mark.parametrize(
    "ours_cls, keras_cls, kwargs, kind", KERAS_PAIRS, ids=[p[0].__name__ for p in KERAS_PAIRS]
)
@pytest.mark.parametrize("weights", [None, "sample", "step"])
@pytest.mark.parametrize("rows", [False, True], ids=["sequences", "rows"])
def test_objects_equal_keras_metric_classes(ours_cls, keras_cls, kwargs, kind, weights, rows):
    rng = _rng(30)
    t, y = _keras_data(kind, rng)
    if rows:  # 2-D: the first step of each sequence
        t, y = t[:, 0], y[:, 0]
    if weights == "step" and rows:
        weights = "sample"
    w = {None: None, "sample": rng.uniform(0, 2, size=16), "step": rng.uniform(0, 2, (16, 3))}
    w = w[weights]
    ours, theirs = ours_cls(**kwargs), keras_cls(**kwargs)
    for lo, hi in ((0, 5), (5, 7), (7, 16)):
        bw = None if w is None else w[lo:hi]
        ours.update_state(t[lo:hi], y[lo:hi], sample_weight=bw)
        theirs.update_state(t[lo:hi], y[lo:hi], sample_weight=bw)
    expected = float(theirs.result())
    assert ours.result() == pytest.approx(expected, rel=2e-6, abs=1e-7)
    assert ours.name == theirs.name
    fresh = keras_cls(**kwargs)  # one batch: __call__ is that batch's value
    fresh.update_state(t[:5], y[:5])
    assert ours(t[:5], y[:5]) == pytest.approx(float(fresh.result()), rel=2e-6, abs=1e-7)


SHAPE_CASES = [
    ((8, 1), (8, 1)),
    ((8,), (8, 1)),
    ((8,), (8, 4)),
    ((8, 1), (8, 4)),
    ((8, 4), (8, 4)),
    ((8, 5), (8, 5, 1)),
    ((8, 5), (8, 5, 4)),
    ((8, 5, 4), (8, 5, 4)),
    ((8, 5, 1), (8, 5, 4)),
]


@pytest.mark.parametrize("t_shape, p_shape", SHAPE_CASES)
@pytest.mark.parametrize("spelling", ["accuracy", "acc", "Accuracy"])
def test_accuracy_resolves_from_shapes_as_keras_compile_does(t_shape, p_shape, spelling):
    from keras.src.trainers.compile_utils import get_metric as keras_get_metric

    t, y = np.zeros(t_shape), np.zeros(p_shape)
    theirs = keras_get_metric(spelling, t, y)
    ours = metrics.get_metric(spelling, t, y)
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.name == theirs.name == spelling
    unresolved = metrics.get_metric(spelling)  # no shapes yet: the shape-resolving function
    assert isinstance(unresolved, metrics.MeanMetricWrapper) and unresolved.name == spelling
