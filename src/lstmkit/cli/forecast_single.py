"""``lstmkit forecast train --engine single`` and ``forecast predict`` on a model file of that
engine: today's single-series forecaster (``lstmkit.apps.forecast``), kept so that its model files
still load and predict. ``lstmkit.cli.forecast`` parses the arguments and calls ``train_single``
or ``predict_single``.

Every output is written only after everything it depends on has been computed, and atomically
(temporary file + rename), so a failed command leaves existing files as they were. Data problems
raise ``ValueError`` with a message naming the problem; ``lstmkit.cli.main`` prints it on stderr
and exits with status 2.
"""

from __future__ import annotations

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
def train_single(args) -> int:
    from ..apps.forecast import allowed_transforms, train_forecaster
    from ..data import read_series_csv

    _single_settings(args)
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


def _single_settings(args):
    """This engine's own defaults (``train_forecaster``'s signature) for every setting the
    command line did not give (``args.given``): lookback 24, horizon 12, epochs 300, batch 16...
    so that ``--engine single`` trains as ``forecast train`` did before the global engine."""
    import inspect

    from ..apps.forecast import DEFAULT_MAX_ROWS, TRANSFORMS, train_forecaster
    from ..apps.forecast_config import ForecastConfig
    from ..apps.forecast_run import time_column_of

    explicit = args.time_column != ForecastConfig().time_column
    args.time_column = time_column_of(args.data, args.time_column, explicit)
    own = inspect.signature(train_forecaster).parameters
    if len(args.lookback) > 1:
        raise ValueError(
            f"argument '--lookback' got {list(args.lookback)}; --engine single takes one lookback"
        )
    args.lookback = args.lookback[0] if args.lookback else own["lookback"].default
    given = getattr(args, "given", set())
    for name in ("horizon", "units", "epochs", "patience", "batch_size", "learning_rate", "seed",
                 "transform"):  # fmt: skip
        if name not in given:
            setattr(args, name, own[name].default)
    for name in ("normalize", "dropout"):
        if getattr(args, name) is None:
            setattr(args, name, own[name].default)
    if args.max_rows is None:
        args.max_rows = DEFAULT_MAX_ROWS
    if args.transform not in ("auto", *TRANSFORMS):
        raise ValueError(
            f"argument '--transform' got {args.transform!r}; expected one of "
            f"{['auto', *TRANSFORMS]} with --engine single"
        )


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


def predict_single(args) -> int:
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
