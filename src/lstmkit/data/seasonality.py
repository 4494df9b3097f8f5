"""Find a series' season length from its autocorrelation function (ACF).

Sample ACF (the biased estimator, as ``statsmodels.tsa.stattools.acf`` computes it)::

    r_k = sum_{t=0}^{N-1-k} (x_t - m)(x_{t+k} - m) / sum_{t=0}^{N-1} (x_t - m)^2

The season is the lag of the highest ACF *peak* that is significant:

- a peak is a local maximum: ``r_{k-1} < r_k >= r_{k+1}``, for ``2 <= k <= max_period``;
- significant means ``r_k > z / sqrt(N)`` and that the ACF dipped by at least as much before it
  (``r_k - min(r_1..r_k) > z / sqrt(N)``), so the slow wiggles of a trending series' ACF do not
  count. ``z / sqrt(N)`` is the usual white-noise band (``z = 1.96``, the familiar
  ``2 / sqrt(N)``) widened by a Bonferroni correction for the ``max_period - 1`` lags searched, so
  that white noise returns 1 with probability of at least about 95% whatever ``max_period`` is.

Multiples of a cycle peak too: when the highest peak is at (about, one lag per cycle) a multiple
of a shorter significant peak whose ACF is within ``z / sqrt(N)`` of it, the shorter lag is
returned, so noise cannot turn a period of 12 into 24. With no significant peak the answer is 1
(no seasonality). Strong trends hide seasonality; pass a differenced series (``np.diff(values)``)
for those.

Cost: the ACF comes from one FFT (``r = irfft(|rfft(x, 2N)|^2)``, Wiener-Khinchin), O(N log N)
rather than the O(N * max_lag) of one dot product per lag, and ``detect_season`` reads only the
last ``window`` values (``SEASON_WINDOW = 65536`` by default: three cycles of any period up to
21845 samples, e.g. a yearly cycle of hourly data), so its cost does not grow with the series.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

__all__ = ["SEASON_WINDOW", "acf", "detect_season"]

#: ``detect_season`` reads at most this many of the most recent values (a power of two, so the
#: FFT of twice its length is fast)
SEASON_WINDOW = 65536


def acf(values: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations ``r_0 .. r_max_lag`` of a 1-D series; shape (max_lag + 1,).

    One FFT of the series zero-padded to at least ``2N`` (so the circular correlation equals
    the linear one): O(N log N) whatever ``max_lag``. A constant series has no defined ACF; it
    returns zeros after ``r_0``.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x - x.mean()
    n = x.size
    denom = float(x @ x)
    r = np.zeros(max_lag + 1)
    r[0] = 1.0
    if denom == 0.0 or max_lag < 1:
        return r
    size = 1 << int(2 * n - 1).bit_length()  # power of two >= 2N - 1: no wrap-around
    spectrum = np.fft.rfft(x, size)
    sums = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, size)  # sums[k] = sum x_t x_{t+k}
    k = min(max_lag, n - 1)  # lags >= N have no pairs: r_k = 0
    r[1 : k + 1] = sums[1 : k + 1] / denom
    return r


def detect_season(
    values,
    max_period: int | None = None,
    *,
    alpha: float = 0.05,
    window: int | None = SEASON_WINDOW,
) -> int:
    """Season length in samples of a 1-D series, or 1 if it shows none.

    Args:
        values: ``(N,)`` numbers, N >= 8; the last ``window`` of them must be finite (only
            those are read).
        max_period: largest lag considered; default ``n // 3`` (at least three full cycles
            must fit in the series for a period to be trusted), ``n = min(N, window)`` the
            values read. At most ``n - 2``.
        alpha: family-wise significance level of the peak test (see the module docstring).
        window: read only the last ``window`` values (>= 8), the recent behaviour being what a
            forecast needs, at a cost that does not grow with N; ``None`` reads all of them.

    Returns:
        the lag of the highest significant ACF peak, or 1.
    """
    func = "detect_season"
    x = np.asarray(values)
    if x.dtype.kind not in "biuf" or x.ndim != 1:
        raise ValueError(
            f"{func}: argument 'values' got shape {x.shape} dtype {x.dtype}, expected a 1-D series "
            "of numbers"
        )
    n_all = x.size
    if window is not None:
        is_int = isinstance(window, (int, np.integer)) and not isinstance(window, bool)
        if not is_int or window < 8:
            raise ValueError(
                f"{func}: argument 'window' got {window!r}, expected an int >= 8 or None"
            )
        x = x[-window:]  # a view: the values before it are never read
    n = x.size
    if n < 8:
        raise ValueError(f"{func}: argument 'values' got {n} values, expected at least 8")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{func}: argument 'values' got NaN or inf, expected finite numbers")
    if max_period is None:
        max_period = max(2, n // 3)
    is_int = isinstance(max_period, (int, np.integer)) and not isinstance(max_period, bool)
    if not is_int or not 2 <= max_period <= n - 2:
        read = f"the last {n} values read (window={window})" if n < n_all else f"N = {n}"
        raise ValueError(
            f"{func}: argument 'max_period' got {max_period!r}, expected an int with "
            f"2 <= max_period <= {n - 2} (n - 2 for {read})"
        )
    if not 0 < alpha < 1:
        raise ValueError(f"{func}: argument 'alpha' got {alpha!r}, expected 0 < alpha < 1")

    r = acf(x, max_period + 1)  # one extra lag to tell whether max_period is a peak
    n_lags = max_period - 1  # lags 2 .. max_period are candidates
    z = NormalDist().inv_cdf(1.0 - alpha / (2.0 * n_lags))
    threshold = z / math.sqrt(n)

    k = np.arange(2, max_period + 1)
    running_min = np.minimum.accumulate(r[1:])  # running_min[j] = min(r_1 .. r_{j+1})
    peak = (r[k] > r[k - 1]) & (r[k] >= r[k + 1])
    significant = (r[k] > threshold) & (r[k] - running_min[k - 1] > threshold)
    candidates = k[peak & significant]
    if candidates.size == 0:
        return 1
    best = int(candidates[np.argmax(r[candidates])])
    # A cycle of length m also peaks at 2m, 3m, ... and noise can lift one of those above r_m.
    # Return the shortest significant peak that divides the best one (within one lag per cycle:
    # noise and cycles of non-integer length such as 10.5 shift peaks) and is within one
    # significance band of it.
    for k in candidates[candidates < best]:
        cycles = round(best / k)
        if abs(best - k * cycles) <= cycles and r[k] >= r[best] - threshold:
            return int(k)
    return best
