"""Windows of a panel and their per-window normalisation (ES-RNN spirit), encode and decode.

A window of series ``k`` at origin ``t`` reads the ``L`` values before ``t`` (positions
``t-L .. t-1``; positions before the series' start are left-padded with zeros and flagged by an
"observed" channel) and, in training, the ``H`` targets ``t .. t+H-1``. In the transformed units
``f`` (log or identity) each window is normalised by its own statistics:

- level ``l``: ``f`` of the last value (``level="last"``) or the mean of ``f`` over the last
  season (``"season"``); optionally (``trend``) a slope ``d`` per step, from the means of the
  last two seasons, continued as a line through the level; scale ``s``: 1 for log (differences of logs are already relative), the
  mean absolute value of the window for the identity;
- seasonal profile ``p`` (``seasonal``): from the last ``c >= 2`` whole seasons of the window,
  the mean over cycles of each cycle's deviation from its own mean, continued over the horizon;
- network units ``z = (f(y) - l - d k) / s - p`` (``k`` the position from the level's centre);
  a forecast ``z`` is decoded as ``f^-1(l + d k + s (z + p))``. A per-window damping ``phi``
  (``encode``'s ``phi``) bends the line after the last observed step: step ``h`` ahead of it
  gets ``d (phi + phi^2 + ... + phi^h)`` (``phi = 1``: the straight line; ``phi = 0``: the
  window has no trend at all, its slope is 0, as with ``trend`` off).

So the network sees the shape of the recent past whatever the series' level, and predicts a
deseasonalised, level-free path: Smyl's ES-RNN recipe with the window's own statistics instead of
fitted exponential smoothing.
"""

from __future__ import annotations

import numpy as np

#: smallest window scale for the identity transform (all-zero windows)
SCALE_FLOOR = 1e-8

#: phase of a time inside its season, by pandas frequency alias: the unit and how many units
#: one step is
_PHASE_UNITS = {"MS": ("M", 1), "M": ("M", 1), "QS": ("M", 3), "Q": ("M", 3),
                "D": ("D", 1), "h": ("h", 1), "W": ("W", 1)}  # fmt: skip


def series_phase0(panel, season) -> np.ndarray:
    """``(n,)`` int: the seasonal phase of each series' first value (0..season-1). From the
    dates when the panel has them (January = 0, Monday = 0 ...); 0 otherwise, i.e. series are
    then taken to start at the same phase."""
    n = panel.n_series
    if season < 2 or panel.times is None or panel.freq not in _PHASE_UNITS:
        return np.zeros(n, np.int64)
    unit, per = _PHASE_UNITS[panel.freq]
    first = panel.times[panel.offsets[:-1]].astype(f"datetime64[{unit}]").astype(np.int64)
    if unit == "D":
        first = first + 3  # 1970-01-01 was a Thursday: Monday = 0
    return (first // per) % season


def _gather(values, start, n, pos):
    """``values[start + pos]`` where ``0 <= pos < n`` else NaN; ``start, n (N,)``, ``pos (N, K)``."""
    ok = (pos >= 0) & (pos < n[:, None])
    idx = np.where(ok, start[:, None] + pos, 0)
    return np.where(ok, values[idx], np.nan)


def transform_values(v, log):
    return np.log(v) if log else v


def window_stats(xf, m, level, seasonal, trend=False):
    """Statistics of transformed windows ``xf (N, L)`` (NaN = padding): level ``(N,)``, slope
    ``(N,)`` (per step; 0 unless ``trend``: a bool, or ``(N,)`` bools, one per window) and the
    seasonal profile ``(N, m)`` indexed by
    ``(position - L) mod m`` (zeros when not used). The slope is the difference of the means of
    the last two whole seasons over ``m`` (0 when the window holds fewer); the profile is taken
    from the detrended window, so that a trend does not leak into it as a within-season ramp."""
    N, L = xf.shape
    obs = np.sum(~np.isnan(xf), axis=1)  # observed steps (the padding is on the left)
    span = max(m, 1) if level == "season" else 1
    tail = xf[:, L - span :]
    lvl = np.nanmean(tail, axis=1) if span > 1 else xf[:, -1]
    slope = np.zeros(N)
    want = np.broadcast_to(np.asarray(trend, bool), (N,))
    if want.any() and m >= 2 and L >= 2 * m:
        ok = (obs >= 2 * m) & want
        prev = xf[ok, L - 2 * m : L - m].mean(axis=1)
        slope[ok] = (xf[ok, L - m :].mean(axis=1) - prev) / m
    prof = np.zeros((N, max(m, 1)))
    if seasonal and m >= 2:
        xd = xf - slope[:, None] * np.arange(L)[None, :]  # detrended (a per-row shift is harmless)
        cycles = np.minimum(obs, L) // m  # whole seasons in each window
        for c in np.unique(cycles[cycles >= 2]):
            rows = np.flatnonzero(cycles == c)
            block = xd[rows, L - c * m :].reshape(len(rows), c, m)
            dev = block - block.mean(axis=2, keepdims=True)  # each cycle minus its own mean
            # column j is window step L - c*m + j, i.e. origin-relative position j - c*m,
            # whose phase (position mod m) is j: the profile is indexed by relative position
            prof[rows] = dev.mean(axis=1)  # (rows, m); sums to 0 over a season
    return lvl, slope, prof


def trend_at(slope, offsets, m, level, phi=None):
    """The trend line at window-relative positions ``offsets (K,)``: ``(N, K)``, 0 at the
    level's centre (position ``-(m+1)/2`` for the mean of the last season, -1 for the last
    value). ``phi (N,)`` damps it after the last observed step (position -1): position
    ``h >= 0`` is ``h + 1`` steps past it and gets ``phi + ... + phi^(h+1)`` slopes (None or 1:
    the straight line)."""
    centre = -(max(m, 1) + 1) / 2.0 if level == "season" else -1.0
    k = np.asarray(offsets, np.float64)[None, :]  # (1, K)
    steps = np.broadcast_to(k - centre, (len(slope), k.shape[1])).copy()
    if phi is not None:
        ph = np.asarray(phi, np.float64)[:, None]  # (N, 1)
        ahead = np.maximum(k + 1, 0)  # steps past the last observed one
        lin = np.isclose(ph, 1.0)
        damped = np.where(lin, ahead, ph * (1 - ph**ahead) / np.where(lin, 1.0, 1 - ph))
        steps = np.where(k >= 0, (-1 - centre) + damped, steps)
    return slope[:, None] * steps


def profile_at(prof, offsets):
    """Seasonal profile values at window-relative positions ``offsets (K,)`` (``-L..H-1``,
    0 = the origin): ``(N, K)``."""
    m = prof.shape[1]
    return prof[:, np.mod(offsets, m)]


def encode(values, start, n, origin, L, H, norm, phi=None):
    """Encode windows. ``values`` the flat raw series, ``start, n, origin (N,)`` the series'
    offsets, usable lengths and the windows' origins; ``norm`` a dict with ``log``, ``season``,
    ``level``, ``seasonal`` (and optionally ``trend``, ``profile_seasons``: the level, slope
    and profile then read the last ``profile_seasons`` seasons when that is longer than ``L``).
    ``phi (N,)``: each window's trend damping when ``trend`` is on (0 = no trend for that
    window; None = the straight line for all). Returns ``z (N, L)`` (0 at padding),
    ``observed (N, L)``, the targets ``zy (N, H)`` (NaN beyond ``n``) and the statistics
    ``(lvl, scale, prof, slope, phi)``."""
    m = norm["season"]
    # the statistics may read more seasons (``profile_seasons``) than the network sees (L)
    S = max(L, norm.get("profile_seasons", 0) * m) if m >= 2 else L
    pos = origin[:, None] + np.arange(-S, 0)[None, :]  # (N, S)
    xs = _gather(values, start, n, pos)
    trend = bool(norm.get("trend", False))
    if phi is not None:
        phi = np.asarray(phi, np.float64)
        trend = trend & (phi > 0)  # phi = 0: this window has no trend
    lvl, slope, prof = window_stats(
        transform_values(xs, norm["log"]), m, norm["level"], norm["seasonal"], trend
    )
    x = xs[:, S - L :]  # (N, L): the network's window
    observed = ~np.isnan(x)
    xf = transform_values(x, norm["log"])
    if norm["log"]:
        scale = np.ones(len(x))
    else:
        scale = np.maximum(np.nanmean(np.abs(x), axis=1), SCALE_FLOOR)
    prof = prof / scale[:, None]  # in network units, as decode reads it (``f = ... + s p``)
    past = np.arange(-L, 0)
    base = lvl[:, None] + trend_at(slope, past, m, norm["level"])
    z = (xf - base) / scale[:, None] - profile_at(prof, past)
    z = np.where(observed, z, 0.0)
    ypos = origin[:, None] + np.arange(H)[None, :]
    y = _gather(values, start, n, ypos)
    ybase = lvl[:, None] + trend_at(slope, np.arange(H), m, norm["level"], phi)
    zy = (transform_values(y, norm["log"]) - ybase) / scale[:, None]
    zy = zy - profile_at(prof, np.arange(H))
    return z, observed, zy, (lvl, scale, prof, slope, phi)


def decode(z, stats, norm):
    """Network units ``z (N, H)`` (or ``(N, Q, H)``) -> original units."""
    lvl, scale, prof, slope, phi = stats
    H = z.shape[-1]
    p = profile_at(prof, np.arange(H))
    base = lvl[:, None] + trend_at(slope, np.arange(H), norm["season"], norm["level"], phi)
    if z.ndim == 3:
        base, scale, p = base[:, None, :], scale[:, None], p[:, None, :]
    f = base + scale[..., None] * (z + p)
    return np.exp(np.minimum(f, 700.0)) if norm["log"] else f


def calendar(phase0, origin, L, H, season):
    """sin/cos of the seasonal phase: lookback ``(N, L, 2)`` and horizon ``(N, H, 2)``."""
    pos = np.arange(-L, H)[None, :] + origin[:, None] + phase0[:, None]  # (N, L+H)
    ang = 2 * np.pi * np.mod(pos, season) / season
    both = np.stack([np.sin(ang), np.cos(ang)], axis=-1)
    return both[:, :L], both[:, L:]


def covariates(cov, start, n_rows, origin, L, H, ahead=None):
    """Standardised covariates ``cov (N_rows, F)`` at the lookback ``(N, L, F)`` and horizon
    ``(N, H, F)`` positions (0 where absent). ``ahead (N, H, F)``: the horizon values when
    they lie beyond the series (prediction); else they are read from ``cov``."""
    F = cov.shape[1]
    pos = origin[:, None] + np.arange(-L, H)[None, :]
    ok = (pos >= 0) & (pos < n_rows[:, None])
    idx = np.where(ok, start[:, None] + pos, 0)
    got = np.where(ok[..., None], cov[idx], 0.0)  # (N, L+H, F)
    past, fut = got[:, :L], got[:, L:]
    if ahead is not None:
        fut = np.where(np.isnan(ahead), 0.0, ahead)
    return past.reshape(len(pos), L, F), fut.reshape(len(pos), H, F)
