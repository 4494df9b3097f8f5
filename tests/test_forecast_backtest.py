"""Anchors and backtests (issue 18): the published M1 figures through the whole path (read_panel
-> rolling_origins -> anchor_forecasts -> MASE), naive intervals against statsforecast's own
models, the windows against plain slicing, and the forecaster contract."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from lstmkit._optional import MissingExtraError
from lstmkit.apps.forecast_anchors import anchor_forecasts, seasonal_naive
from lstmkit.apps.forecast_backtest import backtest, rolling_origins
from lstmkit.apps.panel import Panel
from lstmkit.apps.panel_io import read_panel
from shared_data import SHARED, require

M1 = SHARED / "forecasting" / "m1_yearly" / "m1_yearly.csv"
# statsforecast 2.1.1 on M1 yearly, h = 6, mean MASE (m1_yearly/README.md): published figures
PUBLISHED = {"naive": 4.894, "AutoETS": 3.950, "AutoTheta": 3.608}


def test_m1_yearly_reproduces_the_published_statsforecast_figures():
    require(M1)
    panel = read_panel(M1)
    result = backtest(
        lambda train, h, levels: seasonal_naive(train, h, levels, season=1),
        panel, 6, windows=1, levels=(80,), anchors=("naive", "AutoETS", "AutoTheta"),
        name="naive-by-hand",
    )  # fmt: skip
    for model, mase in PUBLISHED.items():
        assert result.summary[model]["MASE"] == pytest.approx(mase, abs=5e-4), model
    assert result.summary["naive-by-hand"]["MASE"] == pytest.approx(4.894, abs=5e-4)
    assert len(result.rows) == 4 * 181
    assert "AutoTheta" in result.table() and "coverage-80" in result.table()


@pytest.mark.parametrize("season", [1, 4])
def test_naive_intervals_equal_statsforecast_models(season):
    from statsforecast.models import Naive, SeasonalNaive

    rng = np.random.default_rng(3)
    series = [np.cumsum(rng.normal(size=n)) for n in (12, 21, 17)]
    panel = Panel.from_arrays(series, season=season)
    point, intervals = seasonal_naive(panel, 9, levels=(80, 95))
    model = Naive() if season == 1 else SeasonalNaive(season_length=season)
    for k, s in enumerate(series):
        want = model.forecast(s, 9, level=[80, 95])
        np.testing.assert_allclose(point[k], want["mean"], rtol=1e-12)
        for level in (80, 95):
            np.testing.assert_allclose(intervals[level][0][k], want[f"lo-{level}"], rtol=1e-9)
            np.testing.assert_allclose(intervals[level][1][k], want[f"hi-{level}"], rtol=1e-9)


def test_missing_statsforecast_is_a_note_by_default_and_an_error_when_asked(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsforecast", None)  # import statsforecast fails
    panel = Panel.from_arrays([np.arange(10.0), np.arange(8.0)])
    notes: list[str] = []
    fc = anchor_forecasts(panel, 3, notes=notes)
    assert list(fc) == ["naive", "seasonal_naive"]
    assert "AutoETS, AutoTheta left out" in notes[0] and "lstmkit[forecast]" in notes[0]
    with pytest.raises(MissingExtraError, match=r"\['AutoETS'\] need the 'forecast' extra"):
        anchor_forecasts(panel, 3, models=["naive", "AutoETS"])


def test_rolling_origins_equal_plain_slicing():
    rng = np.random.default_rng(0)
    series = [rng.normal(size=n) for n in (30, 12, 19)]
    future = [rng.normal(size=(n, 1)) for n in (30, 12, 19)]
    base = Panel.from_arrays(series, ["a", "b", "c"])
    panel = Panel(base.values, base.offsets, base.ids, future=np.concatenate(future),
                  future_names=("promo",))  # fmt: skip
    H, K, step = 4, 3, 2
    windows = rolling_origins(panel, H, windows=K, step=step, min_train=5)
    assert [w.number for w in windows] == [0, 1, 2]
    for w in windows:
        back = (K - 1 - w.number) * step
        kept = [k for k, s in enumerate(series) if len(s) - H - back >= 5]
        assert w.index.tolist() == kept and w.train.ids.tolist() == [base.ids[k] for k in kept]
        for j, k in enumerate(kept):
            cut = len(series[k]) - H - back
            np.testing.assert_array_equal(w.train.series(j), series[k][:cut])
            np.testing.assert_array_equal(w.target[j], series[k][cut : cut + H])
            np.testing.assert_array_equal(
                w.train.future_ahead[j, :, 0], future[k][cut : cut + H, 0]
            )
    assert any("left out" in n for n in windows[0].train.notes)  # 'b' is too short there


def test_backtest_scores_a_perfect_forecaster_and_checks_the_contract():
    rng = np.random.default_rng(1)
    panel = Panel.from_arrays([rng.normal(size=20) for _ in range(3)])
    truth = {}

    def oracle(train, h, levels):  # knows the held-out values: zero error, full coverage
        point = np.stack([panel.series(k)[len(train.series(k)) : len(train.series(k)) + h]
                          for k in range(train.n_series)])  # fmt: skip
        truth["n"] = train.n_series
        return point, {lv: (point - 1, point + 1) for lv in levels}

    result = backtest(oracle, panel, 3, windows=2, levels=(80,), anchors=())
    s = result.summary["lstmkit"]
    assert s["MAE"] == 0 and s["MASE"] == 0 and s["coverage-80"] == 1.0
    assert list(result.summary) == ["lstmkit"] and len(result.rows) == 2 * 3
    with pytest.raises(ValueError, match=r"forecaster 'lstmkit' returned point forecasts of shape"):
        backtest(lambda t, h, lv: (np.zeros((1, h)), {}), panel, 3, anchors=())
    with pytest.raises(ValueError, match=r"returned no intervals for levels \[80\]"):
        backtest(lambda t, h, lv: (np.zeros((3, h)), {}), panel, 3, levels=(80,), anchors=())
    with pytest.raises(ValueError, match=r"leave no series with 2 training values"):
        rolling_origins(panel, 10, windows=3)
