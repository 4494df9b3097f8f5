"""The conformal step of the global forecaster (``forecast_global``): the finite-sample rank,
scores scaled by the band, and the factor's reading in ``predict`` and in older files.

Witnesses: order statistics counted by hand; Gaussian noise of known scale per series, where
the band the factor must reach is the closed-form normal quantile and the coverage of fresh
draws has a binomial spread; a file rewritten with the ``safetensors`` library.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from lstmkit.apps.forecast_config import ForecastConfig
from lstmkit.apps.forecast_global import (
    GlobalForecaster,
    Member,
    _calibrate,
    conformal_quantile,
    corrected_bounds,
    fit_global,
    quantiles_of,
)
from lstmkit.apps.panel import Panel

LEVELS = (80, 95)


def test_conformal_quantile_is_the_hand_counted_order_statistic():
    rng = np.random.default_rng(0)
    s = rng.permutation(np.arange(1.0, 41.0))  # 40 scores 1..40
    # 80% of 40 points: rank ceil(41 * 0.8) = 33 -> the 33rd smallest
    assert conformal_quantile(s, 0.8, 40) == 33.0
    # 95% of 39 points (the first 39): rank ceil(40 * 0.95) = 38
    assert conformal_quantile(s[s <= 39], 0.95, 39) == 38.0
    # 120 pooled scores standing for 40 points: the share 33/40 of them, the 99th smallest
    assert conformal_quantile(np.arange(120.0, 0.0, -1.0), 0.8, 40) == 99.0
    # 4 points cannot give 95% (rank 5 > 4): the largest score
    assert conformal_quantile(np.array([3.0, -1.0, 7.0, 2.0]), 0.95, 4) == 7.0


class _Paths:
    """A stand-in network: its quantile paths are ``k`` times the true Gaussian quantiles of
    noise with scale ``sigma`` (the model input): the band has the right shape per window and
    the wrong width overall."""

    def __init__(self, k, H):
        self.k, self.H = k, H
        self.taus = quantiles_of(ForecastConfig(interval_levels=LEVELS))

    def predict(self, sigma, batch_size=None):
        z = norm.ppf(self.taus)  # (Q,) the median first
        return (self.k * sigma[:, None, None] * z[None, :, None] * np.ones(self.H)).reshape(
            len(sigma), -1
        )


def _noise_panel(rng, n_series, per_series, H):
    """Windows of ``n_series`` series (``per_series`` each) with noise scales 0.1 .. 10:
    ``(series (n,), sigma (n,), y (n, H))``."""
    sigmas = np.geomspace(0.1, 10.0, n_series)
    series = np.repeat(np.arange(n_series), per_series)
    sigma = sigmas[series]
    return series, sigma, sigma[:, None] * rng.standard_normal((len(series), H))


@pytest.mark.parametrize("k", [0.5, 2.0])
def test_scaled_scores_cover_every_series_at_the_level(k):
    """A band ``k`` times the true one, noise scales over two decades: the factor is ``1 / k``
    and fresh draws of the quietest and the loudest series are covered at the level. (A shift
    of every band by one number, the scores not scaled, covers the quiet series entirely and
    the loud ones far too little.)"""
    rng = np.random.default_rng(1)
    H, facts = 4, {"quantiles": quantiles_of(ForecastConfig(interval_levels=LEVELS)), "horizon": 4}
    model = _Paths(k, H)
    series, sigma, y = _noise_panel(rng, 40, 6, H)  # 240 windows, 960 calibration scores
    config = ForecastConfig(interval_levels=LEVELS)
    corr = _calibrate(model, facts, config, sigma, y, series)
    member = Member(None, 4, 0, 1, corr)
    test_series, test_sigma, test_y = _noise_panel(rng, 40, 500, H)
    out = model.predict(test_sigma).reshape(len(test_sigma), len(facts["quantiles"]), H)
    for a in LEVELS:
        c = np.asarray(corr[str(a)])
        assert c.shape == (H,) and np.all(c == c[0])
        # the factor that makes k * z_q the true quantile z_q; the sample quantile of 960
        # scores: within 4 standard errors of a quantile estimate
        se = math.sqrt(a / 100 * (1 - a / 100) / 960) / norm.pdf(norm.ppf(0.5 + a / 200))
        assert abs(c[0] * k * norm.ppf(0.5 + a / 200) - norm.ppf(0.5 + a / 200)) < 4 * se / 2
        lo, hi = corrected_bounds(facts, member, out, a)
        hit = (lo <= test_y) & (test_y <= hi)
        # the calibration's own error (960 scores) and the test draws' (2000 per series)
        bound = 4 * math.sqrt(a / 100 * (1 - a / 100) * (1 / 960 + 1 / 2000))
        for s in (0, 39):  # the quietest and the loudest series
            cover = hit[test_series == s].mean()
            assert abs(cover - a / 100) < bound, (a, s, cover)


def test_a_narrowing_factor_never_collapses_a_narrower_band():
    """Calibrated on a band three times too wide, the factor narrows it (about 1/3); carried to
    a network whose band is four times narrower (a refit, a follower), the band keeps that
    network's shape at a third of its width: never the bare point, as a shift computed on the
    wide band would make it."""
    rng = np.random.default_rng(2)
    H, facts = 4, {"quantiles": quantiles_of(ForecastConfig(interval_levels=LEVELS)), "horizon": 4}
    series, sigma, y = _noise_panel(rng, 20, 4, H)
    corr = _calibrate(
        _Paths(3.0, H), facts, ForecastConfig(interval_levels=LEVELS), sigma, y, series
    )
    narrow = _Paths(0.75, H).predict(sigma).reshape(len(sigma), -1, H)
    lo, hi = corrected_bounds(facts, Member(None, 4, 0, 1, corr), narrow, 80)
    width = 2 * 0.75 * norm.ppf(0.9) * sigma[:, None] * np.ones(H)
    np.testing.assert_allclose(hi - lo, corr["80"][0] * width, rtol=1e-12)
    assert 0.2 < corr["80"][0] < 0.5 and np.all(hi - lo > 0)


def test_the_rank_counts_distinct_targets_not_overlapping_windows():
    """K consecutive origins of a series hold K + H - 1 targets: 4 series x 4 windows x 4
    steps are 64 scores but 28 points, and 95% of 28 points is the 28th smallest of 28
    (rank ceil(29 * 0.95) = 28): the largest score, where 64 points would give the 62nd."""
    facts = {"quantiles": [0.5], "horizon": 4}  # no trained bounds: the factor is a width
    series = np.repeat(np.arange(4), 4)
    y = np.arange(64.0).reshape(16, 4) + 1  # the scores |y - 0| are 1..64

    class Zero:
        def predict(self, x, batch_size=None):
            return np.zeros((16, 4))

    corr = _calibrate(Zero(), facts, ForecastConfig(interval_levels=(95,), loss="mae"), None, y,
                      series)  # fmt: skip
    assert corr["95"] == [64.0] * 4
    corr = _calibrate(Zero(), facts, ForecastConfig(interval_levels=(95,), loss="mae"), None, y,
                      np.arange(16))  # 16 series of one window: 16 + 16 * 3 = 64 points  # fmt: skip
    assert corr["95"] == [62.0] * 4


def test_files_written_before_read_their_corrections_as_shifts(tmp_path):
    """A file without ``correction_kind`` (written before the scaled scores) moves each bound by
    its correction in network units, as it did; a new file keeps its factors."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(3)
    panel = Panel.from_arrays(list(50 + rng.normal(size=(8, 40))))
    cfg = ForecastConfig(units=8, epochs=2, ensemble=1, horizon=4, transform="none")
    model = fit_global(panel, cfg)
    path = tmp_path / "g.lstmkit"
    model.save(path)
    assert GlobalForecaster.load(path).members[0].correction_kind == "scale"
    with safe_open(path, "np") as f:
        meta = f.metadata()
    specs = json.loads(meta["members"])
    for spec in specs:
        del spec["correction_kind"]
    old = tmp_path / "old.lstmkit"
    save_file(load_file(path), old, metadata={**meta, "members": json.dumps(specs)})
    back = GlobalForecaster.load(old)
    assert back.members[0].correction_kind == "shift"
    point, iv = back.predict(panel, levels=(80,))
    m = model.members[0]
    out, stats = model._member_paths(m, panel, None)
    shifted = dataclasses.replace(m, correction_kind="shift")
    lo, _ = corrected_bounds(model.facts, shifted, out, 80)
    c = np.asarray(m.correction["80"])
    trained_lo = out[:, 1]  # the 10% path (quantiles: median, 10%, 90%, 2.5%, 97.5%)
    np.testing.assert_allclose(lo, np.minimum(trained_lo - c, out[:, 0]), rtol=0, atol=0)
    expect, _ = model.predict(panel)
    np.testing.assert_array_equal(point, expect)
    from lstmkit.apps import forecast_windows as fw
    from lstmkit.apps.forecast_global import _norm

    want = fw.decode(lo * m.z_scale, stats, _norm(model.facts))
    np.testing.assert_array_equal(iv[80][0], np.minimum(want, point))


def test_a_wider_level_never_sits_inside_a_narrower_one():
    """Each level has its own factor: 80% scaled by 3 (+-3) and 95% by 1 (+-1.5) would put the
    95% band inside the 80% one; the 95% band is then the 80% band, never narrower."""
    H = 2
    facts = {"quantiles": quantiles_of(ForecastConfig(interval_levels=LEVELS)), "horizon": H}
    # paths (1, Q, H): median 10, 80% band +-1, 95% band +-1.5 (quantiles 0.5, .1, .9, .025, .975)
    out = (10 + np.array([0.0, -1.0, 1.0, -1.5, 1.5])[None, :, None]) * np.ones((1, 1, H))
    member = Member(None, 4, 0, 1, {"80": [3.0] * H, "95": [1.0] * H})
    lo80, hi80 = corrected_bounds(facts, member, out, 80)
    lo95, hi95 = corrected_bounds(facts, member, out, 95)
    np.testing.assert_array_equal(lo80, [[7.0, 7.0]])
    np.testing.assert_array_equal(hi80, [[13.0, 13.0]])
    np.testing.assert_array_equal(lo95, lo80)
    np.testing.assert_array_equal(hi95, hi80)
    # the 95% band alone when it is the wider: factors 1 and 2
    member = Member(None, 4, 0, 1, {"80": [1.0] * H, "95": [2.0] * H})
    np.testing.assert_array_equal(corrected_bounds(facts, member, out, 95)[0], [[7.0, 7.0]])
