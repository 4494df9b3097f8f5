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
from .forecast_config import ForecastConfig


def _json(source, meta, key):
    try:
        return json.loads(meta[key])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(
            f"{source}: header field {key!r} is missing or not JSON ({e})"
        ) from None


def read_forecaster(cls, path):
    from ..layers.base import skip_initializers
    from ..models import Model
    from .forecast_global import FORMAT, Member

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
    members = []
    for i, spec in enumerate(specs):
        where = f"{source} member {i}"
        _meta.check_model_spec(where, {"class_name": "Functional", "config": spec.get("model")})
        shapes, _ = functional_weights(where, spec["model"])
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
            raise ModelFileError(
                f"{where}: correction_kind must be 'scale' or 'shift'; got {kind!r}"
            )
        members.append(Member(model, lookback, seed, best, corr, zs, choices, kind))
    return cls(config, facts, members)
