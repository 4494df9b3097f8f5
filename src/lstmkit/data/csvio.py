"""Read one numeric column of a CSV file as a series; write CSV files atomically.

Standard library ``csv`` plus NumPy only (no pandas), so the core package stays NumPy-only.

Reading is strict on purpose: a forecaster trained on a silently mangled column is worse than an
error. Every problem is reported with the argument it concerns and the file line (1-based, the
header is line 1, so it is also the row number a spreadsheet shows), and all bad cells of a kind are
listed in one message rather than one per run.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from .._atomic import atomic_write

__all__ = ["MISSING_TOKENS", "DataFileNotFoundError", "read_series_csv", "write_csv_atomic"]

# Cells that mean "no value here" (compared case-insensitively after stripping whitespace).
MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})
FILL_MODES = ("none", "interpolate")
_MAX_LISTED = 10  # list at most this many bad cells in one message


class DataFileNotFoundError(FileNotFoundError, ValueError):
    """A data file does not exist.

    Both a ``FileNotFoundError`` (what Python code expects for a missing file) and a ``ValueError``
    (so that a caller reporting every bad argument of a data job with ``except ValueError`` gets
    this one too).
    """


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f", ... ({len(items)} in all)"
    return shown


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


def _interpolate_gaps(values, gaps: list[int], lines: list[int], where: str, func: str):
    """Fill interior NaNs linearly in row position; gaps at either end cannot be interpolated."""
    ok = ~np.isnan(values)
    if not ok.any():
        raise ValueError(
            f"{func}: argument 'column' ({where}) has no values at all: got only missing cells, "
            "expected at least one number"
        )
    first, last = np.flatnonzero(ok)[[0, -1]]
    edge = [lines[i] for i in gaps if i < first or i > last]
    if edge:
        raise ValueError(
            f"{func}: argument 'fill' ('interpolate') cannot fill missing values at the start "
            f"or end of column {where}: got gaps on line(s) {_listing([str(n) for n in edge])}, "
            "expected a number in the first and the last row (interpolation needs a value on "
            "both sides); trim those rows"
        )
    pos = np.arange(values.size, dtype=np.float64)
    values[~ok] = np.interp(pos[~ok], pos[ok], values[ok])
    return values


def _parse_series(
    stream: IO[str],
    source: str,
    column: str,
    time_column: str | None,
    fill: str,
    min_rows: int,
    func: str,
) -> tuple[np.ndarray, list[str]]:
    """Shared by ``read_series_csv`` and the built-in datasets: ``stream`` is an open text file."""
    reader = csv.reader(stream)
    header = None
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip() for cell in row]
            break
    if header is None:
        raise ValueError(
            f"{func}: argument 'path' got an empty file ({source}), expected a header row and at "
            f"least {min_rows} data row(s)"
        )
    dupes = sorted({name for name in header if header.count(name) > 1})
    if dupes:
        raise ValueError(
            f"{func}: argument 'path' got a header with repeated column names {dupes} in {source}, "
            "expected unique names"
        )
    col = _column_position(header, column, "column", source, func)
    tcol = None
    if time_column is not None:
        tcol = _column_position(header, time_column, "time_column", source, func)

    cells: list[str] = []
    times: list[str] = []
    lines: list[int] = []
    ragged: list[str] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines (often a trailing one) carry no data
        if len(row) != len(header):
            ragged.append(f"{reader.line_num} ({len(row)} fields)")
            continue
        cells.append(row[col].strip())
        times.append(row[tcol].strip() if tcol is not None else "")
        lines.append(reader.line_num)
    if ragged:
        raise ValueError(
            f"{func}: argument 'path' ({source}) has rows of the wrong length: got lines "
            f"{_listing(ragged)}, expected {len(header)} fields like the header"
        )

    values = np.empty(len(cells), dtype=np.float64)
    gaps: list[int] = []
    bad: list[str] = []
    for i, cell in enumerate(cells):
        if cell.lower() in MISSING_TOKENS:
            values[i] = np.nan
            gaps.append(i)
            continue
        try:
            v = float(cell)
        except ValueError:
            v = math.nan
        if not math.isfinite(v):  # text, or 'inf': neither is a usable observation
            bad.append(f"{cell!r} on line {lines[i]}")
        values[i] = v
    if bad:
        raise ValueError(
            f"{func}: argument 'column' ({column!r}) of {source} must hold numbers: got "
            f"{_listing(bad)}, expected finite decimal numbers such as 12.5"
        )
    if gaps:
        if fill == "none":
            got = [f"{cells[i]!r} on line {lines[i]}" for i in gaps]
            raise ValueError(
                f"{func}: argument 'column' ({column!r}) of {source} has {len(gaps)} missing "
                f"value(s): got {_listing(got)}, expected a number in every row "
                "(or pass fill='interpolate' to fill interior gaps linearly)"
            )
        values = _interpolate_gaps(values, gaps, lines, f"{column!r} of {source}", func)
    if values.size < min_rows:
        raise ValueError(
            f"{func}: argument 'path' ({source}) has too few data rows: got {values.size}, "
            f"expected at least {min_rows} (min_rows)"
        )
    index = times if tcol is not None else [str(i) for i in range(values.size)]
    return values, index


def read_series_csv(
    path: str | os.PathLike,
    column: str,
    *,
    time_column: str | None = None,
    fill: str = "none",
    min_rows: int = 1,
) -> tuple[np.ndarray, list[str]]:
    """Read ``column`` of the CSV file at ``path`` as a float64 series.

    The first non-blank line is the header; blank lines are skipped. Missing cells are the
    tokens in ``MISSING_TOKENS`` (empty, ``nan``, ``NA``, ``n/a``, ``null``, ``none``).

    Args:
        path: the CSV file (UTF-8, a byte-order mark is allowed).
        column: header name of the numeric column to read.
        time_column: header name of a column whose cells (kept as text) become the index;
            ``None`` makes the index the row positions ``"0", "1", ...``.
        fill: ``"none"`` (default) makes missing values an error; ``"interpolate"`` fills
            interior gaps linearly in row position (gaps at either end remain an error).
        min_rows: the caller's minimum number of data rows (e.g. ``lookback + horizon``).

    Returns:
        ``(values (N,) float64, index list of N str)``.

    Raises:
        DataFileNotFoundError: (a ``ValueError``) if ``path`` does not exist.
        ValueError: empty file, unknown column, ragged rows, non-numeric cells, missing
            values with ``fill="none"``, or fewer than ``min_rows`` rows. The message names the
            argument and lists every offending line.
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
    with open(p, newline="", encoding="utf-8-sig") as stream:
        return _parse_series(stream, repr(str(p)), column, time_column, fill, min_rows, func)


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
