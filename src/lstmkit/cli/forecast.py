"""``lstmkit forecast train | predict | backtest | demo``: argument parsing and printing around
``lstmkit.apps.forecast_run`` (the global forecaster on a panel).

Every default comes from ``ForecastConfig`` (``default=d.x``) and every setting is checked by
``ForecastConfig.validate``. ``train --engine single`` and ``predict`` on a model file of that
engine run today's single-series forecaster (``lstmkit.cli.forecast_single``), so old model
files still load and predict.

Every output is written only after everything it depends on has been computed, and atomically
(temporary file + rename), so a failed or interrupted command leaves existing files as they
were. Data problems raise ``ValueError`` naming the series and the problem; ``lstmkit.cli.main``
prints it on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from pathlib import Path

from ._args import ray_options, ray_strategy

MAX_UNITS = 4096  # 4 * 4096^2 recurrent weights are 256 MiB in float32
ENGINES = ("global", "single", "ray")


def _defaults():
    from ..apps.forecast_config import ForecastConfig

    return ForecastConfig()


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    _register_train(sub)
    _register_predict(sub)
    _register_backtest(sub)
    _register_demo(sub)


# -- options ------------------------------------------------------------------------------------
def _data_options(p, d, covariates=True):
    p.add_argument("--id-column", default=d.id_column, help=f"series ids (default {d.id_column}; "
                   "a file without it is one series)")  # fmt: skip
    p.add_argument("--time-column", default=d.time_column, help=f"dates or integer steps "
                   f"(default {d.time_column}; a file without it is read in row order)")  # fmt: skip
    p.add_argument("--column", default=d.column, help=f"values to forecast (default {d.column})")
    if covariates:
        p.add_argument("--past-covariates", nargs="+", default=list(d.past_covariates),
                       metavar="COL", help="columns known up to each series' end")  # fmt: skip
        p.add_argument("--future-covariates", nargs="+", default=list(d.future_covariates),
                       metavar="COL", help="columns also known over the horizon (the file's "
                       "future rows: y empty)")  # fmt: skip
    p.add_argument("--fill", choices=["none", "interpolate"], default="none",
                   help="missing values and dates: none (default) makes them an error, "
                   "interpolate fills interior gaps linearly in time")  # fmt: skip
    p.add_argument("--level", nargs="+", type=_level, action=_Levels, default=list(d.levels),
                   metavar="L",
                   help="prediction intervals to write or score, in percent (e.g. 80 95)")  # fmt: skip


class _Levels(argparse.Action):
    """``--level``: each value an interval level (``_level``), none given twice (the CSV would
    have two ``lo-80`` columns)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(set(values)) != len(values):
            raise argparse.ArgumentError(self, f"expected distinct levels, got {values}")
        setattr(namespace, self.dest, values)


class _Given(argparse.Action):
    """Stores the value and notes that it was given (``args.given``): ``--engine single`` keeps
    its own defaults for the settings the command line did not give."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = getattr(namespace, "given", set()) | {self.dest}


def _model_options(p, d):
    from ..apps.forecast_config import AGGREGATES, TRENDS

    p.add_argument("--horizon", action=_Given, type=_positive_int, default=d.horizon,
                   help="steps forecast (default: one season, 6 without a season)")  # fmt: skip
    p.add_argument("--season", action=_Given, type=_positive_int, default=None,
                   help="season length in steps (default: from the dates' frequency)")  # fmt: skip
    p.add_argument("--lookback", action=_Given, nargs="+", type=_positive_int, default=list(d.lookbacks),
                   help="input steps, one per ensemble member in turn (default: "
                   f"{list(d.lookback_factors)} x max(horizon, season), "
                   f"{list(d.seasonal_lookback_factors)} for seasons >= 12)")  # fmt: skip
    p.add_argument("--transform", action=_Given, choices=["auto", "log", "none", "sqrt"], default=d.transform,
                   help=f"default {d.transform} (log when every value > 0); sqrt: --engine "
                   "single only")  # fmt: skip
    p.add_argument(
        "--units",
        action=_Given,
        type=_units,
        default=d.units,
        help=f"LSTM units (default {d.units})",
    )
    p.add_argument("--layers", action=_Given, type=_positive_int, default=d.layers,
                   help=f"stacked LSTMs (default {d.layers})")  # fmt: skip
    p.add_argument("--embedding", action=_Given, type=_seed, default=d.embedding,
                   help=f"series-id embedding size, 0 = none (default {d.embedding})")  # fmt: skip
    p.add_argument("--loss", action=_Given, choices=["pinball", "mae", "mse"], default=d.loss,
                   help=f"default {d.loss}")  # fmt: skip
    p.add_argument("--epochs", action=_Given, type=_positive_int, default=d.epochs,
                   help=f"max epochs (default {d.epochs})")  # fmt: skip
    p.add_argument("--patience", action=_Given, type=_positive_int, default=d.patience,
                   help=f"early stopping (default {d.patience})")  # fmt: skip
    p.add_argument("--batch-size", action=_Given, type=_positive_int, default=d.batch_size,
                   help=f"default {d.batch_size}")  # fmt: skip
    p.add_argument("--learning-rate", action=_Given, type=_positive_float, default=d.learning_rate,
                   help=f"Adam, > 0 (default {d.learning_rate})")  # fmt: skip
    p.add_argument("--ensemble", action=_Given, type=_positive_int, default=d.ensemble,
                   help=f"members (seeds seed, seed + 1, ...; default {d.ensemble})")  # fmt: skip
    p.add_argument("--aggregate", action=_Given, choices=list(AGGREGATES), default=d.aggregate,
                   help=f"of the members' forecasts (default {d.aggregate})")  # fmt: skip
    p.add_argument(
        "--seed", action=_Given, type=_seed, default=d.seed, help=f"random seed (default {d.seed})"
    )
    p.add_argument("--trend", action=_Given, choices=list(TRENDS),
                   default=d.trend, help="seasonal data's trend in the normalisation: off, on "
                   "(the line through the last two seasons' means), auto (on for seasonal data), "
                   "select (each series chooses none, damped or straight on its last windows), "
                   "hedge (half the members without a trend, half with select's, averaged); "
                   f"default {d.trend}")  # fmt: skip
    p.add_argument("--no-rescale", dest="rescale", action="store_false",
                   help="do not divide the network's values by their RMS over the training "
                   "windows (ForecastConfig.rescale; on by default)")  # fmt: skip
    p.add_argument("--max-minutes", action=_Given, type=_positive_float, default=d.max_minutes,
                   help="stop adding ensemble members after this (default: no limit)")  # fmt: skip


def _single_options(p):
    p.add_argument("--engine", choices=ENGINES, default="global",
                   help="global (default): one LSTM over every series (lstmkit.apps."
                   "forecast_global); single: the earlier one-series forecaster; ray: the "
                   "global one, trained data-parallel on Ray (pip install 'lstmkit[ray]')")  # fmt: skip
    g = p.add_argument_group("--engine single only")
    g.add_argument("--normalize", choices=["cycle", "window", "none"], default=None,
                   help="per-window normalisation (default cycle)")  # fmt: skip
    g.add_argument("--dropout", type=_dropout, default=None, help="input dropout (default 0)")
    g.add_argument("--max-rows", type=_positive_int, default=None,
                   help="train on at most this many of the most recent rows")  # fmt: skip
    ray_options(p)


def _register_train(sub):
    d = _defaults()
    p = sub.add_parser(
        "train",
        help="Train a forecaster on the series of a CSV file and save it.",
        description="Train one LSTM on every series of DATA.csv (long format: id, date, value "
        "columns; a file without the id column is one series). First the last horizon values "
        "of each series are held out: a model trained on the rest is scored on them beside "
        "the naive, seasonal-naive, AutoETS and AutoTheta forecasts (the last two need "
        "statsforecast); the saved model is trained on every value (at the same time, in two "
        "processes, with --jobs 2: the default on 2 or more CPUs).",
    )
    p.add_argument("data", metavar="DATA.csv", help="CSV file with a header row")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    _data_options(p, d)
    _model_options(p, d)
    _single_options(p)
    p.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                   help="skip the held-out table: train the saved model only (about half the "
                   "CPU; with --jobs 2 its ensemble members are shared with a child process; "
                   "global engine)")  # fmt: skip
    p.add_argument("--jobs", type=_positive_int, default=None,
                   help="processes for the fits: 2 or more shares their ensemble members "
                   "and the anchors with a child process, each on one thread; 1 one fit after "
                   "the other (default: 2 on 2 or more CPUs, else 1; global engine)")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true", help="progress lines on stderr")
    p.set_defaults(func=cmd_train, reads=("data",), writes=("--out",))


def _register_predict(sub):
    d = _defaults()
    p = sub.add_parser(
        "predict",
        help="Forecast the steps after each series' end (or backtest with --holdout).",
        description="Forecast the model's horizon after the end of each series of DATA.csv. A "
        "panel gives rows 'unique_id, ds, forecast[, lo-80, hi-80, ...]' with the real future "
        "dates; a single series keeps the columns '<time column>, forecast' (lo/hi added with "
        "--level). With --holdout the last horizon values are held out and forecast from the "
        "rest (an 'actual' column; the errors printed beside the baselines).",
    )
    p.add_argument("model", metavar="MODEL", help="model file written by `forecast train`")
    p.add_argument("data", metavar="DATA.csv", help="CSV file with the series to continue")
    p.add_argument("--out", required=True, metavar="FORECAST.csv", help="CSV file to write")
    p.add_argument("--id-column", default=None, help="default: the model's")
    p.add_argument("--time-column", default=None, help="default: the model's")
    p.add_argument("--column", default=None, help="default: the model's")
    p.add_argument("--fill", choices=["none", "interpolate"], default="none",
                   help="missing values and dates (default none: an error)")  # fmt: skip
    p.add_argument("--level", nargs="+", type=_level, action=_Levels, default=list(d.levels),
                   metavar="L",
                   help="intervals to write (levels the model was trained for)")  # fmt: skip
    p.add_argument("--plot-ids", nargs="+", default=list(d.plot_ids), metavar="ID",
                   help="series to plot: FORECAST-<id>.png each (a single series: FORECAST.png)")  # fmt: skip
    p.add_argument("--plot", default=None, metavar="PATH",
                   help="single series: PNG to write (default: FORECAST.png)")  # fmt: skip
    p.add_argument("--holdout", action="store_true",
                   help="backtest on the last horizon values instead")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true", help="progress of reading the file")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="ray: Ray tasks forecast groups of series (DATA and --out may then be "
                   "directories of CSV shards; pip install 'lstmkit[ray]')")  # fmt: skip
    ray_options(p)
    p.set_defaults(func=cmd_predict, reads=("model", "data"), writes=_predict_writes)


def _register_backtest(sub):
    d = _defaults()
    p = sub.add_parser(
        "backtest",
        help="Rolling-origin cross-validation over the last K windows, beside the anchors.",
        description="For each of the last K origins (horizon apart), train on every series up "
        "to the origin and forecast the next horizon values; print MAE, RMSE, MASE, sMAPE, "
        "the coverage and pinball loss of each --level, for lstmkit and the anchors (naive, "
        "seasonal naive, AutoETS and AutoTheta when statsforecast is installed).",
    )
    p.add_argument("data", metavar="DATA.csv", help="CSV file with a header row")
    p.add_argument("--windows", type=_positive_int, default=1, help="K origins (default 1)")
    p.add_argument("--out", default=None, metavar="ROWS.csv",
                   help="per-window per-series metrics of every method")  # fmt: skip
    _data_options(p, d)
    _model_options(p, d)
    p.add_argument("--engine", choices=("global", "ray"), default="global",
                   help="ray: each window's model trained data-parallel on Ray")  # fmt: skip
    ray_options(p)
    p.add_argument("-v", "--verbose", action="store_true", help="progress lines on stderr")
    p.set_defaults(func=cmd_backtest, reads=("data",), writes=("--out",))


def _register_demo(sub):
    from ..apps.forecast_run import DEMO_CHANGES, DEMO_PANEL

    p = sub.add_parser(
        "demo",
        help="Train on the packaged M1 yearly panel, compare with the baselines, write files.",
        description=f"What `make demo` runs: the global forecaster on the {DEMO_PANEL} panel "
        f"that ships in the package (ForecastConfig with {DEMO_CHANGES}); prints the held-out "
        "table against the baselines (statsforecast's when installed) and writes the model, "
        "the forecasts and plots of a few series to DIR.",
    )
    p.add_argument("--out", default="out/demo", metavar="DIR", help="default out/demo")
    p.add_argument("--seed", type=_seed, default=_defaults().seed, help="random seed, >= 0")
    p.add_argument("-v", "--verbose", action="store_true", help="progress lines on stderr")
    p.set_defaults(func=cmd_demo, writes=_demo_writes)


# Argument types: argparse prints "argument --NAME: <message>" and exits with status 2, so each
# message says what is allowed and the value received.
def _int_in(text, lo, hi=None):
    try:
        v = int(text)
    except ValueError:
        v = None
    if v is None or v < lo or (hi is not None and v > hi):
        allowed = f"an integer >= {lo}" if hi is None else f"an integer from {lo} to {hi}"
        raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
    return v


def _positive_int(text):
    return _int_in(text, 1)


def _units(text):
    return _int_in(text, 1, MAX_UNITS)


def _seed(text):
    return _int_in(text, 0)


def _level(text):
    return _int_in(text, 1, 99)


def _float(text):
    try:
        return float(text)
    except ValueError:
        return math.nan


def _positive_float(text):
    v = _float(text)
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def _dropout(text):
    v = _float(text)
    if not 0 <= v < 1:  # False for NaN too
        raise argparse.ArgumentTypeError(f"expected a number with 0 <= p < 1, got {text!r}")
    return v


def _say(args):
    """Where progress goes: stderr lines with --verbose, else nowhere."""
    if not getattr(args, "verbose", False):
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)


def _config(args):
    """The ``ForecastConfig`` of the command line (validated: the one place that checks)."""
    from ..apps.forecast_run import with_levels

    changes = {
        "id_column": args.id_column, "time_column": args.time_column, "column": args.column,
        "past_covariates": tuple(args.past_covariates),
        "future_covariates": tuple(args.future_covariates),
        "horizon": args.horizon, "lookbacks": tuple(args.lookback), "transform": args.transform,
        "units": args.units, "layers": args.layers, "embedding": args.embedding,
        "loss": args.loss, "epochs": args.epochs, "patience": args.patience,
        "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "ensemble": args.ensemble, "aggregate": args.aggregate, "seed": args.seed,
        "max_minutes": args.max_minutes, "rescale": args.rescale, "trend": args.trend,
    }  # fmt: skip
    return with_levels(_defaults().replace(**changes), args.level)


def _read(args, config, window=False):
    """The panel of ``args.data`` and its time column; ``window``: check ``--lookback`` and
    ``--season`` against it (``forecast_run.check_window``: train and backtest)."""
    from ..apps.forecast_run import check_window, read_data, time_column_of

    explicit = config.time_column != _defaults().time_column
    tcol = time_column_of(args.data, config.time_column, explicit)
    start = time.perf_counter()
    panel = read_data(args.data, config, time_column=tcol, fill=args.fill, season=args.season)
    took = time.perf_counter() - start
    print(
        f"read {panel.values.size} values of {panel.n_series} series from {args.data} "
        f"({took:.1f} s)"
    )
    for note in panel.notes:
        print(note)
    if window:
        check_window(panel, config, args.season)
    return panel, tcol


def _check_out_file(path, arg):
    if os.path.isdir(path):
        raise ValueError(f"argument '{arg}' got a directory {str(path)!r}, expected a file path")


def _print_result(result, H, what):
    if result.summary:  # none when the held-out fit's process failed (its note says why)
        print(f"{what}: {H} steps ahead, mean over series (MASE scaled by the in-sample naive "
              "MAE)")  # fmt: skip
        print(result.table())
    for note in result.notes:
        print(note)


# -- train --------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    strategy = ray_strategy(args)
    if args.engine == "single":
        from .forecast_single import train_single

        if args.jobs is not None:
            raise ValueError(f"argument '--jobs' applies to --engine global only; got "
                             f"{args.jobs} with --engine single")  # fmt: skip
        if not args.evaluate:
            raise ValueError("argument '--no-evaluate' applies to --engine global only (the "
                             "single engine's validation is part of its training); got it with "
                             "--engine single")  # fmt: skip
        return train_single(args)
    from ..apps.forecast_run import default_jobs, evaluate_and_fit, fit, horizon_of, shared

    _only_single(args)
    _check_out_file(args.out, "--out")
    config = _config(args)
    jobs = default_jobs() if args.jobs is None else args.jobs
    # the work shared with a child process (--jobs), started before the data are read
    with _helper(shared(config, jobs, strategy, args.evaluate)) as helper:
        panel, _ = _read(args, config, window=True)
        if not args.evaluate:
            config = config.replace(horizon=horizon_of(panel, config))
            model = fit(panel, config, _say(args), strategy, jobs=jobs, helper=helper)
        else:
            H, result, model = evaluate_and_fit(panel, config, progress=_say(args),
                                                distribute=strategy, jobs=jobs,
                                                helper=helper)  # fmt: skip
    if args.evaluate:
        _print_result(result, H, "held out: the last values of each series")
    model.save(args.out)
    print(f"saved model ({len(model.members)} members) to {args.out}")
    return 0


def _helper(share: bool):
    """``--jobs 2``'s child process (``share``: ``forecast_run.shared``), started now: it
    imports lstmkit and loads the compiled kernels while this process reads the data
    (``forecast_heldout.helper_started``)."""
    if not share:
        return contextlib.nullcontext()
    from ..apps.forecast_heldout import helper_started

    return helper_started()


def _only_single(args):
    for name in ("normalize", "dropout", "max_rows"):
        if getattr(args, name) is not None:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"argument '{flag}' applies to --engine single only; got "
                             f"{getattr(args, name)!r} with --engine global")  # fmt: skip


# -- backtest -----------------------------------------------------------------------------------
def cmd_backtest(args) -> int:
    from ..apps.forecast_run import evaluate

    if args.out:
        _check_out_file(args.out, "--out")
    strategy = ray_strategy(args)
    config = _config(args)
    panel, _ = _read(args, config, window=True)
    H, result = evaluate(panel, config, windows=args.windows, progress=_say(args),
                         distribute=strategy, apart=args.windows == 1)  # fmt: skip
    _print_result(result, H, f"rolling origins: the last {args.windows} window(s)")
    if args.out:
        from ..data import write_csv_atomic

        header = list(result.rows[0])
        write_csv_atomic(args.out, header, [[r[c] for c in header] for r in result.rows])
        print(f"wrote {args.out} ({len(result.rows)} rows)")
    return 0


# -- predict ------------------------------------------------------------------------------------
def _plot_path(out, plot):
    return Path(plot) if plot else Path(out).with_suffix(".png")


def _predict_writes(args):  # what lstmkit.cli.main checks before the command runs
    from .._paths import Output
    from ..apps.forecast_run import plot_name

    if args.engine == "ray":  # no plots; a directory --out gets one CSV per shard
        return [Output("--out", args.out, ("*.csv",) if os.path.isdir(args.out) else ())]
    outs = [Output("--out", args.out)]
    if args.plot:
        outs.append(Output("--plot", args.plot))
    else:
        outs.append(Output("--plot (default: --out with .png)", str(_plot_path(args.out, None))))
    outs += [Output("--plot-ids", plot_name(args.out, s)) for s in args.plot_ids]
    return outs


def cmd_predict(args) -> int:
    from ..apps.forecast_global import GlobalForecaster
    from ..apps.forecast_run import is_global_file, predict_scope

    if not is_global_file(args.model):
        from .forecast_single import predict_single

        if args.engine == "ray":
            raise ValueError(f"{args.model!r} is a single-series model file (--engine single): "
                             "--engine ray predicts with global models only")  # fmt: skip
        if args.level or args.plot_ids or args.id_column:
            raise ValueError(f"{args.model!r} is a single-series model file (--engine single): "
                             "it takes no --level, --plot-ids or --id-column")  # fmt: skip
        return predict_single(args)
    strategy = ray_strategy(args)
    model = GlobalForecaster.load(args.model)
    cfg = model.config
    config = cfg.replace(id_column=args.id_column or cfg.id_column,
                         time_column=args.time_column or cfg.time_column,
                         column=args.column or cfg.column)  # fmt: skip
    if strategy is not None:
        return _predict_ray(args, model, config, strategy)
    _check_out_file(args.out, "--out")
    args.season = None  # the model's own
    panel, tcol = _read(args, config)
    single = panel.n_series == 1 and config.id_column not in _header(args.data)
    with predict_scope(model, panel):  # a small panel: the NumPy reference, no numba loaded
        if args.holdout:
            return _predict_holdout(args, model, panel, tcol, single)
        point, intervals = model.predict(panel, levels=tuple(args.level))
    _write_forecasts(args, panel, point, intervals, tcol, single)
    return 0


def _predict_ray(args, model, config, strategy):
    """``--engine ray``: DATA (a CSV file or a directory of CSV shards, each holding whole
    series) forecast by Ray tasks into --out (a CSV file, or a directory: one per shard)."""
    from ..apps.forecast_run import time_column_of
    from ..distributed import predict_panel

    if args.holdout or args.plot_ids or args.plot:
        raise ValueError("--engine ray writes forecasts only: it takes no --holdout, --plot or "
                         "--plot-ids")  # fmt: skip
    first = args.data
    if os.path.isdir(first):
        shards = sorted(f for f in os.listdir(first) if f.endswith(".csv"))
        first = os.path.join(first, shards[0]) if shards else first
    explicit = config.time_column != _defaults().time_column
    tcol = time_column_of(first, config.time_column, explicit)
    start = time.perf_counter()
    rows = predict_panel(model, args.data, args.out, tuple(args.level), strategy,
                         read=(config, tcol, args.fill), time_header=tcol or "step")  # fmt: skip
    took = time.perf_counter() - start
    print(f"wrote {args.out} ({rows} rows, {took:.1f} s on Ray)")
    return 0


def _header(path):
    from ..apps.panel_io import csv_header

    return csv_header(path)


def _write_forecasts(args, panel, point, intervals, tcol, single, actual=None):
    from ..apps.forecast_run import forecast_table, plot_series, series_index

    header, rows = forecast_table(panel, point, intervals, args.level,
                                  time_header=tcol or "step", single=single)  # fmt: skip
    if actual is not None:
        header.append("actual")
        rows = [[*r, float(a)] for r, a in zip(rows, actual.ravel())]
    H = point.shape[1]
    plots = []
    if single:
        title = f"{panel.ids[0]}: {H}-step forecast"
        png = plot_series(panel, 0, point, intervals, args.level, title)
        plots.append((_plot_path(args.out, args.plot), png))
    for k, sid in zip(series_index(panel, args.plot_ids), args.plot_ids):
        from ..apps.forecast_run import plot_name

        png = plot_series(panel, k, point, intervals, args.level, f"{sid}: {H}-step forecast")
        plots.append((Path(plot_name(args.out, sid)), png))
    _write_outputs(args.out, header, rows, plots)
    shown = ", ".join(str(p) for p, _ in plots)
    print(f"wrote {args.out} ({len(rows)} rows){' and ' + shown if shown else ''}")


def _predict_holdout(args, model, panel, tcol, single):
    from ..apps.forecast_backtest import backtest, rolling_origins

    H = model.horizon
    levels = tuple(args.level)
    window = rolling_origins(panel, H, 1)[0]
    result = backtest(lambda train, h, lv: model.predict(train, h, lv), panel, H, 1, levels)
    point, intervals = model.predict(window.train, H, levels)
    _write_forecasts(args, window.train, point, intervals, tcol, single, actual=window.target)
    _print_result(result, H, f"backtest: the last {H} values of each series of {args.data}")
    return 0


def _write_outputs(csv_path, header, rows, plots):
    from .._atomic import atomic_write
    from ..data import write_csv_atomic

    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)  # created when written
    write_csv_atomic(csv_path, header, rows)
    for path, png in plots:

        def write_png(tmp, png=png):
            with open(tmp, "wb") as f:
                f.write(png)

        atomic_write(path, write_png, suffix=".png")


# -- demo ---------------------------------------------------------------------------------------
DEMO_MODEL, DEMO_CSV = "model.lstmkit", "forecast.csv"
DEMO_PLOTS = 3  # the first series of the panel are plotted


def _demo_writes(args):
    from .._paths import Output

    return [Output("--out", args.out, names=(DEMO_MODEL, DEMO_CSV, "forecast-*.png"))]


def cmd_demo(args) -> int:
    from ..apps import forecast_run as run
    from ..data import builtin_path

    start = time.perf_counter()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"argument '--out' got {str(out)!r}, which is a file; expected a directory"
        )
    config = _defaults().replace(**run.DEMO_CHANGES, seed=args.seed)
    print(f"{run.DEMO_PANEL}: the 181 yearly series of the M1 competition (packaged); settings: "
          f"ForecastConfig().replace({run.DEMO_CHANGES})")  # fmt: skip
    data = builtin_path(run.DEMO_PANEL)
    jobs = run.default_jobs()
    with _helper(run.shared(config, jobs)) as helper:
        panel, tcol = _read(argparse.Namespace(data=data, fill="none", season=None), config)
        H, result, model = run.evaluate_and_fit(panel, config, progress=_say(args), jobs=jobs,
                                                helper=helper)  # fmt: skip
    _print_result(result, H, "held out: the last 6 years of each series")
    point, intervals = model.predict(panel, levels=config.levels)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / DEMO_MODEL)
    ids = [str(s) for s in panel.ids[:DEMO_PLOTS]]
    pargs = argparse.Namespace(out=str(out / DEMO_CSV), plot=None, plot_ids=ids,
                               level=list(config.levels))  # fmt: skip
    _write_forecasts(pargs, panel, point, intervals, tcol, single=False)
    print(f"wrote {out / DEMO_MODEL}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
