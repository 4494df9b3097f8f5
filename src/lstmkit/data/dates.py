"""Dates of a time column: the formats read, the frequency, gaps, and the dates after the last row.

NumPy ``datetime64`` only (no pandas). A time column is read as dates when most of the
non-empty cells of its first rows (the first chunk read) have one of these ISO 8601 forms, and
then every cell must have that form (a cell that has not is an error naming it)::

    year      2020                  quarter   2020-Q1 or 2020Q1      month   2020-01
    date      2020-01-31            hour      2020-01-31T13          (or a space for the T)
    minute    2020-01-31T13:05      second    2020-01-31T13:05:59

Dates are stored as int64 counts of their NumPy unit (``Y``, ``M``, ``D``, ``h``, ``m``, ``s``;
quarters are months), 8 bytes a row. Any other column (``01/31/2020``, names, step numbers)
keeps its cells as text labels, in file order; a column of 4-digit numbers that later holds
another number (9999 then 10000) is such a label column too.

The frequency (``Frequency``) is the most common spacing of the sorted dates, in the unit
that makes it exact: days (daily, weekly, every k days), business days (weekday dates spaced by
weekends), calendar months on a fixed day of the month or on month ends (monthly, quarterly,
yearly data written as full dates), or the column's own unit. Every date is then a whole
number of steps after the first, its *position*; a spacing that is not a whole number of steps
is irregular, a spacing of more than one step is a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DATE_FORMATS", "DateFormat", "Frequency", "SeriesIndex", "detect_frequency"]


@dataclass(frozen=True)
class DateFormat:
    """One accepted form: ``template`` has ``d`` for a digit, ``S`` for ``T`` or a space, and
    literal characters elsewhere; ``unit`` is the NumPy datetime unit the cells parse to."""

    name: str
    template: str
    unit: str
    example: str


DATE_FORMATS = (
    DateFormat("year", "dddd", "Y", "2020"),
    DateFormat("quarter", "dddd-Qd", "M", "2020-Q1"),
    DateFormat("quarter", "ddddQd", "M", "2020Q1"),
    DateFormat("month", "dddd-dd", "M", "2020-01"),
    DateFormat("date", "dddd-dd-dd", "D", "2020-01-31"),
    DateFormat("hour", "dddd-dd-ddSdd", "h", "2020-01-31T13"),
    DateFormat("minute", "dddd-dd-ddSdd:dd", "m", "2020-01-31T13:05"),
    DateFormat("second", "dddd-dd-ddSdd:dd:dd", "s", "2020-01-31T13:05:59"),
)
_UNIT_SECONDS = {"D": 86400, "h": 3600, "m": 60, "s": 1}
_UNIT_WORDS = {"Y": "year", "M": "month", "D": "day", "h": "hour", "m": "minute", "s": "second"}


def _mask(cells: np.ndarray, template: str) -> np.ndarray:
    """Which of the ``(n,)`` str cells have the form of ``template`` (vectorised, no loop over
    the cells): every character is compared through a ``(n, len)`` view of UCS-4 codes."""
    width = len(template)
    ok = np.char.str_len(cells) == width
    codes = np.ascontiguousarray(cells.astype(f"<U{width}")).view(np.uint32).reshape(-1, width)
    for i, ch in enumerate(template):
        c = codes[:, i]
        if ch == "d":
            ok &= (c >= 48) & (c <= 57)
        elif ch == "S":
            ok &= (c == 84) | (c == 32)  # 'T' or ' '
        else:
            ok &= c == ord(ch)
    return ok


def match_format(cells: list[str]) -> DateFormat | None:
    """The date form of most of the non-empty ``cells`` (stripped), or None when no form
    covers more than half of them."""
    short = [c for c in cells if 0 < len(c) <= 32]  # longer cells are no dates
    n_labels = sum(1 for c in cells if c)
    if not short:
        return None
    arr = np.array(short, dtype=str)
    counts = [int(_mask(arr, fmt.template).sum()) for fmt in DATE_FORMATS]
    best = int(np.argmax(counts))
    return DATE_FORMATS[best] if 2 * counts[best] > n_labels else None


class BadDate(ValueError):
    """Cell ``position`` of a chunk is not a date of the column's form (``reason`` says why)."""

    def __init__(self, position: int, cell: str, reason: str):
        super().__init__(reason)
        self.position, self.cell, self.reason = position, cell, reason


def parse_dates(cells: np.ndarray, fmt: DateFormat) -> np.ndarray:
    """``(n,)`` str cells of form ``fmt`` -> int64 counts of ``fmt.unit``; raises ``BadDate``
    for the first cell that has another form or no such date (2021-02-29)."""
    ok = _mask(cells, fmt.template)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise BadDate(i, str(cells[i]), f"not a date of the form {fmt.example} like the others")
    if fmt.name == "quarter":
        codes = np.ascontiguousarray(cells.astype(f"<U{len(fmt.template)}")).view(np.uint32)
        codes = codes.reshape(len(cells), -1).astype(np.int64) - 48
        year = codes[:, 0] * 1000 + codes[:, 1] * 100 + codes[:, 2] * 10 + codes[:, 3]
        q = codes[:, -1]
        if ((q < 1) | (q > 4)).any():
            i = int(np.flatnonzero((q < 1) | (q > 4))[0])
            raise BadDate(i, str(cells[i]), "quarters are Q1 to Q4")
        return (year - 1970) * 12 + (q - 1) * 3
    try:
        return np.array(cells, dtype=f"datetime64[{fmt.unit}]").view(np.int64)
    except ValueError:
        pass
    for i, cell in enumerate(cells):  # rare: find the impossible date (month 13, day 30 Feb)
        try:
            np.datetime64(str(cell), fmt.unit)
        except ValueError as e:
            raise BadDate(i, str(cell), f"no such date ({e})") from None
    raise AssertionError("unreachable: NumPy rejected the chunk but every cell")


def format_dates(t: np.ndarray, fmt: DateFormat, sep: str = "T") -> list[str]:
    """int64 counts of ``fmt.unit`` -> the labels in the column's own form."""
    t = np.asarray(t, dtype=np.int64)
    if fmt.name == "quarter":
        years, months = np.divmod(t, 12)
        mark = "-Q" if "-" in fmt.template else "Q"
        return [
            f"{y + 1970:04d}{mark}{m // 3 + 1}" for y, m in zip(years.tolist(), months.tolist())
        ]
    out = np.datetime_as_string(t.view(f"datetime64[{fmt.unit}]"), unit=fmt.unit)
    if sep != "T" and fmt.unit in "hms":
        out = np.char.replace(out, "T", sep)
    return out.tolist()


# -- frequency -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frequency:
    """How consecutive dates are spaced. ``kind``: ``plain`` (``step`` counts of ``unit``),
    ``month_day`` (``step`` months, on day ``day`` + 1 of the month), ``month_end`` (``step``
    months, on the last day) or ``busday`` (one weekday)."""

    unit: str
    step: int
    kind: str = "plain"
    day: int = 0

    @property
    def name(self) -> str:
        if self.kind == "busday":
            return "business-daily"
        months = {1: "monthly", 3: "quarterly", 6: "half-yearly", 12: "yearly"}
        if self.kind in ("month_day", "month_end") or self.unit == "M":
            return months.get(self.step, f"every {self.step} months")
        if self.unit == "Y":
            return "yearly" if self.step == 1 else f"every {self.step} years"
        seconds = self.step * _UNIT_SECONDS[self.unit]
        named = {1: "every second", 60: "every minute", 3600: "hourly", 86400: "daily"}
        if seconds in named:
            return named[seconds]
        if seconds == 7 * 86400:
            return "weekly"
        for word, size in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1)):
            if seconds % size == 0:
                return f"every {seconds // size} {word}"
        raise AssertionError("unreachable")

    def describe(self, count: int) -> str:
        """``count`` steps in words: '3 months', '2 business days', '90 minutes'."""
        word = "business day" if self.kind == "busday" else _UNIT_WORDS[self._unit()]
        n = count * (1 if self.kind == "busday" else self.step)
        return f"{n} {word}{'s' if n != 1 else ''}"

    def _unit(self) -> str:
        return "M" if self.kind in ("month_day", "month_end") else self.unit

    def positions(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Steps of sorted dates ``t`` after ``t[0]``: ``(positions int64, exact bool)``;
        ``exact[i]`` is False where ``t[i]`` is not a whole number of steps after ``t[0]``."""
        if self.kind == "busday":
            d = t.view("datetime64[D]")
            return np.busday_count(d[0], d).astype(np.int64), np.is_busday(d)
        if self.kind in ("month_day", "month_end"):
            delta = t.view("datetime64[D]").astype("datetime64[M]").view(np.int64)
            delta -= delta[0]
        else:
            delta = t - t[0]
        if self.step == 1:
            return delta, np.ones(delta.size, dtype=bool)
        exact = delta % self.step == 0
        return np.floor_divide(delta, self.step, out=delta), exact

    def at(self, start: np.ndarray | int, steps: np.ndarray) -> np.ndarray:
        """The dates ``steps`` (int64 array) steps after the date ``start``, as int64 counts."""
        steps = np.asarray(steps, dtype=np.int64)
        if self.kind == "busday":
            d = np.datetime64(int(start), "D")
            return np.busday_offset(d, steps, roll="forward").view(np.int64)
        if self.kind in ("month_day", "month_end"):
            m0 = np.datetime64(int(start), "D").astype("datetime64[M]").view(np.int64)
            months = (m0 + steps * self.step).view("datetime64[M]")
            first = months.astype("datetime64[D]").view(np.int64)
            next_first = (months + 1).astype("datetime64[D]").view(np.int64)
            if self.kind == "month_end":
                return next_first - 1
            return np.minimum(first + self.day, next_first - 1)  # day 31 in a 30-day month
        return int(start) + steps * self.step


def _mode(d: np.ndarray) -> int:
    """The most common value of a non-empty int64 array (the smallest on a tie); of an evenly
    spread sample of 65536 to 131072 values when there are more (the sort needs no copy of a
    long array)."""
    if d.size > 2**17:
        d = d[:: d.size // 2**16]
    values, counts = np.unique(d, return_counts=True)
    return int(values[np.argmax(counts)])


def detect_frequency(t: np.ndarray, fmt: DateFormat) -> Frequency:
    """The spacing of sorted, distinct dates ``t`` (int64 counts of ``fmt.unit``); one date
    gives one step of the column's unit (three months for quarters)."""
    natural = 3 if fmt.name == "quarter" else 1
    if t.size < 2:
        return Frequency(fmt.unit, natural)
    d = np.diff(t)
    if fmt.unit == "D":
        days = t.view("datetime64[D]")
        months = days.astype("datetime64[M]")
        if d.min() >= 28:  # at least a month apart: monthly data written as full dates?
            day = days.view(np.int64) - months.astype("datetime64[D]").view(np.int64)
            ends = (days + 1).astype("datetime64[M]") != months
            step = _mode(np.diff(months.view(np.int64)))
            if (day == day[0]).all() and step > 0:
                return Frequency("D", step, "month_day", int(day[0]))
            if ends.all() and step > 0:
                return Frequency("D", step, "month_end")
        step = _mode(d)
        if step == 1 and t.size >= 6 and np.is_busday(days).all() and (d > 1).any():
            return Frequency("D", 1, "busday")
        return Frequency("D", step)
    return Frequency(fmt.unit, _mode(d))


# -- the index of a series ---------------------------------------------------------------------
class SeriesIndex(Sequence):
    """Labels of the rows of a series, a read-only sequence of ``str`` that compares equal to
    the list of the same labels, stored compactly: dates as int64, other labels as a NumPy str
    array, plain row numbers as nothing at all (``str(i)`` on demand).

    ``kind`` is ``"dates"``, ``"labels"`` or ``"positions"``; ``offset`` is the position of the
    first row among the rows read (a slice ``index[-100:]`` keeps counting from there);
    ``notes`` are one-line remarks on how the column was read, for the user.
    """

    def __init__(
        self,
        n: int,
        *,
        dates: np.ndarray | None = None,
        fmt: DateFormat | None = None,
        sep: str = "T",
        freq: Frequency | None = None,
        labels: np.ndarray | None = None,
        offset: int = 0,
        notes: Sequence[str] = (),
    ):
        self._n, self._dates, self._fmt, self._sep, self._freq = n, dates, fmt, sep, freq
        self._labels, self._offset, self.notes = labels, offset, tuple(notes)

    # construction
    @classmethod
    def positions(cls, n: int, offset: int = 0) -> SeriesIndex:
        return cls(n, offset=offset)

    @classmethod
    def from_labels(cls, labels: Sequence[str]) -> SeriesIndex:
        """An index for labels given as text: dates when every label is a date of one form,
        in strictly increasing order and evenly spaced; text labels otherwise."""
        if isinstance(labels, SeriesIndex):
            return labels
        texts = [str(v).strip() for v in labels]
        fmt = match_format(texts)
        if fmt is not None and max(map(len, texts)) <= len(fmt.template):
            try:
                t = parse_dates(np.array(texts, dtype=str), fmt)
            except BadDate:
                t = None
            if t is not None and (t.size < 2 or (np.diff(t) > 0).all()):
                freq = detect_frequency(t, fmt)
                pos, exact = freq.positions(t)
                if exact.all() and (np.diff(pos) == 1).all():
                    sep = "T" if any("T" in c for c in texts[:100]) else " "
                    return cls(t.size, dates=t, fmt=fmt, sep=sep, freq=freq)
        odd = max(map(len, texts), default=0) > 32 or "\x00" in "".join(texts)
        return cls(len(texts), labels=np.array(texts, dtype=object if odd else str))

    # properties
    @property
    def kind(self) -> str:
        if self._dates is not None:
            return "dates"
        return "labels" if self._labels is not None else "positions"

    @property
    def frequency(self) -> Frequency | None:
        return self._freq

    @property
    def date_format(self) -> DateFormat | None:
        return self._fmt

    def datetimes(self) -> np.ndarray | None:
        """The dates as ``datetime64`` of the column's unit (None unless ``kind == "dates"``)."""
        if self._dates is None:
            return None
        return self._dates.view(f"datetime64[{self._fmt.unit}]")

    # sequence protocol
    def __len__(self) -> int:
        return self._n

    def _format(self, start: int, stop: int) -> list[str]:
        if self._dates is not None:
            return format_dates(self._dates[start:stop], self._fmt, self._sep)
        if self._labels is not None:
            return self._labels[start:stop].tolist()
        return [str(self._offset + i) for i in range(start, stop)]

    def __getitem__(self, i):
        if isinstance(i, slice):
            start, stop, stride = i.indices(self._n)
            if stride != 1:
                return [self[j] for j in range(start, stop, stride)]
            stop = max(stop, start)
            return SeriesIndex(
                stop - start,
                dates=None if self._dates is None else self._dates[start:stop],
                fmt=self._fmt,
                sep=self._sep,
                freq=self._freq,
                labels=None if self._labels is None else self._labels[start:stop],
                offset=self._offset + start,
                notes=self.notes,
            )
        j = int(i)
        if not -self._n <= j < self._n:
            raise IndexError(f"SeriesIndex: index {i} out of range for {self._n} rows")
        j %= self._n
        return self._format(j, j + 1)[0]

    def __iter__(self):
        for start in range(0, self._n, 4096):  # format in blocks: no list of every label
            yield from self._format(start, min(start + 4096, self._n))

    def tolist(self) -> list[str]:
        return self._format(0, self._n)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str) or len(other) != self._n:
            return NotImplemented if not isinstance(other, Sequence) else False
        return all(a == b for a, b in zip(self, other))

    __hash__ = None  # mutable-sequence-like equality: not hashable

    def __repr__(self) -> str:
        shown = ", ".join(repr(v) for v in self._format(0, min(3, self._n)))
        more = ", ..." if self._n > 3 else ""
        return f"SeriesIndex({self.kind}, {self._n} rows: [{shown}{more}])"

    # the steps after the last row
    @property
    def future_is_steps(self) -> bool:
        """True when ``future`` gives row positions (the labels are neither dates nor numbers)."""
        return self.kind == "positions" or (self.kind == "labels" and self._numeric_step() is None)

    def _numeric_step(self) -> tuple[float, float] | None:
        try:
            last = float(self._labels[-1])
            step = last - float(self._labels[-2]) if self._n > 1 else 1.0
        except (ValueError, IndexError):
            return None
        return last, step

    def future(self, horizon: int) -> list[str]:
        """Labels of the ``horizon`` steps after the last row: the next dates of the detected
        frequency; for number labels the next numbers (same step as the last two); otherwise
        the row positions after the last (``future_is_steps``)."""
        k = np.arange(1, horizon + 1)
        if self._dates is not None:
            return format_dates(self._freq.at(self._dates[-1], k), self._fmt, self._sep)
        if self._labels is not None and self._numeric_step() is not None:
            last, step = self._numeric_step()
            return [_num(last + step * j) for j in k.tolist()]
        end = self._offset + self._n
        return [str(end + j - 1) for j in k.tolist()]


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
