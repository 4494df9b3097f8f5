"""Reading a global forecaster file (written by ``GlobalForecaster.save``).

The header is read and bounded by :mod:`lstmkit._safetensors_np` (sizes against the file, JSON
size and depth); each member's architecture passes the same checks as any model file
(``check_model_spec`` and the weight shapes it implies) before it is built; the weights are
copied in only when every name and shape matches. Nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from .. import _meta
from .. import _safetensors_np as stnp
from .._modelfile import MAX_DEPTH, MAX_HEADER, functional_weights
from ..saving import ModelFileError, assign_params
from .forecast_config import LEVELS, ForecastConfig


def _json(source, meta, key):
    try:
        return json.loads(meta[key])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(
            f"{source}: header field {key!r} is missing or not JSON ({e})"
        ) from None


def _bool(v):
    return isinstance(v, bool)


def _count(lo):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _numbers(lo, hi):
    def ok(v):
        return isinstance(v, list) and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and lo <= x <= hi
            for x in v  # (NaN fails both comparisons, infinities the bounds given)
        )

    return ok


def _covariates(v):
    """``facts["past"]`` / ``["future"]``: names, their columns, means and (> 0) scales."""
    if not isinstance(v, dict) or not isinstance(v.get("names"), list):
        return False
    k = len(v["names"])
    parts = (v.get("cols"), v.get("mean"), v.get("std"))
    return (
        all(isinstance(s, str) for s in v["names"])
        and all(isinstance(p, list) and len(p) == k for p in parts)
        and all(_count(0)(c) for c in v["cols"])
        and _numbers(-math.inf, math.inf)(v["mean"])
        and all(math.isfinite(x) for x in v["mean"])
        and _numbers(0, math.inf)(v["std"])
        and all(0 < x < math.inf for x in v["std"])
    )


#: what ``GlobalForecaster.predict`` reads of ``facts``: (check, what is expected); the keys of
#: ``OPTIONAL_FACTS`` are absent from files written before them
FACTS = {
    "horizon": (_count(1), "an int >= 1"),
    "season": (_count(1), "an int >= 1"),
    "log": (_bool, "true or false"),
    "calendar": (_bool, "true or false"),
    "seasonal": (_bool, "true or false"),
    "level": (lambda v: v in LEVELS, f"one of {list(LEVELS)}"),
    "ids": (lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v), "a list of ids"),
    "quantiles": (_numbers(0, 1), "the quantiles of the file's config"),
    "past": (_covariates, "an object of names, cols, mean, std (> 0) of one length"),
    "future": (_covariates, "an object of names, cols, mean, std (> 0) of one length"),
}
OPTIONAL_FACTS = {
    "freq": (lambda v: v is None or isinstance(v, str), "a frequency alias or null"),
    "trend": (_bool, "true or false"),
    "profile_seasons": (_count(0), "an int >= 0"),
    "trend_choices": (_numbers(0, 1), "a list of numbers in [0, 1]"),
}


def _check_facts(source, facts, config):
    """Every field of ``facts`` that predict reads, checked (a file edited by hand)."""
    from .forecast_global import quantiles_of

    for key, (ok, expected) in {**FACTS, **OPTIONAL_FACTS}.items():
        if (key in FACTS or key in facts) and not ok(facts.get(key)):
            raise ModelFileError(
                f"{source}: header field 'facts' has {key!r} = {facts.get(key)!r}, expected "
                f"{expected}"
            )
    want = quantiles_of(config)
    if len(facts["quantiles"]) != len(want) or not np.allclose(facts["quantiles"], want):
        raise ModelFileError(
            f"{source}: header field 'facts' has 'quantiles' = {facts['quantiles']!r}, expected "
            f"those of its config's interval_levels {list(config.interval_levels)}"
        )


def _check_shapes(source, where, spec, facts):
    """A member's ``lookback`` and the facts' horizon against its network: the ``series``
    input's steps and the output's ``len(quantiles) * horizon`` units."""
    layers = {layer.get("name"): layer.get("config", {}) for layer in spec["model"]["layers"]}
    steps = (layers.get("series", {}).get("batch_shape") or [None, None])[1]
    if not _count(1)(spec.get("lookback")) or spec["lookback"] != steps:
        raise ModelFileError(
            f"{where}: 'lookback' = {spec.get('lookback')!r}, expected {steps!r}, the steps of "
            "its network's 'series' input"
        )
    out = spec["model"]["output_layers"][0][0]
    units, Q = layers.get(out, {}).get("units"), len(facts["quantiles"])
    if units != Q * facts["horizon"]:
        raise ModelFileError(
            f"{source}: header field 'facts' has 'horizon' = {facts['horizon']!r}, expected "
            f"{units} / {Q} (its network's {units} outputs: {Q} quantiles x horizon steps)"
        )


def read_forecaster(cls, path):
    from .forecast_global import FORMAT

    path = os.fspath(path)
    source = f"GlobalForecaster.load: {path!r}"
    if not os.path.isfile(path):
        raise ModelFileError(
            f"GlobalForecaster.load: argument 'path' must be an existing file; got {path!r}"
        )
    try:
        header = stnp.read_header(path, MAX_HEADER, MAX_DEPTH)
    except stnp.SafetensorsError as e:
        raise ModelFileError(f"{source} is corrupt or truncated: {e}") from None
    meta = header.metadata or {}
    if meta.get("format") != FORMAT:
        raise ModelFileError(
            f"{source}: not a global forecaster file (format {meta.get('format')!r}, expected {FORMAT!r})"
        )
    try:
        config = ForecastConfig.from_dict(_json(source, meta, "config"))
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{source}: invalid config: {e}") from None
    facts, specs = _json(source, meta, "facts"), _json(source, meta, "members")
    if not isinstance(specs, list) or not specs or not isinstance(facts, dict):
        raise ModelFileError(f"{source}: 'members' must be a non-empty list and 'facts' an object")
    _check_facts(source, facts, config)
    members = [_read_member(source, header, facts, i, spec) for i, spec in enumerate(specs)]
    return cls(config, facts, members)


def _read_member(source, header, facts, i, spec):
    """Member ``i`` of the file: its network (checked against the facts), weights and
    calibration."""
    from ..layers.base import skip_initializers
    from ..models import Model
    from .forecast_global import Member

    where = f"{source} member {i}"
    _meta.check_model_spec(where, {"class_name": "Functional", "config": spec.get("model")})
    shapes, _ = functional_weights(where, spec["model"])
    _check_shapes(source, where, spec, facts)
    names = {f"member{i}/{k}" for k in shapes}
    tensors = stnp.read_tensors(header, names & {e.name for e in header.entries})
    weights = {k.split("/", 1)[1]: v for k, v in tensors.items()}
    nbytes = sum(int(np.prod(s[0])) * 8 for s in shapes.values())
    with skip_initializers(max_bytes=nbytes):
        model = Model.from_config(spec["model"])
    assign_params(model.params, weights, source=where)
    corr = {str(k): list(map(float, v)) for k, v in (spec.get("correction") or {}).items()}
    zs = float(spec.get("z_scale", 1.0))  # files written before ``rescale``: 1
    if not (math.isfinite(zs) and zs > 0):
        raise ModelFileError(f"{where}: z_scale must be a number > 0; got {zs!r}")
    lookback, seed, best = int(spec["lookback"]), int(spec["seed"]), int(spec["best_epoch"])
    choices = spec.get("trend_choices")  # files before ``trend="hedge"``: None
    if choices is not None and (
        not isinstance(choices, list)
        or not all(isinstance(c, (int, float)) and 0 <= c <= 1 for c in choices)
    ):
        raise ModelFileError(f"{where}: trend_choices must be a list of numbers in [0, 1]")
    kind = spec.get("correction_kind", "shift")  # files before the scaled scores: shifts
    if kind not in ("scale", "shift"):
        raise ModelFileError(f"{where}: correction_kind must be 'scale' or 'shift'; got {kind!r}")
    return Member(model, lookback, seed, best, corr, zs, choices, kind)
