"""lstmkit.apps.forecast: the forecasting recipe as a Python API.

Witnesses: baselines and metrics recomputed here with plain loops and the ``statistics`` module
(not the library's helpers), the training part's statistics computed independently, invariances
of the normalisation (an affine change of the inputs changes the forecast by the same map), runs
repeated with the same seed, runs whose test part was altered, and a save -> load round trip.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from lstmkit.apps.forecast import (
    DEMO_SETTINGS,
    allowed_transforms,
    backtest,
    forecast,
    forecast_many,
    train_forecaster,
)
from lstmkit.data import load_series
from lstmkit.saving import load_model

SUNSPOTS, _, _ = load_series("sunspots")
# small settings for the tests that are about plumbing, not accuracy
SMALL = {"lookback": 24, "horizon": 12, "units": 8, "epochs": 6, "patience": 3, "seed": 3}


@pytest.fixture(scope="module")
def demo():
    """The `lstmkit forecast demo` run: built-in sunspots with DEMO_SETTINGS."""
    return train_forecaster(SUNSPOTS, **DEMO_SETTINGS)


@pytest.fixture(scope="module")
def small():
    return train_forecaster(SUNSPOTS, transform="sqrt", **SMALL)


def _rmse(truth, pred):
    errs = [(a - b) ** 2 for t_row, p_row in zip(truth, pred) for a, b in zip(t_row, p_row)]
    return math.sqrt(sum(errs) / len(errs))


# ----------------------------------------------------------------------------- the key result


def test_lstm_beats_both_baselines_on_sunspots_test_part(demo):
    y = [float(v) for v in SUNSPOTS]
    n = len(y)
    assert n == 309
    n_test = n - round(n * 0.85)  # the test part is the last 15% of the 309 years
    assert (demo.n_test, demo.season) == (n_test, 11) == (46, 11)
    H = DEMO_SETTINGS["horizon"]
    origins = range(n - n_test, n - H + 1)  # every 12-year window inside the test part
    assert demo.test_windows == len(origins) == 35
    truth = [y[t : t + H] for t in origins]
    naive = [[y[t - 1]] * H for t in origins]
    snaive = [[y[t - 11 + (h % 11)] for h in range(H)] for t in origins]
    lstm = [list(forecast(demo.model, SUNSPOTS[:t])) for t in origins]
    r_naive, r_snaive, r_lstm = _rmse(truth, naive), _rmse(truth, snaive), _rmse(truth, lstm)
    # the table agrees with the independent computation ...
    assert demo.table["naive"]["RMSE"] == pytest.approx(r_naive, rel=1e-12)
    assert demo.table["seasonal_naive(m=11)"]["RMSE"] == pytest.approx(r_snaive, rel=1e-12)
    # (float32 model: a batch of windows and one window at a time take different kernels, so
    # the two agree to float32 rounding, not bit for bit)
    assert demo.table["lstm"]["RMSE"] == pytest.approx(r_lstm, rel=1e-6)
    # ... and the LSTM beats both baselines on the held-out test part
    assert r_lstm < r_snaive < r_naive, (r_lstm, r_snaive, r_naive)


def test_auto_transform_is_chosen_on_validation_only(demo):
    assert set(demo.selection) == set(allowed_transforms(SUNSPOTS)) == {"none", "sqrt"}
    assert demo.transform == min(demo.selection, key=demo.selection.get)
    assert demo.val_rmse == demo.selection[demo.transform]
    assert demo.model.metadata["transform"] == demo.transform


def test_same_seed_same_model_and_table():
    a = train_forecaster(SUNSPOTS, transform="auto", **SMALL)
    b = train_forecaster(SUNSPOTS, transform="auto", **SMALL)
    assert a.table == b.table and a.selection == b.selection
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    c = train_forecaster(SUNSPOTS, transform="auto", **{**SMALL, "seed": SMALL["seed"] + 1})
    assert not np.array_equal(a.model.get_weights()[0], c.model.get_weights()[0])


# ----------------------------------------------------------------------------- no leakage


@pytest.mark.parametrize("transform", ["none", "sqrt"])
def test_scaler_statistics_are_the_training_parts(transform):
    report = train_forecaster(SUNSPOTS, transform=transform, **{**SMALL, "epochs": 1})
    train = [float(v) for v in SUNSPOTS[: report.n_train]]
    assert report.n_train == round(309 * 0.7) == 216
    if transform == "sqrt":
        train = [math.sqrt(v) for v in train]
    sc = report.model.metadata["scaler"]
    assert sc["mean"][0] == pytest.approx(statistics.fmean(train), rel=1e-12)
    assert sc["scale"][0] == pytest.approx(statistics.pstdev(train), rel=1e-12)


def test_nothing_after_the_validation_part_changes_the_model(small):
    altered = SUNSPOTS.copy()
    n_fit = small.n_train + small.n_val
    altered[n_fit:] = altered[n_fit:] * 3 + 50  # a very different test part
    other = train_forecaster(altered, transform="sqrt", **SMALL)
    assert other.model.metadata == small.model.metadata
    assert other.val_rmse == small.val_rmse
    for wa, wb in zip(small.model.get_weights(), other.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert other.table != small.table  # the test part is scored, never trained on


# ----------------------------------------------------------------------------- saving, backtest


def test_forecast_after_save_and_load_is_identical(small, tmp_path):
    path = tmp_path / "model.lstmkit"
    small.model.save(path)
    loaded = load_model(path)
    assert loaded.metadata == small.model.metadata
    np.testing.assert_array_equal(forecast(loaded, SUNSPOTS), forecast(small.model, SUNSPOTS))
    windows = np.stack([SUNSPOTS[t - 24 : t] for t in range(24, 309, 7)])
    np.testing.assert_array_equal(
        forecast_many(loaded, windows), forecast_many(small.model, windows)
    )


def test_backtest_metrics_equal_an_independent_computation(small):
    values = SUNSPOTS[:250]
    table, fc, actual = backtest(small.model, values)
    y = [float(v) for v in values]
    H, m = 12, small.season
    t = len(y) - H
    np.testing.assert_array_equal(actual, values[t:])
    np.testing.assert_array_equal(fc, forecast(small.model, values[:t]))
    scale = statistics.fmean(abs(y[i] - y[i - m]) for i in range(m, t))  # in-sample, lag m
    preds = {
        "lstm": [float(v) for v in fc],
        "naive": [y[t - 1]] * H,
        f"seasonal_naive(m={m})": [y[t - m + (h % m)] for h in range(H)],
    }
    assert list(table) == list(preds)
    for name, p in preds.items():
        errs = [a - b for a, b in zip(y[t:], p)]
        mae_ = statistics.fmean(abs(e) for e in errs)
        assert table[name]["MAE"] == pytest.approx(mae_, rel=1e-12)
        assert table[name]["RMSE"] == pytest.approx(
            math.sqrt(statistics.fmean(e * e for e in errs))
        )
        assert table[name]["MASE"] == pytest.approx(mae_ / scale, rel=1e-12)


# ----------------------------------------------------------------------------- the recipe


@pytest.mark.parametrize(("transform", "a", "b"), [("none", 2.5, -40.0), ("log", 3.0, 0.0)])
def test_window_normalisation_makes_forecasts_follow_affine_changes(transform, a, b):
    # window statistics remove level and scale, so forecast(a * x + b) = a * forecast(x) + b
    # (log turns a scale into a level shift, so only b = 0 keeps it defined and invariant)
    positive = SUNSPOTS + 1.0
    report = train_forecaster(
        positive, transform=transform, normalize="window", **{**SMALL, "epochs": 2}
    )
    windows = np.stack([positive[t - 24 : t] for t in range(24, 300, 11)])
    base = forecast_many(report.model, windows)
    moved = forecast_many(report.model, a * windows + b)
    np.testing.assert_allclose(moved, a * base + b, rtol=1e-4, atol=1e-3 * a)


def test_without_normalisation_forecasts_do_not_follow_affine_changes():
    report = train_forecaster(SUNSPOTS, transform="none", normalize="none", **SMALL)
    assert report.model.metadata["norm_span"] == 0
    windows = np.stack([SUNSPOTS[t - 24 : t] for t in range(24, 300, 11)])
    moved = forecast_many(report.model, 2.5 * windows - 40)
    assert not np.allclose(moved, 2.5 * forecast_many(report.model, windows) - 40, rtol=1e-2)


def test_cycle_normalisation_uses_the_last_season(small):
    assert small.model.metadata["normalize"] == "cycle"
    assert small.model.metadata["norm_span"] == small.season == 11
    # the inputs before the last cycle still matter (they go into the network) ...
    w = SUNSPOTS[-24:].copy()
    w2 = w.copy()
    w2[:5] += 30
    assert not np.allclose(forecast(small.model, w), forecast(small.model, w2))


def test_transforms_outside_their_domain_are_errors():
    with pytest.raises(ValueError, match=r"transform 'sqrt' needs values >= 0"):
        train_forecaster(SUNSPOTS - 10, transform="sqrt", **SMALL)
    with pytest.raises(ValueError, match=r"transform 'log' needs values > 0"):
        train_forecaster(SUNSPOTS, transform="log", **SMALL)  # sunspots has zeros
    assert allowed_transforms(SUNSPOTS - 10) == ["none"]
    assert allowed_transforms(SUNSPOTS + 1) == ["none", "sqrt", "log"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transform": "boxcox"}, r"argument 'transform' got 'boxcox'"),
        ({"normalize": "global"}, r"argument 'normalize' got 'global'"),
        ({"lookback": 0}, r"argument 'lookback' must be a positive int; got 0"),
        ({"season": 400}, r"argument 'season' got 400"),
        ({"fractions": (0.7, 0.3, 0.0)}, r"argument 'fractions' got \(0.7, 0.3, 0.0\)"),
        ({"lookback": 210}, r"too few rows: got 309, .* needs at least 222 rows in the training"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_forecaster(SUNSPOTS, **{**SMALL, **kwargs})


def test_forecast_rejects_short_or_non_finite_history(small):
    with pytest.raises(ValueError, match=r"at least lookback=24 values; got shape \(10,\)"):
        forecast(small.model, SUNSPOTS[:10])
    bad = SUNSPOTS.copy()
    bad[-3] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        forecast(small.model, bad)
