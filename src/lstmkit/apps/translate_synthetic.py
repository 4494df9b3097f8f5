"""Synthetic translation tasks with known answers, for tests and demos.

- ``"reverse"``: a string of lower-case letters -> the same string reversed (``"abc"`` ->
  ``"cba"``).
- ``"dates"``: a date written one of three ways -> ISO 8601 (``"March 3, 2021"``,
  ``"3 Mar 2021"``, ``"2021-03-03"`` -> ``"2021-03-03"``), dates from 1950 to 2049.
- ``"numbers"``: an English number in words -> its digits (``"four hundred twelve thousand
  seven"`` -> ``"412007"``), from 0 to 999,999; hyphens join tens and units
  (``"twenty-one"``), no "and".

Character tokenizers suit all three (the targets have no words to split).
"""

from __future__ import annotations

import datetime

import numpy as np

__all__ = ["TASKS", "number_words", "synthetic_pairs"]

TASKS = ("reverse", "dates", "numbers")
MAX_PAIRS = 10_000_000
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_UNITS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_FIRST_DAY = datetime.date(1950, 1, 1)
_DAYS = (datetime.date(2049, 12, 31) - _FIRST_DAY).days + 1


def _below_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_UNITS[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + (f"-{_UNITS[n % 10]}" if n % 10 else ""))
    elif n or not words:
        words.append(_UNITS[n])
    return words


def number_words(n: int) -> str:
    """``n`` (0 to 999,999) in English words: ``1234`` -> ``"one thousand two hundred
    thirty-four"``."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number_words: argument 'n' must be in [0, 999999]; got {n}")
    high, low = divmod(n, 1000)
    words = _below_thousand(high) + ["thousand"] if high else []
    if low or not high:
        words += _below_thousand(low)
    return " ".join(words)


def _reverse(rng, n):
    lengths = rng.integers(2, 13, size=n)
    letters = rng.integers(0, 26, size=int(lengths.sum()))
    text = "".join(chr(97 + c) for c in letters)
    ends = np.cumsum(lengths)
    sources = [text[e - k : e] for e, k in zip(ends, lengths)]
    return sources, [s[::-1] for s in sources]


def _dates(rng, n):
    days = rng.integers(0, _DAYS, size=n)
    forms = rng.integers(0, 3, size=n)
    sources, targets = [], []
    for day, form in zip(days, forms):
        d = _FIRST_DAY + datetime.timedelta(days=int(day))
        month = MONTHS[d.month - 1]
        sources.append(
            (f"{month} {d.day}, {d.year}", f"{d.day} {month[:3]} {d.year}", d.isoformat())[form]
        )
        targets.append(d.isoformat())
    return sources, targets


def _numbers(rng, n):
    # as many 1-digit as 6-digit numbers: the short ones would be rare if drawn uniformly
    digits = rng.integers(1, 7, size=n)
    low = np.where(digits == 1, 0, 10 ** (digits - 1))
    values = rng.integers(low, 10**digits)
    return [number_words(int(v)) for v in values], [str(int(v)) for v in values]


def synthetic_pairs(task: str, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` pairs ``(sources, targets)`` of ``task`` (module docstring), the same for the same
    ``seed``."""
    if task not in TASKS:
        raise ValueError(
            f"synthetic_pairs: argument 'task' must be one of {list(TASKS)}; got {task!r}"
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_PAIRS:
        raise ValueError(
            f"synthetic_pairs: argument 'n' must be an int from 1 to {MAX_PAIRS:,}; got {n!r}"
        )
    rng = np.random.default_rng(seed)
    return {"reverse": _reverse, "dates": _dates, "numbers": _numbers}[task](rng, int(n))
