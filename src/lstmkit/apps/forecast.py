"""Forecasting, the main job: train an LSTM forecaster on one series, forecast, backtest.

The recipe (``train_forecaster``):

1. split the raw series chronologically: train | validation | test (70/15/15 by default);
2. apply the variance-stabilising ``transform`` (``none``, ``sqrt``, ``log``; ``auto`` trains one
   model per transform the data allow and keeps the one with the lowest *validation* RMSE);
3. fit a standard scaler on the training part only, scale the whole series with it;
4. cut windows of ``lookback`` inputs -> ``horizon`` targets (direct multi-step output); a window
   belongs to the part its *first target* lies in, so its inputs may reach back into the part
   before it (they are observed history) but no target is ever seen twice;
5. per-window normalisation (``normalize``): each window is shifted and divided by the mean
   ``mu`` and standard deviation ``sd`` of its last ``span`` inputs (``sd`` floored at
   ``WINDOW_FLOOR`` training-part standard deviations); the network predicts the targets in those
   units and the forecast is ``mu + sd * output``. ``span`` is the last cycle (``season`` inputs)
   for ``normalize="cycle"`` (the default; the whole window when there is no season) and the
   whole window for ``"window"``; ``"none"`` switches it off. The network then sees the *shape*
   of the recent cycles whatever their level and amplitude, so a cycle larger than any in the
   training part is not an input it has never seen (without it the sunspot test part, whose
   cycles are among the largest on record, comes out worse than the naive forecast). It is the
   per-instance normalisation of RevIN (Kim et al., "Reversible Instance Normalization for
   Accurate Time-Series Forecasting against Distribution Shift", ICLR 2022) without the learned
   affine part;
6. ``LSTM(units) -> Dense(horizon)``, Adam, MSE, early stopping on validation loss with the best
   weights restored;
7. score the test windows (rolling origins) in the original units: MAE, RMSE and MASE, side by
   side with the naive and seasonal-naive forecasts from the same origins. MASE divides by the
   in-sample (training part) MAE of the seasonal-naive one-step forecast (Hyndman & Koehler 2006).

The saved model carries everything ``forecast`` needs in ``model.metadata``: lookback, horizon,
season, transform, normalisation span, the scaler and the column names.

How ``DEMO_SETTINGS`` were chosen, without the test part (1963-2008 for sunspots): each candidate
was trained with seeds 0, 1, 2 and scored by the mean of (a) its validation RMSE and (b) the RMSE
on the last 15% of the same recipe run on the series cut where validation starts (1700-1915), so
two blocks of pre-test data vote. Candidates: normalisation cycle / window, transform none / sqrt,
batch 16 / 32, units 32 / 64. Lowest: cycle, none, 16, 32 (24.7; the others 25.0-35.5). The
lookback stays 24 (two cycles) rather than tuned: the same criterion gives 24.1, 24.6, 26.4 and
34.9 for lookbacks 12, 24, 33 and 44. Window normalisation itself came from a diagnosis, not
from a search: without it the networks forecast the validation part well (RMSE 22-34 against 33.0
for the seasonal-naive forecast) but flattened out on every test window, whose inputs hold the
1957 maximum, 1.2 times anything in the training part, where the tanh units saturate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import random as _random
from .._meta import check_app_metadata
from ..callbacks import EarlyStopping, TerminateOnNaN
from ..data import (
    SEASON_WINDOW,
    StandardScaler,
    chronological_split,
    detect_season,
    mae,
    mase,
    naive_forecast,
    rmse,
    seasonal_naive_forecast,
)
from ..layers import LSTM, Dense
from ..models import Sequential
from ..optimizers import Adam

TRANSFORMS = ("none", "sqrt", "log")
NORMALIZE = ("cycle", "window", "none")
#: window standard deviations are floored at this many training-part standard deviations, so a
#: nearly flat window does not blow its small wiggles up to unit size
WINDOW_FLOOR = 0.1

#: ``lstmkit forecast train`` trains on at most this many of the most recent rows (``--max-rows``):
#: the network's input grows with the rows (``rows * lookback`` float32) and so does an epoch;
#: 100000 rows are 11 years of hourly data, 270 years of daily data
DEFAULT_MAX_ROWS = 100_000

#: What ``lstmkit forecast demo`` (and ``make demo``) trains: lookback 24 covers two 11-year
#: sunspot cycles and the transform is chosen on the validation part. Normalisation span, batch
#: size and units were chosen once, on data before the test part only (module docstring).
DEMO_SETTINGS = {
    "lookback": 24,
    "horizon": 12,
    "transform": "auto",
    "normalize": "cycle",
    "units": 32,
    "learning_rate": 3e-3,
    "patience": 30,
    "epochs": 300,
    "batch_size": 16,
    "seed": 0,
}


@dataclass
class ForecastReport:
    """What training measured: the test part table (original units) and the validation RMSE
    of every transform tried (``selection``)."""

    model: Sequential
    table: dict  # method -> {"MAE":..., "RMSE":..., "MASE":...}
    season: int
    transform: str
    n_train: int
    n_val: int
    n_test: int
    test_windows: int
    epochs_run: int
    best_epoch: int  # 1-based epoch whose weights were kept
    val_rmse: float
    selection: dict = field(default_factory=dict)  # transform -> validation RMSE
    history: dict = field(default_factory=dict)
    season_rows: int = 0  # how many of the last training values the season was detected on

    def format_table(self) -> str:
        lines = [f"{'method':<22}{'MAE':>10}{'RMSE':>10}{'MASE':>10}"]
        for name, row in self.table.items():
            lines.append(f"{name:<22}{row['MAE']:>10.3f}{row['RMSE']:>10.3f}{row['MASE']:>10.3f}")
        return "\n".join(lines)


# -- transforms ---------------------------------------------------------------------------------
def _check_domain(values, transform, func, arg):
    """The transform must be defined on every value: sqrt needs >= 0, log needs > 0."""
    bad = {"sqrt": values < 0, "log": values <= 0}.get(transform)
    if bad is not None and bad.any():
        first = int(np.flatnonzero(bad)[0])
        need = ">= 0" if transform == "sqrt" else "> 0"
        raise ValueError(
            f"{func}: transform {transform!r} needs values {need}; argument {arg!r} has "
            f"{int(bad.sum())} value(s) that are not, the first {values[first]!r} at position "
            f"{first}; use transform='none'"
        )


def _forward_transform(values, transform):
    if transform == "sqrt":
        return np.sqrt(values)
    if transform == "log":
        return np.log(values)
    return values


def _inverse_transform(z, transform):
    if transform == "sqrt":
        return np.square(np.maximum(z, 0.0))  # the data were >= 0, so is the forecast
    if transform == "log":
        return np.exp(z)
    return z


def allowed_transforms(values) -> list[str]:
    """The transforms ``auto`` tries: ``none`` always, ``sqrt`` for data >= 0, ``log`` for > 0."""
    lo = float(np.min(values))
    return ["none"] + (["sqrt"] if lo >= 0 else []) + (["log"] if lo > 0 else [])


# -- model input and output ---------------------------------------------------------------------
def _encode(meta, windows):
    """Original-unit windows ``(n, L)`` -> network input ``(n, L, 1)`` float32 and the
    per-window ``(mu, sd)`` (each ``(n, 1)``) that ``_decode`` undoes."""
    sc = StandardScaler.from_config(meta["scaler"])
    z = sc.transform(_forward_transform(np.asarray(windows, np.float64), meta["transform"]))
    span = meta.get("norm_span", 0)
    if span:
        tail = z[:, -span:]  # (n, span) the inputs the statistics come from
        mu = tail.mean(axis=1, keepdims=True)  # (n, 1)
        sd = np.maximum(tail.std(axis=1, keepdims=True), meta["window_floor"])
    else:
        mu, sd = np.zeros((len(z), 1)), np.ones((len(z), 1))
    return ((z - mu) / sd)[..., None].astype(np.float32), mu, sd


def _encode_targets(meta, Y, mu, sd):
    """Targets ``(n, horizon)`` in the units the network predicts: the inverse of ``_decode``
    (same transform, scaler and window statistics as the inputs)."""
    sc = StandardScaler.from_config(meta["scaler"])
    z = sc.transform(_forward_transform(np.asarray(Y, np.float64), meta["transform"]))
    return ((z - mu) / sd).astype(np.float32)


def _decode(meta, out, mu, sd):
    """Network output ``(n, horizon)`` -> forecasts in the original units."""
    sc = StandardScaler.from_config(meta["scaler"])
    z = sc.inverse_transform(np.asarray(out, np.float64) * sd + mu)
    return _inverse_transform(z, meta["transform"])


def _norm_span(normalize, season, lookback):
    """How many of the last inputs the window statistics use (0: no window normalisation)."""
    if normalize == "none":
        return 0
    if normalize == "cycle" and season >= 2:
        return min(season, lookback)
    return lookback


def build_model(lookback, horizon, units=32, dropout=0.0, dtype="float32"):
    model = Sequential(name="forecaster", dtype=dtype)
    model.add(LSTM(units, dropout=dropout, input_shape=(lookback, 1)))
    model.add(Dense(horizon))
    return model


# -- training -----------------------------------------------------------------------------------
def _origins(start, stop, lookback, horizon):
    """Forecast origins ``t`` (first target index) in ``[max(start, lookback), stop - horizon]``."""
    return range(max(start, lookback), stop - horizon + 1)


def _windows(values, origins, lookback, horizon):
    """Inputs ``values[t - L : t]`` ``(n, L)`` and targets ``values[t : t + H]`` ``(n, H)`` of
    the origins ``t``: for a ``range`` of origins, strided views of ``values`` (no copy, so the
    memory of a long series' windows is the series'); for any other list, fresh rows."""
    X = np.lib.stride_tricks.sliding_window_view(values, lookback)  # X[s] = values[s : s + L]
    Y = np.lib.stride_tricks.sliding_window_view(values, horizon)
    if isinstance(origins, range) and origins.step == 1:
        first, stop = origins.start, origins.stop
        return X[first - lookback : stop - lookback], Y[first:stop]
    t = np.asarray(list(origins), dtype=np.int64)
    return X[t - lookback], Y[t]


def _fit_one(
    values,
    meta,
    origins,
    *,
    units,
    dropout,
    epochs,
    batch_size,
    patience,
    learning_rate,
    seed,
    verbose,
    callbacks,
):
    """Train one network for the preprocessing in ``meta``; returns ``(model, history,
    validation RMSE in original units, best epoch (1-based))``."""
    L, Hz = meta["lookback"], meta["horizon"]
    enc = {}
    for part in ("train", "val"):
        X, Y = _windows(values, origins[part], L, Hz)
        x, mu, sd = _encode(meta, X)
        enc[part] = (x, _encode_targets(meta, Y, mu, sd), X, Y)
    _random.set_random_seed(seed)
    model = build_model(L, Hz, units, dropout)
    model.compile(optimizer=Adam(learning_rate, clipnorm=1.0), loss="mse", seed=seed)
    stop = EarlyStopping(monitor="val_loss", patience=int(patience), restore_best_weights=True)
    nan = TerminateOnNaN(raise_error=True, check_weights=True)  # diverged: one line, no save
    history = model.fit(
        enc["train"][0],
        enc["train"][1],
        epochs=epochs,
        batch_size=batch_size,
        validation_data=enc["val"][:2],
        callbacks=[stop, nan, *callbacks],
        verbose=verbose,
    )
    model.metadata = dict(meta)
    val_rmse = rmse(enc["val"][3], forecast_many(model, enc["val"][2]))
    return model, history, val_rmse, stop.best_epoch + 1


def train_forecaster(
    values,
    *,
    lookback=24,
    horizon=12,
    season=None,
    transform="auto",
    normalize="cycle",
    units=32,
    dropout=0.0,
    epochs=300,
    batch_size=16,
    patience=30,
    learning_rate=3e-3,
    fractions=(0.7, 0.15, 0.15),
    seed=0,
    verbose=0,
    column="y",
    time_column=None,
    callbacks=(),
) -> ForecastReport:
    """Train a forecaster on ``values (N,)`` following the recipe in the module docstring.

    ``transform="auto"`` trains one model per transform in ``allowed_transforms(values)`` (same
    seed) and keeps the lowest validation RMSE; the test part is never used for a choice.
    ``callbacks`` are added to every ``fit`` (after the early stopping).

    Memory: the windows are strided views of ``values``; what grows with N is the network's
    input, ``N * lookback`` float32 values (and float64 while it is encoded). For a very long
    series pass its most recent part (``lstmkit forecast train`` keeps ``--max-rows``).
    """
    values = _checked_values(
        values, transform, normalize,
        lookback=lookback, horizon=horizon, units=units, epochs=epochs,
        batch_size=batch_size, patience=patience,
    )  # fmt: skip
    split = _split_for(values, lookback, horizon, fractions)
    train_part = values[split.train]
    season_given = season is not None
    season = _season_for(train_part, season)
    origins = {
        "train": _origins(0, split.train.stop, lookback, horizon),
        "val": _origins(split.val.start, split.val.stop, lookback, horizon),
        "test": _origins(split.test.start, len(values), lookback, horizon),
    }
    base_meta = {
        "app": "forecast",
        "lookback": int(lookback),
        "horizon": int(horizon),
        "season": int(season),
        "column": column,
        "time_column": time_column,
        "normalize": normalize,
        "norm_span": _norm_span(normalize, int(season), int(lookback)),
        "window_floor": WINDOW_FLOOR,
    }
    fit_args = {
        "units": units, "dropout": dropout, "epochs": epochs, "batch_size": batch_size,
        "patience": patience, "learning_rate": learning_rate, "seed": seed, "verbose": verbose,
        "callbacks": list(callbacks),
    }  # fmt: skip
    candidates = allowed_transforms(values) if transform == "auto" else [transform]
    (model, history, val_rmse, best_epoch), selection = _best_transform(
        values, train_part, candidates, base_meta, origins, fit_args
    )
    table = score_origins(model, values, origins["test"], season, insample=train_part)
    return ForecastReport(
        model=model,
        table=table,
        season=int(season),
        transform=model.metadata["transform"],
        n_train=len(split.train),
        n_val=len(split.val),
        n_test=len(split.test),
        test_windows=len(origins["test"]),
        epochs_run=len(history.history.get("loss", [])),
        best_epoch=int(best_epoch),
        val_rmse=float(val_rmse),
        selection=selection,
        history=history.history,
        season_rows=0 if season_given else min(len(train_part), SEASON_WINDOW),
    )


# -- train_forecaster's steps ----------------------------------------------------------------------

_FUNC = "train_forecaster"


def _checked_values(values, transform, normalize, **positive_ints) -> np.ndarray:
    """``values`` as a finite 1-D float64 array, once every scalar setting is checked."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{_FUNC}: argument 'values' must be 1-D; got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{_FUNC}: argument 'values' has NaN or Inf; fill the gaps first")
    for arg, v in positive_ints.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{_FUNC}: argument '{arg}' must be a positive int; got {v!r}")
    if transform not in (*TRANSFORMS, "auto"):
        raise ValueError(
            f"{_FUNC}: argument 'transform' got {transform!r}, expected one of "
            f"{[*TRANSFORMS, 'auto']}"
        )
    if transform != "auto":
        _check_domain(values, transform, _FUNC, "values")
    if normalize not in NORMALIZE:
        raise ValueError(
            f"{_FUNC}: argument 'normalize' got {normalize!r}, expected one of {list(NORMALIZE)}"
        )
    return values


def _split_for(values, lookback, horizon, fractions):
    """The chronological train / validation / test split, or an error saying how many rows
    ``lookback + horizon`` needs."""
    n_needed = lookback + horizon
    chronological_split(10**6, fractions)  # bad fractions: its own error, whatever the length
    if min(fractions) <= 0:
        raise ValueError(
            f"{_FUNC}: argument 'fractions' got {fractions!r}, expected three fractions > 0: "
            "early stopping needs a validation part and the scores a test part"
        )
    try:
        split = chronological_split(len(values), fractions)
        sizes = (len(split.train), len(split.val), len(split.test))
    except ValueError:
        sizes = (0, 0, 0)  # too short to split at all: report it like any other short series
    if sizes[0] < n_needed or sizes[1] < horizon or sizes[2] < horizon:
        # the fewest rows that give every part what it needs (approximately: split rounds)
        enough = max(n_needed / fractions[0], *(horizon / f for f in fractions[1:] if f > 0))
        raise ValueError(
            f"{_FUNC}: the series has too few rows: got {len(values)}, which splits into "
            f"{sizes[0]} / {sizes[1]} / {sizes[2]} (train / validation / test); "
            f"lookback={lookback} + horizon={horizon} needs at least {n_needed} rows in the "
            f"training part and {horizon} in each of validation and test, i.e. about "
            f"{int(np.ceil(enough))} rows; use a shorter lookback or horizon or a longer series"
        )
    return split


def _season_for(train_part, season) -> int:
    """``season``, checked, or the one detected in the training part (None)."""
    if season is None:
        # at most the last SEASON_WINDOW values of the training part are read (O(W log W))
        season = detect_season(train_part)
    elif isinstance(season, bool) or not isinstance(season, (int, np.integer)) or season < 1:
        raise ValueError(
            f"{_FUNC}: argument 'season' must be a positive int or None; got {season!r}"
        )
    if season >= len(train_part):
        raise ValueError(
            f"{_FUNC}: argument 'season' got {season}, expected fewer than the "
            f"{len(train_part)} rows of the training part"
        )
    return season


def _best_transform(values, train_part, candidates, base_meta, origins, fit_args):
    """One model per candidate transform (same seed); the one with the lowest validation RMSE,
    and every candidate's RMSE. The test part is never used for the choice."""
    selection, best = {}, None
    for name in candidates:
        # the scaler is fitted on the training part only, after the transform
        scaler = StandardScaler().fit(_forward_transform(train_part, name))
        meta = {**base_meta, "transform": name, "scaler": scaler.get_config()}
        fitted = _fit_one(values, meta, origins, **fit_args)
        selection[name] = fitted[2]
        if best is None or fitted[2] < best[2]:
            best = fitted
    return best, selection


# -- forecasting and scoring --------------------------------------------------------------------


def forecaster_meta(model) -> dict:
    """A copy of a forecaster's ``metadata`` with defaults for keys older files lack; an error
    for any other model."""
    meta = dict(model.metadata or {})
    if meta.get("app") != "forecast":
        raise ValueError(
            "forecast: argument 'model' is not a forecaster (its metadata has no app='forecast'); "
            "train one with train_forecaster or `lstmkit forecast train`"
        )
    check_app_metadata(meta, f"forecast: model {model.name!r}")  # types and ranges
    meta.setdefault("transform", "none")  # files written before transforms existed
    meta.setdefault("norm_span", 0)
    return meta


def forecast(model, history) -> np.ndarray:
    """Forecast the ``horizon`` values that follow ``history`` (original units)."""
    lookback = forecaster_meta(model)["lookback"]
    history = np.asarray(history, dtype=np.float64)
    if history.ndim != 1 or len(history) < lookback:
        raise ValueError(
            f"forecast: argument 'history' must be 1-D with at least lookback={lookback} values; "
            f"got shape {history.shape}"
        )
    if not np.isfinite(history[-lookback:]).all():
        raise ValueError("forecast: argument 'history' has NaN or Inf in its last lookback values")
    return forecast_many(model, history[None, -lookback:])[0]


def forecast_many(model, windows) -> np.ndarray:
    """``windows (n, lookback)`` in original units -> forecasts ``(n, horizon)``."""
    meta = forecaster_meta(model)
    windows = np.asarray(windows, np.float64)
    _check_domain(windows, meta["transform"], "forecast", "history")
    x, mu, sd = _encode(meta, windows)
    return _decode(meta, model.predict(x, batch_size=256), mu, sd)


def score_origins(model, values, origins, season, insample):
    """MAE/RMSE/MASE of the model and both naive baselines over forecast origins (original
    units). Origin ``t`` forecasts ``values[t : t + horizon]`` from ``values[:t]``."""
    meta = forecaster_meta(model)
    L, Hz = meta["lookback"], meta["horizon"]
    origins = origins if isinstance(origins, range) else list(origins)
    X, truth = _windows(values, origins, L, Hz)
    # the baselines read only the history they use (the last value, the last season): passing
    # values[:t] would check the whole past again for every origin (quadratic in the length)
    preds = {
        "lstm": forecast_many(model, X),
        "naive": np.stack([naive_forecast(values[t - 1 : t], Hz) for t in origins]),
        f"seasonal_naive(m={season})": np.stack(
            [seasonal_naive_forecast(values[max(0, t - season) : t], Hz, season) for t in origins]
        ),
    }
    return {
        name: {
            "MAE": mae(truth, p),
            "RMSE": rmse(truth, p),
            "MASE": mase(truth.ravel(), p.ravel(), insample, season),
        }
        for name, p in preds.items()
    }


def backtest(model, values):
    """Hold out the last ``horizon`` values, forecast them from the rest, score against the
    naive baselines (MASE scaled by the seasonal differences of everything before the holdout).
    Returns ``(table, forecast, actual)``."""
    meta = forecaster_meta(model)
    Hz, L, m = meta["horizon"], meta["lookback"], meta["season"]
    values = np.asarray(values, np.float64)
    need = max(L, m + 1) + Hz
    if values.ndim != 1 or len(values) < need:
        raise ValueError(
            f"backtest: argument 'values' has too few rows: got {len(values)}, expected at least "
            f"max(lookback={L}, season={m} + 1) + horizon={Hz} = {need}"
        )
    t = len(values) - Hz
    table = score_origins(model, values, [t], m, insample=values[:t])
    return table, forecast(model, values[:t]), values[t:]
