"""forecast_metrics against scikit-learn, utilsforecast (statsforecast's own losses) and closed
forms, on random panels of unequal lengths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, mean_pinball_loss, root_mean_squared_error
from utilsforecast import losses as uf

from lstmkit.apps.forecast_metrics import (
    coverage,
    interval_quantiles,
    mean_metrics,
    naive_scales,
    pinball,
    series_metrics,
    summary_table,
)
from lstmkit.apps.panel import Panel

H = 5


@pytest.fixture
def case():
    rng = np.random.default_rng(7)
    lengths = [9, 14, 30, 6]
    train = [np.cumsum(rng.normal(size=n)) + 10 for n in lengths]
    y = rng.normal(10, 2, size=(4, H))
    point = y + rng.normal(size=(4, H))
    lo, hi = point - rng.uniform(0, 2, (4, H)), point + rng.uniform(0, 2, (4, H))
    return Panel.from_arrays(train, ["a", "b", "c", "d"], freq="QS"), y, point, lo, hi


def long_frames(panel, y, point, lo, hi):
    """The train and forecast frames utilsforecast expects."""
    train = pd.DataFrame({
        "unique_id": np.repeat(panel.ids, panel.lengths),
        "ds": np.concatenate([np.arange(n) for n in panel.lengths]),
        "y": panel.values,
    })  # fmt: skip
    fc = pd.DataFrame({
        "unique_id": np.repeat(panel.ids, H),
        "ds": (panel.lengths[:, None] + np.arange(H)).ravel(),
        "y": y.ravel(), "m": point.ravel(), "m-lo-80": lo.ravel(), "m-hi-80": hi.ravel(),
    })  # fmt: skip
    return train, fc


def test_mae_rmse_pinball_against_scikit_learn(case):
    _, y, point, lo, hi = case
    got = series_metrics(y, point, intervals={80: (lo, hi)})
    np.testing.assert_allclose(
        got["MAE"], mean_absolute_error(y.T, point.T, multioutput="raw_values")
    )
    np.testing.assert_allclose(
        got["RMSE"], root_mean_squared_error(y.T, point.T, multioutput="raw_values")
    )
    for k in range(4):
        assert got["pinball-0.1"][k] == pytest.approx(mean_pinball_loss(y[k], lo[k], alpha=0.1))
        assert got["pinball-0.9"][k] == pytest.approx(mean_pinball_loss(y[k], hi[k], alpha=0.9))
    np.testing.assert_allclose(pinball(y, lo, 0.1), got["pinball-0.1"])


@pytest.mark.parametrize("season", [1, 4])
def test_mase_smape_coverage_against_utilsforecast(case, season):
    panel, y, point, lo, hi = case
    train, fc = long_frames(panel, y, point, lo, hi)
    got = series_metrics(y, point, scale=naive_scales(panel, season), intervals={80: (lo, hi)})
    want = uf.mase(fc, ["m"], seasonality=season, train_df=train).set_index("unique_id")["m"]
    np.testing.assert_allclose(got["MASE"], want.loc[panel.ids].to_numpy(), rtol=1e-12)
    want = uf.smape(fc, ["m"]).set_index("unique_id")["m"]
    np.testing.assert_allclose(got["sMAPE"], 200 * want.loc[panel.ids].to_numpy(), rtol=1e-12)
    want = uf.coverage(fc, ["m"], level=80).set_index("unique_id")["m"]
    np.testing.assert_allclose(got["coverage-80"], want.loc[panel.ids].to_numpy())


def test_closed_forms():
    y = np.array([[1.0, 2.0, 3.0, 4.0]])
    f = np.array([[2.0, 2.0, 1.0, 4.0]])  # errors -1, 0, 2, 0
    m = series_metrics(y, f, scale=np.array([0.5]))
    assert m["MAE"][0] == 0.75 and m["RMSE"][0] == np.sqrt(5 / 4) and m["MASE"][0] == 1.5
    assert m["sMAPE"][0] == pytest.approx(200 / 4 * (1 / 3 + 0 + 2 / 4 + 0))
    assert coverage(y, y - 1, y + [[0, 0, -1, 0]])[0] == 0.75  # ends included
    assert interval_quantiles(80) == pytest.approx((0.1, 0.9))
    zero = series_metrics(np.zeros((1, 2)), np.zeros((1, 2)))
    assert zero["sMAPE"][0] == 0.0  # 0/0 counts 0
    # seasonal scale: |x_t - x_{t-2}| over a series 1, 5, 2, 9 = (1 + 4) / 2
    p = Panel.from_arrays([[1, 5, 2, 9], [3, 3, 3]], season=2)
    np.testing.assert_array_equal(naive_scales(p), [2.5, 0.0])
    got = mean_metrics(series_metrics(np.ones((2, 1)), np.zeros((2, 1)), scale=naive_scales(p)))
    assert got["MASE"] == 0.4 and got["n_undefined_MASE"] == 1


def test_bad_shapes_and_values_are_errors():
    with pytest.raises(ValueError, match=r"argument 'point' must have the shape of 'y'"):
        series_metrics(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"must be finite"):
        series_metrics(np.zeros((1, 2)), np.array([[0, np.nan]]))
    with pytest.raises(ValueError, match=r"argument 'scale' must have shape \(2,\)"):
        series_metrics(np.zeros((2, 1)), np.zeros((2, 1)), scale=np.ones(3))
    with pytest.raises(ValueError, match=r"argument 'q'"):
        pinball(np.zeros((1, 1)), np.zeros((1, 1)), 1.5)


def test_summary_table_layout():
    text = summary_table({"lstm": {"MAE": 1.23456, "MASE": 0.5}, "naive": {"MAE": 2.0}})
    lines = text.splitlines()
    assert lines[0].split() == ["model", "MAE", "MASE"]
    assert lines[2].split() == ["lstm", "1.235", "0.500"]
    assert lines[3].split() == ["naive", "2.000", "-"]
    assert len({len(line) for line in lines}) == 1  # aligned
