"""Forecasting, the main job: train an LSTM forecaster on one series, forecast, backtest.

The recipe (``train_forecaster``):

1. split the raw series chronologically: train | validation | test (70/15/15 by default);
2. apply the variance-stabilising ``transform`` (``none``, ``sqrt``, ``log``; ``auto`` trains one
   model per transform the data allow and keeps the one with the lowest *validation* RMSE);
3. fit a standard scaler on the training part only, scale the whole series with it;
4. cut windows of ``lookback`` inputs -> ``horizon`` targets (direct multi-step output); a window
   belongs to the part its *first target* lies in, so its inputs may reach back into the part
   before it (they are observed history) but no target is ever seen twice;
5. window normalisation (on by default): each window is shifted and divided by its own inputs'
   mean ``mu`` and standard deviation ``sd`` (floored at ``WINDOW_FLOOR`` training-part standard
   deviations), the network predicts the targets in those units and the forecast is
   ``mu + sd * output``. The network then sees the *shape* of the recent cycles whatever their
   level and amplitude, so a cycle larger than any in the training part is not an input it has
   never seen (without it the sunspot test part, whose cycles are the largest on record, comes out
   worse than the naive forecast). It is the per-instance normalisation of RevIN (Kim et al.,
   "Reversible Instance Normalization for Accurate Time-Series Forecasting against
   Distribution Shift", ICLR 2022) without the learned affine part;
6. ``LSTM(units) -> Dense(horizon)``, Adam, MSE, early stopping on validation loss with the best
   weights restored;
7. score the test windows (rolling origins) in the original units: MAE, RMSE and MASE, side by
   side with the naive and seasonal-naive forecasts from the same origins. MASE divides by the
   in-sample (training part) MAE of the seasonal-naive one-step forecast (Hyndman & Koehler 2006).

The saved model carries everything ``forecast`` needs in ``model.metadata``: lookback, horizon,
season, transform, window normalisation, the scaler and the column names.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from .. import random as _random
from ..callbacks import EarlyStopping
from ..data import (
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

TRANSFORMS = ("none", "sqrt", "log")
#: window standard deviations are floored at this many training-part standard deviations, so a
#: nearly flat window does not blow its small wiggles up to unit size
WINDOW_FLOOR = 0.1

#: What ``lstmkit forecast demo`` (and ``make demo``) trains on the built-in sunspots: lookback 24
#: covers two 11-year cycles, the transform is chosen on the validation part. How these were
#: chosen (on validation RMSE only) is in ``docs/forecasting.md`` and the examples.
DEMO_SETTINGS = {
    "lookback": 24,
    "horizon": 12,
    "transform": "auto",
    "window_norm": True,
    "units": 32,
    "learning_rate": 3e-3,
    "patience": 30,
    "epochs": 300,
    "batch_size": 32,
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
    val_rmse: float
    selection: dict = field(default_factory=dict)  # transform -> validation RMSE
    history: dict = field(default_factory=dict)

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
    if meta.get("window_norm", False):
        mu = z.mean(axis=1, keepdims=True)  # (n, 1)
        sd = np.maximum(z.std(axis=1, keepdims=True), meta["window_floor"])
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


def build_model(lookback, horizon, units=32, dropout=0.0, dtype="float32"):
    model = Sequential(name="forecaster", dtype=dtype)
    model.add(LSTM(units, dropout=dropout, input_shape=(lookback, 1)))
    model.add(Dense(horizon))
    return model


# -- training -----------------------------------------------------------------------------------
def _origins(start, stop, lookback, horizon):
    """Forecast origins ``t`` (first target index) in ``[max(start, lookback), stop - horizon]``."""
    return list(range(max(start, lookback), stop - horizon + 1))


def _windows(values, origins, lookback, horizon):
    X = np.stack([values[t - lookback : t] for t in origins])  # (n, L)
    Y = np.stack([values[t : t + horizon] for t in origins])  # (n, horizon)
    return X, Y


def _fit_one(
    values,
    split,
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
):
    """Train one network for the preprocessing in ``meta``; returns (model, history, val RMSE)."""
    L, Hz = meta["lookback"], meta["horizon"]
    enc = {}
    for part in ("train", "val"):
        X, Y = _windows(values, origins[part], L, Hz)
        x, mu, sd = _encode(meta, X)
        enc[part] = (x, _encode_targets(meta, Y, mu, sd), X, Y)
    from ..optimizers import Adam

    _random.set_random_seed(seed)
    model = build_model(L, Hz, units, dropout)
    model.compile(optimizer=Adam(learning_rate, clipnorm=1.0), loss="mse", seed=seed)
    stop = EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    history = model.fit(
        enc["train"][0],
        enc["train"][1],
        epochs=epochs,
        batch_size=batch_size,
        validation_data=enc["val"][:2],
        callbacks=[stop],
        verbose=verbose,
    )
    model.metadata = dict(meta)
    val_rmse = rmse(enc["val"][3], forecast_many(model, enc["val"][2]))
    return model, history, val_rmse


def train_forecaster(
    values,
    *,
    lookback=24,
    horizon=12,
    season=None,
    transform="none",
    window_norm=True,
    units=32,
    dropout=0.0,
    epochs=300,
    batch_size=32,
    patience=30,
    learning_rate=3e-3,
    fractions=(0.7, 0.15, 0.15),
    seed=0,
    verbose=0,
    column="y",
    time_column=None,
) -> ForecastReport:
    """Train a forecaster on ``values (N,)`` following the recipe in the module docstring.

    ``transform="auto"`` trains one model per transform in ``allowed_transforms(values)`` (same
    seed) and keeps the lowest validation RMSE; the test part is never used for a choice.
    """
    func = "train_forecaster"
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{func}: argument 'values' must be 1-D; got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{func}: argument 'values' has NaN or Inf; fill the gaps first")
    for arg, v in (
        ("lookback", lookback),
        ("horizon", horizon),
        ("units", units),
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("patience", patience),
    ):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{func}: argument '{arg}' must be a positive int; got {v!r}")
    if transform not in (*TRANSFORMS, "auto"):
        raise ValueError(
            f"{func}: argument 'transform' got {transform!r}, expected one of "
            f"{[*TRANSFORMS, 'auto']}"
        )
    if transform != "auto":
        _check_domain(values, transform, func, "values")
    split = chronological_split(len(values), fractions)
    n_needed = lookback + horizon
    if len(split.train) < n_needed or len(split.val) < horizon or len(split.test) < horizon:
        raise ValueError(
            f"{func}: the series has too few rows: got {len(values)}, which splits into "
            f"{len(split.train)} / {len(split.val)} / {len(split.test)} (train / validation / "
            f"test); lookback={lookback} + horizon={horizon} needs at least {n_needed} rows in "
            f"the training part and {horizon} in each of validation and test, i.e. about "
            f"{int(np.ceil(max(n_needed / fractions[0], horizon / min(fractions[1:]))))} rows; "
            "use a shorter lookback or horizon or a longer series"
        )
    train_part = values[split.train]
    if season is None:
        season = detect_season(train_part, max_period=max(2, len(train_part) // 3))
    elif isinstance(season, bool) or not isinstance(season, (int, np.integer)) or season < 1:
        raise ValueError(
            f"{func}: argument 'season' must be a positive int or None; got {season!r}"
        )
    if season >= len(train_part):
        raise ValueError(
            f"{func}: argument 'season' got {season}, expected fewer than the {len(train_part)} "
            "rows of the training part"
        )
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
        "window_norm": bool(window_norm),
        "window_floor": WINDOW_FLOOR,
    }
    fit_args = {
        "units": units,
        "dropout": dropout,
        "epochs": epochs,
        "batch_size": batch_size,
        "patience": patience,
        "learning_rate": learning_rate,
        "seed": seed,
        "verbose": verbose,
    }
    candidates = allowed_transforms(values) if transform == "auto" else [transform]
    selection, best = {}, None
    for name in candidates:
        # the scaler is fitted on the training part only, after the transform
        scaler = StandardScaler().fit(_forward_transform(train_part, name))
        meta = {**base_meta, "transform": name, "scaler": scaler.get_config()}
        fitted = _fit_one(values, split, meta, origins, **fit_args)
        selection[name] = fitted[2]
        if best is None or fitted[2] < best[2]:
            best = fitted
    model, history, val_rmse = best
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
        val_rmse=float(val_rmse),
        selection=selection,
        history=history.history,
    )


# -- forecasting and scoring --------------------------------------------------------------------
def _meta(model):
    meta = dict(model.metadata or {})
    if meta.get("app") != "forecast":
        raise ValueError(
            "forecast: argument 'model' is not a forecaster (its metadata has no app='forecast'); "
            "train one with train_forecaster or `lstmkit forecast train`"
        )
    meta.setdefault("transform", "none")  # files written before transforms existed
    meta.setdefault("window_norm", False)
    return meta


def forecast(model, history) -> np.ndarray:
    """Forecast the ``horizon`` values that follow ``history`` (original units)."""
    lookback = _meta(model)["lookback"]
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
    meta = _meta(model)
    windows = np.asarray(windows, np.float64)
    _check_domain(windows, meta["transform"], "forecast", "history")
    x, mu, sd = _encode(meta, windows)
    return _decode(meta, model.predict(x, batch_size=256), mu, sd)


def score_origins(model, values, origins, season, insample):
    """MAE/RMSE/MASE of the model and both naive baselines over forecast origins (original
    units). Origin ``t`` forecasts ``values[t : t + horizon]`` from ``values[:t]``."""
    meta = _meta(model)
    L, Hz = meta["lookback"], meta["horizon"]
    origins = list(origins)
    X, truth = _windows(values, origins, L, Hz)
    preds = {
        "lstm": forecast_many(model, X),
        "naive": np.stack([naive_forecast(values[:t], Hz) for t in origins]),
        f"seasonal_naive(m={season})": np.stack(
            [seasonal_naive_forecast(values[:t], Hz, season) for t in origins]
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
    meta = _meta(model)
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


# -- output helpers -----------------------------------------------------------------------------
def plot_png(history_index, history, future_index, fc, actual=None, title="") -> bytes:
    """PNG bytes of the history and the forecast (matplotlib imported here: an optional extra).
    Rendered in memory so that callers can write every output only once all of them exist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def pos(labels):  # numeric labels (years) plot on a numeric axis, others by position
        try:
            return [float(v) for v in labels]
        except (TypeError, ValueError):
            return None

    n = min(len(history), 120)
    hx, fx = pos(history_index[-n:]), pos(future_index)
    if hx is None or fx is None:
        hx, fx = list(range(-n, 0)), list(range(len(fc)))
        if actual is not None:
            fx = list(range(-len(fc), 0))
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
    try:
        ax.plot(hx, history[-n:], color="0.3", lw=1.2, label="history")
        ax.plot(fx, fc, color="tab:red", lw=1.8, marker="o", ms=3, label="LSTM forecast")
        if actual is not None:
            ax.plot(fx, actual, color="tab:blue", lw=1.2, ls="--", label="actual")
        ax.set_title(title)
        ax.legend(loc="upper left", frameon=False)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def future_labels(index, horizon):
    """Labels for the steps after the last index: numeric indices continue, else ``+k``."""
    try:
        last = float(index[-1])
        step = float(index[-1]) - float(index[-2]) if len(index) > 1 else 1.0
        return [_num(last + step * k) for k in range(1, horizon + 1)]
    except (ValueError, IndexError):
        return [f"{index[-1]}+{k}" for k in range(1, horizon + 1)]


def _num(v):
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
