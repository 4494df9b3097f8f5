"""``lstmkit forecast train | predict | demo``: argument parsing and printing around
``lstmkit.apps.forecast``.

Every output is written only after everything it depends on has been computed, and atomically
(temporary file + rename), so a failed command leaves existing files as they were. Data problems
raise ``ValueError`` with a message naming the problem; ``lstmkit.cli.main`` prints it on stderr
and exits with status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

DEFAULT_MODEL_NAME = "model.lstmkit"
#: files at least this large report their reading progress on stderr even without --verbose
BIG_FILE_BYTES = 32 * 2**20
#: with at least this many rows, training reports each epoch on stderr even without --verbose
BIG_ROWS = 20_000
MAX_UNITS = 4096  # 4 * 4096^2 recurrent weights are 256 MiB in float32


def register(parser: argparse.ArgumentParser) -> None:
    from ..apps.forecast import DEFAULT_MAX_ROWS, NORMALIZE, TRANSFORMS

    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)

    # -- train ----------------------------------------------------------------------------------
    p = sub.add_parser(
        "train",
        help="Train a forecaster on one column of a CSV file and save it.",
        description="Split the series chronologically (70/15/15), fit the scaler on the training "
        "part, train LSTM -> Dense(horizon) with early stopping on the validation part, print "
        "MAE/RMSE/MASE on the test part next to the naive and seasonal-naive forecasts, and save "
        "the model.",
    )
    p.add_argument("data", metavar="DATA.csv", help="CSV file with a header row")
    p.add_argument("--column", required=True, help="name of the numeric column to forecast")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write")
    _data_options(p)
    p.add_argument("--lookback", type=_positive_int, default=24, help="input steps (default 24)")
    p.add_argument("--horizon", type=_positive_int, default=12, help="steps forecast (default 12)")
    p.add_argument(
        "--season",
        type=_positive_int,
        default=None,
        help="season length in steps for the seasonal-naive baseline and the normalisation "
        "(default: detected from the training part's autocorrelation; 1 = none)",
    )
    p.add_argument(
        "--transform",
        choices=[*TRANSFORMS, "auto"],
        default="auto",
        help="variance-stabilising transform; auto (default) tries none, sqrt (data >= 0) and "
        "log (data > 0) and keeps the lowest validation RMSE",
    )
    p.add_argument(
        "--normalize",
        choices=NORMALIZE,
        default="cycle",
        help="per-window normalisation by the mean and std of the last cycle (default), the "
        "whole window, or none",
    )
    p.add_argument(
        "--units", type=_units, default=32, help=f"LSTM units, 1 to {MAX_UNITS} (default 32)"
    )
    p.add_argument(
        "--dropout", type=_dropout, default=0.0, help="input dropout, 0 <= p < 1 (default 0)"
    )
    p.add_argument("--epochs", type=_positive_int, default=300, help="max epochs (default 300)")
    p.add_argument("--patience", type=_positive_int, default=30, help="early stopping (default 30)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="default 16")
    p.add_argument(
        "--learning-rate", type=_positive_float, default=3e-3, help="Adam, > 0 (default 3e-3)"
    )
    p.add_argument("--seed", type=_seed, default=0, help="random seed, >= 0 (default 0)")
    p.add_argument(
        "--max-rows",
        type=_positive_int,
        default=DEFAULT_MAX_ROWS,
        help=f"train on at most this many of the most recent rows (default {DEFAULT_MAX_ROWS}); "
        "the output says when rows were left out",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show a progress bar per epoch and the progress of reading the file (both are "
        "shown as plain lines anyway for large inputs)",
    )
    p.set_defaults(func=cmd_train, reads=("data",), writes=("--out",))

    # -- predict --------------------------------------------------------------------------------
    p = sub.add_parser(
        "predict",
        help="Forecast the steps after the last row of a CSV file (or backtest with --holdout).",
        description="Forecast the model's horizon steps that follow the last row of DATA.csv and "
        "write them as CSV (a label column and 'forecast') plus a PNG plot. With --holdout the "
        "last horizon rows are held out and forecast from the rows before them instead; the CSV "
        "gets an 'actual' column and the errors are printed next to the naive baselines.",
    )
    p.add_argument("model", metavar="MODEL", help="model file written by `forecast train`")
    p.add_argument("data", metavar="DATA.csv", help="CSV file with the series to continue")
    p.add_argument("--out", required=True, metavar="FORECAST.csv", help="CSV file to write")
    p.add_argument(
        "--column", default=None, help="column to read (default: the one the model was trained on)"
    )
    _data_options(p)
    p.add_argument(
        "--plot", default=None, metavar="PATH", help="PNG to write (default: FORECAST.png)"
    )
    p.add_argument(
        "--holdout", action="store_true", help="backtest on the last horizon rows instead"
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="show the progress of reading the file"
    )
    p.set_defaults(func=cmd_predict, reads=("model", "data"), writes=_predict_writes)

    # -- demo -----------------------------------------------------------------------------------
    from ..data import list_builtin

    p = sub.add_parser(
        "demo",
        help="Train on a built-in series, compare with the baselines, save model, forecast, plot.",
        description="What `make demo` runs: train with the demo settings on a built-in series "
        "(sunspots 1700-2008 by default), print the test-part table against the naive and "
        "seasonal-naive baselines, and write the model, the forecast CSV and its plot to DIR.",
    )
    p.add_argument("--out", default="out/demo", metavar="DIR", help="default out/demo")
    p.add_argument("--data", default="sunspots", choices=list_builtin(), help="built-in series")
    p.add_argument("--seed", type=_seed, default=None, help="random seed, >= 0 (default 0)")
    p.add_argument("-v", "--verbose", action="store_true", help="show a progress bar per epoch")
    p.set_defaults(func=cmd_demo, writes=_demo_writes)


def _data_options(p):
    p.add_argument(
        "--time-column",
        default=None,
        help="column whose values label the rows (e.g. dates); used for the output and the plot",
    )
    p.add_argument(
        "--fill",
        choices=["none", "interpolate"],
        default="none",
        help="missing values and missing dates: none (default) makes them an error, "
        "interpolate fills interior gaps linearly in time",
    )


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


def _progress(args, path):
    """Where reading progress goes: plain lines on stderr with --verbose or for a big file."""
    try:
        big = os.path.getsize(path) >= BIG_FILE_BYTES
    except OSError:
        big = False  # the reader reports a missing file
    if not (getattr(args, "verbose", False) or big):
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)


def _print_notes(index):
    for note in getattr(index, "notes", ()):
        print(note)


def _check_out_file(path, arg):
    if os.path.isdir(path):
        raise ValueError(f"argument '{arg}' got a directory {str(path)!r}, expected a file path")


# -- train --------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from ..apps.forecast import allowed_transforms, train_forecaster
    from ..data import read_series_csv

    _check_out_file(args.out, "--out")
    _check_max_rows(args)
    start = time.perf_counter()
    values, index = read_series_csv(
        args.data,
        args.column,
        time_column=args.time_column,
        fill=args.fill,
        progress=_progress(args, args.data),
    )  # train_forecaster says how many rows lookback and horizon need
    took = time.perf_counter() - start
    took = f" in {took:.1f} s" if took >= 1 else ""
    print(f"read {len(values)} rows of column {args.column!r} from {args.data}{took}")
    _print_notes(index)
    values, index = _most_recent(values, index, args.max_rows)
    # long trainings say how they go: a tqdm bar with -v, else plain lines for big inputs
    transforms = allowed_transforms(values) if args.transform == "auto" else [args.transform]
    lines = [_epoch_lines(transforms)] if len(values) >= BIG_ROWS and not args.verbose else []
    report = train_forecaster(
        values,
        lookback=args.lookback,
        horizon=args.horizon,
        season=args.season,
        transform=args.transform,
        normalize=args.normalize,
        units=args.units,
        dropout=args.dropout,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        learning_rate=args.learning_rate,
        seed=args.seed,
        verbose=1 if args.verbose else 0,
        column=args.column,
        time_column=args.time_column,
        callbacks=lines,
    )
    _print_report(report, index, season_given=args.season is not None)
    report.model.save(args.out)
    print(f"saved model to {args.out}")
    return 0


def _check_max_rows(args):
    """--max-rows must leave the parts of the 70/15/15 split what lookback and horizon need."""
    need = math.ceil(max((args.lookback + args.horizon) / 0.7, args.horizon / 0.15))
    if args.max_rows < need:
        raise ValueError(
            f"argument '--max-rows' got {args.max_rows}, expected at least {need} for --lookback "
            f"{args.lookback} and --horizon {args.horizon} (the training part, 70% of the rows, "
            "needs lookback + horizon rows, validation and test horizon rows each)"
        )


def _most_recent(values, index, max_rows):
    """The last ``max_rows`` rows (a copy, so that the rest can be freed), saying so."""
    n = len(values)
    if n <= max_rows:
        return values, index
    print(
        f"using the most recent {max_rows} of {n} rows ({index[n - max_rows]}..{index[n - 1]}); "
        f"--max-rows sets how many"
    )
    return values[n - max_rows :].copy(), index[n - max_rows :]


def _epoch_lines(transforms):
    """A callback printing plain lines on stderr: which network starts (one per transform in
    ``transforms``, the order ``train_forecaster`` fits them in), then one line per epoch
    (losses, seconds since that network began). lstmkit.callbacks is imported only now."""
    from ..callbacks import Callback

    class EpochLines(Callback):
        fits = 0

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()
            name = transforms[min(self.fits, len(transforms) - 1)]
            self.fits += 1
            print(
                f"training with transform {name}: up to {self.params.get('epochs')} epochs of "
                f"{self.params.get('steps')} batches",
                file=sys.stderr,
                flush=True,
            )

        def on_epoch_end(self, epoch, logs=None):
            shown = ", ".join(
                f"{k} {v:.4g}" for k, v in (logs or {}).items() if isinstance(v, float)
            )
            took = time.perf_counter() - self.start
            print(
                f"epoch {epoch + 1}/{self.params.get('epochs')}: {shown} ({took:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    return EpochLines()


def _print_report(report, index, season_given):
    n1, n2 = report.n_train, report.n_train + report.n_val

    def span(a, b):
        return f"{index[a]}..{index[b - 1]}"

    print(
        f"split: train {report.n_train} ({span(0, n1)}) | validation {report.n_val} "
        f"({span(n1, n2)}) | test {report.n_test} ({span(n2, len(index))}) rows"
    )
    how = "given" if season_given else "detected on the training part"
    if not season_given and 0 < report.season_rows < report.n_train:
        how = f"detected on the last {report.season_rows} rows of the training part"
    print(f"season: {report.season} ({how})")
    tried = ", ".join(f"{k} {v:.3f}" for k, v in report.selection.items())
    print(f"transform: {report.transform} (validation RMSE: {tried})")
    print(
        f"epochs: {report.epochs_run}, weights of epoch {report.best_epoch} kept (early stopping)"
    )
    print(
        f"test part: {report.test_windows} rolling forecasts of "
        f"{report.model.metadata['horizon']} steps"
    )
    print(report.format_table())


# -- predict ------------------------------------------------------------------------------------
def _plot_path(out, plot):
    return Path(plot) if plot else Path(out).with_suffix(".png")


def _predict_writes(args):  # what lstmkit.cli.main checks before the command runs
    from .._paths import Output

    if args.plot:
        return [Output("--out", args.out), Output("--plot", args.plot)]
    default = str(_plot_path(args.out, None))
    return [Output("--out", args.out), Output("--plot (default: --out with .png)", default)]


def cmd_predict(args) -> int:
    from ..apps.forecast import backtest, forecast, forecaster_meta
    from ..apps.forecast_files import future_labels, plot_png, read_history
    from ..data import SeriesIndex
    from ..saving import load_model

    out, plot = Path(args.out), _plot_path(args.out, args.plot)
    _check_out_file(out, "--out")
    _check_out_file(plot, "--plot")
    model = load_model(args.model, compile=False)
    horizon = forecaster_meta(model)["horizon"]
    values, index, column, tcol = read_history(
        args.data,
        model,
        column=args.column,
        time_column=args.time_column,
        fill=args.fill,
        progress=_progress(args, args.data),
    )  # forecast and backtest say how many rows they need
    _print_notes(index)
    label = tcol or "step"
    if args.holdout:
        table, fc, actual = backtest(model, values)
        labels = index[-horizon:]
        rows = [(lab, float(f), float(a)) for lab, f, a in zip(labels, fc, actual)]
        header = [label, "forecast", "actual"]
        png = plot_png(
            index[:-horizon], values[:-horizon], labels, fc, actual,
            title=f"{column}: backtest on the last {horizon} rows",
        )  # fmt: skip
    else:
        fc = forecast(model, values)
        labels = future_labels(index, horizon)
        if tcol and SeriesIndex.from_labels(index).future_is_steps:
            label = "step"
            print(
                f"{tcol!r} holds neither dates nor numbers: the forecast rows are labelled by "
                f"step, the row positions {labels[0]}..{labels[-1]} after the {len(values)} "
                "rows read (0-based)"
            )
        rows = [(lab, float(f)) for lab, f in zip(labels, fc)]
        header = [label, "forecast"]
        png = plot_png(index, values, labels, fc, title=f"{column}: {horizon}-step forecast")
    _write_outputs(out, header, rows, plot, png)
    if args.holdout:
        print(f"backtest: the last {horizon} rows of {args.data} forecast from the rows before")
        print(_format_table(table))
    print(f"wrote {out} ({len(rows)} rows) and {plot}")
    return 0


def _write_outputs(csv_path, header, rows, png_path, png):
    from ..data import write_csv_atomic
    from ..saving import atomic_write

    write_csv_atomic(csv_path, header, rows)

    def write_png(tmp):
        with open(tmp, "wb") as f:
            f.write(png)

    atomic_write(png_path, write_png, suffix=".png")


def _format_table(table):
    lines = [f"{'method':<22}{'MAE':>10}{'RMSE':>10}{'MASE':>10}"]
    for name, row in table.items():
        lines.append(f"{name:<22}{row['MAE']:>10.3f}{row['RMSE']:>10.3f}{row['MASE']:>10.3f}")
    return "\n".join(lines)


# -- demo ---------------------------------------------------------------------------------------
DEMO_FILES = (DEFAULT_MODEL_NAME, "forecast.csv", "forecast.png")


def _demo_writes(args):
    from .._paths import Output

    return [Output("--out", os.path.join(args.out, name)) for name in DEMO_FILES]


def cmd_demo(args) -> int:
    from ..apps.forecast import DEMO_SETTINGS, forecast, train_forecaster
    from ..apps.forecast_files import future_labels, plot_png
    from ..data import load_series

    start = time.perf_counter()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"argument '--out' got {str(out)!r}, which is a file; expected a directory"
        )
    values, index, info = load_series(args.data)
    settings = dict(DEMO_SETTINGS)
    if args.seed is not None:
        settings["seed"] = args.seed
    print(
        f"{info['name']}: {info['description']} {info['n']} rows, {info['start']}-{info['end']}"
        f" ({info['source']})"
    )
    shown = ", ".join(f"{k}={v}" for k, v in settings.items())
    print(f"settings: {shown}")
    report = train_forecaster(
        values,
        **settings,
        verbose=1 if args.verbose else 0,
        column=info["column"],
        time_column=info["time_column"],
    )
    _print_report(report, index, season_given=False)
    model = report.model
    horizon = model.metadata["horizon"]
    fc = forecast(model, values)
    labels = future_labels(index, horizon)
    png = plot_png(
        index, values, labels, fc,
        title=f"{info['name']}: LSTM forecast of {labels[0]}..{labels[-1]}",
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    model_path, csv_path, png_path = (out / name for name in DEMO_FILES)
    model.save(model_path)
    _write_outputs(csv_path, [info["time_column"], "forecast"], zip(labels, fc), png_path, png)
    print(f"wrote {model_path}, {csv_path}, {png_path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
