"""Forecast training never sees the validation or the test part.

``train_forecaster`` splits the series chronologically into train | validation | test. What is
trained on (the network's inputs and targets, the scaler, the detected season) may depend on the
training part only; early stopping may read the validation part, the scores the test part. The
witness is the counterfactual: the same run (same seed) on a copy of the series whose validation
part, or separately whose test part, is replaced by very different values. What ``fit`` is
handed is recorded by wrapping ``Sequential.fit``; with one epoch the weights that come out are
those of the first epoch, before early stopping can have chosen anything by validation loss.

Each run also checks that the perturbation reached what it should (the validation data handed to
``fit``, the validation loss, the test scores), so that "unchanged" is not vacuous.
"""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.apps.forecast import train_forecaster
from lstmkit.models import Sequential

N = 140
FRACTIONS = (0.7, 0.15, 0.15)
N_TRAIN, N_FIT = round(N * 0.7), round(N * 0.85)  # the documented split boundaries
SETTINGS = {
    "lookback": 12,
    "horizon": 4,
    "units": 5,
    "epochs": 1,
    "patience": 1,
    "batch_size": 16,
    "transform": "none",
    "fractions": FRACTIONS,
    "seed": 4,
}


def _series():
    rng = np.random.default_rng(21)
    t = np.arange(N)
    return 50 + 10 * np.sin(2 * np.pi * t / 12) + 0.2 * t + rng.normal(0, 1.0, N)


def _run(values, monkeypatch, **overrides):
    """train_forecaster with every call of ``Sequential.fit`` recorded (copies of its data)."""
    calls = []
    original = Sequential.fit

    def recording_fit(self, x, y, *args, **kwargs):
        val = kwargs.get("validation_data")
        calls.append(
            {
                "x": np.array(x, copy=True),
                "y": np.array(y, copy=True),
                "val": None if val is None else [np.array(a, copy=True) for a in val],
            }
        )
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Sequential, "fit", recording_fit)
    report = train_forecaster(values, **{**SETTINGS, **overrides})
    monkeypatch.undo()
    assert len(calls) == 1  # one transform, one network
    return report, calls[0]


def _perturbed(part):
    values = _series()
    lo, hi = {"validation": (N_TRAIN, N_FIT), "test": (N_FIT, N)}[part]
    values[lo:hi] = values[lo:hi][::-1] * 3 - 40  # another level, scale and shape
    return values


def _assert_same_training(a, b):
    (ra, fa), (rb, fb) = a, b
    np.testing.assert_array_equal(fa["x"], fb["x"], err_msg="training inputs")
    np.testing.assert_array_equal(fa["y"], fb["y"], err_msg="training targets")
    assert ra.model.metadata["scaler"] == rb.model.metadata["scaler"]
    assert ra.season == rb.season
    assert ra.history["loss"] == rb.history["loss"]
    for wa, wb in zip(ra.model.get_weights(), rb.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb, err_msg="weights after the first epoch")


@pytest.fixture(scope="module")
def base():
    with pytest.MonkeyPatch.context() as mp:
        run = _run(_series(), mp)
    report = run[0]
    assert (report.n_train, report.n_train + report.n_val) == (N_TRAIN, N_FIT)
    return run


def test_the_validation_part_does_not_reach_training(base, monkeypatch):
    other = _run(_perturbed("validation"), monkeypatch)
    _assert_same_training(base, other)
    # ... while it does reach what validation is for
    assert not np.array_equal(base[1]["val"][1], other[1]["val"][1])
    assert base[0].history["val_loss"] != other[0].history["val_loss"]


def test_the_test_part_reaches_neither_training_nor_validation(base, monkeypatch):
    other = _run(_perturbed("test"), monkeypatch)
    _assert_same_training(base, other)
    for a, b in zip(base[1]["val"], other[1]["val"], strict=True):
        np.testing.assert_array_equal(a, b, err_msg="validation data")
    assert base[0].val_rmse == other[0].val_rmse
    assert base[0].table != other[0].table  # the test part is scored


def test_season_detection_reads_the_training_part_only(monkeypatch):
    """The detected season comes from the training part: a validation part with another
    period leaves it as it was."""
    values = _series()
    t = np.arange(N_TRAIN, N_FIT)
    values[N_TRAIN:N_FIT] = 50 + 25 * np.sin(2 * np.pi * t / 5)
    a, _ = _run(_series(), monkeypatch, season=None)
    b, _ = _run(values, monkeypatch, season=None)
    assert a.season == b.season == 12
