"""Read a long-format CSV file (one row per series and date) into a ``Panel``.

Long format is the de facto standard (Nixtla, Darts, GluonTS)::

    unique_id,ds,y,price,promo
    T1,2020-01,12.5,3.1,0
    T1,2020-02,13.0,3.2,1
    ...
    T1,2021-01,,3.4,1        <- a future row: no y, the future-known covariates of that date

``read_panel`` streams the file (``panel_stream``: memory about 20 + 8 K bytes a row for K
covariates, never the text), then, over all series at once (no loop over series):

1. groups the rows by id (ids in the order of their first row; rows of an id need not be
   contiguous) and puts each series in time order (a stable sort, with a note);
2. refuses a date that repeats within a series (naming the series, the date and both lines);
3. detects the frequency (``panel_time``): the most common spacing within series; a date that
   is not a whole number of steps after its series' first is an error (irregular spacing);
4. refuses missing dates (``fill="none"``, the default: an error naming the series and its first
   gap), or inserts them with interpolated values (``fill="interpolate"``);
5. splits each series at its last observed ``y``: the rows after it, with ``y`` empty, are
   future rows whose future-known covariates go to ``Panel.future_ahead``; an empty ``y``
   before it is an error naming the series and the date (or interpolated with ``fill``);
6. drops series shorter than ``min_length`` with a note (``short="drop"``, the default: in a
   panel of thousands a few short series should not stop the job), or fails
   (``short="error"``).

A file without the id column (the default ``unique_id`` absent) is one series whose id is the
value column's name, as ``read_series_csv`` reads it; an id column named explicitly must exist.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..data.csvio import DataFileNotFoundError, _read_header, _utf8_error
from ..data.dates import format_dates
from .panel import Panel
from .panel_stream import PanelReadError, PanelStreamer, Streamed
from .panel_time import (
    alias_of,
    detect_panel_frequency,
    positions,
    season_of,
    step_dates,
    to_datetime,
)

__all__ = ["PanelReadError", "read_panel"]

FILL_MODES = ("none", "interpolate")
SHORT_MODES = ("drop", "error")
DEFAULT_ID = "unique_id"
MAX_LISTED = 5


def csv_header(path):
    """The header cells of a CSV file, or [] when it cannot be read (the reader reports why).
    Here, not in ``forecast_files`` (which imports the single-series app): ``forecast train``
    and ``forecast predict`` on a panel read it without importing that app (about 60 ms)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            for row in csv.reader(stream):
                if any(cell.strip() for cell in row):
                    return [cell.strip() for cell in row]
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return []


def _arg_checks(func, id_column, time_column, column, past, future, horizon, fill, min_length,
                short):  # fmt: skip
    for arg, v in (("id_column", id_column), ("time_column", time_column)):
        if v is not None and not isinstance(v, str):
            raise ValueError(f"{func}: argument {arg!r} got {v!r}, expected a column name or None")
    if not isinstance(column, str):
        raise ValueError(f"{func}: argument 'column' got {column!r}, expected a column name")
    for arg, v in (("past_covariates", past), ("future_covariates", future)):
        if isinstance(v, str) or not all(isinstance(c, str) for c in v):
            raise ValueError(
                f"{func}: argument {arg!r} got {v!r}, expected a sequence of column names"
            )
    roles = [v for v in (id_column, time_column, column) if v is not None]
    if len(set(roles)) != len(roles):
        raise ValueError(
            f"{func}: arguments 'id_column', 'time_column' and 'column' must name different "
            f"columns; got {id_column!r}, {time_column!r} and {column!r}"
        )
    both = set(past) & set(future)
    if both or len(set(past)) != len(past) or len(set(future)) != len(future):
        raise ValueError(
            f"{func}: arguments 'past_covariates' and 'future_covariates' must name distinct "
            f"columns once each; got {list(past)} and {list(future)}"
        )
    if horizon is not None and (
        isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1
    ):
        raise ValueError(f"{func}: argument 'horizon' got {horizon!r}, expected None or int >= 1")
    if fill not in FILL_MODES:
        raise ValueError(f"{func}: argument 'fill' got {fill!r}, expected one of {FILL_MODES}")
    if short not in SHORT_MODES:
        raise ValueError(f"{func}: argument 'short' got {short!r}, expected one of {SHORT_MODES}")
    if (
        isinstance(min_length, bool)
        or not isinstance(min_length, (int, np.integer))
        or (min_length < 1)
    ):
        raise ValueError(f"{func}: argument 'min_length' got {min_length!r}, expected an int >= 1")


def _columns(header, id_column, time_column, column, past, future, source, func):
    """Positions of the named columns; a missing one is an error listing the header."""

    def pos(name, arg):
        if name not in header:
            raise ValueError(
                f"{func}: argument {arg!r} names no column of {source}: got {name!r}, expected "
                f"one of {header}"
            )
        return header.index(name)

    single = id_column is None or (id_column == DEFAULT_ID and id_column not in header)
    cols = {
        "id": None if single else pos(id_column, "id_column"),
        "time": None if time_column is None else pos(time_column, "time_column"),
        "y": pos(column, "column"),
        "cov": [pos(c, "past_covariates") for c in past]
        + [pos(c, "future_covariates") for c in future],
    }
    names = {"id": id_column, "time": time_column, "y": column, "cov": list(past) + list(future)}
    return cols, names, single


def read_panel(
    path,
    *,
    id_column: str | None = "unique_id",
    time_column: str | None = "ds",
    column: str = "y",
    past_covariates=(),
    future_covariates=(),
    horizon: int | None = None,
    fill: str = "none",
    min_length: int = 1,
    short: str = "drop",
) -> Panel:
    """Read the long-format CSV file ``path`` into a ``Panel`` (module docstring for the steps).

    Args:
        path: a UTF-8 CSV file with a header row.
        id_column: the series id column; None (or the default ``unique_id`` absent from the
            file) reads one series whose id is ``column``.
        time_column: dates in one of the forms of ``lstmkit.data.dates`` (``2020``,
            ``2020-Q1``, ``2020-01``, ``2020-01-31``, ``2020-01-31 13:00:00``...) or integer
            steps; None takes each series' rows in file order.
        column: the target column.
        past_covariates / future_covariates: covariate columns (known up to each series' end /
            also known over the horizon, from the file's future rows).
        horizon: with future covariates, each series must have this many future rows with all
            of them; ``Panel.future_ahead`` is ``(n, horizon, F)``. None: as many as the file has.
        fill: ``"none"`` (missing dates and empty ``y`` before a series' end are errors) or
            ``"interpolate"`` (inserted / filled linearly in time within each series).
        min_length: the fewest observed values a series may have (e.g. lookback + horizon).
        short: ``"drop"`` (series shorter than ``min_length`` are left out, with a note in
            ``Panel.notes``) or ``"error"``.

    Raises:
        DataFileNotFoundError (a ValueError) for a missing file, ValueError for every other
        problem: a message naming the argument, the series, the date or line and what was
        expected.
    """
    func = "read_panel"
    past, future = tuple(past_covariates), tuple(future_covariates)
    _arg_checks(func, id_column, time_column, column, past, future, horizon, fill, min_length,
                short)  # fmt: skip
    p = Path(path)
    if not p.is_file():
        raise DataFileNotFoundError(
            f"{func}: argument 'path' got {str(p)!r}, which is not a file; expected a CSV file"
        )
    source = repr(str(p))
    with open(p, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        try:
            reader = csv.reader(text, strict=True)
            header = _read_header(reader, source, 1, func)
            cols, names, single = _columns(
                header, id_column, time_column, column, past, future, source, func
            )
            streamed = PanelStreamer(len(header), cols, names, source, func, column).read(reader)
        except UnicodeDecodeError:
            raise _utf8_error(p, source, func) from None
        except csv.Error as e:  # NUL bytes, unterminated quotes, a field over the size limit
            raise ValueError(
                f"{func}: argument 'path' ({source}) is not valid CSV: got {str(e)!r} on line "
                f"{reader.line_num}, expected quotes only around whole fields, each closed, no "
                "NUL bytes, and fields under the csv module's size limit (131072 characters)"
            ) from None
    build = _Build(streamed, names, source, func, len(past), fill)
    if single:
        build.notes.append(f"no id column {id_column!r}: one series, named {column!r}")
    return build.panel(horizon, min_length, short)


def _days_if_midnight(times: np.ndarray) -> np.ndarray:
    """Dates written with a time of day that is always midnight ("2020-01-31 00:00:00", a
    database's or spreadsheet's export) as the dates they are (``datetime64[D]``): months and
    years are then calendar steps, not "every 31 days" (refused as irregular)."""
    if times.dtype != np.dtype("datetime64[s]") or (times.view(np.int64) % 86400).any():
        return times
    return times.astype("datetime64[D]")


class _Build:
    """Steps 1-6 of the module docstring on the streamed arrays (each a method)."""

    def __init__(self, s: Streamed, names, source, func, n_past, fill):
        self.s, self.names, self.source, self.func = s, names, source, func
        self.n_past, self.fill = n_past, fill
        self.ids = np.asarray(s.ids)
        self.notes: list[str] = []
        self.row = None  # sorted row -> streamed row (for file lines); None: the same row
        self.times = None  # datetime64 per row, or None
        self.alias = None

    # -- messages --------------------------------------------------------------------------
    def where(self, r: int) -> str:
        """Series, date and file line of sorted row ``r``."""
        sid = self.s.ids[self.s.codes[r]]
        date = f" at {self.show(r)}" if self.s.t is not None else ""
        row = self.streamed_row(r)
        line = f"line {self.s.line_of(row)}" if row >= 0 else "a date inserted by fill"
        return f"series {sid!r}{date} ({line})"

    def streamed_row(self, r: int) -> int:
        return int(r) if self.row is None else int(self.row[r])

    def show(self, r: int) -> str:
        s = self.s
        if s.int_time:
            return str(int(s.t[r]))
        return format_dates(s.t[[r]], s.time.fmt, s.time.sep)[0]

    def fail(self, arg: str, got: str, expected: str):
        raise ValueError(f"{self.func}: argument {arg!r} of {self.source}: got {got}, {expected}")

    # -- 1. group and sort -----------------------------------------------------------------
    def group(self) -> None:
        s = self.s
        codes = s.codes
        unsorted = bool((codes[1:] < codes[:-1]).any())
        if s.t is not None:
            back = (s.t[1:] < s.t[:-1]) & (codes[1:] == codes[:-1])
            unsorted_t = bool(back.any())
        else:
            unsorted_t = False
        if not (unsorted or unsorted_t):
            return
        keys = (codes,) if s.t is None else (s.t, codes)
        perm = np.lexsort(keys)  # stable: by code, then by time
        self.row = perm
        s.codes = codes[perm]
        s.y = s.y[perm]
        s.t = None if s.t is None else s.t[perm]
        s.cov = None if s.cov is None else s.cov[perm]
        what = ["grouped the rows by id"] if unsorted else []
        what += ["sorted each series by date"] if unsorted_t else []
        self.notes.append(f"{' and '.join(what)}: the file is not in that order")

    # -- 2. repeats, 3. frequency and spacing, 4. gaps ---------------------------------------
    def check_time(self) -> np.ndarray | None:
        """Positions of each row (steps after its series' first date), or None without time."""
        s = self.s
        if s.t is None:
            return None
        same = s.codes[1:] == s.codes[:-1]
        rep = np.flatnonzero(same & (s.t[1:] == s.t[:-1]))
        if rep.size:
            r = int(rep[0])
            self.fail(
                "time_column",
                f"a repeated date in {self.where(r + 1)} (first on line "
                f"{s.line_of(self.streamed_row(r))})",
                "expected each date once per series; remove or merge the repeated rows",
            )
        starts = self._offsets()[:-1]  # (n,) each series' first row
        if s.int_time:
            d = np.diff(s.t)[same]
            step = int(np.bincount(np.minimum(d, 1 << 20)).argmax()) if d.size else 1
            self.step = step
            pos, exact = np.divmod(s.t - s.t[starts][s.codes], step)
            exact = exact == 0
            name = f"integer steps of {step}"
        else:
            self.times = _days_if_midnight(to_datetime(s.t, s.time.fmt))
            freq = detect_panel_frequency(self.times, same, s.time.fmt)
            self.alias = alias_of(freq)
            pos, exact = positions(self.times, self.times[starts], s.codes, freq)
            name = f"{freq.name} ({self.alias})"
        if not exact.all():
            r = int(np.flatnonzero(~exact)[0])
            self.fail(
                "time_column",
                f"an irregular date in {self.where(r)}",
                f"expected whole steps of the panel's frequency, {name}, from each series' first "
                "date",
            )
        self.freq_name = name
        return pos

    def _offsets(self) -> np.ndarray:
        return np.r_[0, np.cumsum(np.bincount(self.s.codes, minlength=self.ids.size))]

    def gaps(self, pos: np.ndarray | None) -> None:
        if pos is None:
            return
        s = self.s
        offsets = self._offsets()
        if (pos[offsets[1:] - 1] == np.diff(offsets) - 1).all():
            return  # positions rise strictly, so a series ends at length - 1 only without gaps
        jump = np.flatnonzero((np.diff(pos) > 1) & (s.codes[1:] == s.codes[:-1]))
        missing = int((np.diff(pos)[jump] - 1).sum())
        if self.fill == "none":
            r = int(jump[0])
            n_series = np.unique(s.codes[jump]).size
            self.fail(
                "time_column",
                f"{missing} missing date(s) in {n_series} series of a {self.freq_name} panel, "
                f"the first after {self.where(r)} (next date {self.show(r + 1)})",
                "expected a row for every date; pass fill='interpolate' to insert them with "
                "values interpolated in time",
            )
        self._insert(pos, missing)

    def _insert(self, pos: np.ndarray, missing: int) -> None:
        """Rows for the missing dates (y and covariates NaN, interpolated in step 5)."""
        s = self.s
        n_rows = s.codes.size
        if missing > n_rows + 1000:
            self.fail(
                "fill",
                f"'interpolate' that would insert {missing} dates into {n_rows} rows",
                f"expected at most {n_rows + 1000} (as many as the rows, plus 1000): is a date "
                "wrong?",
            )
        offsets = self._offsets()
        lengths = pos[offsets[1:] - 1] + 1  # (n,) rows per series once filled
        new_off = np.r_[0, np.cumsum(lengths)]
        at = new_off[s.codes] + pos  # each old row's new place
        total = int(new_off[-1])
        codes = np.repeat(np.arange(self.ids.size, dtype=np.int32), lengths)
        y = np.full(total, np.nan)
        y[at] = s.y
        cov = None
        if s.cov is not None:
            cov = np.full((total, s.cov.shape[1]), np.nan)
            cov[at] = s.cov
        row = np.full(total, -1)
        row[at] = np.arange(n_rows) if self.row is None else self.row
        step_pos = np.arange(total) - new_off[codes]
        self.times = self._dates_at(codes, step_pos)
        if s.int_time:  # integer steps: the first step plus whole steps
            s.t = s.t[np.r_[0, np.cumsum(np.bincount(s.codes))][:-1]][codes] + step_pos * self.step
        else:
            s.t = self._counts(self.times)
        s.codes, s.y, s.cov, self.row = codes, y, cov, row
        self.notes.append(
            f"inserted {missing} missing date(s) with values interpolated in time "
            "(fill='interpolate')"
        )

    def _dates_at(self, codes, step_pos):
        """The date of every row of the filled series: its series' first date plus steps."""
        if self.s.int_time:
            return None
        start = self.times[np.r_[0, np.cumsum(np.bincount(self.s.codes))][:-1]]
        return step_dates(start[codes], self.alias, step_pos, self.func)

    def _counts(self, times):
        unit = self.s.time.fmt.unit
        return times.astype(f"datetime64[{unit}]").view(np.int64)

    # -- 5. observed part and future rows ----------------------------------------------------
    def split_future(self):
        """(keep mask of observed rows, last observed row per series, future row counts)."""
        s = self.s
        offsets = self._offsets()
        n_rows = s.codes.size
        seen = ~np.isnan(s.y)
        if seen.all():  # the common case: no future rows, no gaps (no row-sized temporaries)
            return None, offsets[1:] - 1, np.zeros(self.ids.size, dtype=np.int64)
        idx = np.where(seen, np.arange(n_rows), -1)
        last = np.maximum.reduceat(idx, offsets[:-1])  # (n,) last observed row, -1 if none
        if (last < offsets[:-1]).any():
            k = int(np.flatnonzero(last < offsets[:-1])[0])
            self.fail(
                "column",
                f"series {self.s.ids[k]!r} with no value in {self.names['y']!r}",
                "expected at least one number per series",
            )
        observed = np.arange(n_rows) <= last[s.codes]
        hole = np.flatnonzero(observed & ~seen)
        if hole.size:
            self._fill_holes(hole, offsets, last)
        return observed, last, offsets[1:] - 1 - last

    def _fill_holes(self, hole, offsets, last) -> None:
        s = self.s
        if self.fill == "none":
            self.fail(
                "column",
                f"{hole.size} missing value(s) of {self.names['y']!r}, the first in "
                f"{self.where(int(hole[0]))}",
                "expected a number in every row up to a series' last value (empty cells only in "
                "future rows after it); pass fill='interpolate' to fill them linearly in time",
            )
        for k in np.unique(s.codes[hole]).tolist():
            sl = slice(int(offsets[k]), int(last[k]) + 1)
            y = s.y[sl]
            ok = ~np.isnan(y)
            if not ok[0]:
                self.fail(
                    "fill",
                    f"'interpolate' with a missing first value in {self.where(int(offsets[k]))}",
                    "expected a value at each series' start (interpolation needs one on both "
                    "sides); trim those rows",
                )
            x = np.arange(y.size)
            y[~ok] = np.interp(x[~ok], x[ok], y[ok])
            if s.cov is not None:
                for j in range(s.cov.shape[1]):
                    c = s.cov[sl, j]
                    good = ~np.isnan(c)
                    if good.any() and not good.all():
                        c[~good] = np.interp(x[~good], x[good], c[good])
        self.notes.append(f"filled {hole.size} missing value(s) by linear interpolation")

    # covariates: finite wherever the model reads them ---------------------------------------
    def check_covariates(self, observed: np.ndarray) -> None:
        s = self.s
        if s.cov is None:
            return
        nan = np.isnan(s.cov)
        if observed is not None:
            nan &= observed[:, None]
        if nan.any():
            r, j = (int(v[0]) for v in np.nonzero(nan))
            kind = "past_covariates" if j < self.n_past else "future_covariates"
            self.fail(
                kind,
                f"no value of {self.names['cov'][j]!r} in {self.where(r)} (an observed row)",
                "expected a number in every row up to each series' last value",
            )

    def future_ahead(self, last, n_future, horizon) -> np.ndarray | None:
        """``(n, H, F)`` future covariates of the future rows (NaN where the file has none)."""
        s = self.s
        n_f = 0 if s.cov is None else s.cov.shape[1] - self.n_past
        if n_f == 0:
            if n_future.any():
                self.notes.append(
                    f"ignored {int(n_future.sum())} future row(s) (no y): no future covariates "
                    "were asked for"
                )
            return None
        H = int(horizon) if horizon is not None else int(n_future.max())
        n = self.ids.size
        if n * H * n_f > 4 * s.cov.size + 10**6:  # checked before allocating
            k = int(np.argmax(n_future))
            self.fail(
                "horizon",
                f"None while series {self.s.ids[k]!r} has {int(n_future[k])} future rows",
                f"expected a horizon: (n={n}, H, {n_f}) covariates would exceed the data's size",
            )
        ahead = np.full((n, H, n_f), np.nan)
        rows = np.flatnonzero(np.arange(s.codes.size) > last[s.codes])
        step = rows - last[s.codes[rows]] - 1
        take = step < H
        ahead[s.codes[rows[take]], step[take]] = s.cov[rows[take], self.n_past :]
        if horizon is not None:
            self._check_ahead(ahead, horizon)
        return ahead

    def _check_ahead(self, ahead, horizon) -> None:
        short = np.isnan(ahead).any(axis=(1, 2))
        if short.any():
            k = np.flatnonzero(short)
            shown = ", ".join(repr(self.s.ids[i]) for i in k[:MAX_LISTED])
            more = f" ... ({k.size} series in all)" if k.size > MAX_LISTED else ""
            first = ahead[k[0]]
            steps = int((~np.isnan(first).any(axis=1)).cumprod().sum())
            self.fail(
                "future_covariates",
                f"series {shown}{more} without all of {self.names['cov'][self.n_past :]} for the "
                f"horizon ({self.s.ids[k[0]]!r} has them for {steps} of {horizon} future rows)",
                f"expected {horizon} future rows (after each series' last y, y empty) with every "
                "future covariate",
            )

    # -- 6. short series, and the panel ------------------------------------------------------
    def panel(self, horizon, min_length, short) -> Panel:
        self.group()
        self.gaps(self.check_time())
        observed, last, n_future = self.split_future()  # observed None: every row
        self.check_covariates(observed)
        ahead = self.future_ahead(last, n_future, horizon)
        s = self.s

        def take(a):
            return a if a is None or observed is None else a[observed]

        values, codes, times, cov = take(s.y), take(s.codes), take(self.times), take(s.cov)
        lengths = np.bincount(codes, minlength=self.ids.size)
        past = None if cov is None or self.n_past == 0 else cov[:, : self.n_past]
        fut = None if cov is None or cov.shape[1] == self.n_past else cov[:, self.n_past :]
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        if self.alias is not None:
            self.notes.insert(0, f"{self.ids.size} series, frequency {self.freq_name}")
        season = season_of(self.alias)
        names = self.names["cov"]
        out = Panel(
            values, offsets, self.ids.astype(str), times, self.alias, season, past,
            tuple(names[: self.n_past]), fut, tuple(names[self.n_past :]), ahead,
            tuple(self.notes),
        )  # fmt: skip
        return self._drop_short(out, lengths, min_length, short)

    def _drop_short(self, panel: Panel, lengths, min_length, short) -> Panel:
        few = np.flatnonzero(lengths < min_length)
        if few.size == 0:
            return panel
        shown = ", ".join(f"{self.s.ids[k]!r} ({int(lengths[k])})" for k in few[:MAX_LISTED])
        more = f" ... ({few.size} in all)" if few.size > MAX_LISTED else ""
        if short == "error" or few.size == lengths.size:
            self.fail(
                "min_length",
                f"{few.size} series shorter than {min_length} values: {shown}{more}",
                "expected every series to have at least min_length values (short='drop' leaves "
                "them out while some series remain)",
            )
        keep = np.flatnonzero(lengths >= min_length)
        out = panel.subset(keep)
        note = f"dropped {few.size} series shorter than {min_length} values: {shown}{more}"
        return Panel(
            out.values, out.offsets, out.ids, out.times, out.freq, out.season, out.past,
            out.past_names, out.future, out.future_names, out.future_ahead,
            out.notes + (note,),
        )  # fmt: skip
