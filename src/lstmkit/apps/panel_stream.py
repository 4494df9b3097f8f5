"""Stream the rows of a long-format CSV file into flat arrays (the first step of ``read_panel``).

The file is read in chunks of rows (``csv`` module, as ``lstmkit.data.rows`` does for one
series), so the text of one chunk at most is alive at a time. Each row becomes

    code   int32    the series' number, in the order of the ids' first rows
    t      int64    the date as a count of its unit (``lstmkit.data.dates``), or an integer step
    y      float64  NaN where the cell is empty or a missing token (a future row, or a gap)
    cov    float64  (N, K) covariate columns, NaN where missing

that is about 20 + 8 K bytes a row, whatever the text. An id is stored once (a dict from id to
code); consecutive rows of one id are found with one vectorised comparison per chunk.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..data.dates import DATE_FORMATS, BadDate, _mask
from ..data.rows import _DECIMAL, _NOT_NUMBER_TEXT, MISSING_TOKENS, TimeCells, show

CHUNK_ROWS = 32768  # rows parsed at a time ...
CHUNK_CELLS = 2**19  # ... and at most this many cells, so a wide file's chunk stays small


class Column:
    """A column of rows that grows by doubling its capacity: ``append`` copies a chunk in,
    ``take`` returns the rows so far (a view). Capacity that is never written is never
    touched, so it costs address space, not memory; a full column moves to one twice its size
    and the old one is freed at once (large blocks go back to the system, unlike many small
    chunks freed after a final concatenation, which stay in the process's heap)."""

    def __init__(self, dtype, width: int | None = None):
        self.dtype, self.width, self.n = np.dtype(dtype), width, 0
        self.data = np.empty(self._shape(1024), dtype=self.dtype)

    def _shape(self, rows: int):
        return (rows,) if self.width is None else (rows, self.width)

    def append(self, chunk: np.ndarray) -> None:
        k = len(chunk)
        if self.n + k > len(self.data):
            grown = np.empty(self._shape(max(2 * len(self.data), self.n + k)), dtype=self.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : self.n + k] = chunk
        self.n += k

    def take(self) -> np.ndarray:
        return self.data[: self.n]


class PanelReadError(ValueError):
    """A problem found while streaming, with the data row (0-based, kept rows) and file line."""


@dataclass
class Streamed:
    """What streaming a file gives (see the module docstring)."""

    ids: list[str] = field(default_factory=list)
    codes: np.ndarray | None = None
    t: np.ndarray | None = None
    y: np.ndarray | None = None
    cov: np.ndarray | None = None
    time: TimeCells | None = None
    int_time: bool = False  # the time column holds integer steps, not dates
    line_of: object = None  # kept row -> file line


class _Lines:
    """Kept data row -> file line: ``first + row`` until a row is skipped (a blank line) or a
    row spans several lines (a quoted line break); a table of lines from then on."""

    def __init__(self, first: int):
        self.first, self.n, self.table = first, 0, None

    def add(self, lines: np.ndarray) -> None:
        consecutive = lines.size == 0 or (
            lines[0] == self.first + self.n and lines[-1] - lines[0] == lines.size - 1
        )
        if self.table is None and not consecutive:
            self.table = [np.arange(self.first, self.first + self.n, dtype=np.int64)]
        if self.table is not None:
            self.table.append(lines)
        self.n += lines.size

    def __call__(self, row: int) -> int:
        if self.table is None:
            return self.first + int(row)
        if isinstance(self.table, list):
            self.table = np.concatenate(self.table)
        return int(self.table[row])


def numbers(cells: list[str]) -> tuple[np.ndarray, int | None]:
    """Cells -> float64, NaN for missing tokens; also the position of the first cell that is
    neither a finite decimal nor missing (None when all are fine)."""
    if not _NOT_NUMBER_TEXT.search("".join(cells)):
        try:
            out = np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))
            if np.isfinite(out).all():
                return out, None
        except ValueError:
            pass  # an empty cell, or '1.2.3': cell by cell
    out = np.empty(len(cells))
    bad = None
    for i, raw in enumerate(cells):
        cell = raw.strip()
        if cell.lower() in MISSING_TOKENS:
            out[i] = np.nan
        elif _DECIMAL.fullmatch(cell) and np.isfinite(v := float(cell)):
            out[i] = v
        else:
            out[i] = np.nan
            bad = i if bad is None else bad
    return out, bad


class PanelStreamer:
    """Reads the data rows of a csv reader whose header has been read. ``cols`` holds the
    positions of ``id`` (or None), ``time`` (or None), ``y`` and the covariates ``cov``;
    ``names`` the header names for messages."""

    def __init__(self, n_fields, cols, names, source, func, single_id):
        self.n_fields, self.cols, self.names = n_fields, cols, names
        self.source, self.func, self.single_id = source, func, single_id
        self.out = Streamed(time=TimeCells() if cols["time"] is not None else None)
        self.index: dict[str, int] = {}
        self._codes, self._y, self._t = Column(np.int32), Column(np.float64), Column(np.int64)
        self._cov = Column(np.float64, len(cols["cov"])) if cols["cov"] else None

    def fail(self, what: str, line: int, cell: str, expected: str, sid: str | None = None):
        where = f" (series {sid!r})" if sid is not None else ""
        raise PanelReadError(
            f"{self.func}: argument {what} of {self.source}: got {show(cell)} on line {line}"
            f"{where}, expected {expected}"
        )

    def read(self, reader) -> Streamed:
        lines = _Lines(reader.line_num + 1)
        size = max(16, min(CHUNK_ROWS, CHUNK_CELLS // self.n_fields))
        while True:
            seen = reader.line_num
            chunk = list(itertools.islice(reader, size))
            if not chunk:
                break
            if reader.line_num - seen == len(chunk):
                chunk_lines = np.arange(seen + 1, seen + 1 + len(chunk), dtype=np.int64)
            else:  # a quoted line break: lines are known only to the chunk's end
                chunk_lines = np.full(len(chunk), reader.line_num, dtype=np.int64)
            chunk, chunk_lines = self._keep(chunk, chunk_lines)
            if chunk:
                self._take(chunk, chunk_lines)
                lines.add(chunk_lines)
        return self._finish(lines)

    def _keep(self, chunk, lines):
        """Drop blank rows; a row of the wrong length is an error naming its line."""
        if set(map(len, chunk)) == {self.n_fields}:
            return chunk, lines
        kept, kept_lines = [], []
        for row, line in zip(chunk, lines.tolist()):
            if len(row) == self.n_fields:
                kept.append(row)
                kept_lines.append(line)
            elif any(cell.strip() for cell in row):
                raise PanelReadError(
                    f"{self.func}: argument 'path' ({self.source}) has a row of the wrong length: "
                    f"got {len(row)} fields on line {line}, expected {self.n_fields} like the "
                    "header"
                )
        return kept, np.asarray(kept_lines, dtype=np.int64)

    def _take(self, chunk, lines) -> None:
        codes = self._chunk_codes(chunk, lines)
        sid = self.out.ids
        y, bad = numbers([row[self.cols["y"]] for row in chunk])
        if bad is not None:
            self.fail(
                f"'column' ({self.names['y']!r})", lines[bad], chunk[bad][self.cols["y"]],
                "a finite decimal number such as 12.5 (or an empty cell in a future row)",
                sid[codes[bad]],
            )  # fmt: skip
        if self.cols["cov"]:
            cov = np.empty((len(chunk), len(self.cols["cov"])))
            for j, c in enumerate(self.cols["cov"]):
                cov[:, j], bad = numbers([row[c] for row in chunk])
                if bad is not None:
                    self.fail(
                        f"covariate {self.names['cov'][j]!r}", lines[bad], chunk[bad][c],
                        "a finite decimal number (or an empty cell)", sid[codes[bad]],
                    )  # fmt: skip
            self._cov.append(cov)
        if self.out.time is not None:
            self._take_time([row[self.cols["time"]] for row in chunk], lines, codes)
        self._codes.append(codes)
        self._y.append(y)
        if self.out.time is not None and self.out.time.fmt is not None:
            self._t.append(self.out.time.chunks.pop())  # dates go to a growing column

    def _chunk_codes(self, chunk, lines) -> np.ndarray:
        """The series number of each row: runs of one id are found by comparing neighbours."""
        if self.cols["id"] is None:
            if not self.index:
                self.index[self.single_id] = 0
                self.out.ids.append(self.single_id)
            return np.zeros(len(chunk), dtype=np.int32)
        c = self.cols["id"]
        ids = np.array([row[c] for row in chunk], dtype=object)  # stripped per run, below
        starts = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1]
        run_codes = np.empty(starts.size, dtype=np.int32)
        for k, s in enumerate(starts.tolist()):
            name = ids[s].strip()
            code = self.index.get(name)
            if code is None:
                if not name:
                    self.fail(f"'id_column' ({self.names['id']!r})", lines[s], name, "an id")
                code = self.index[name] = len(self.out.ids)
                self.out.ids.append(name)
            run_codes[k] = code
        return np.repeat(run_codes, np.diff(np.r_[starts, len(chunk)]))

    def _take_time(self, cells, lines, codes) -> None:
        time = self.out.time
        was_dates = time.fmt is not None
        try:
            time.add(cells)
        except BadDate as e:
            self.fail(
                f"'time_column' ({self.names['time']!r})", lines[e.position], e.cell,
                f"{e.reason} (every cell of a date column must be a date)",
                self.out.ids[codes[e.position]],
            )  # fmt: skip
        if was_dates and time.fmt is None:  # years, then a number that is none: all labels
            years = np.char.mod("%04d", self._t.take() + 1970)
            time.chunks.insert(0, years)
            self._t = Column(np.int64)

    def _finish(self, lines: _Lines) -> Streamed:
        out = self.out
        if self._codes.n == 0:
            raise PanelReadError(
                f"{self.func}: argument 'path' ({self.source}) has a header but no data rows, "
                "expected at least one"
            )
        out.codes, out.y = self._codes.take(), self._y.take()
        out.cov = None if self._cov is None else self._cov.take()
        out.line_of = lines
        if out.time is not None:
            self._finish_time(out, lines)
        return out

    def _some_dates(self, t, lines, out) -> None:
        """When some labels are dates (of the form most of those that are have), the first
        that is not is the error to report."""
        head = np.asarray(t[:1000], dtype=str)
        counts = [int(_mask(head, f.template).sum()) for f in DATE_FORMATS]
        if max(counts) == 0:
            return
        fmt = DATE_FORMATS[int(np.argmax(counts))]
        i = int(np.flatnonzero(~_mask(head, fmt.template))[0])
        self.fail(
            f"'time_column' ({self.names['time']!r})", lines(i), str(t[i]),
            f"a date of the form {fmt.example} like the others", out.ids[out.codes[i]],
        )  # fmt: skip

    def _finish_time(self, out: Streamed, lines: _Lines) -> None:
        if out.time.fmt is not None:
            out.t = self._t.take()
            return
        # no date form: integer steps (1, 2, 3 ...) are an integer time index; else an error
        t = out.time.take()
        if t.dtype == object:  # labels over 32 characters (kept as objects): no steps, no dates
            i = next(i for i, c in enumerate(t.tolist()) if len(c) > 32 or "\x00" in c)
            self.fail(
                f"'time_column' ({self.names['time']!r})", lines(i), t[i],
                "dates (2020, 2020-Q1, 2020-01, 2020-01-31, 2020-01-31T13:05) or integer steps",
                out.ids[out.codes[i]],
            )  # fmt: skip
        ok = np.char.isdigit(np.char.lstrip(t, "+-")) & (np.char.str_len(t) <= 18)
        if ok.all():
            out.t = t.astype(np.int64)
            out.int_time = True
            return
        self._some_dates(t, lines, out)  # some dates: the first cell that is none is the error
        i = int(np.flatnonzero(~ok)[0])
        self.fail(
            f"'time_column' ({self.names['time']!r})", lines(i), str(t[i]),
            "dates (2020, 2020-Q1, 2020-01, 2020-01-31, 2020-01-31T13:05) or integer steps",
            out.ids[out.codes[i]],
        )  # fmt: skip
