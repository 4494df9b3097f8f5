"""The global forecaster: one LSTM trained on windows from every series of a panel.

Recipe (``fit_global``), for each ensemble member ``i`` (seed ``seed + i``, lookback
``lookbacks[i % len(lookbacks)]``):

1. windows of every series (``forecast_windows``): origins ``t`` with at least ``min_history``
   observed inputs; the last window of each series (targets = its last ``H`` values) is the
   validation set, the training windows' targets end before it. Shorter histories than the
   lookback are left-padded with zeros and an "observed" channel;
2. per-window normalisation: log (``transform``), level, seasonal profile (module
   ``forecast_windows``); inputs per step: the normalised value, "observed", the calendar
   phase (sin/cos), past and future-known covariates (standardised over the panel); the
   normalised values divided by one number per member (``rescale``: their RMS over its
   training windows);
3. network (functional API): ``series (L, C) -> LSTM(units) [x layers]``, concatenated with the
   horizon's future-known inputs (``ahead``: calendar and covariates of the ``H`` target steps)
   and a series-id ``Embedding``; ``Dense(units, relu) -> Dense(Q * H)``: ``Q`` quantile paths
   (median and the bounds of ``interval_levels``) over the whole horizon at once (MIMO);
4. Adam on the pinball loss (or MAE/MSE), epochs of at most ``epoch_windows`` random windows,
   early stopping on the validation windows (best weights kept); optionally ``refit`` on every
   window for the best epoch count (not when the first fit had more than
   ``refit_max_windows``; ``refit_epochs``: continue the first fit instead). With a refit from
   scratch, a member whose lookback an earlier early-stopped member shares skips the
   early-stopped fit and step 5: it trains on every window for that peer's best epoch count
   and takes its corrections (``validate_members``). ``fit_global(..., schedule=)`` makes
   each member such a follower of the same member of an earlier fit (``forecast train``'s
   held-out one);
5. conformal calibration (CQR, Romano et al. 2019, with scores scaled by the band) on the
   validation windows: each level's band is scaled about the median by one factor ``s``, the
   conformal quantile (``conformal_quantile``) of the factor each validation target needs,
   ``max((med - y) / (med - lo), (y - med) / (hi - med))``, pooled over the horizon steps; its
   rank counts the distinct held-out targets (``n + S (H - 1)`` for ``n`` windows of ``S``
   series: the windows of a series overlap). A factor, unlike a shift in network units, carries
   over to the refit network and to the followers, whose bands are narrower or wider than the
   calibrated network's (0.35-1.34 x on the tune windows); without trained bounds (``loss`` mae
   or mse) the band is the median +- ``s``.

Members are aggregated in the original units by the mean (or, with ``aggregate="median"``, the
median) of each quantile.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from . import forecast_windows as fw
from .forecast_config import ForecastConfig
from .forecast_network import (  # noqa: F401  (build_network, pinball_loss: public here too)
    _refit,
    _train,
    build_network,
    epoch_windows,
    patience_epochs,
    pinball_loss,
    refits,
)

#: validation windows wanted in all (``val_windows=0``): one per series for big panels, more
#: origins per series for small ones, so that early stopping does not follow one window's noise
VAL_TARGET = 32
FORMAT = "lstmkit-forecast-global"
#: seasons this long (monthly and finer) take ``seasonal_lookback_factors``
LONG_SEASON = 12


def quantiles_of(config) -> list[float]:
    """The quantile paths the network outputs: the median first, then each level's bounds."""
    if config.loss != "pinball":
        return [0.5]
    taus = [0.5]
    for a in config.interval_levels:
        taus += [0.5 - a / 200.0, 0.5 + a / 200.0]
    return taus


# -- what the data fix at fit time ----------------------------------------------------------------
def _check_panel(panel, who):
    if not np.isfinite(panel.values).all():
        k = (
            int(
                np.searchsorted(
                    panel.offsets, np.flatnonzero(~np.isfinite(panel.values))[0], "right"
                )
            )
            - 1
        )
        raise ValueError(
            f"{who}: series {str(panel.ids[k])!r} has NaN or Inf values; fill them first"
        )


def _where(panel, i) -> str:
    """Series and date (or position) of ``panel.values[i]``."""
    k = int(np.searchsorted(panel.offsets, i, "right")) - 1
    at = i - int(panel.offsets[k])
    when = f"value {at}" if panel.times is None else str(panel.times[i])[:19]
    return f"series {str(panel.ids[k])!r} at {when}"


def _check_positive(panel, who, why):
    """Logs need every value > 0: the first that is not, named."""
    bad = np.flatnonzero(~(panel.values > 0))
    if bad.size:
        raise ValueError(
            f"{who}: argument 'panel' got {float(panel.values[bad[0]])!r} in "
            f"{_where(panel, int(bad[0]))} ({bad.size} value(s) <= 0), expected values > 0: "
            f"{why}"
        )


def _facts(panel, config) -> dict:
    """Everything fixed by the training panel: horizon, season, transform, covariate scalers."""
    m = int(panel.season)
    H = int(config.horizon or (m if m > 1 else 6))
    log = config.transform == "log" or (
        config.transform == "auto" and bool(np.all(panel.values > 0))
    )
    if config.transform == "log":
        _check_positive(panel, "fit_global", "setting 'transform'='log' needs them; use 'auto'")
    if config.lookbacks:
        lookbacks = [int(v) for v in config.lookbacks]
    else:
        base = max(H, m)
        factors = config.lookback_factors
        if m >= LONG_SEASON and config.seasonal_lookback_factors:
            factors = config.seasonal_lookback_factors  # two seasons at least: see the config
        lookbacks = [max(2, round(f * base)) for f in factors]
    facts = {
        "horizon": H, "season": m, "freq": panel.freq, "log": log, "lookbacks": lookbacks,
        "level": config.level, "ids": [str(i) for i in panel.ids],
        "calendar": bool(config.calendar and m >= 2),
        "seasonal": config.seasonal == "on" or (config.seasonal == "auto" and m >= 2),
        "trend": config.trend == "on" or (config.trend in ("auto", "select", "hedge") and m >= 2),
        # trend="select": each series' damping, chosen among these on its own last windows
        # ("hedge": the odd members only; the even ones have no trend)
        "trend_choices": list(config.trend_choices) if config.trend in ("select", "hedge") else [],
        "profile_seasons": int(config.profile_seasons),
        "quantiles": quantiles_of(config),
    }  # fmt: skip
    for kind, names in (("past", config.past_covariates), ("future", config.future_covariates)):
        cov = getattr(panel, kind)
        have = getattr(panel, f"{kind}_names")
        missing = [c for c in names if c not in have]
        if missing:
            raise ValueError(
                f"fit_global: {kind} covariate(s) {missing} are not in the panel (it has {list(have)})"
            )
        cols = [list(have).index(c) for c in names]
        sub = cov[:, cols] if cols else np.zeros((len(panel.values), 0))
        facts[kind] = {"names": list(names), "cols": cols, **_scaler(kind, names, sub)}
    return facts


def _scaler(kind, names, sub) -> dict:
    """Mean and standard deviation (1 where 0) of each covariate column of ``sub``; a column
    whose squares overflow (|values| above about 1e154) is an error naming it (its deviation
    was inf: the covariate 0 in every window)."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, sd = sub.mean(axis=0), sub.std(axis=0) if len(sub) else np.ones(len(names))
    bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(sd)))
    if bad.size:
        j = int(bad[0])
        raise ValueError(
            f"fit_global: {kind} covariate {names[j]!r} has values up to "
            f"{np.abs(sub[:, j]).max():.3g}, too large to standardise (mean {mean[j]:.3g}, "
            f"standard deviation {sd[j]:.3g}); expected magnitudes below 1e150: rescale it"
        )
    return {"mean": mean.tolist(), "std": np.where(sd > 0, sd, 1.0).tolist()}


def _norm(facts):
    return {"log": facts["log"], "season": facts["season"], "level": facts["level"],
            "seasonal": facts["seasonal"], "trend": facts.get("trend", False),
            "profile_seasons": facts.get("profile_seasons", 0)}  # fmt: skip


def trend_phi(panel, facts, L):
    """``(n_series,)`` trend damping of each series (``trend="select"``), or None: the choice
    among ``facts["trend_choices"]`` (0 = no trend ... 1 = the straight line) whose zero network
    output decodes best (mean absolute error in the transformed units) over the series' last
    ``H`` origins whose targets it holds. The first of equal choices wins (a series too short for
    a slope scores the same with every choice). It reads only the panel it gets, so a fit and a
    prediction on the same panel choose alike, and nothing after the series' end."""
    choices = facts.get("trend_choices") or []
    if not facts.get("trend") or not choices:
        return None
    H, k = facts["horizon"], panel.n_series
    series = np.repeat(np.arange(k), H)
    origin = np.repeat(panel.lengths, H) - H - np.tile(np.arange(H), k)  # (k H,)
    ok = origin >= 1
    series, origin = series[ok], origin[ok]
    start, n = panel.offsets[:-1][series], panel.lengths[series]
    err = np.zeros((len(choices), k))
    for i, c in enumerate(choices):
        _, _, zy, (_, scale, *_) = fw.encode(panel.values, start, n, origin, L, H, _norm(facts),
                                             np.full(len(series), float(c)))  # fmt: skip
        e = np.nanmean(np.abs(zy) * scale[:, None], axis=1)  # (windows,)
        sums = np.bincount(series, weights=np.nan_to_num(e), minlength=k)
        err[i] = sums / np.maximum(np.bincount(series, minlength=k), 1)
    best = np.argmin(np.round(err, 12), axis=0)  # rounding: exact ties go to the first choice
    return np.asarray(choices, np.float64)[best]


def _encode(panel, facts, series, origin, L, phi=None):
    """``fw.encode`` of windows (series ``series (N,)``, origins ``origin (N,)``) with each
    series' trend damping ``phi (n_series,)`` (``trend_phi`` of the same panel, facts and
    lookback, computed once by the caller: it encodes every series' last windows; None = no
    choice)."""
    start, n = panel.offsets[:-1][series], panel.lengths[series]
    phi = None if phi is None else phi[series]
    return fw.encode(panel.values, start, n, origin, L, facts["horizon"], _norm(facts), phi)


def _cov(panel, facts, kind):
    """Standardised covariate columns ``(N_rows, F)`` (F may be 0)."""
    spec = facts[kind]
    if not spec["cols"]:
        return np.zeros((len(panel.values), 0))
    return (getattr(panel, kind)[:, spec["cols"]] - spec["mean"]) / spec["std"]


# -- network inputs ---------------------------------------------------------------------------------
def _inputs(panel, facts, series, origin, L, ahead=None, id_index=None, zs=1.0, phi=None):
    """Network inputs of windows (series ``series (N,)``, origins ``origin (N,)``) and their
    normalisation (``phi``: each series' trend damping, see ``_encode``), the values divided by
    the member's scale ``zs``. Returns ``(inputs dict, zy (N, H), stats)``."""
    H, m = facts["horizon"], facts["season"]
    start, n = panel.offsets[:-1][series], panel.lengths[series]
    z, observed, zy, stats = _encode(panel, facts, series, origin, L, phi)
    z, zy = z / zs, zy / zs  # one scale per member: network values of order 1
    steps, fut = [z[..., None], observed[..., None].astype(np.float64)], []
    if facts.get("trend"):
        # the removed slope (per season, in scale units) as a constant channel: the network can
        # learn how much of the window's trend to keep
        _, scale, _, slope, _ = stats
        steps.append(np.broadcast_to((slope * max(m, 1) / scale)[:, None, None], z.shape + (1,)))
    if facts["calendar"]:
        phase0 = fw.series_phase0(panel, m)[series]
        c_past, c_fut = fw.calendar(phase0, origin, L, H, m)
        steps.append(c_past)
        fut.append(c_fut)
    past = _cov(panel, facts, "past")
    if past.shape[1]:
        steps.append(fw.covariates(past, start, n, origin, L, H)[0])
    future = _cov(panel, facts, "future")
    if future.shape[1]:
        spec = facts["future"]
        if ahead is not None:
            ahead = (ahead[series][:, :H][..., spec["cols"]] - spec["mean"]) / spec["std"]
        f_past, f_fut = fw.covariates(future, start, n, origin, L, H, ahead)
        steps.append(f_past)
        fut.append(f_fut)
    x = {"series": np.concatenate(steps, axis=-1)}
    if fut:
        x["ahead"] = np.concatenate(fut, axis=-1).reshape(len(origin), -1)
    if id_index is not None:
        x["id"] = id_index[series][:, None].astype(np.float64)
    return x, zy, stats


# -- training -------------------------------------------------------------------------------------
@dataclass
class Member:
    """One trained network: its lookback, seed, best epoch and conformal corrections
    (``level -> (H,)``): with ``correction_kind`` "scale" (fits since the scaled scores) the
    factor each half of the band is multiplied by about the median; "shift" (files written
    before) a shift of each bound in network units."""

    model: object
    lookback: int
    seed: int
    best_epoch: int
    correction: dict
    z_scale: float = 1.0
    trend_choices: list | None = None  # this member's (``trend="hedge"``); None: the facts'
    correction_kind: str = "scale"


def val_windows(config, panel, H) -> int:
    """Validation origins per series: ``config.val_windows``, or (0) enough for about
    ``VAL_TARGET`` windows in all, from 1 (large panels) to ``H`` (one series), but no more than
    leave the longest series one training window (at least one origin): three years of monthly
    values then train (24 + 10 - 1 + 3 = 36) instead of failing for want of 37. A panel with
    room for them all gets exactly those it got before."""
    if config.val_windows:
        return int(config.val_windows)
    want = min(H, max(1, math.ceil(VAL_TARGET / panel.n_series)))
    room = int(panel.lengths.max()) - 2 * H - config.min_history + 1
    return int(max(1, min(want, room)))


def _origins(panel, facts, config, refit):
    """Training and validation windows as ``(series, origin)`` arrays: the last ``K`` origins of
    each series validate (the last one's targets are its last ``H`` values); the training
    windows' targets end before the first validation target (``refit``: every origin trains)."""
    H, lo = facts["horizon"], config.min_history
    K = val_windows(config, panel, H)
    n = panel.lengths
    last_train = n - H if refit else n - 2 * H - K + 1  # last training origin of each series
    count = np.maximum(last_train - lo + 1, 0)
    series = np.repeat(np.arange(panel.n_series), count)
    first = np.repeat(np.cumsum(count) - count, count)
    origin = lo + np.arange(count.sum()) - first
    vs = np.repeat(np.arange(panel.n_series), K)
    vo = np.repeat(n - H, K) - np.tile(np.arange(K), panel.n_series)
    keep = vo >= lo
    return (series, origin), (vs[keep], vo[keep])


def _tile(zy, Q, dtype):
    return np.tile(zy, (1, Q)).astype(dtype)


def member_facts(facts, member):
    """The facts a member reads: the panel's, with the member's own trend choices if any."""
    if member.trend_choices is None:
        return facts
    return {**facts, "trend_choices": list(member.trend_choices)}


def _member_choices(config, facts, index):
    """``trend="hedge"``: the even members have no trend (the one choice 0), the odd ones
    choose among ``trend_choices``; None otherwise (every member reads the facts')."""
    if config.trend != "hedge" or not facts["trend"]:
        return None
    return [0.0] if index % 2 == 0 else list(facts["trend_choices"])


def _no_window(panel, facts, config):
    """The error when no series is long enough for a training window (``_origins``)."""
    H, K, lo = facts["horizon"], val_windows(config, panel, facts["horizon"]), config.min_history
    m = facts["season"]
    default = f" (its default: the season, {m} steps)" if m > 1 else " (its default: 6)"
    raise ValueError(
        f"fit_global: no training window: every series is shorter than {2 * H + K - 1 + lo} "
        f"values (2 * horizon {H} + {K} validation origin(s) - 1 + min_history {lo}); the "
        f"longest has {int(panel.lengths.max())}; expected a shorter 'horizon'{default} or "
        "longer series"
    )


def _fit_member(panel, facts, config, index, deadline, id_index, distribute=None, peers=()):
    """Member ``index``: early-stopped on the validation windows, calibrated on them, then
    (``refit``) trained again on every window for its best epoch count. With ``peers`` (earlier
    early-stopped members of the same lookback and trend group, see ``_peers``) and a refit from
    scratch due, the first fit is skipped: the member trains on every window for the peers'
    (median) best epoch count and takes their conformal correction."""
    seed, (L, choices) = config.seed + index, member_group(config, facts, index)
    if choices is not None:
        facts = {**facts, "trend_choices": choices}
    Q = len(facts["quantiles"])
    (ts, to), (vs, vo) = _origins(panel, facts, config, refit=False)
    if len(ts) == 0:
        _no_window(panel, facts, config)
    phi = trend_phi(panel, facts, L)  # once per member: the same for all its windows
    zs = _z_scale(panel, facts, config, L, ts, to, phi)
    refit = refits(config, len(ts))
    if peers and refit and not config.refit_epochs:
        best = int(np.median([m.best_epoch for m in peers]))
        model = _train_on_all(panel, facts, config, L, seed, best, zs, phi, id_index, distribute)
        return Member(model, L, seed, best, _mean_correction(peers), zs, choices,
                      peers[0].correction_kind)  # fmt: skip
    x, zy, _ = _inputs(panel, facts, ts, to, L, id_index=id_index, zs=zs, phi=phi)
    xv, zyv, _ = _inputs(panel, facts, vs, vo, L, id_index=id_index, zs=zs, phi=phi)
    val = (xv, _tile(zyv, Q, config.dtype)) if len(vs) else None
    y = _tile(zy, Q, config.dtype)
    model, best = _train(facts, config, x, y, val, seed, config.epochs, deadline, True, distribute)
    correction = _calibrate(model, facts, config, xv, zyv, vs) if len(vs) else {}
    if refit:  # _refit: a fresh network, or (refit_epochs) the early-stopped one continued
        model = _train_on_all(panel, facts, config, L, seed, best, zs, phi, id_index,
                              distribute, model)  # fmt: skip
    return Member(model, L, seed, best, correction, zs, choices)


def _train_on_all(panel, facts, config, L, seed, epochs, zs, phi, id_index, distribute,
                  model=None):  # fmt: skip
    """``_refit`` on every window (validation ones included) for ``epochs``: a fresh network,
    or with ``refit_epochs`` the early-stopped ``model`` continued."""
    (rs, ro), _ = _origins(panel, facts, config, refit=True)
    xr, zyr, _ = _inputs(panel, facts, rs, ro, L, id_index=id_index, zs=zs, phi=phi)
    y = _tile(zyr, len(facts["quantiles"]), config.dtype)
    return _refit(facts, config, model, xr, y, seed, epochs, distribute)


def _mean_correction(peers) -> dict:
    """The peers' conformal corrections (``level -> (H,)``, network units), averaged."""
    levels = peers[0].correction.keys()
    return {a: np.mean([m.correction[a] for m in peers], axis=0).tolist() for a in levels}


def member_group(config, facts, index):
    """Member ``index``'s ``(lookback, trend choices)`` (choices None: the facts'); the members
    of one group share an early-stopped peer's schedule (``peer_indices``)."""
    lookbacks = facts["lookbacks"]
    return lookbacks[index % len(lookbacks)], _member_choices(config, facts, index)


def peer_indices(config, facts, stopped, index) -> list[int]:
    """The members of ``stopped`` (indices of early-stopped members) whose schedule member
    ``index`` reuses (``_fit_member``): none among the first ``validate_members``; else those of
    its group (``member_group``). Empty: the member early-stops itself."""
    if index < config.validate_members:
        return []
    group = member_group(config, facts, index)
    return [j for j in stopped if member_group(config, facts, j) == group]


def _peers(config, facts, members, stopped, index) -> list:
    """The trained members of ``peer_indices``."""
    return [members[j] for j in peer_indices(config, facts, stopped, index)]


def _scheduled(facts, config, schedule, index) -> list:
    """``[schedule[index]]`` when that earlier member has member ``index``'s lookback and trend
    group (the same settings give the same ones); else empty."""
    if not schedule or index >= len(schedule) or index < config.validate_members:
        return []
    peer = schedule[index]
    same = (peer.lookback, peer.trend_choices) == member_group(config, facts, index)
    return [peer] if same else []


def train_ids(panel, config):
    """The id inputs of the training windows: series ``k`` is id ``k + 1`` (0: an unknown
    series at prediction); None without an embedding."""
    return np.arange(1, panel.n_series + 1) if config.embedding else None


def _quantile_paths(model, facts, x):
    """Network output ``(N, Q, H)`` in network units, quantiles sorted (no crossing)."""
    out = np.asarray(model.predict(x, batch_size=1024), np.float64)
    out = out.reshape(len(out), len(facts["quantiles"]), facts["horizon"])
    order = np.argsort(facts["quantiles"])
    out[:, order] = np.sort(out[:, order], axis=1)
    return out


def conformal_quantile(scores, level: float, n: int) -> float:
    """The split-conformal quantile of ``scores`` (any shape, pooled) for coverage ``level`` in
    (0, 1) when they stand for ``n`` exchangeable points: the ``ceil((n + 1) level)``-th
    smallest of ``n`` scores, read as the score at the quantile ``ceil((n + 1) level) / n``
    (inverted CDF: an order statistic, no interpolation); the largest score when that rank
    exceeds ``n`` (too few points for the level)."""
    s = np.sort(np.asarray(scores, np.float64).ravel())
    k = math.ceil((n + 1) * level - 1e-9)  # the rank (1e-9: a product one ulp too high)
    if k >= n:
        return float(s[-1])
    # the smallest score with at least the share k / n of the scores at or below it
    return float(s[max(math.ceil(k / n * len(s) - 1e-9), 1) - 1])


def _calibrate(model, facts, config, xv, zyv, series):
    """Conformal factors per interval level on the validation windows (inputs ``xv``, targets
    ``zyv (n, H)`` of series ``series (n,)``, consecutive origins per series): ``level -> (H,)``
    (one factor, repeated: the trained quantiles carry the growth over the horizon)."""
    if not config.conformal:
        return {}
    out = _quantile_paths(model, facts, xv)
    n, H = zyv.shape
    distinct = n + len(np.unique(series)) * (H - 1)  # a series' K windows hold K + H - 1 targets
    corr = {}
    for a in config.interval_levels:
        below, above = _half_widths(facts, out, a)
        med = out[:, 0]
        need = np.maximum((med - zyv) / below, (zyv - med) / above)  # (n, H) the factor y needs
        corr[str(a)] = [conformal_quantile(need, a / 100.0, distinct)] * H
    return corr


def _half_widths(facts, out, a):
    """The band's halves ``(med - lo, hi - med)``, each ``(N, H)``, that the factor scales:
    ones without trained bounds for level ``a`` (the factor is then the half-width itself); a
    floor of a thousandth of the mean width keeps a bound that meets the median usable."""
    med = out[:, 0]
    if not _trained(facts, a):
        return np.ones_like(med), np.ones_like(med)
    lo, hi = _bounds(facts, out, a)
    floor = max(1e-3 * float(np.mean(hi - lo)), 1e-12)
    return np.maximum(med - lo, floor), np.maximum(hi - med, floor)


def corrected_bounds(facts, member, out, a):
    """Member ``member``'s conformal bounds ``(lo, hi)``, each ``(N, H)`` in network units, of
    level ``a`` from its quantile paths ``out (N, Q, H)``: never across the median, and never
    inside the band of a lower level of the member's (each level has its own factor: a 95%
    band scaled less than the 80% one could otherwise cross it)."""
    lo, hi = _level_bounds(facts, member, out, float(a))
    for b in member.correction:
        if float(b) < float(a):
            lo_b, hi_b = _level_bounds(facts, member, out, float(b))
            lo, hi = np.minimum(lo, lo_b), np.maximum(hi, hi_b)
    return lo, hi


def _level_bounds(facts, member, out, a: float):
    """``corrected_bounds`` of level ``a`` alone."""
    med, lo, hi = out[:, 0], *_bounds(facts, out, a)
    key = [b for b in member.correction if float(b) == a]  # "80" for 80, "80.0" for 80.0
    if not key:  # conformal off: the trained bounds as they are
        return np.minimum(lo, med), np.maximum(hi, med)
    c = np.asarray(member.correction[key[0]], np.float64)  # (H,)
    if member.correction_kind == "shift":  # files written before the scaled scores
        return np.minimum(lo - c, med), np.maximum(hi + c, med)
    below, above = _half_widths(facts, out, a)
    return med - c * below, med + c * above


def _lower_index(facts, a):
    """The output index of level ``a``'s lower quantile (the upper one follows), or None."""
    lo_tau = 0.5 - a / 200.0
    hits = [i for i, t in enumerate(facts["quantiles"]) if abs(t - lo_tau) < 1e-12]
    return hits[0] if hits else None


def _trained(facts, a) -> bool:
    return _lower_index(facts, a) is not None


def _bounds(facts, out, a):
    """The lower and upper paths ``(N, H)`` of level ``a``: the trained quantiles when there are
    any, else the median (the conformal correction then makes the whole width)."""
    i = _lower_index(facts, a)
    return (out[:, 0], out[:, 0]) if i is None else (out[:, i], out[:, i + 1])


def fit_global(
    panel, config: ForecastConfig | None = None, progress=None, distribute=None, schedule=None
) -> GlobalForecaster:
    """Train the global forecaster on every series of ``panel`` (all of it is training data;
    the last ``horizon`` values of each series validate). ``progress(message)`` hears one line per
    member. Deterministic for a given ``config.seed``. ``distribute``: a
    ``lstmkit.distributed.RayStrategy`` that trains each member data-parallel.

    ``schedule``: the members of an earlier fit with the same settings on a shorter panel (the
    held-out fit of ``forecast train``). Member ``i`` then takes ``schedule[i]``'s best epoch
    count and conformal correction as from a peer (``_fit_member``): when a refit from scratch
    is due, it trains once on every window for that many epochs instead of early-stopping again.
    A member without a scheduled peer of its lookback and trend group early-stops as usual."""
    config = (config or ForecastConfig()).validate()
    _check_panel(panel, "fit_global")
    facts = _facts(panel, config)
    id_index = train_ids(panel, config)
    t0 = time.monotonic()
    deadline = t0 + 60 * config.max_minutes if config.max_minutes else None
    members, stopped = [], []  # stopped: the members that early-stopped themselves
    for i in range(config.ensemble):
        if members and deadline is not None and time.monotonic() > deadline:
            break  # the budget is spent: keep the members trained so far
        peers = _scheduled(facts, config, schedule, i) or _peers(config, facts, members, stopped, i)
        members.append(_fit_member(panel, facts, config, i, deadline, id_index, distribute, peers))
        if not peers:
            stopped.append(i)
        if progress:
            m = members[-1]
            progress(f"member {i + 1}/{config.ensemble}: lookback {m.lookback}, seed {m.seed}, "
                     f"best epoch {m.best_epoch}, {time.monotonic() - t0:.1f} s")  # fmt: skip
    return GlobalForecaster(config, facts, members)


def _z_scale(panel, facts, config, L, ts, to, phi=None) -> float:
    """The RMS of the normalised targets over (at most 20000 of) a member's training windows
    ``(ts, to)``: log deviations of smooth series are a few hundredths, and a network fed values
    that small may never leave its constant first solution. 1 when ``rescale`` is off."""
    if not config.rescale or len(ts) == 0:
        return 1.0
    pick = np.unique(np.linspace(0, len(ts) - 1, min(len(ts), 20000)).astype(np.int64))
    zy = _encode(panel, facts, ts[pick], to[pick], L, phi)[2]
    rms = float(np.sqrt(np.nanmean(zy**2))) if np.isfinite(zy).any() else 1.0
    return rms if math.isfinite(rms) and rms > 1e-6 else 1.0


# -- the fitted forecaster -------------------------------------------------------------------------
def trimmed_mean(paths, axis=0):
    """The mean over ``axis`` without the highest and the lowest value (from three values on;
    fewer: the plain mean): a member far off the others moves it by nothing."""
    paths = np.asarray(paths)
    if paths.shape[axis] < 3:
        return np.mean(paths, axis=axis)
    return np.mean(
        np.take(np.sort(paths, axis=axis), range(1, paths.shape[axis] - 1), axis=axis), axis=axis
    )


class GlobalForecaster:
    """A fitted global forecaster: ``predict`` the ``horizon`` values after each series' end."""

    def __init__(self, config, facts, members):
        self.config, self.facts, self.members = config, facts, members

    @property
    def horizon(self) -> int:
        return self.facts["horizon"]

    def as_trained(self, panel):
        """``panel`` as this model's reader saw such data. Before 2026-12-07 dates written with
        a time of day ("2020-01-01 00:00:00") were read as seconds, and whole days between them
        as hours: a file of such a model says ``freq`` "24h" (or "168h", ...) where the reader
        now says "D" ("W", ...). Its dates as seconds and its frequency in hours then give what
        it was trained on (future dates, seasonal phase); any other panel is returned as is."""
        freq = self.facts.get("freq")
        if not (isinstance(freq, str) and freq[:-1].isdigit() and freq.endswith("h")):
            return panel
        hours = int(freq[:-1])
        if hours % 24 or panel.times is None or panel.freq == freq:
            return panel
        from .panel_time import Frequency, alias_of

        if panel.freq != alias_of(Frequency("D", hours // 24)):
            return panel
        return dataclasses.replace(panel, times=panel.times.astype("datetime64[s]"), freq=freq)

    def _check_predict(self, panel, horizon, levels):
        H = self.horizon
        if horizon is None:
            horizon = H
        if (
            isinstance(horizon, bool)
            or not isinstance(horizon, (int, np.integer))
            or not 1 <= horizon <= H
        ):
            raise ValueError(
                f"predict: argument 'horizon' must be an int in 1..{H} (the trained horizon); got {horizon!r}"
            )
        have = [float(a) for a in self.config.interval_levels]
        bad = [a for a in levels if float(a) not in have]
        if bad:
            raise ValueError(
                f"predict: argument 'levels' got {list(levels)}; {bad} not trained: the model has interval_levels {self.config.interval_levels}"
            )
        _check_panel(panel, "predict")
        freq = self.facts.get("freq", panel.freq)  # (files without it: not checked)
        if panel.freq != freq:  # the seasonal phase, level and future dates assume freq
            raise ValueError(
                f"predict: argument 'panel' has frequency {panel.freq!r}, expected the model's "
                f"{freq!r} (None: integer steps or row order); train a model on this data"
            )
        if self.facts["log"]:
            _check_positive(panel, "predict", "the model was trained on logs (every value > 0)")
        if self.facts["future"]["cols"]:
            self._check_ahead(panel)
        return int(horizon)

    def _check_ahead(self, panel):
        H, spec = self.horizon, self.facts["future"]
        ahead = panel.future_ahead
        if ahead is None or ahead.shape[1] < H or np.isnan(ahead[:, :H][..., spec["cols"]]).any():
            raise ValueError(
                f"predict: the future covariates {spec['names']} must be known for the {H} steps after each series' end (panel.future_ahead)"
            )

    def _id_index(self, panel):
        if not self.config.embedding:
            return None
        known = {s: i + 1 for i, s in enumerate(self.facts["ids"])}
        return np.asarray([known.get(str(s), 0) for s in panel.ids])  # 0: an unseen series

    def _member_paths(self, member, panel, ids):
        series = np.arange(panel.n_series)
        origin = panel.lengths.astype(np.int64)
        facts, L = member_facts(self.facts, member), member.lookback
        x, _, stats = _inputs(
            panel, facts, series, origin, L, panel.future_ahead, ids, member.z_scale,
            trend_phi(panel, facts, L),
        )  # fmt: skip
        out = _quantile_paths(member.model, self.facts, x)
        return out, stats

    def predict(self, panel, horizon=None, levels=()):
        """Forecasts of the ``horizon`` steps after each series' end: ``point (n, horizon)``
        and ``{level: (lo (n, horizon), hi (n, horizon))}`` for each of ``levels``."""
        panel = self.as_trained(panel)
        horizon = self._check_predict(panel, horizon, levels)
        ids, norm = self._id_index(panel), _norm(self.facts)
        points, bounds = [], {a: ([], []) for a in levels}
        for member in self.members:
            out, stats = self._member_paths(member, panel, ids)
            zs = member.z_scale
            points.append(fw.decode(out[:, 0] * zs, stats, norm))
            for a in levels:
                lo, hi = corrected_bounds(self.facts, member, out, a)
                bounds[a][0].append(fw.decode(lo * zs, stats, norm))
                bounds[a][1].append(fw.decode(hi * zs, stats, norm))
        point = self._aggregate(points)[:, :horizon]
        result = {}
        for a in levels:
            lo = np.minimum(self._aggregate(bounds[a][0])[:, :horizon], point)
            hi = np.maximum(self._aggregate(bounds[a][1])[:, :horizon], point)
            result[a] = (lo, hi)
        return point, result

    def _aggregate(self, paths):
        """The members' ``paths`` (each ``(n, H)``) -> ``(n, H)``: their mean (or median); with
        ``trend="hedge"`` that of each normalisation's members, then the mean of the two (an
        equal-weight combination of the forecasts with and without the trend)."""
        agg = {"median": np.median, "mean": np.mean, "trimmed": trimmed_mean}[self.config.aggregate]
        groups = {}
        for m, p in zip(self.members, paths):
            key = None if m.trend_choices is None else tuple(m.trend_choices)
            groups.setdefault(key, []).append(p)
        return np.mean([agg(np.stack(g), axis=0) for g in groups.values()], axis=0)

    # -- files ------------------------------------------------------------------------------------
    def save(self, path):
        """One safetensors file, written atomically: JSON header (config, facts, each member's
        architecture and corrections), tensors ``member<i>/<layer>.<role>``. Never pickled."""
        from .._atomic import atomic_write
        from ..saving import _check_finite

        try:
            from safetensors.numpy import save_file
        except ImportError:
            from .._safetensors_np import save_file
        tensors = {}
        members = []
        for i, m in enumerate(self.members):
            tensors.update(
                {f"member{i}/{k}": np.ascontiguousarray(v) for k, v in m.model.params.items()}
            )
            members.append({"model": m.model.get_config(), "lookback": m.lookback, "seed": m.seed,
                            "best_epoch": m.best_epoch, "correction": m.correction,
                            "z_scale": m.z_scale, "trend_choices": m.trend_choices,
                            "correction_kind": m.correction_kind})  # fmt: skip
        meta = {"format": FORMAT, "format_version": "1",
                "config": json.dumps(self.config.to_dict()), "facts": json.dumps(self.facts),
                "members": json.dumps(members)}  # fmt: skip
        _check_finite({f"weights/{k}": v for k, v in tensors.items()}, os.fspath(path))
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(cls, path) -> GlobalForecaster:
        """Read a file written by :meth:`save` (every member's weights checked by name and
        shape; nothing unpickled)."""
        from .forecast_global_file import read_forecaster

        return read_forecaster(cls, path)
