"""Read one numeric column of a CSV file as a series; write CSV files atomically.

Standard library ``csv`` plus NumPy only (no pandas), so the core package stays NumPy-only.
The rows are streamed (``rows.RowReader``) into float64 and int64 arrays; a date column puts
the series in time order (``timeline.order_by_time``) and labels it (``dates.SeriesIndex``).

Reading is strict on purpose: a forecaster trained on a silently mangled column is worse than an
error. Every problem is reported with the argument it concerns and the file line (1-based, the
header is line 1, so it is also the row number a spreadsheet shows), and the bad cells of a kind
are listed in one message (the first ten, and how many) rather than one per run.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from .._atomic import atomic_write
from . import rows
from .dates import SeriesIndex
from .rows import MISSING_TOKENS
from .timeline import order_by_time

__all__ = ["MISSING_TOKENS", "DataFileNotFoundError", "read_series_csv", "write_csv_atomic"]

FILL_MODES = ("none", "interpolate")


class DataFileNotFoundError(FileNotFoundError, ValueError):
    """A data file does not exist.

    Both a ``FileNotFoundError`` (what Python code expects for a missing file) and a ``ValueError``
    (so that a caller reporting every bad argument of a data job with ``except ValueError`` gets
    this one too).
    """


def _check_fill(fill: str, func: str) -> None:
    if fill not in FILL_MODES:
        raise ValueError(
            f"{func}: argument 'fill' got {fill!r}, expected one of {list(FILL_MODES)}"
        )


def _check_min_rows(min_rows: int, func: str) -> None:
    if isinstance(min_rows, bool) or not isinstance(min_rows, (int, np.integer)) or min_rows < 1:
        raise ValueError(f"{func}: argument 'min_rows' got {min_rows!r}, expected an integer >= 1")


def _column_position(header: list[str], name: object, arg: str, source: str, func: str) -> int:
    if not isinstance(name, str) or name not in header:
        raise ValueError(
            f"{func}: argument {arg!r} names no column of {source}: got {name!r}, "
            f"expected one of {header}"
        )
    return header.index(name)


def _interpolate_gaps(values, line_of_pos, where: str, func: str):
    """Fill interior NaNs linearly in position (time order, one step apart); gaps at either
    end cannot be interpolated. ``line_of_pos(p)`` is the file line of position ``p``."""
    ok = ~np.isnan(values)
    if not ok.any():
        raise ValueError(
            f"{func}: argument 'column' ({where}) has no values at all: got only missing cells, "
            "expected at least one number"
        )
    first, last = np.flatnonzero(ok)[[0, -1]]
    edge = np.r_[np.arange(first), np.arange(last + 1, values.size)]
    if edge.size:
        lines = [str(line_of_pos(int(p))) for p in edge[: rows.MAX_LISTED + 1]]
        shown = ", ".join(lines[: rows.MAX_LISTED])
        if edge.size > rows.MAX_LISTED:
            shown += f", ... ({edge.size} in all)"
        raise ValueError(
            f"{func}: argument 'fill' ('interpolate') cannot fill missing values at the start "
            f"or end of column {where}: got gaps on line(s) {shown}, "
            "expected a number in the first and the last row (interpolation needs a value on "
            "both sides); trim those rows"
        )
    pos = np.arange(values.size, dtype=np.float64)
    values[~ok] = np.interp(pos[~ok], pos[ok], values[ok])
    return values


def _read_header(reader, source: str, min_rows: int, func: str, expected: str = "") -> list[str]:
    """The first non-blank row, stripped, its names unique. ``expected`` says what the file
    should hold after the header (default: ``min_rows`` data rows)."""
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip() for cell in row]
            break
    else:
        expected = expected or f"at least {min_rows} data row(s)"
        raise ValueError(
            f"{func}: argument 'path' got an empty file ({source}), expected a header row and "
            f"{expected}"
        )
    # Counter, not header.count per name: a hostile header of 10^5 cells must not take n^2 steps
    dupes = sorted(name for name, k in Counter(header).items() if k > 1)
    if dupes:
        raise ValueError(
            f"{func}: argument 'path' got a header with repeated column names {dupes} in {source}, "
            "expected unique names"
        )
    return header


def _raise_row_problems(rr: rows.RowReader, n_fields, source, column, time_column, fill, func):
    """Every problem of the cells found while reading, in one message per kind."""
    if rr.ragged:
        raise ValueError(
            f"{func}: argument 'path' ({source}) has rows of the wrong length: got lines "
            f"{rr.ragged.text()}, expected {n_fields} fields like the header"
        )
    if rr.bad:
        raise ValueError(
            f"{func}: argument 'column' ({column!r}) of {source} must hold numbers: got "
            f"{rr.bad.text()}, expected finite decimal numbers such as 12.5"
        )
    if rr.bad_date is not None:
        line, cell, reason = rr.bad_date
        raise ValueError(
            f"{func}: argument 'time_column' ({time_column!r} of {source}) holds dates, so every "
            f"cell must be one: got {rows.show(cell)} on line {line}, {reason}"
        )
    if rr.gaps and fill == "none":
        raise ValueError(
            f"{func}: argument 'column' ({column!r}) of {source} has {rr.gaps.count} missing "
            f"value(s): got {rr.gaps.text()}, expected a number in every row "
            "(or pass fill='interpolate' to fill interior gaps linearly)"
        )


def _index(rr: rows.RowReader, values, source, time_column, fill, func):
    """The series in time order and its index (``SeriesIndex``); ``line_of_pos`` maps a
    position of the result to its file line (0 for an inserted date)."""
    lines = rr.lines
    if rr.time is None:
        return values, SeriesIndex.positions(values.size), lines
    t = rr.time.take()
    where = f"{time_column!r} of {source}"
    if rr.time.fmt is None:
        note = (
            f"time column {where} holds no dates of a form lstmkit reads (such as 2020, "
            "2020-Q1, 2020-01, 2020-01-31, 2020-01-31T13:05); its cells label the rows in "
            "file order"
        )
        return values, SeriesIndex(values.size, labels=t, notes=[note]), lines
    fmt, sep = rr.time.fmt, rr.time.sep
    ordered = order_by_time(t, values, fmt, sep, lines, where, fill, func)
    index = SeriesIndex(
        ordered.t.size, dates=ordered.t, fmt=fmt, sep=sep, freq=ordered.freq, notes=ordered.notes
    )

    def line_of_pos(p: int) -> int:
        row = ordered.row_of(p)
        return 0 if row < 0 else lines(row)

    return ordered.values, index, line_of_pos


def _parse_series(
    stream: IO[str],
    source: str,
    column: str,
    time_column: str | None,
    fill: str,
    min_rows: int,
    func: str,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, SeriesIndex]:
    """Shared by ``read_series_csv`` and the built-in datasets: ``stream`` is an open text file;
    ``progress(rows read)`` is called every few seconds of a long read."""
    start = stream.tell()
    reader = csv.reader(stream, strict=True)  # strict: broken quoting is an error, not data
    try:
        header = _read_header(reader, source, min_rows, func)
        col = _column_position(header, column, "column", source, func)
        tcol = None
        if time_column is not None:
            tcol = _column_position(header, time_column, "time_column", source, func)
        rr = rows.RowReader(len(header), col, tcol, progress)
        try:
            rr.read(reader)
        except rows.MultiLineRows:  # a quoted line break: read again, asking every row's line
            stream.seek(start)
            reader = csv.reader(stream, strict=True)
            _read_header(reader, source, min_rows, func)
            rr = rows.RowReader(len(header), col, tcol, progress, careful=True)
            rr.read(reader)
    except csv.Error as e:  # unterminated quotes, a field over the csv module's size limit
        raise ValueError(
            f"{func}: argument 'path' ({source}) is not valid CSV: got {str(e)!r} on line "
            f"{reader.line_num}, expected quotes only around whole fields, each closed, and "
            "fields under the csv module's size limit"
        ) from None
    _raise_row_problems(rr, len(header), source, column, time_column, fill, func)
    values, index, line_of_pos = _index(rr, rr.take_values(), source, time_column, fill, func)
    if fill == "interpolate" and np.isnan(values).any():
        values = _interpolate_gaps(values, line_of_pos, f"{column!r} of {source}", func)
    if values.size < min_rows:
        raise ValueError(
            f"{func}: argument 'path' ({source}) has too few data rows: got {values.size}, "
            f"expected at least {min_rows} (min_rows)"
        )
    return values, index


def _utf8_error(path: Path, source: str, func: str) -> ValueError:
    """Where the first byte that is not UTF-8 sits (file offset and line), found by decoding
    the file again in blocks (only on this error path)."""
    offset, line, carry = 0, 1, b""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            data = carry + block
            try:
                data.decode("utf-8")
                carry = b""
            except UnicodeDecodeError as e:
                if e.reason == "unexpected end of data" and e.end == len(data):
                    carry = data[e.start :]  # a character cut by the block boundary
                    data = data[: e.start]
                else:
                    bad = offset + e.start
                    line += data.count(b"\n", 0, e.start)
                    return ValueError(
                        f"{func}: argument 'path' got {source}, which is not UTF-8 text (byte "
                        f"0x{data[e.start]:02x} at offset {bad}, line {line}); expected UTF-8: "
                        "re-save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet, or "
                        "`iconv -f latin1 -t utf-8`)"
                    )
            line += data.count(b"\n")
            offset += len(data)
    return ValueError(
        f"{func}: argument 'path' got {source}, which is not UTF-8 text (it ends inside a "
        f"character, at offset {offset}); expected UTF-8: re-save it as UTF-8"
    )


def read_series_csv(
    path: str | os.PathLike,
    column: str,
    *,
    time_column: str | None = None,
    fill: str = "none",
    min_rows: int = 1,
    progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, SeriesIndex]:
    """Read ``column`` of the CSV file at ``path`` as a float64 series.

    The first non-blank line is the header; blank lines are skipped. Missing cells are the
    tokens in ``MISSING_TOKENS`` (empty, ``nan``, ``NA``, ``n/a``, ``null``, ``none``). The
    file is read in one pass, in chunks: memory is about 8 bytes a row for the values and 8 for
    dates, not the text.

    With ``time_column`` in one of the date forms of ``lstmkit.data.dates`` (ISO 8601 years,
    quarters, months, dates, date-times) the rows are put in time order (sorted when the file
    is not, with a note), repeated dates are an error naming the first and its lines, the
    frequency is detected, and missing dates are an error (``fill="none"``) or inserted with
    interpolated values (``fill="interpolate"``). Another time column labels the rows in file
    order.

    Args:
        path: the CSV file (UTF-8, a byte-order mark is allowed).
        column: header name of the numeric column to read.
        time_column: header name of the column of dates or labels that becomes the index;
            ``None`` makes the index the row positions ``"0", "1", ...``.
        fill: ``"none"`` (default) makes missing values and missing dates an error;
            ``"interpolate"`` fills interior gaps linearly in time (gaps at either end remain an
            error).
        min_rows: the caller's minimum number of data rows (e.g. ``lookback + horizon``).
        progress: called with a line of text every few seconds while a large file is read.

    Returns:
        ``(values (N,) float64, index)``: ``index`` is a ``SeriesIndex``, a sequence of N str
        labels (equal to the list of them) with ``notes`` on how the time column was read, its
        ``frequency`` and the labels of the steps after the last row (``index.future(h)``).

    Raises:
        DataFileNotFoundError: (a ``ValueError``) if ``path`` does not exist.
        ValueError: empty file, text that is not UTF-8, unknown column, ragged rows,
            non-numeric cells, missing values or dates with ``fill="none"``, dates that repeat,
            are unevenly spaced or not all of one form, or fewer than ``min_rows`` rows. The
            message names the argument and the offending lines.
    """
    func = "read_series_csv"
    _check_fill(fill, func)
    _check_min_rows(min_rows, func)
    p = Path(path)
    if not p.exists():
        # message only: OSError's (errno, strerror, filename) form would hide it behind "[Errno 2]"
        raise DataFileNotFoundError(
            f"{func}: argument 'path' got {str(p)!r}, which does not exist; expected a CSV file"
        )
    if p.is_dir():
        raise ValueError(f"{func}: argument 'path' got a directory {str(p)!r}, expected a CSV file")
    source = repr(str(p))
    with open(p, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        report = None
        if progress is not None:
            size = os.fstat(raw.fileno()).st_size

            def report(n_rows: int) -> None:
                progress(
                    f"reading {p.name}: {n_rows:,} rows, {raw.tell() / 1e6:,.0f} of "
                    f"{size / 1e6:,.0f} MB"
                )

        try:
            return _parse_series(
                text, source, column, time_column, fill, min_rows, func, progress=report
            )
        except UnicodeDecodeError:
            raise _utf8_error(p, source, func) from None
        except csv.Error as e:
            raise ValueError(
                f"{func}: argument 'path' ({source}) is not a CSV file the csv module can read: {e}"
            ) from None


def _cell(v: object) -> object:
    # repr of the float64 value is the shortest text that reads back bit-identically (float32
    # values are widened first, so they too read back exactly).
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


def write_csv_atomic(
    path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> Path:
    """Write ``header`` and ``rows`` to ``path`` so that ``path`` is never left half-written.

    The rows go to a new temporary file in the same directory (same file system, so the final
    ``os.replace`` is atomic); only when every row is written and flushed to disk does it replace
    ``path``. If anything fails (a row of the wrong length, an exception from the ``rows``
    iterator, a full disk) the temporary file is removed and an existing ``path`` is untouched.
    Floats are written with ``repr``, so they read back bit-identically.

    Returns:
        the written path.
    """
    func = "write_csv_atomic"
    p = Path(path)
    if isinstance(header, str) or not all(isinstance(h, str) for h in header) or not header:
        raise ValueError(
            f"{func}: argument 'header' got {header!r}, expected a non-empty sequence of str"
        )
    header = list(header)
    parent = p.parent
    if not parent.is_dir():
        raise ValueError(
            f"{func}: argument 'path' got {str(p)!r}, whose directory does not exist; "
            "expected a path in an existing directory"
        )
    if p.is_dir():
        raise ValueError(f"{func}: argument 'path' got a directory {str(p)!r}, expected a file")

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(header)
            for i, row in enumerate(rows):
                row = list(row)
                if len(row) != len(header):
                    raise ValueError(
                        f"{func}: argument 'rows' has a row of the wrong length at position {i}: "
                        f"got {len(row)} fields, expected {len(header)} like the header"
                    )
                writer.writerow([_cell(v) for v in row])

    atomic_write(p, write)
    return p
