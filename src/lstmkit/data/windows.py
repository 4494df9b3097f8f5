"""Supervised windows from a series, a chronological split, and scalers fitted on training data.

The order a forecasting job uses them in::

    train, val, test = chronological_split(len(series))           # ranges on the raw series
    scaler = MinMaxScaler().fit(series[train])                     # statistics from train only
    scaled = scaler.transform(series)
    X, Y = make_windows(scaled[train], lookback, horizon)          # (n, lookback, F), (n, horizon)
    # validation windows may look back into train (inputs only, the targets are all in val):
    Xv, Yv = make_windows(scaled[val.start - lookback : val.stop], lookback, horizon)
    y_hat = scaler.inverse_transform(model_output, feature=0)     # back to the series' units

Window ``i`` (``n = N - lookback - horizon + 1`` of them)::

    X[i] = series[i : i + lookback]                                # (lookback, F)
    Y[i] = series[i + lookback : i + lookback + horizon, target]   # (horizon,)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["MinMaxScaler", "Split", "StandardScaler", "chronological_split", "make_windows"]


def _check_positive_int(value: object, arg: str, func: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{func}: argument {arg!r} got {value!r}, expected an integer >= 1")
    return int(value)


def _as_float_array(x: object, arg: str, func: str, ndims: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{func}: argument {arg!r} got dtype {a.dtype}, expected real numbers")
    if a.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{func}: argument {arg!r} got shape {a.shape}, expected {want}")
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{func}: argument {arg!r} got NaN or inf values, expected finite numbers")
    return a


def make_windows(
    series: np.ndarray, lookback: int, horizon: int, *, target: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``series`` into overlapping (input, target) windows, stride 1.

    Args:
        series: ``(N,)`` one series, or ``(N, F)`` with features in columns.
        lookback: input steps per window.
        horizon: steps to forecast after each window.
        target: the feature forecast in ``Y`` (default the first, i.e. the series itself).

    Returns:
        ``X (n, lookback, F)`` and ``Y (n, horizon)``, ``n = N - lookback - horizon + 1``, fresh
        contiguous arrays of the series' float dtype (float64 for integer input).
    """
    func = "make_windows"
    lookback = _check_positive_int(lookback, "lookback", func)
    horizon = _check_positive_int(horizon, "horizon", func)
    s = _as_float_array(series, "series", func, (1, 2))
    if s.ndim == 1:
        s = s[:, None]  # (N, 1)
    n_steps, n_features = s.shape
    is_int = isinstance(target, (int, np.integer)) and not isinstance(target, bool)
    if not is_int or not -n_features <= target < n_features:
        raise ValueError(
            f"{func}: argument 'target' got {target!r}, expected a feature index in "
            f"[0, {n_features}) for series of shape {np.shape(series)}"
        )
    n = n_steps - lookback - horizon + 1
    if n < 1:
        raise ValueError(
            f"{func}: argument 'series' is too short: got {n_steps} steps, expected at least "
            f"lookback + horizon = {lookback + horizon}"
        )
    # sliding_window_view puts the window axis last: (N - L + 1, F, L) -> (n, L, F)
    X = np.lib.stride_tricks.sliding_window_view(s[: n_steps - horizon], lookback, axis=0)
    X = np.ascontiguousarray(X.transpose(0, 2, 1))
    Y = np.lib.stride_tricks.sliding_window_view(s[lookback:, target], horizon)
    return X, np.ascontiguousarray(Y)


class Split(NamedTuple):
    """Three consecutive ``range``s on the raw series: ``series[split.train]`` etc."""

    train: range
    val: range
    test: range


def chronological_split(n: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Split:
    """Split positions ``0 .. n-1`` into consecutive train, validation and test ranges.

    Train comes first, then validation, then test, so nothing from the future leaks into training.
    The boundaries are ``round(n * f_train)`` and ``round(n * (f_train + f_val))``. A fraction may
    be 0 (that range is empty); every non-zero fraction gets at least one position.

    Split the raw series and fit scalers on ``series[split.train]`` only.
    """
    func = "chronological_split"
    n = _check_positive_int(n, "n", func)
    try:
        fr = [float(f) for f in fractions]
    except (TypeError, ValueError):
        fr = []
    if len(fr) != 3 or not all(math.isfinite(f) and f >= 0 for f in fr) or fr[0] == 0:
        raise ValueError(
            f"{func}: argument 'fractions' got {fractions!r}, expected three non-negative numbers "
            "(train, val, test) with train > 0"
        )
    if abs(sum(fr) - 1.0) > 1e-9:
        raise ValueError(f"{func}: argument 'fractions' got {fractions!r}, expected a sum of 1")
    b1 = round(n * fr[0])
    b2 = round(n * (fr[0] + fr[1]))
    b2 = n if fr[2] == 0 else b2
    sizes = (b1, b2 - b1, n - b2)
    if any(f > 0 and size == 0 for f, size in zip(fr, sizes)):
        raise ValueError(
            f"{func}: argument 'n' is too small for fractions {tuple(fr)}: got {n}, which leaves "
            f"sizes {sizes}; expected every non-zero fraction to get at least one position"
        )
    return Split(range(b1), range(b1, b2), range(b2, n))


class _Scaler:
    """Per-feature affine map ``z = (x - offset) / divisor + shift``, fitted along axis 0.

    Arrays of any shape ``(..., F)`` are transformed feature-wise on their last axis; a scaler
    fitted on a 1-D series has F = 1 and transforms arrays of any shape. ``feature=k`` applies
    feature k's map to a whole array, e.g. a model's forecasts of the target feature.
    """

    _stats: tuple[str, ...] = ()  # names of the fitted constructor arguments

    def _fitted(self) -> bool:
        return all(getattr(self, s) is not None for s in self._stats)

    def _set_stats(self, **stats) -> None:
        arrays = {}
        for name, value in stats.items():
            if value is None:
                arrays[name] = None
                continue
            a = np.asarray(value, dtype=np.float64).reshape(-1)
            if a.size == 0 or not np.all(np.isfinite(a)):
                raise ValueError(
                    f"{type(self).__name__}: argument {name!r} got {value!r}, expected a "
                    "non-empty list of finite numbers"
                )
            arrays[name] = a
        given = [a for a in arrays.values() if a is not None]
        if given and len(given) != len(arrays):
            raise ValueError(
                f"{type(self).__name__}: arguments {list(arrays)} must be given together; got "
                f"{[n for n, a in arrays.items() if a is None]} missing"
            )
        if len({a.size for a in given}) > 1:
            raise ValueError(
                f"{type(self).__name__}: arguments {list(arrays)} must have equal lengths; got "
                f"{[a.size for a in given]}"
            )
        for name, a in arrays.items():
            setattr(self, name, a)

    def _map(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # offset, divisor, shift
        raise NotImplementedError

    @property
    def n_features(self) -> int | None:
        return None if not self._fitted() else getattr(self, self._stats[0]).size

    def _apply(self, x, feature, func, inverse: bool) -> np.ndarray:
        name = type(self).__name__
        if not self._fitted():
            raise RuntimeError(f"{name}.{func}: the scaler is not fitted; call fit(train) first")
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{name}.{func}: argument 'x' got dtype {a.dtype}, expected numbers")
        a = a.astype(np.result_type(a.dtype, np.float32), copy=False)  # keep float32 as float32
        offset, divisor, shift = self._map()
        nf = offset.size
        if feature is not None:
            if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)):
                raise ValueError(f"{name}.{func}: argument 'feature' got {feature!r}, expected int")
            if not -nf <= feature < nf:
                raise ValueError(
                    f"{name}.{func}: argument 'feature' got {feature}, expected an index in "
                    f"[0, {nf})"
                )
            offset, divisor, shift = offset[feature], divisor[feature], shift[feature]
        elif nf > 1 and (a.ndim == 0 or a.shape[-1] != nf):
            raise ValueError(
                f"{name}.{func}: argument 'x' got shape {a.shape}, expected a last axis of "
                f"{nf} features (or pass feature=k)"
            )
        offset, divisor, shift = (np.asarray(v, dtype=a.dtype) for v in (offset, divisor, shift))
        if inverse:
            out = (a - shift) * divisor + offset
        else:
            out = (a - offset) / divisor + shift
        return out.reshape(a.shape)

    def _stats_of(self, x, func: str) -> np.ndarray:
        a = _as_float_array(x, "x", f"{type(self).__name__}.{func}", (1, 2))
        a = a.astype(np.float64)
        if a.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}.{func}: argument 'x' got no rows")
        return a.reshape(a.shape[0], -1)  # (N, F)

    def transform(self, x, *, feature: int | None = None) -> np.ndarray:
        return self._apply(x, feature, "transform", inverse=False)

    def inverse_transform(self, x, *, feature: int | None = None) -> np.ndarray:
        return self._apply(x, feature, "inverse_transform", inverse=True)

    def fit_transform(self, x) -> np.ndarray:
        return self.fit(x).transform(x)

    def get_config(self) -> dict:
        """Constructor arguments as plain floats and lists (JSON-able), fitted numbers included."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _as_list(a: np.ndarray | None) -> list[float] | None:
    return None if a is None else [float(v) for v in a]


class MinMaxScaler(_Scaler):
    """``z = (x - data_min) / (data_max - data_min) * (hi - lo) + lo`` per feature.

    A constant feature (``data_max == data_min``) gets a range of 1, so it maps to ``lo`` instead of
    dividing by zero (as scikit-learn does).
    """

    _stats = ("data_min", "data_max")

    def __init__(self, feature_range=(0.0, 1.0), data_min=None, data_max=None):
        try:
            lo, hi = (float(v) for v in feature_range)
        except (TypeError, ValueError):
            lo = hi = math.nan
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(
                f"MinMaxScaler: argument 'feature_range' got {feature_range!r}, expected (lo, hi) "
                "with lo < hi"
            )
        self.feature_range = (lo, hi)
        self._set_stats(data_min=data_min, data_max=data_max)
        if self._fitted() and np.any(self.data_max < self.data_min):
            raise ValueError("MinMaxScaler: arguments 'data_min' must not exceed 'data_max'")

    def fit(self, x) -> MinMaxScaler:
        """Learn per-feature min and max of ``x (N,)`` or ``(N, F)`` (pass training data only)."""
        a = self._stats_of(x, "fit")
        self._set_stats(data_min=a.min(axis=0), data_max=a.max(axis=0))
        return self

    def _map(self):
        lo, hi = self.feature_range
        span = self.data_max - self.data_min
        span = np.where(span == 0, 1.0, span)
        return self.data_min, span / (hi - lo), np.full_like(span, lo)

    def get_config(self) -> dict:
        return {
            "feature_range": list(self.feature_range),
            "data_min": _as_list(self.data_min),
            "data_max": _as_list(self.data_max),
        }


class StandardScaler(_Scaler):
    """``z = (x - mean) / scale`` per feature, ``scale`` the population standard deviation (ddof 0).

    A constant feature gets a scale of 1 (as scikit-learn does).
    """

    _stats = ("mean", "scale")

    def __init__(self, mean=None, scale=None):
        self._set_stats(mean=mean, scale=scale)
        if self._fitted() and np.any(self.scale <= 0):
            raise ValueError(f"StandardScaler: argument 'scale' got {scale!r}, expected values > 0")

    def fit(self, x) -> StandardScaler:
        """Learn per-feature mean and standard deviation (pass training data only)."""
        a = self._stats_of(x, "fit")
        std = a.std(axis=0)
        self._set_stats(mean=a.mean(axis=0), scale=np.where(std == 0, 1.0, std))
        return self

    def _map(self):
        return self.mean, self.scale, np.zeros_like(self.scale)

    def get_config(self) -> dict:
        return {"mean": _as_list(self.mean), "scale": _as_list(self.scale)}
