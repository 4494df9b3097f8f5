"""Time of a panel: its frequency, the positions of its dates, future dates, calendar features.

A panel's dates (``Panel.times``) are ``datetime64[D]`` for yearly to daily data (a year
``1972`` is ``1972-01-01``, a quarter ``2020-Q2`` is ``2020-04-01``, as pandas reads them) and
``datetime64[s]`` below a day. Its frequency is a pandas-style alias::

    YS / QS / MS   yearly, quarterly, monthly, dated on a fixed day of the month (the 1st: pandas'
                   month-start aliases; another day keeps that day, clipped to short months)
    Y / Q / M      the same on month ends (pandas 2.2 writes YE / QE / ME)
    W, D, B        weekly, daily, business days;   h, min, s   hourly, every minute, every second
    2D, 15min ...  k steps of one of these

The frequency of a panel is detected from the spacing of consecutive dates within each series,
as ``lstmkit.data.dates.detect_frequency`` does for one series: the most common spacing, in the
unit that makes it exact (calendar months when all dates are a month or more apart and share a
day of the month or are all month ends).
"""

from __future__ import annotations

import re

import numpy as np

from ..data.dates import DateFormat, Frequency, _mode
from .panel import SEASON_OF_FREQ, Panel

__all__ = [
    "alias_of",
    "calendar_features",
    "detect_panel_frequency",
    "future_times",
    "positions",
    "season_of",
    "to_datetime",
]

BLOCK = 2**20  # rows per block of the date arithmetic (its temporaries: a few x 8 MB)
SAMPLE = 2**18  # rows the frequency is detected on (every row is then checked against it)
_ALIAS = re.compile(r"(\d*)(YS|QS|MS|Y|Q|M|W|D|B|h|min|s)")
_MONTHS = {"YS": 12, "QS": 3, "MS": 1, "Y": 12, "Q": 3, "M": 1}


def to_datetime(t: np.ndarray, fmt: DateFormat) -> np.ndarray:
    """int64 counts of ``fmt.unit`` -> ``datetime64[D]`` (years to days) or ``[s]`` (below)."""
    unit = "D" if fmt.unit in "YMD" else "s"
    return t.view(f"datetime64[{fmt.unit}]").astype(f"datetime64[{unit}]", copy=False)


def detect_panel_frequency(times: np.ndarray, same: np.ndarray, fmt: DateFormat) -> Frequency:
    """The spacing of a panel's sorted, distinct dates (``times`` as ``to_datetime`` gives
    them; ``same[i]`` is True when rows ``i`` and ``i + 1`` belong to one series), detected on
    the first ``SAMPLE`` rows. The unit of
    the result is ``"D"`` or ``"s"``; month-based spacings are ``month_day``/``month_end``."""
    natural = {"Y": 12, "M": 3 if fmt.name == "quarter" else 1}.get(fmt.unit)
    times, same = times[:SAMPLE], same[: SAMPLE - 1]  # ``positions`` checks every row after
    d = np.diff(times.view(np.int64))[same]
    if d.size == 0:  # every series has one date: the column's own unit
        if natural is not None:
            day = _day_of_month(times[:1])
            return Frequency("D", natural, "month_day", int(day[0]))
        return Frequency("D" if fmt.unit == "D" else "s", 1 if fmt.unit == "D" else _secs(fmt))
    if times.dtype == np.dtype("datetime64[D]") and d.min() >= 28:
        months = times.astype("datetime64[M]").view(np.int64)
        step = _mode(np.diff(months)[same])
        day = _day_of_month(times)
        if step > 0 and (day == day[0]).all():
            return Frequency("D", step, "month_day", int(day[0]))
        if (
            step > 0
            and ((times + 1).astype("datetime64[M]") != times.astype("datetime64[M]")).all()
        ):
            return Frequency("D", step, "month_end")
    step = _mode(d)
    if times.dtype == np.dtype("datetime64[D]"):
        if step == 1 and np.is_busday(times).all() and (d > 1).any() and times.size >= 6:
            return Frequency("D", 1, "busday")
        return Frequency("D", step)
    return Frequency("s", step)


def _secs(fmt: DateFormat) -> int:
    return {"h": 3600, "m": 60, "s": 1}[fmt.unit]


def _day_of_month(days: np.ndarray) -> np.ndarray:
    return (days - days.astype("datetime64[M]").astype("datetime64[D]")).view(np.int64)


def positions(
    times: np.ndarray, first: np.ndarray, codes: np.ndarray, freq: Frequency
) -> tuple[np.ndarray, np.ndarray]:
    """Steps of each date after its series' first date (``first[codes]``): ``(positions int64,
    exact bool)``; ``exact`` is False where a date is off the frequency's grid (not a whole
    number of steps on, or, for month-based data, not on the frequency's day of the month).
    Computed in blocks of rows, so the temporaries stay small whatever the panel's size."""
    pos = np.empty(times.size, dtype=np.int64)
    exact = np.empty(times.size, dtype=bool)
    for a in range(0, times.size, BLOCK):
        sl = slice(a, a + BLOCK)
        pos[sl], exact[sl] = _positions(times[sl], first[codes[sl]], freq)
    return pos, exact


def _positions(times, starts, freq: Frequency):
    if freq.kind == "busday":
        return np.busday_count(starts, times).astype(np.int64), np.is_busday(times)
    if freq.kind in ("month_day", "month_end"):
        month = times.astype("datetime64[M]")
        delta = month.view(np.int64) - starts.astype("datetime64[M]").view(np.int64)
        end = (month + 1).astype("datetime64[D]") - 1
        if freq.kind == "month_end":
            on_day = times == end
        else:  # day ``freq.day`` of the month, or the month's last day when it is shorter
            on_day = times == np.minimum(month.astype("datetime64[D]") + freq.day, end)
        return np.floor_divide(delta, freq.step), (delta % freq.step == 0) & on_day
    delta = times.view(np.int64) - starts.view(np.int64)
    return np.floor_divide(delta, freq.step), delta % freq.step == 0


def alias_of(freq: Frequency) -> str:
    """The pandas-style alias of a detected frequency (module docstring)."""
    if freq.kind in ("month_day", "month_end"):
        end = freq.kind == "month_end"
        names = {1: "M", 3: "Q", 12: "Y"} if end else {1: "MS", 3: "QS", 12: "YS"}
        return names.get(freq.step, f"{freq.step}{'M' if end else 'MS'}")
    if freq.kind == "busday":
        return "B"
    if freq.unit == "D":
        return {1: "D", 7: "W"}.get(freq.step, f"{freq.step}D")
    if freq.step % 86400 == 0:  # dates with a time of day ("2020-01-31 00:00:00"): days
        return alias_of(Frequency("D", freq.step // 86400))
    for name, size in (("h", 3600), ("min", 60), ("s", 1)):
        if freq.step % size == 0:
            k = freq.step // size
            return name if k == 1 else f"{k}{name}"
    raise AssertionError("unreachable")


def season_of(alias: str | None) -> int:
    """The seasonal period of an alias (``SEASON_OF_FREQ``; business days: 5; multiples and
    other aliases: 1)."""
    if alias is None:
        return 1
    return {"B": 5}.get(alias, SEASON_OF_FREQ.get(alias, 1))


def _parse_alias(alias: str, func: str) -> tuple[int, str]:
    m = _ALIAS.fullmatch(alias or "")
    if m is None:
        raise ValueError(
            f"{func}: argument 'freq' got {alias!r}, expected a frequency alias such as 'MS', "
            "'QS', 'YS', 'M', 'W', 'D', 'B', 'h' or a multiple ('2D', '15min')"
        )
    return int(m.group(1) or 1), m.group(2)


def step_dates(start: np.ndarray, alias: str, steps: np.ndarray, func: str) -> np.ndarray:
    """The dates ``steps`` steps of ``alias`` after the dates ``start`` (both arrays, broadcast
    against each other), of ``start``'s dtype."""
    k, base = _parse_alias(alias, func)
    start = np.asarray(start)
    steps = np.asarray(steps, dtype=np.int64) * k
    if base in _MONTHS:
        days = start.astype("datetime64[D]")
        month = days.astype("datetime64[M]") + steps * _MONTHS[base]
        first = month.astype("datetime64[D]")
        end = (month + 1).astype("datetime64[D]") - 1
        if base in ("Y", "Q", "M"):
            return end.astype(start.dtype)
        return np.minimum(first + _day_of_month(days), end).astype(start.dtype)
    if base == "B":
        return np.busday_offset(start.astype("datetime64[D]"), steps, roll="forward").astype(
            start.dtype
        )
    size = {"W": 7 * 86400, "D": 86400, "h": 3600, "min": 60, "s": 1}[base]
    if start.dtype == np.dtype("datetime64[D]"):  # daily or weekly data stay in days
        return start + (steps * (size // 86400)).astype("timedelta64[D]")
    return start + (steps * size).astype("timedelta64[s]")


def future_times(panel: Panel, horizon: int) -> np.ndarray:
    """``(n, horizon)`` the real dates of the ``horizon`` steps after each series' last
    observed date (of the panel's ``times`` dtype), at the panel's frequency."""
    func = "future_times"
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"{func}: argument 'horizon' got {horizon!r}, expected an integer >= 1")
    if panel.times is None or panel.freq is None:
        raise ValueError(
            f"{func}: argument 'panel' has no dates (times or freq is None), expected a panel "
            "read with a date column"
        )
    last = panel.times[panel.offsets[1:] - 1]
    return step_dates(last[:, None], panel.freq, np.arange(1, horizon + 1)[None, :], func)


def _cycle(phase: np.ndarray) -> list[np.ndarray]:
    """sin and cos of ``2 pi phase`` (phase in cycles)."""
    return [np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)]


def calendar_features(times, freq: str | None) -> np.ndarray:
    """``(N, C) float32`` calendar features of the dates ``times`` (any shape, flattened) for
    the frequency ``freq``: sin and cos of the position in each cycle shorter than a year the
    frequency can see::

        yearly (YS, Y)        none (C = 0)
        quarterly (QS, Q)     quarter of the year                      C = 2
        monthly (MS, M)       month of the year                        C = 2
        weekly (W)            day of the year                          C = 2
        daily (D, B, kD)      day of the week, day of the year         C = 4
        hourly and below      hour of the day (with minutes), day of the week   C = 4

    Phases start at 0 on January 1st, Monday and midnight (1970-01-01 was a Thursday)."""
    t = np.asarray(times).ravel()
    if freq is None or t.dtype.kind != "M":
        raise ValueError(
            f"calendar_features: arguments 'times' and 'freq' must be datetime64 dates and a "
            f"frequency alias; got dtype {t.dtype} and freq {freq!r}"
        )
    _, base = _parse_alias(freq, "calendar_features")
    days = t.astype("datetime64[D]")
    year_start = days.astype("datetime64[Y]").astype("datetime64[D]")
    year_len = (days.astype("datetime64[Y]") + 1).astype("datetime64[D]") - year_start
    day_of_year = (days - year_start).view(np.int64) / year_len.view(np.int64)
    month = (days.astype("datetime64[M]").view(np.int64)) % 12
    weekday = (days.view(np.int64) + 3) % 7  # 0 = Monday
    if base in ("YS", "Y"):
        cols = []
    elif base in ("QS", "Q"):
        cols = _cycle((month // 3) / 4.0)
    elif base in ("MS", "M"):
        cols = _cycle(month / 12.0)
    elif base == "W":
        cols = _cycle(day_of_year)
    elif base in ("D", "B"):
        cols = _cycle(weekday / 7.0) + _cycle(day_of_year)
    else:
        secs = (t.astype("datetime64[s]") - days).view(np.int64)
        cols = _cycle(secs / 86400.0) + _cycle(weekday / 7.0)
    if not cols:
        return np.zeros((t.size, 0), dtype=np.float32)
    return np.stack(cols, axis=1).astype(np.float32)
