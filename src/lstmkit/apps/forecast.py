"""Forecasting, the main job: train an LSTM forecaster on one series, forecast, backtest.

The recipe (``train_forecaster``):

1. split the raw series chronologically: train | validation | test (70/15/15 by default);
2. fit a standard scaler on the training part only, scale the whole series with it;
3. cut windows of ``lookback`` inputs -> ``horizon`` targets (direct multi-step output); a window
   belongs to the part its *first target* lies in, so its inputs may reach back into the part
   before it (they are observed history) but no target is ever seen twice;
4. ``LSTM(units) -> Dense(horizon)``, Adam, MSE, early stopping on validation loss with the best
   weights restored;
5. score the test windows (rolling origins) in the original units: MAE, RMSE and MASE, side by
   side with the naive and seasonal-naive forecasts from the same origins. MASE divides by the
   in-sample (training part) MAE of the seasonal-naive one-step forecast (Hyndman & Koehler 2006).

The saved model carries everything ``forecast`` needs in ``model.metadata``: lookback, horizon,
season, the scaler and the column names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import random as _random
from ..callbacks import EarlyStopping
from ..data import (
    StandardScaler,
    chronological_split,
    detect_season,
    mae,
    make_windows,
    mase,
    naive_forecast,
    rmse,
    seasonal_naive_forecast,
)
from ..layers import LSTM, Dense
from ..models import Sequential


@dataclass
class ForecastReport:
    """What training measured on the held-out test part (original units)."""

    model: Sequential
    table: dict  # method -> {"MAE":..., "RMSE":..., "MASE":...}
    season: int
    n_train: int
    n_val: int
    n_test: int
    test_windows: int
    epochs_run: int
    history: dict = field(default_factory=dict)

    def format_table(self) -> str:
        lines = [f"{'method':<16}{'MAE':>10}{'RMSE':>10}{'MASE':>10}"]
        for name, row in self.table.items():
            lines.append(f"{name:<16}{row['MAE']:>10.3f}{row['RMSE']:>10.3f}{row['MASE']:>10.3f}")
        return "\n".join(lines)


def _windows_for(scaled, start, stop, lookback, horizon):
    """Windows whose first target index lies in [start, stop) and whose targets stay < stop."""
    first = max(start, lookback)
    last = stop - horizon  # last allowed first-target index
    if last < first:
        return None, None, []
    X, Y = make_windows(scaled[first - lookback : stop], lookback, horizon)
    return X, Y, list(range(first, last + 1))


def build_model(lookback, horizon, units=64, dtype="float32"):
    model = Sequential(name="forecaster", dtype=dtype)
    model.add(LSTM(units, input_shape=(lookback, 1)))
    model.add(Dense(horizon))
    return model


def train_forecaster(
    values,
    *,
    lookback=24,
    horizon=12,
    season=None,
    units=64,
    epochs=300,
    batch_size=32,
    patience=30,
    learning_rate=3e-3,
    fractions=(0.7, 0.15, 0.15),
    seed=0,
    verbose=0,
    column="y",
    time_column=None,
    index=None,
) -> ForecastReport:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"train_forecaster: argument 'values' must be 1-D; got shape {values.shape}")
    for arg, v in (("lookback", lookback), ("horizon", horizon)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"train_forecaster: argument '{arg}' must be a positive int; got {v!r}")
    split = chronological_split(len(values), fractions)
    n_needed = lookback + horizon
    if len(values) < n_needed + 2 * horizon or len(split.train) < n_needed:
        raise ValueError(
            f"train_forecaster: the series has {len(values)} rows; lookback={lookback} + "
            f"horizon={horizon} needs at least {n_needed} rows in the training part "
            f"(70%) and {horizon} in each of validation and test, i.e. about "
            f"{int(np.ceil(n_needed / fractions[0]))} rows"
        )
    train_part = values[split.train]
    if season is None:
        season = detect_season(train_part, max_period=max(2, len(train_part) // 3))
    scaler = StandardScaler().fit(train_part)
    scaled = scaler.transform(values)

    Xtr, Ytr, _ = _windows_for(scaled, 0, split.train.stop, lookback, horizon)
    Xva, Yva, _ = _windows_for(scaled, split.val.start, split.val.stop, lookback, horizon)
    Xte, _, origins = _windows_for(scaled, split.test.start, len(values), lookback, horizon)
    if Xva is None or Xte is None:
        raise ValueError(
            f"train_forecaster: horizon={horizon} is longer than the validation or test part "
            f"({len(split.val)} / {len(split.test)} rows); use a shorter horizon or a longer series"
        )

    _random.set_random_seed(seed)
    model = build_model(lookback, horizon, units)
    from ..optimizers import Adam

    model.compile(optimizer=Adam(learning_rate, clipnorm=1.0), loss="mse", seed=seed)
    stop = EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    history = model.fit(
        Xtr,
        Ytr,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=(Xva, Yva),
        callbacks=[stop],
        verbose=verbose,
    )
    model.metadata = {
        "app": "forecast",
        "lookback": int(lookback),
        "horizon": int(horizon),
        "season": int(season),
        "column": column,
        "time_column": time_column,
        "scaler": scaler.get_config(),
    }
    table = score_origins(model, values, origins, season, insample=train_part)
    return ForecastReport(
        model=model,
        table=table,
        season=int(season),
        n_train=len(split.train),
        n_val=len(split.val),
        n_test=len(split.test),
        test_windows=len(origins),
        epochs_run=len(history.history.get("loss", [])),
        history=history.history,
    )


def _scaler(model):
    return StandardScaler.from_config(model.metadata["scaler"])


def forecast(model, history) -> np.ndarray:
    """Forecast the ``horizon`` values that follow ``history`` (original units)."""
    meta = model.metadata
    lookback = meta["lookback"]
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
    sc = _scaler(model)
    x = sc.transform(np.asarray(windows, np.float64))[..., None]
    y = model.predict(x.astype(np.float32), batch_size=256)
    return sc.inverse_transform(np.asarray(y, np.float64))


def score_origins(model, values, origins, season, insample):
    """MAE/RMSE/MASE of the model and both naive baselines over forecast origins (original
    units). Origin ``t`` forecasts ``values[t : t + horizon]`` from ``values[:t]``."""
    meta = model.metadata
    L, Hz = meta["lookback"], meta["horizon"]
    origins = list(origins)
    truth = np.stack([values[t : t + Hz] for t in origins])
    preds = {
        "lstm": forecast_many(model, np.stack([values[t - L : t] for t in origins])),
        "naive": np.stack([naive_forecast(values[:t], Hz) for t in origins]),
        f"seasonal_naive(m={season})": np.stack(
            [seasonal_naive_forecast(values[:t], Hz, season) for t in origins]
        ),
    }
    table = {}
    for name, p in preds.items():
        table[name] = {
            "MAE": mae(truth, p),
            "RMSE": rmse(truth, p),
            "MASE": mase(truth.ravel(), p.ravel(), insample, season),
        }
    return table


def backtest(model, values):
    """Hold out the last ``horizon`` values, forecast them from the rest, score against the
    naive baselines. Returns ``(table, forecast, actual)``."""
    meta = model.metadata
    Hz, L = meta["horizon"], meta["lookback"]
    values = np.asarray(values, np.float64)
    if len(values) < L + Hz + 1:
        raise ValueError(
            f"backtest: the series needs at least lookback + horizon + 1 = {L + Hz + 1} rows; "
            f"got {len(values)}"
        )
    t = len(values) - Hz
    table = score_origins(model, values, [t], meta["season"], insample=values[:t])
    return table, forecast(model, values[:t]), values[t:]


def plot_forecast(path, history_index, history, future_index, fc, actual=None, title=""):
    """PNG of the history and the forecast (matplotlib imported here: an optional extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=110)
    n = min(len(history), 120)
    ax.plot(history_index[-n:], history[-n:], color="0.3", lw=1.2, label="history")
    ax.plot(future_index, fc, color="tab:red", lw=1.8, marker="o", ms=3, label="LSTM forecast")
    if actual is not None:
        ax.plot(future_index, actual, color="tab:blue", lw=1.2, ls="--", label="actual")
    ax.set_title(title)
    ax.legend(loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    from ..saving import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
    plt.close(fig)


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
