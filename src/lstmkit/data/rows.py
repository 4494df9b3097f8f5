"""Stream the rows of a CSV file into a float64 column and a compact time column.

Memory is what the result needs, not what the text needs: cells are parsed in chunks of
``CHUNK`` rows, so the strings of one chunk at most are alive at a time, and the result is a
float64 array (8 bytes a row) plus the time column (8 bytes a row for dates). File lines are
stored only when the data rows stop being consecutive lines (blank lines, quoted line breaks).

Numbers are finite decimals (``12``, ``-0.5``, ``3e2``, ``.5``; ASCII digits, no ``_``). A
chunk whose text holds only the characters of such numbers is converted by ``float`` in one
pass; any other chunk is examined cell by cell, which finds the missing cells
(``MISSING_TOKENS``) and the bad ones with their lines.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable

import numpy as np

from .dates import BadDate, DateFormat, match_format, parse_dates

# Cells that mean "no value here" (compared case-insensitively after stripping whitespace).
MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})
CHUNK = 4096  # rows parsed at a time (small: fewer live row lists for the garbage collector)
CHUNK_CELLS = 2**18  # ... and at most this many cells, so a wide file's chunk stays small
MAX_LISTED = 10  # list at most this many bad cells in one message
PROGRESS_EVERY = 2.0  # seconds between progress lines

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_NUMBER_TEXT = re.compile(r"[^0-9.eE+\- \t]")  # a chunk without these is decimals only


def show(cell: str, width: int = 40) -> str:
    """``repr`` of a cell, shortened: a message quotes cells, not whole junk lines."""
    return repr(cell if len(cell) <= width else cell[: width - 3] + "...")


class Listed:
    """The first ``MAX_LISTED`` items of a kind and how many there were."""

    def __init__(self):
        self.items: list[str] = []
        self.count = 0

    def add(self, item: str) -> None:
        self.count += 1
        if len(self.items) < MAX_LISTED:
            self.items.append(item)

    def __bool__(self) -> bool:
        return self.count > 0

    def text(self) -> str:
        shown = ", ".join(self.items)
        return shown + (f", ... ({self.count} in all)" if self.count > len(self.items) else "")


class Lines:
    """Data row position -> file line (1-based, header included)."""

    def __init__(self, first: int, table: np.ndarray | None):
        self.first, self.table = first, table

    def __call__(self, row: int) -> int:
        return self.first + row if self.table is None else int(self.table[row])


class TimeCells:
    """The time column, chunk by chunk: dates of the form most cells of the first chunk have
    (``DATE_FORMATS``) as int64, else the cells as a NumPy str array. A column of 4-digit
    years that later holds another number is turned into labels (its years written back as the
    4-digit text they were)."""

    def __init__(self):
        self.fmt: DateFormat | None = None
        self.sep = "T"
        self.started = False
        self.chunks: list[np.ndarray] = []

    def add(self, cells: list[str]) -> None:
        cells = [c.strip() for c in cells]
        if not self.started:  # the form of most cells of the first chunk
            self.started = True
            self.fmt = match_format(cells)
            self.sep = "T" if any("T" in c for c in cells[:100]) else " "
        if self.fmt is None:
            self.chunks.append(_labels(cells))
            return
        try:
            fmt = self.fmt
            width = len(fmt.template)
            if max(map(len, cells)) > width:  # checked first: a NumPy str array is as wide as
                i = next(i for i, c in enumerate(cells) if len(c) > width)  # its longest cell
                raise BadDate(i, cells[i], f"not a date of the form {fmt.example} like the others")
            self.chunks.append(parse_dates(np.array(cells, dtype=str), self.fmt))
        except BadDate as e:
            if self.fmt.name != "year" or not _DECIMAL.fullmatch(e.cell):
                raise
            # a number that is no 4-digit year (999, 10000): a column of numbers, not years
            self.chunks = [np.char.mod("%04d", c + 1970) for c in self.chunks]
            self.chunks.append(_labels(cells))
            self.fmt = None

    def take(self) -> np.ndarray:
        """The whole column (the chunks are released: the column is not held twice)."""
        chunks, self.chunks = self.chunks, []
        if not chunks:
            return np.empty(0, dtype=np.int64 if self.fmt is not None else str)
        return np.concatenate(chunks)


def _labels(cells: list[str]) -> np.ndarray:
    """Text labels as a NumPy str array (4 bytes a character), or as Python strings when a
    long one would make every element of the str array that wide, or when one has a NUL
    (a NumPy str array drops trailing NULs)."""
    odd = max(map(len, cells), default=0) > 32 or "\x00" in "".join(cells)
    return np.array(cells, dtype=object if odd else str)


class MultiLineRows(Exception):
    """A chunk held a row spanning several lines (a quoted line break): its rows' lines are
    unknown, so the file must be read again row by row (``RowReader(careful=True)``)."""


class RowReader:
    """Reads the data rows of one CSV reader: ``read(reader)`` then the attributes
    ``values (N,) float64`` (NaN where a cell is missing), ``time``, ``lines`` and the
    problems found (``ragged``, ``bad``, ``gaps``, ``bad_date``).

    Rows are taken ``CHUNK`` at a time. A chunk whose rows all have the header's length and
    whose cells are all decimal numbers is converted in one pass; any other chunk is examined
    row by row. A row's line is the line after the previous row's, which only a quoted line
    break makes wrong: then ``read`` raises ``MultiLineRows`` unless ``careful``, which asks
    the csv reader for every row's line (slower).
    """

    def __init__(
        self,
        n_fields: int,
        col: int,
        tcol: int | None,
        progress: Callable[[int], None] | None = None,
        careful: bool = False,
    ):
        self.n_fields, self.col, self.tcol, self.progress = n_fields, col, tcol, progress
        self.careful = careful
        self.ragged, self.bad, self.gaps = Listed(), Listed(), Listed()
        self.bad_date: tuple[int, str, str] | None = None  # (line, cell, reason), the first
        self.time = TimeCells() if tcol is not None else None
        self._chunks: list[np.ndarray] = []
        self._n = 0  # rows kept so far
        self._first_line: int | None = None
        self._line_chunks: list[np.ndarray] | None = None
        self._last_report = time.monotonic()

    def read(self, reader) -> None:
        seen = reader.line_num  # lines consumed (the header and what is above it)
        size = max(16, min(CHUNK, CHUNK_CELLS // self.n_fields))
        while True:
            if self.careful:
                chunk, lines = [], []
                for row in itertools.islice(reader, size):
                    chunk.append(row)
                    lines.append(reader.line_num)
            else:
                chunk = list(itertools.islice(reader, size))
                if reader.line_num - seen != len(chunk):
                    raise MultiLineRows
                lines = range(seen + 1, seen + 1 + len(chunk))
            if not chunk:
                return
            seen = reader.line_num
            self._take(chunk, lines)

    # -- one chunk ---------------------------------------------------------------------------
    def _take(self, chunk: list[list[str]], lines) -> None:
        col, tcol = self.col, self.tcol
        values = None
        if set(map(len, chunk)) == {self.n_fields}:
            vcells = [row[col] for row in chunk]
            try:
                values = _decimals(vcells)
            except ValueError:
                pass
        if values is None:  # blank or ragged rows, missing or bad cells: row by row
            chunk, lines = self._keep_rows(chunk, lines)
            if not chunk:
                return
            vcells = [row[col] for row in chunk]
            values = self._cell_by_cell(vcells, lines)
        self._chunks.append(values)
        self._track_lines(lines)
        if self.time is not None and self.bad_date is None:
            try:
                self.time.add([row[tcol] for row in chunk])
            except BadDate as e:
                self.bad_date = (lines[e.position], e.cell, e.reason)
        self._n += len(chunk)
        now = time.monotonic()
        if self.progress is not None and now - self._last_report >= PROGRESS_EVERY:
            self._last_report = now
            self.progress(self._n)

    def _keep_rows(self, chunk, lines):
        """The rows of a chunk that hold data, and their lines: blank rows are skipped, rows of
        the wrong length are recorded in ``ragged``."""
        kept, kept_lines = [], []
        for row, line in zip(chunk, lines):
            if len(row) == self.n_fields and row[self.col].strip():
                kept.append(row)
            elif not any(cell.strip() for cell in row):
                continue  # blank lines (often a trailing one) carry no data
            elif len(row) != self.n_fields:
                self.ragged.add(f"{line} ({len(row)} fields)")
                continue
            else:
                kept.append(row)  # a missing value in a row that has others
            kept_lines.append(line)
        return kept, kept_lines

    def _cell_by_cell(self, cells: list[str], lines) -> np.ndarray:
        out = np.empty(len(cells))
        for i, raw in enumerate(cells):
            cell = raw.strip()
            if cell.lower() in MISSING_TOKENS:
                out[i] = np.nan
                self.gaps.add(f"{show(cell)} on line {lines[i]}")
                continue
            v = float(cell) if _DECIMAL.fullmatch(cell) else np.nan
            if not np.isfinite(v):  # text, or 1e999: neither is a usable observation
                self.bad.add(f"{show(cell)} on line {lines[i]}")
            out[i] = v
        return out

    def _track_lines(self, lines) -> None:
        if self._first_line is None:
            self._first_line = lines[0]
        expected = self._first_line + self._n
        consecutive = lines[0] == expected and lines[-1] - lines[0] == len(lines) - 1
        if self._line_chunks is None and not consecutive:
            self._line_chunks = [np.arange(self._first_line, expected, dtype=np.int64)]
        if self._line_chunks is not None:
            self._line_chunks.append(np.asarray(lines, dtype=np.int64))

    # -- results -----------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return self._n

    def take_values(self) -> np.ndarray:
        """The whole column (the chunks are released: the column is not held twice)."""
        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.empty(0)

    @property
    def lines(self) -> Lines:
        table = None if self._line_chunks is None else np.concatenate(self._line_chunks)
        return Lines(self._first_line or 0, table)


def _decimals(cells: list[str]) -> np.ndarray:
    """All cells as float64 when the chunk is plainly decimal numbers; ValueError otherwise
    (the caller then looks at each cell)."""
    if _NOT_NUMBER_TEXT.search("".join(cells)):
        raise ValueError("not only decimal characters")
    out = np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))
    if not np.isfinite(out).all():
        raise ValueError("1e999 and the like")
    return out
