"""Every setting of the global forecaster, with its default, declared once.

The CLI (``lstmkit forecast ...``), the demo and the Python API (:func:`fit_global`) read
:class:`ForecastConfig`; :meth:`ForecastConfig.validate` is the one place that checks a setting
and says which one is wrong, what it got and what it expects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

TRANSFORMS = ("auto", "log", "none")
LEVELS = ("last", "season")
LOSSES = ("pinball", "mae", "mse")
AGGREGATES = ("median", "mean", "trimmed")
SWITCHES = ("auto", "on", "off")
TRENDS = ("auto", "on", "off", "select", "hedge")


@dataclass(frozen=True)
class ForecastConfig:
    """Settings of the global LSTM forecaster (defaults once; see ``docs/forecast.md``).

    Data side (what the CLI reads from a long-format file): ``id_column``, ``time_column``,
    ``column``, ``past_covariates``, ``future_covariates``, ``levels`` (interval levels written
    beside the forecast, e.g. ``(80, 95)``), ``plot_ids``.

    Model side: ``horizon`` (None: one season, or 6 when the data have no season);
    ``lookbacks`` (input lengths in steps; () = ``lookback_factors`` times ``max(horizon,
    season)``, or ``seasonal_lookback_factors`` (2, 3) for seasons of 12 or more steps (monthly):
    the seasonal profile needs two whole seasons in the window; () there = ``lookback_factors``;
    ensemble members take them in turn); a series shorter than its lookback is
    left-padded with zeros and an "observed" input channel says which steps are real;
    ``min_history`` (fewest observed inputs a training window may have).
    Normalisation per window (ES-RNN spirit): ``transform`` ("auto" = log when every value is
    > 0), ``level`` ("last" value or the mean of the last "season"), ``seasonal`` ("auto" = remove
    the window's seasonal profile when the window holds two whole seasons), ``trend`` ("off" by
    default; "on", or "auto" = on for seasonal data: remove the line through the level with the slope between the means of
    the window's last two seasons, and add it back to the forecast; "select": each series takes
    the damping among ``trend_choices`` (0 = no trend, 0 < phi < 1 damped: step ``h`` ahead adds
    ``phi + ... + phi^h`` slopes, 1 = the straight line) whose zero network output forecasts its
    own last ``horizon`` origins best; "hedge": the even ensemble members have no trend, the odd
    ones select among ``trend_choices``, and the forecast is the mean of the two groups'
    aggregates), ``profile_seasons`` (the level, slope and seasonal profile read this many seasons before the origin when that is longer than the lookback; 0 =
    the lookback only).
    Network: ``units``, ``layers`` (stacked LSTMs), ``embedding`` (series-id embedding size, 0 =
    none), ``calendar`` (season phase as sin/cos inputs), ``rescale`` (divide the normalised
    values by their RMS over the member's training windows, one number per member: smooth
    series' log deviations of a few hundredths otherwise leave some seeds stuck at a constant
    forecast). Training: ``loss`` ("pinball" trains
    the median and the quantiles of ``interval_levels``; "mae"/"mse" give point forecasts and
    intervals from conformal residuals), ``epochs``, ``batch_size``, ``learning_rate``,
    ``patience`` (early stopping on the last window of each series, in epochs; at least
    ``patience_steps`` (300) gradient steps when that is more, for small data: a single
    series gives 3-8 steps an epoch; ``val_windows`` origins
    per series, 0 = as many as give about 32 windows in all, at most ``horizon``),
    ``epoch_windows`` (an epoch is a fresh random sample of at most this many windows, 0 = all
    of them: a big panel's early stopping then looks at the validation loss every few dozen
    steps), ``refit`` (train again on every window, the validation one included, for the best
    epoch count; skipped when the first fit had more than ``refit_max_windows`` training
    windows, 0 = no limit; ``refit_epochs > 0``: continue the early-stopped model for that many
    epochs instead of training anew), ``validate_members`` (with a refit from scratch, only
    the first member of each lookback (and trend group) early-stops on the validation windows
    and is calibrated there; a later member of that lookback trains once, on every window, for
    its peer's best epoch count, and takes its conformal correction: on small panels the
    early-stopped fit and its patience were half of a member's time, and on the four fpp2
    panels' tune splits the peer's schedule did as well (geometric-mean MASE 1.133 against
    1.136, 29% less CPU; docs/forecast.md, "fpp2 panels"); the
    first ``validate_members`` members early-stop whatever their lookback, so a value >=
    ``ensemble`` early-stops every member, the schedule before), ``conformal``
    (calibrate the intervals on the validation windows), ``ensemble`` members (seeds ``seed``,
    ``seed + 1`` ...), ``aggregate`` ("mean", the default, "median", or "trimmed": the mean without the
    highest and lowest member, from three members on; of the members' forecasts, each quantile
    apart; the mean was the better on the tune seasons of every group, two seed batches:
    docs/forecast.md, "The members' mean"), ``max_minutes`` (stop
    training new members after this; at least one is trained), ``dtype``.
    """

    # data side
    id_column: str = "unique_id"
    time_column: str = "ds"
    column: str = "y"
    past_covariates: tuple = ()
    future_covariates: tuple = ()
    levels: tuple = ()
    plot_ids: tuple = ()
    # windows and normalisation
    horizon: int | None = None
    lookbacks: tuple = ()
    lookback_factors: tuple = (1.0, 2.0)
    seasonal_lookback_factors: tuple = (2.0, 3.0)
    min_history: int = 3
    transform: str = "auto"
    level: str = "season"
    seasonal: str = "auto"
    trend: str = "off"
    trend_choices: tuple = (0.0, 0.9, 1.0)
    profile_seasons: int = 0
    # network
    units: int = 32
    layers: int = 1
    embedding: int = 0
    calendar: bool = True
    rescale: bool = True
    # training
    loss: str = "pinball"
    interval_levels: tuple = (80, 95)
    epochs: int = 200
    batch_size: int = 64
    learning_rate: float = 3e-3
    patience: int = 20
    patience_steps: int = 300
    epoch_windows: int = 4096
    val_windows: int = 0
    refit: bool = True
    refit_epochs: int = 0
    refit_max_windows: int = 10000
    validate_members: int = 0
    conformal: bool = True
    ensemble: int = 5
    aggregate: str = "mean"
    seed: int = 0
    max_minutes: float | None = None
    dtype: str = "float32"

    def replace(self, **changes) -> ForecastConfig:
        """A copy with ``changes``, validated."""
        return replace(self, **changes).validate()

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> ForecastConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"ForecastConfig: unknown setting(s) {unknown}; expected some of {sorted(names)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}).validate()

    def validate(self) -> ForecastConfig:
        """Raise ``ValueError`` naming the first bad setting; returns ``self``."""
        for name in ("id_column", "time_column", "column"):
            _text(name, getattr(self, name))
        for name in ("past_covariates", "future_covariates", "plot_ids"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not all(isinstance(s, str) and s for s in v):
                _bad(name, v, "a tuple of non-empty strings")
        for name in ("levels", "interval_levels"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not all(_num(x) and 0 < x < 100 for x in v):
                _bad(name, v, "a tuple of interval levels in (0, 100), e.g. (80, 95)")
        if self.horizon is not None:
            _int("horizon", self.horizon, 1)
        if not isinstance(self.lookbacks, tuple):
            _bad("lookbacks", self.lookbacks, "a tuple of positive ints (or () for automatic)")
        if not all(_is_int(v) and v >= 1 for v in self.lookbacks):
            _bad("lookbacks", self.lookbacks, "a tuple of ints >= 1 (or () for automatic)")
        if (
            not isinstance(self.lookback_factors, tuple)
            or not self.lookback_factors
            or not all(_num(x) and x > 0 for x in self.lookback_factors)
        ):
            _bad("lookback_factors", self.lookback_factors, "a non-empty tuple of numbers > 0")
        v = self.seasonal_lookback_factors
        if not isinstance(v, tuple) or not all(_num(x) and x > 0 for x in v):
            _bad("seasonal_lookback_factors", v, "a tuple of numbers > 0 (() = lookback_factors)")
        for name, lo in (("min_history", 1), ("units", 1), ("layers", 1), ("embedding", 0),
                         ("epochs", 1), ("batch_size", 1), ("patience", 1), ("ensemble", 1),
                         ("seed", 0), ("val_windows", 0), ("profile_seasons", 0),
                         ("patience_steps", 0), ("epoch_windows", 0),
                         ("refit_epochs", 0), ("refit_max_windows", 0),
                         ("validate_members", 0)):  # fmt: skip
            _int(name, getattr(self, name), lo)
        for name, choices in (("transform", TRANSFORMS), ("level", LEVELS),
                              ("seasonal", SWITCHES), ("trend", TRENDS), ("loss", LOSSES),
                              ("aggregate", AGGREGATES), ("dtype", ("float32", "float64"))):  # fmt: skip
            if getattr(self, name) not in choices:
                _bad(name, getattr(self, name), f"one of {list(choices)}")
        for name in ("calendar", "refit", "conformal", "rescale"):
            if not isinstance(getattr(self, name), bool):
                _bad(name, getattr(self, name), "True or False")
        v = self.trend_choices
        if not isinstance(v, tuple) or not v or not all(_num(x) and 0 <= x <= 1 for x in v):
            _bad("trend_choices", v, "a non-empty tuple of trend dampings in [0, 1]")
        if not (_num(self.learning_rate) and 0 < self.learning_rate < 10):
            _bad("learning_rate", self.learning_rate, "a number in (0, 10)")
        if self.max_minutes is not None and not (_num(self.max_minutes) and self.max_minutes > 0):
            _bad("max_minutes", self.max_minutes, "a number > 0 or None")
        return self


def _bad(name, value, expected):
    raise ValueError(f"ForecastConfig: setting '{name}' got {value!r}; expected {expected}")


def _num(v) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    import numpy as np

    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def _int(name, v, lo):
    if not _is_int(v) or v < lo:
        _bad(name, v, f"an int >= {lo}")


def _text(name, v):
    if not isinstance(v, str) or not v:
        _bad(name, v, "a non-empty string")
