"""Put a series read with a date column in time order, check its spacing, fill its gaps.

``order_by_time`` is the step between reading a CSV file (``rows.RowReader``) and the series a
forecaster sees. With dates ``t`` (int64 counts of their unit) and values ``v`` in file order:

1. unsorted dates are sorted (a stable sort, so rows keep their file order among themselves)
   and a note says so;
2. a date that appears twice is an error naming it and both lines (the first repeat in file
   order);
3. the frequency is detected (``dates.detect_frequency``); a date that is not a whole number of
   steps after the previous one is an error (irregular spacing);
4. missing dates (gaps of more than one step) are an error with ``fill="none"``; with
   ``fill="interpolate"`` they are inserted as missing values, which the caller interpolates,
   unless that would more than double the series (a wrong date, such as a year typed 2202 in
   a daily series, would otherwise allocate a row for every day up to it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .dates import DateFormat, Frequency, detect_frequency, format_dates
from .rows import MAX_LISTED, Listed

__all__ = ["Ordered", "order_by_time"]


@dataclass
class Ordered:
    """A series in time order: ``t`` and ``values`` (NaN in inserted rows), the frequency,
    notes for the user, and ``row_of(position) -> row`` in file order (-1 for inserted rows)."""

    t: np.ndarray
    values: np.ndarray
    freq: Frequency
    notes: list[str] = field(default_factory=list)
    row_of: Callable[[int], int] = lambda p: p


def order_by_time(
    t: np.ndarray,
    values: np.ndarray,
    fmt: DateFormat,
    sep: str,
    line_of: Callable[[int], int],
    where: str,
    fill: str,
    func: str,
) -> Ordered:
    """Steps 1-4 of the module docstring. ``line_of(row)`` gives the file line of a row (file
    order); ``where`` names the column in messages, e.g. ``"'date' of 'data.csv'"``."""

    def show(a) -> list[str]:
        return format_dates(np.asarray(a), fmt, sep)

    notes: list[str] = []
    perm = None  # sorted position -> row in file order
    down = np.flatnonzero(t[1:] < t[:-1])
    if down.size:
        i = int(down[0])
        a, b = show(t[[i, i + 1]])
        perm = np.argsort(t, kind="stable")
        t, values = t[perm], values[perm]
        notes.append(
            f"sorted the {t.size} rows by {where}: the file is not in time order "
            f"({b} on line {line_of(i + 1)} comes after {a} on line {line_of(i)})"
        )

    def row(p: int) -> int:
        return int(p) if perm is None else int(perm[p])

    _refuse_repeats(t, perm, row, line_of, show, where, func)
    freq = detect_frequency(t, fmt)
    pos, exact = freq.positions(t)
    if not exact.all():
        j = int(np.flatnonzero(~exact)[0])
        j = max(j, 1)
        a, b = show(t[[j - 1, j]])
        raise ValueError(
            f"{func}: argument 'time_column' ({where}) is not evenly spaced: got {b} on line "
            f"{line_of(row(j))} after {a} on line {line_of(row(j - 1))}, expected whole steps "
            f"of {freq.describe(1)} ({freq.name}, the spacing of most rows); correct the "
            "dates, or leave out the time column to take the rows as equally spaced"
        )
    first, last = show(t[[0, -1]])
    notes.insert(0, f"time column {where}: dates {first}..{last}, {freq.name}")
    steps = np.diff(pos)
    holes = np.flatnonzero(steps > 1)
    if holes.size == 0:
        return Ordered(t, values, freq, notes, row)
    missing = int((steps[holes] - 1).sum())
    if fill == "none":
        listed = Listed()
        for h in holes.tolist():
            if len(listed.items) == MAX_LISTED:
                listed.count = holes.size  # the rest are only counted
                break
            gap = freq.describe(int(steps[h]) - 1)
            listed.add(f"{gap} missing after {show(t[[h]])[0]} (line {line_of(row(h))})")
        raise ValueError(
            f"{func}: argument 'time_column' ({where}) has {missing} missing date(s) in a "
            f"{freq.name} series: got gaps {listed.text()}, expected a row for every date; "
            "pass fill='interpolate' (--fill interpolate) to insert them with values "
            "interpolated in time"
        )
    total = int(pos[-1]) + 1
    limit = 2 * t.size + 1000
    if total > limit:
        h = int(holes[np.argmax(steps[holes])])
        a, b = show(t[[h, h + 1]])
        raise ValueError(
            f"{func}: argument 'fill' ('interpolate') would insert {missing} missing dates into "
            f"the {t.size} rows of {where}, expected at most {limit - t.size} (as many as the "
            f"rows, plus 1000); the largest gap is from {a} (line {line_of(row(h))}) to {b} "
            f"(line {line_of(row(h + 1))}): is a date wrong?"
        )
    filled = np.full(total, np.nan)
    filled[pos] = values
    notes.append(
        f"inserted {missing} missing date(s) in {holes.size} gap(s), the first after "
        f"{show(t[[holes[0]]])[0]}, "
        "with values interpolated in time (fill='interpolate')"
    )
    new_t = freq.at(t[0], np.arange(total))

    def row_filled(p: int) -> int:
        j = int(np.searchsorted(pos, p))
        return row(j) if j < pos.size and pos[j] == p else -1

    return Ordered(new_t, filled, freq, notes, row_filled)


def _refuse_repeats(t, perm, row, line_of, show, where, func) -> None:
    """Raise for the first date (in file order) that repeats an earlier row's date."""
    same = np.flatnonzero(t[1:] == t[:-1])  # sorted positions p with t[p + 1] == t[p]
    if same.size == 0:
        return
    later = same + 1 if perm is None else perm[same + 1]  # rows that repeat an earlier date
    k = int(np.argmin(later))
    p = int(same[k] + 1)
    first = int(np.searchsorted(t, t[p], side="left"))  # its first occurrence (stable sort)
    n_dates = int(np.unique(t[same]).size)
    raise ValueError(
        f"{func}: argument 'time_column' ({where}) has repeated dates: got {show(t[[p]])[0]} on "
        f"lines {line_of(row(first))} and {line_of(row(p))} (the first repeat in the file; "
        f"{n_dates} date(s) repeat in all), expected each date once; remove or merge the "
        "repeated rows"
    )
