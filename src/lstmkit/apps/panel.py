"""Many series in one structure: the panel every forecasting path reads.

A panel is held as one flat array, series after series, with offsets (CSR style), so its memory is
in proportion to the data: 10^5 series of 300 points are 30M float64 values (240 MB), not a padded
(10^5, longest) matrix.

Long format is the de facto standard (Nixtla, Darts, GluonTS): one row per (series, time), columns
``unique_id``, ``ds``, ``y`` plus covariates. Reading and checking files is ``read_panel``'s job
(in this module once written); this is the structure it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: seasonal period implied by a detected frequency (pandas-style aliases)
SEASON_OF_FREQ = {"h": 24, "D": 7, "W": 52, "MS": 12, "M": 12, "QS": 4, "Q": 4, "YS": 1, "Y": 1}


@dataclass(frozen=True)
class Panel:
    """``n`` series of unequal lengths, flattened.

    - ``values (N,) float64``: every observed target value, series after series, in time order.
    - ``offsets (n+1,) int64``: series ``k`` is ``values[offsets[k]:offsets[k+1]]``.
    - ``ids (n,)``: the series' ids as strings, in the order of their first row in the file.
    - ``times (N,) datetime64`` or None: the time of each value (None: an integer index).
    - ``freq``: the detected pandas-style frequency alias (``"MS"``, ``"QS"``, ``"YS"``, ``"D"``,
      ``"W"``, ``"h"``...) or None; ``season``: its seasonal period (1 = none).
    - ``past (N, P)`` / ``future (N, F)`` float64 or None: past and future-known covariates,
      aligned with ``values``; ``future_ahead (n, H, F)``: the future-known covariates of the
      rows after each series' end (the file's future rows), NaN where the file has none.
    """

    values: np.ndarray
    offsets: np.ndarray
    ids: np.ndarray
    times: np.ndarray | None = None
    freq: str | None = None
    season: int = 1
    past: np.ndarray | None = None
    past_names: tuple[str, ...] = ()
    future: np.ndarray | None = None
    future_names: tuple[str, ...] = ()
    future_ahead: np.ndarray | None = None
    notes: tuple[str, ...] = field(default=())  # what reading dropped or fixed, said to the user

    @property
    def n_series(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def series(self, k: int) -> np.ndarray:
        """The values of series ``k`` (a view)."""
        return self.values[self.offsets[k] : self.offsets[k + 1]]

    def span(self, k: int) -> slice:
        return slice(int(self.offsets[k]), int(self.offsets[k + 1]))

    @classmethod
    def from_arrays(cls, series, ids=None, *, times=None, freq=None, season=None) -> Panel:
        """A panel from a list of 1-D arrays (no dates unless ``times``, a matching list)."""
        arrays = [np.asarray(s, dtype=np.float64).ravel() for s in series]
        if not arrays:
            raise ValueError("Panel.from_arrays: argument 'series' must hold at least one series")
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(a) for a in arrays])
        ids = np.asarray([str(i) for i in (ids if ids is not None else range(len(arrays)))])
        if len(ids) != len(arrays):
            raise ValueError(
                f"Panel.from_arrays: argument 'ids' must have one id per series "
                f"({len(arrays)}); got {len(ids)}"
            )
        flat_times = np.concatenate([np.asarray(t) for t in times]) if times is not None else None
        if season is None:
            season = SEASON_OF_FREQ.get(freq, 1) if freq else 1
        return cls(np.concatenate(arrays), offsets, ids, flat_times, freq, int(season))

    def subset(self, index) -> Panel:
        """The series ``index`` (ints) as a new panel (covariates carried along)."""
        index = np.asarray(index, dtype=np.int64)
        parts = [np.arange(self.offsets[k], self.offsets[k + 1]) for k in index]
        rows = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(p) for p in parts])

        def take(a):
            return None if a is None else a[rows]

        ahead = None if self.future_ahead is None else self.future_ahead[index]
        return Panel(
            self.values[rows], offsets, self.ids[index], take(self.times), self.freq,
            self.season, take(self.past), self.past_names, take(self.future),
            self.future_names, ahead, self.notes,
        )  # fmt: skip
