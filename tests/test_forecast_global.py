"""The global forecaster on synthetic panels whose answer is known, and its file and config.

Witnesses: seasonal naive (a forecast computed here from the data, not by the code under test),
closed-form Gaussian quantiles, a shuffled covariate, members fitted independently, a reloaded
file, and the published M1 figure (slow test).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import norm

from lstmkit.apps.forecast_config import ForecastConfig
from lstmkit.apps.forecast_global import GlobalForecaster, fit_global
from lstmkit.apps.panel import Panel
from lstmkit.saving import ModelFileError
from shared_data import SHARED, require

FAST = ForecastConfig(units=16, epochs=60, patience=10, ensemble=1, batch_size=32)


def monthly_times(n, start="2000-01"):
    return np.arange(np.datetime64(start, "M"), np.datetime64(start, "M") + n).astype(
        "datetime64[D]"
    )


def seasonal_panel(n_series=12, n=84, H=12, seed=0):
    """Multiplicative season and trend, a level per series; ``(train panel, truth (k, H))``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    prof = 1 + 0.3 * np.sin(2 * np.pi * t / 12) + 0.1 * np.cos(4 * np.pi * t / 12)
    series = [
        np.exp(rng.normal(3, 1)) * (1 + rng.uniform(0.01, 0.03) * t) * prof
        * np.exp(rng.normal(0, 0.02, n))
        for _ in range(n_series)
    ]  # fmt: skip
    train = Panel.from_arrays([s[:-H] for s in series], times=[monthly_times(n - H)] * n_series,
                              freq="MS")  # fmt: skip
    return train, np.stack([s[-H:] for s in series])


def test_beats_seasonal_naive_on_a_seasonal_panel():
    train, truth = seasonal_panel()
    point, _ = fit_global(train, FAST).predict(train)
    snaive = np.stack([train.series(k)[-12:] for k in range(train.n_series)])
    err, err_snaive = np.abs(point - truth).mean(axis=1), np.abs(snaive - truth).mean(axis=1)
    scale = truth.mean(axis=1)
    assert point.shape == truth.shape
    # relative MAE: well under seasonal naive's, which misses the trend
    assert np.mean(err / scale) < 0.7 * np.mean(err_snaive / scale)


def covariate_panel(n_series=8, n=80, H=6, seed=1):
    """``y = 10 + 2 c``: the target is a deterministic function of a future-known covariate."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n_series, n + H))
    y = 10 + 2 * c
    panel = Panel.from_arrays(list(y[:, :n]))
    fut = c[:, :n].reshape(-1, 1)
    panel = dataclasses.replace(panel, future=fut, future_names=("c",),
                                future_ahead=c[:, n:, None])  # fmt: skip
    return panel, y[:, n:], c[:, n:]


def test_future_covariate_is_used():
    panel, truth, _ = covariate_panel()
    cfg = FAST.replace(horizon=6, future_covariates=("c",), transform="none", lookbacks=(6,))
    model = fit_global(panel, cfg)
    point, _ = model.predict(panel)
    rng = np.random.default_rng(5)
    shuffled = dataclasses.replace(
        panel, future_ahead=rng.permutation(panel.future_ahead.reshape(-1)).reshape(8, 6, 1)
    )
    point_shuffled, _ = model.predict(shuffled)
    err, err_shuffled = np.abs(point - truth).mean(), np.abs(point_shuffled - truth).mean()
    assert err < 0.5, err  # the covariate's sd moves y by 2
    assert err_shuffled > 4 * err


def test_missing_future_covariates_are_an_error():
    panel, _, _ = covariate_panel()
    cfg = FAST.replace(horizon=6, future_covariates=("c",), epochs=2, lookbacks=(4,))
    model = fit_global(panel, cfg)
    ahead = panel.future_ahead.copy()
    ahead[3, 2, 0] = np.nan
    with pytest.raises(ValueError, match="future covariates"):
        model.predict(dataclasses.replace(panel, future_ahead=ahead))
    with pytest.raises(ValueError, match="not in the panel"):
        fit_global(panel, cfg.replace(future_covariates=("nope",)))


def test_calendar_gives_the_phase_a_one_step_lookback_cannot():
    # with one input step and no seasonal adjustment the window says nothing about the phase:
    # only the calendar (sin/cos of the month) does
    rng = np.random.default_rng(2)
    n, H, k = 60, 12, 6
    starts = rng.integers(0, 12, k)  # series start in different months (dates say which)
    y = [50 + 5 * np.sin(2 * np.pi * (np.arange(n + H) + o) / 12) + rng.normal(0, 0.1, n + H)
         for o in starts]  # fmt: skip
    times = [monthly_times(n, f"2000-{o + 1:02d}") for o in starts]
    train = Panel.from_arrays([s[:-H] for s in y], times=times, freq="MS")
    truth = np.stack([s[-H:] for s in y])
    cfg = FAST.replace(lookbacks=(1,), seasonal="off", level="last", transform="none", epochs=80)
    err = {}
    for cal in (True, False):
        point, _ = fit_global(train, cfg.replace(calendar=cal)).predict(train)
        err[cal] = np.abs(point - truth).mean()
    assert err[True] < 0.5 * err[False], err


def test_embedding_path():
    train, _ = seasonal_panel(n_series=5)
    model = fit_global(train, FAST.replace(embedding=3, epochs=3))
    layer = [ly for m in model.members for ly in m.model.layers if type(ly).__name__ == "Embedding"]
    assert layer and layer[0].params["embeddings"].shape == (6, 3)  # 5 ids + "unseen"
    point, _ = model.predict(train)
    # the same windows under other ids: the id input reaches the output
    renamed = dataclasses.replace(train, ids=train.ids[::-1].copy())
    other, _ = model.predict(renamed)
    assert np.isfinite(point).all() and not np.allclose(point, other)
    unseen, _ = model.predict(dataclasses.replace(train, ids=np.array([f"x{i}" for i in range(5)])))
    assert np.isfinite(unseen).all()


def gaussian_panel(n_series=60, n=48, H=6, seed=3):
    rng = np.random.default_rng(seed)
    y = 50 + rng.normal(size=(n_series, n + H))
    return Panel.from_arrays(list(y[:, :n])), y[:, n:]


def test_quantiles_ordered_and_coverage_near_nominal():
    panel, truth = gaussian_panel()
    cfg = FAST.replace(horizon=6, transform="none", lookbacks=(12,), interval_levels=(80, 95))
    point, iv = fit_global(panel, cfg).predict(panel, levels=(80, 95))
    (lo80, hi80), (lo95, hi95) = iv[80], iv[95]
    assert (lo95 <= lo80).all() and (lo80 <= point).all() and (point <= hi80).all()
    assert (hi80 <= hi95).all()
    cover = np.mean((truth >= lo80) & (truth <= hi80))
    assert 0.72 <= cover <= 0.88, cover  # 360 points: nominal 0.80 +- 2.5 binomial sd
    # the true 80% interval of N(50, 1) is 50 +- 1.2816; the learned one within 35%
    width = np.mean(hi80 - lo80)
    assert abs(width - 2 * norm.ppf(0.9)) < 0.35 * 2 * norm.ppf(0.9), width


def test_ensemble_median_is_the_median_of_independent_members():
    train, _ = seasonal_panel(n_series=6)
    cfg = FAST.replace(epochs=8, lookbacks=(12, 18), seed=4)
    point, _ = fit_global(train, cfg.replace(ensemble=3, aggregate="median")).predict(train)
    members = [
        fit_global(train, cfg.replace(ensemble=1, seed=4 + i, lookbacks=((12, 18)[i % 2],)))
        .predict(train)[0]
        for i in range(3)
    ]  # fmt: skip
    np.testing.assert_array_equal(point, np.median(np.stack(members), axis=0))
    mean, _ = fit_global(train, cfg.replace(ensemble=3, aggregate="mean")).predict(train)
    np.testing.assert_allclose(mean, np.mean(np.stack(members), axis=0), rtol=1e-12)
    # without the highest and lowest member: SciPy's trimmed mean cutting one at each end
    from scipy.stats import trim_mean

    five = members + [
        fit_global(train, cfg.replace(ensemble=1, seed=4 + i, lookbacks=((12, 18)[i % 2],)))
        .predict(train)[0]
        for i in (3, 4)
    ]  # fmt: skip
    model = fit_global(train, cfg.replace(ensemble=5, aggregate="trimmed"))
    trimmed, _ = model.predict(train)
    np.testing.assert_allclose(trimmed, trim_mean(np.stack(five), 0.2, axis=0), rtol=1e-12)


def test_save_load_bit_identical(tmp_path):
    panel, _, _ = covariate_panel()
    cfg = FAST.replace(horizon=6, future_covariates=("c",), embedding=2, epochs=3, ensemble=2,
                       lookbacks=(4, 6))  # fmt: skip
    model = fit_global(panel, cfg)
    path = tmp_path / "g.lstmkit"
    model.save(path)
    back = GlobalForecaster.load(path)
    a, ia = model.predict(panel, levels=(80,))
    b, ib = back.predict(panel, levels=(80,))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ia[80][0], ib[80][0])
    np.testing.assert_array_equal(ia[80][1], ib[80][1])
    assert back.config == model.config
    assert [p.name for p in tmp_path.iterdir()] == ["g.lstmkit"]  # no temporary left over


def test_load_rejects_other_files(tmp_path):
    from lstmkit.layers import Dense
    from lstmkit.models import Sequential

    m = Sequential([Dense(2, input_shape=(3,))])
    m.save(tmp_path / "plain.lstmkit")
    with pytest.raises(ModelFileError, match="not a global forecaster"):
        GlobalForecaster.load(tmp_path / "plain.lstmkit")
    (tmp_path / "junk").write_bytes(b"\x00" * 10)
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        GlobalForecaster.load(tmp_path / "junk")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("horizon", 0), ("lookbacks", (12, 0)), ("units", 0), ("ensemble", 0),
        ("aggregate", "mode"), ("transform", "sqrt"), ("level", "first"), ("seasonal", "yes"),
        ("loss", "huber"), ("levels", (80, 120)), ("interval_levels", ("80",)),
        ("learning_rate", -1.0), ("max_minutes", 0), ("calendar", "yes"), ("id_column", ""),
        ("past_covariates", "x"), ("dtype", "float16"), ("lookback_factors", ()),
        ("trend", "yes"), ("profile_seasons", -1), ("patience_steps", -1),
        ("epoch_windows", -1), ("refit_epochs", 1.5), ("refit_max_windows", -1),
        ("seasonal_lookback_factors", (2, 0)), ("rescale", 1), ("trend", "damped"),
        ("trend_choices", ()), ("trend_choices", (0.0, 1.5)), ("trend_choices", 0.9),
        ("validate_members", -1), ("validate_members", 1.5),
    ],
)  # fmt: skip
def test_config_validation_names_the_setting(setting, value):
    with pytest.raises(ValueError, match=rf"setting '{setting}' got {value!r}".replace("(", r"\(")
                       .replace(")", r"\)")):  # fmt: skip
        ForecastConfig(**{setting: value}).validate()


def test_predict_argument_errors():
    train, _ = seasonal_panel(n_series=3)
    model = fit_global(train, FAST.replace(epochs=2))
    with pytest.raises(ValueError, match="argument 'horizon' must be an int in 1..12"):
        model.predict(train, horizon=13)
    with pytest.raises(ValueError, match=r"argument 'levels'.*not trained"):
        model.predict(train, levels=(50,))
    bad = dataclasses.replace(train, values=np.where(np.arange(len(train.values)) == 5, np.nan,
                                                     train.values))  # fmt: skip
    with pytest.raises(ValueError, match="series '0' has NaN"):
        model.predict(bad)
    assert model.predict(train, horizon=3)[0].shape == (3, 3)


@pytest.mark.parametrize("log", [True, False])
def test_trend_normalisation_continues_a_noiseless_trend_and_season(log):
    """Closed form: for ``f(y) = a + b t + s(t mod 12)`` (``s`` summing to 0 over a season) the
    window's level, slope and profile with ``trend`` on make the zero network output decode to
    the exact continuation; without the trend it misses by the slope."""
    from lstmkit.apps import forecast_windows as fw

    t = np.arange(60, dtype=np.float64)
    s = 0.2 * np.sin(2 * np.pi * t / 12) + 0.05 * np.cos(4 * np.pi * t / 12)
    f = 1.5 + 0.02 * t + s if log else 50 + 0.7 * t + 5 * s
    y = np.exp(f) if log else f
    n, L, H = 48, 36, 12
    for trend, exact in ((True, True), (False, False)):
        norm = {"log": log, "season": 12, "level": "season", "seasonal": True, "trend": trend}
        # one window at origin n: inputs y[n-L:n], targets y[n:n+H]
        z, _, zy, stats = fw.encode(y, np.array([0]), np.array([len(y)]), np.array([n]), L, H,
                                    norm)  # fmt: skip
        back = fw.decode(np.zeros((1, H)), stats, norm)[0]
        assert np.allclose(back, y[n : n + H], rtol=1e-9) == exact
        if exact:  # inputs and targets are then all zero: nothing is left for the network
            np.testing.assert_allclose(z, 0, atol=1e-9)
            np.testing.assert_allclose(zy, 0, atol=1e-9)


@pytest.mark.parametrize("phi", [0.8, 0.95])
def test_damped_trend_continues_a_noiseless_damped_series(phi):
    """Closed form: a series that grows by ``b`` a month up to its last observed value and
    then by ``b phi^h`` in month ``h`` after it (a damped trend), times a season, is continued
    exactly by the zero network output with the window's damping ``phi``; the straight line
    (``phi`` None) and no trend (``phi = 0``) both miss it."""
    from lstmkit.apps import forecast_windows as fw

    n, L, H, b = 48, 36, 12, 0.03
    t = np.arange(n + H, dtype=np.float64)
    trend = b * t.copy()
    for h in range(1, H + 1):  # the future: increments b phi, b phi^2, ... after step n - 1
        trend[n - 1 + h] = trend[n - 2 + h] + b * phi**h
    y = np.exp(1.0 + trend + 0.2 * np.sin(2 * np.pi * t / 12) + 0.05 * np.cos(4 * np.pi * t / 12))
    norm = {"log": True, "season": 12, "level": "season", "seasonal": True, "trend": True}
    one = (np.array([0]), np.array([len(y)]), np.array([n]))
    for damping, exact in ((np.array([phi]), True), (None, False), (np.array([0.0]), False)):
        z, _, zy, stats = fw.encode(y, *one, L, H, norm, damping)
        back = fw.decode(np.zeros((1, H)), stats, norm)[0]
        assert np.allclose(back, y[n:], rtol=1e-9) == exact, damping
        if exact:
            np.testing.assert_allclose(z, 0, atol=1e-9)
            np.testing.assert_allclose(zy, 0, atol=1e-9)
    # phi = 0 is no trend at all: the same statistics as trend off
    off = fw.encode(y, *one, L, H, {**norm, "trend": False})[3]
    zero = fw.encode(y, *one, L, H, norm, np.array([0.0]))[3]
    for a, c in zip(off[:4], zero[:4]):
        np.testing.assert_allclose(a, c, atol=1e-12)


def _trend_panel(level):
    """One monthly series ``exp(level(t) + season)`` with a little noise, ten years."""
    t = np.arange(120, dtype=np.float64)
    noise = np.random.default_rng(3).normal(0, 0.005, len(t))
    y = np.exp(2.0 + level(t) + 0.2 * np.sin(2 * np.pi * t / 12) + noise)
    return Panel.from_arrays([y], times=[monthly_times(len(t))], freq="MS")


@pytest.mark.parametrize(
    ("level", "kept"),
    [
        (lambda t: 0.01 * t, True),  # a steady trend: keep it
        (lambda t: 0.3 * np.sin(2 * np.pi * t / 30), False),  # it turns every 15 months: drop it
    ],
)
def test_trend_select_keeps_a_steady_trend_and_drops_one_that_turns(level, kept):
    """``trend="select"`` chooses each series' damping on its own last windows: a series that
    grows 1% a month keeps a trend (damped or straight); one whose level swings up and down
    (period 30 months: the slope of the last two seasons points the wrong way half the time)
    keeps none. Witness: how the series were made (the truth says whether the trend goes on)."""
    from lstmkit.apps import forecast_global as fg

    panel = _trend_panel(level)
    cfg = ForecastConfig(trend="select", trend_choices=(0.0, 0.9, 1.0))
    facts = fg._facts(panel, cfg)
    assert facts["trend"] and facts["trend_choices"] == [0.0, 0.9, 1.0]
    phi = fg.trend_phi(panel, facts, 24)
    assert phi.shape == (1,)
    assert (phi[0] > 0) == kept, phi
    # off (and "on"/"auto" without choices) choose nothing
    assert fg.trend_phi(panel, fg._facts(panel, ForecastConfig(trend="on")), 24) is None


def test_trend_select_fits_predicts_and_reloads(tmp_path):
    """A model with ``trend="select"`` saves its choices' settings; the reloaded file makes the
    same choice and forecast."""
    panel = _trend_panel(lambda t: 0.01 * t)
    model = fit_global(panel, FAST.replace(trend="select", epochs=2))
    model.save(tmp_path / "t.lstmkit")
    back = GlobalForecaster.load(tmp_path / "t.lstmkit")
    assert back.facts["trend_choices"] == [0.0, 0.9, 1.0]
    np.testing.assert_array_equal(model.predict(panel)[0], back.predict(panel)[0])


def test_trend_select_chooses_once_per_member(monkeypatch):
    """The per-series trend choice encodes every series' last windows for each choice: it is
    made once per member (and once per member at prediction), not again by every encode of the
    member's training, validation, scale and refit windows."""
    from lstmkit.apps import forecast_global as fg

    calls = []
    real = fg.trend_phi

    def counting(panel, facts, L):
        calls.append(L)
        return real(panel, facts, L)

    monkeypatch.setattr(fg, "trend_phi", counting)
    panel = _trend_panel(lambda t: 0.01 * t)
    cfg = FAST.replace(trend="select", epochs=2, ensemble=2, lookbacks=(24, 36))
    model = fit_global(panel, cfg)
    assert calls == [24, 36]
    model.predict(panel)
    assert calls == [24, 36, 24, 36]


def test_trend_hedge_is_the_mean_of_the_two_groups_of_independent_members():
    """``trend="hedge"``: members 0 and 2 have no trend, member 1 the damped one; the forecast
    is the mean of (the median of members 0 and 2) and member 1. Witness: the same members
    fitted on their own (``trend="select"`` with the one choice 0, or 0.9)."""
    train, _ = seasonal_panel(n_series=4)
    # validate_members=3: every member early-stops itself, as each one fitted alone does
    cfg = FAST.replace(epochs=4, lookbacks=(24, 36), seed=2, trend_choices=(0.9,),
                       validate_members=3)  # fmt: skip
    point, _ = fit_global(train, cfg.replace(ensemble=3, trend="hedge")).predict(train)

    def alone(i, phi):
        one = cfg.replace(ensemble=1, seed=2 + i, lookbacks=((24, 36)[i % 2],), trend="select",
                          trend_choices=(phi,))  # fmt: skip
        return fit_global(train, one).predict(train)[0]

    off = np.median(np.stack([alone(0, 0.0), alone(2, 0.0)]), axis=0)
    np.testing.assert_allclose(point, (off + alone(1, 0.9)) / 2, rtol=1e-12)


def test_profile_seasons_read_more_seasons_than_the_lookback():
    """Closed form: a noiseless season (no trend) seen through a one-season lookback has no
    profile of its own (it needs two seasons); with ``profile_seasons=3`` the statistics read
    three seasons and the zero output decodes to the exact continuation."""
    from lstmkit.apps import forecast_windows as fw

    t = np.arange(60, dtype=np.float64)
    y = np.exp(2.0 + 0.3 * np.sin(2 * np.pi * t / 12) + 0.1 * np.cos(4 * np.pi * t / 12))
    n, L, H = 48, 12, 12
    for seasons, exact in ((0, False), (3, True)):
        norm = {"log": True, "season": 12, "level": "season", "seasonal": True,
                "profile_seasons": seasons}  # fmt: skip
        z, observed, _, stats = fw.encode(y, np.array([0]), np.array([60]), np.array([n]), L, H,
                                          norm)  # fmt: skip
        assert z.shape == observed.shape == (1, L)  # the network still sees L steps
        back = fw.decode(np.zeros((1, H)), stats, norm)[0]
        assert np.allclose(back, y[n : n + H], rtol=1e-9) == exact


def test_patience_counts_gradient_steps_on_small_data():
    """``patience_steps``: an epoch of ceil(180 / 64) = 3 steps needs 240 / 3 = 80 epochs of
    patience; 5000 windows (79 steps an epoch) keep ``patience``; 0 switches it off."""
    from lstmkit.apps.forecast_global import patience_epochs

    cfg = ForecastConfig(patience=20, patience_steps=240, batch_size=64)
    assert patience_epochs(cfg, 180) == 80
    assert patience_epochs(cfg, 5000) == 20
    assert patience_epochs(cfg.replace(patience_steps=0), 180) == 20


@pytest.mark.slow
def test_m1_yearly_beats_autoets():
    """M1 yearly, h=6, default settings: mean MASE below statsforecast AutoETS's 3.950."""
    import pandas as pd

    path = SHARED / "forecasting" / "m1_yearly" / "m1_yearly.csv"
    require(path)
    df = pd.read_csv(path)
    groups = [g["y"].to_numpy(np.float64) for _, g in df.groupby("unique_id", sort=False)]
    panel = Panel.from_arrays([y[:-6] for y in groups], freq="YS")
    point, _ = fit_global(panel, ForecastConfig(horizon=6)).predict(panel)
    scores = [np.mean(np.abs(y[-6:] - p)) / np.mean(np.abs(np.diff(y[:-6])))
              for y, p in zip(groups, point)]  # fmt: skip
    assert np.mean(scores) < 3.95, np.mean(scores)


def _steps_panel():
    """4 series of 60 values, no dates (no season), horizon 6: with ``val_windows=0`` the last
    min(6, ceil(32 / 4)) = 6 origins of each series validate, so the first fit trains on origins
    3 .. 60 - 2*6 - 6 + 1 = 43 (41 windows a series, 164 in all) and a refit on origins
    3 .. 54 (52 a series, 208 in all)."""
    rng = np.random.default_rng(3)
    return Panel.from_arrays([50 + rng.normal(size=60).cumsum() for _ in range(4)])


@pytest.mark.parametrize(
    ("changes", "steps"),
    [
        ({"epoch_windows": 0}, 3 * 11),  # 3 epochs of ceil(164 / 16) steps
        ({"epoch_windows": 64}, 3 * 4),  # an epoch capped at ceil(64 / 16) steps
        ({"epoch_windows": 500}, 3 * 11),  # a cap above the window count changes nothing
        ({"epoch_windows": 64, "refit": True, "refit_epochs": 2}, 3 * 4 + 2 * 4),
        ({"epoch_windows": 0, "refit": True, "refit_epochs": 2}, 3 * 11 + 2 * 13),
        # more training windows (164) than refit_max_windows: no refit
        ({"epoch_windows": 0, "refit": True, "refit_epochs": 2, "refit_max_windows": 100}, 33),
    ],
)  # fmt: skip
def test_epoch_windows_and_refit_count_gradient_steps(changes, steps):
    """The optimizer's step counter against the window counts of ``_steps_panel``."""
    base = {"horizon": 6, "lookbacks": (6,), "units": 4, "epochs": 3, "patience": 50,
            "batch_size": 16, "ensemble": 1, "refit": False}  # fmt: skip
    cfg = ForecastConfig(**(base | changes))
    model = fit_global(_steps_panel(), cfg)
    assert model.members[0].model.optimizer.iterations == steps


def test_rescale_divides_by_the_rms_of_the_normalised_targets():
    """Closed form: for ``y = exp(1 + s e)``, ``e`` iid N(0, 1), yearly (level = the last
    value, log), a target in network units is ``s (e_t - e_last)``, whose RMS is ``s sqrt(2)``;
    the forecast decodes back to about ``e`` (what an unscaled decode would miss by a factor of
    ``exp(1)``). ``rescale=False`` keeps the scale 1."""
    rng = np.random.default_rng(0)
    s = 0.01
    panel = Panel.from_arrays([np.exp(1 + s * rng.normal(size=200)) for _ in range(40)],
                              freq="YS")  # fmt: skip
    cfg = FAST.replace(horizon=4, lookbacks=(4,), epochs=3)
    model = fit_global(panel, cfg)
    assert abs(model.members[0].z_scale / (s * np.sqrt(2)) - 1) < 0.05
    point, _ = model.predict(panel)
    np.testing.assert_allclose(point, np.e, rtol=5 * s)
    assert fit_global(panel, cfg.replace(rescale=False)).members[0].z_scale == 1.0


@pytest.mark.parametrize(
    ("freq", "horizon", "changes", "lookbacks"),
    [
        ("MS", None, {}, [24, 36]),  # monthly: (2, 3) x 12, two whole seasons at least
        ("MS", None, {"seasonal_lookback_factors": ()}, [12, 24]),  # () = lookback_factors
        ("QS", None, {}, [4, 8]),  # quarterly keeps (1, 2) x 4
        ("YS", 6, {}, [6, 12]),  # no season: (1, 2) x horizon
    ],
)  # fmt: skip
def test_default_lookbacks_by_season(freq, horizon, changes, lookbacks):
    panel = Panel.from_arrays([np.arange(1.0, 61.0)] * 2, freq=freq)
    cfg = FAST.replace(horizon=horizon, epochs=1, ensemble=2, **changes)
    assert fit_global(panel, cfg).facts["lookbacks"] == lookbacks


@pytest.mark.parametrize(
    ("changes", "networks"),
    [
        # one lookback: each member trains once, on every window (3 networks, not 2 + 1 + 1)
        ({"lookbacks": (6,)}, 3),
        # two lookbacks: the same, each member following its own counterpart
        ({"lookbacks": (6, 8), "ensemble": 4}, 4),
    ],
)  # fmt: skip
def test_a_schedule_makes_each_member_train_once_for_the_earlier_fits_epochs(
    monkeypatch, changes, networks
):
    """``fit_global(..., schedule=)`` (``forecast train``'s saved fit after its held-out one):
    member ``i`` trains once on every window of the longer panel for the held-out member ``i``'s
    best epoch count (its optimizer counts ``best * ceil(208 / 16)`` steps, ``_steps_panel``'s
    refit windows) and takes its conformal correction; nothing early-stops again."""
    from lstmkit.apps import forecast_network as fn
    from lstmkit.apps.forecast_backtest import rolling_origins

    base = {"horizon": 6, "units": 4, "epochs": 4, "patience": 50, "batch_size": 16,
            "ensemble": 3, "refit": True, "levels": (80,)}  # fmt: skip
    cfg = ForecastConfig(**(base | changes))
    panel = _steps_panel()
    held_out = fit_global(rolling_origins(panel, 6, 1)[0].train, cfg)  # 6 values fewer a series
    built = []
    real = fn.build_network
    monkeypatch.setattr(fn, "build_network", lambda *a: built.append(1) or real(*a))
    model = fit_global(panel, cfg, schedule=held_out.members)
    assert len(built) == networks
    for m, e in zip(model.members, held_out.members, strict=True):
        assert (m.best_epoch, m.correction, m.lookback, m.seed) == (
            e.best_epoch, e.correction, e.lookback, e.seed)  # fmt: skip
        assert m.model.optimizer.iterations == e.best_epoch * 13
    # a member whose scheduled counterpart has another lookback early-stops itself
    fit_global(panel, cfg.replace(lookbacks=(7,)), schedule=held_out.members)
    assert len(built) == networks + 2 + cfg.ensemble - 1  # member 0: fit + refit; the rest follow


@pytest.mark.parametrize(
    ("changes", "networks", "peers"),
    [
        # one lookback: member 0 early-stops (fit + refit), members 1 and 2 train once on
        # every window for member 0's best epoch count, with its conformal correction
        ({"lookbacks": (6,)}, 2 + 1 + 1, [None, 0, 0]),
        # two lookbacks: one early-stopped member each; 2 follows 0 and 3 follows 1
        ({"lookbacks": (6, 8), "ensemble": 4}, 2 + 2 + 1 + 1, [None, None, 0, 1]),
        # validate_members=3: every member early-stops itself (the schedule before)
        ({"lookbacks": (6,), "validate_members": 3}, 3 * 2, [None, None, None]),
        # no refit: a member needs its own validation fit
        ({"lookbacks": (6,), "refit": False}, 3, [None, None, None]),
        # more training windows (164) than refit_max_windows: no refit, so no reuse
        ({"lookbacks": (6,), "refit_max_windows": 100}, 3, [None, None, None]),
    ],
)  # fmt: skip
def test_members_reuse_the_schedule_of_an_early_stopped_peer(monkeypatch, changes, networks,
                                                             peers):  # fmt: skip
    """``validate_members``: a member whose lookback an earlier early-stopped member shares
    skips the early-stopped fit (networks built: 2 for a fit and its refit, 1 for a member that
    only trains on every window), takes that peer's best epoch count (its optimizer counts
    ``best * ceil(208 / 16)`` steps: every window of ``_steps_panel``) and conformal correction,
    and keeps its own seed (another forecast)."""
    from lstmkit.apps import forecast_network as fn

    built = []
    real = fn.build_network
    monkeypatch.setattr(fn, "build_network", lambda *a: built.append(1) or real(*a))
    base = {"horizon": 6, "units": 4, "epochs": 4, "patience": 50, "batch_size": 16,
            "ensemble": 3, "refit": True, "levels": (80,)}  # fmt: skip
    model = fit_global(_steps_panel(), ForecastConfig(**(base | changes)))
    assert len(built) == networks
    ms = model.members
    for m, p in zip(ms, peers):
        if p is None:
            continue
        assert (m.best_epoch, m.correction, m.lookback) == (
            ms[p].best_epoch, ms[p].correction, ms[p].lookback)  # fmt: skip
        assert m.model.optimizer.iterations == m.best_epoch * 13
        assert m.seed != ms[p].seed
        first = [next(iter(x.model.params.values())) for x in (m, ms[p])]  # the LSTM kernels
        assert first[0].shape == first[1].shape and not np.array_equal(*first)
