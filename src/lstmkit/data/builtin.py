"""Built-in yearly series shipped inside the package (``lstmkit/data/builtin/*.csv``).

Both come from statsmodels' datasets (public domain, as statsmodels states); where they come from
and how they were written is in ``builtin/README.md``. They are read through ``importlib.resources``
so they load from a wheel, an editable install or a zip alike.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

import numpy as np

from .csvio import _parse_series

__all__ = ["builtin_path", "list_builtin", "load_series"]

# name -> what load_series reports as meta (plain JSON-able values). "season" is the known cycle
# length in samples, or 1 for none; tests check detect_season against it.
_DATASETS: dict[str, dict] = {
    "sunspots": {
        "column": "sunspots",
        "time_column": "year",
        "frequency": "yearly",
        "season": 11,
        "unit": "yearly sunspot number",
        "description": "Yearly (1700-2008) data on sunspots from the National Geophysical Data "
        "Center.",
        "source": "statsmodels.datasets.sunspots (SUNACTIVITY); "
        "http://www.ngdc.noaa.gov/stp/solar/solarda3.html",
        "license": "This data is public domain. (as statsmodels states it)",
    },
    "nile": {
        "column": "volume",
        "time_column": "year",
        "frequency": "yearly",
        "season": 1,
        "unit": "annual discharge at Aswan, 10^8 m^3",
        "description": "This dataset contains measurements on the annual flow of the Nile as "
        "measured at Ashwan for 100 years from 1871-1970.",
        "source": "statsmodels.datasets.nile; Cobb, G. W. 1978. The Problem of the Nile: "
        "Conditional Solution to a Changepoint Problem. Biometrika 65.2, 243-51.",
        "license": "This is public domain. (as statsmodels states it)",
    },
}

# Keeps files extracted from a zipped install alive until the interpreter exits.
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def list_builtin() -> list[str]:
    """Names accepted by ``load_series`` and ``builtin_path``, sorted."""
    return sorted(_DATASETS)


def _check_name(name: object, func: str) -> str:
    if name not in _DATASETS:
        raise ValueError(
            f"{func}: argument 'name' must be a built-in dataset: got {name!r}, "
            f"expected one of {list_builtin()}"
        )
    return name  # type: ignore[return-value]


def _resource(name: str):
    return resources.files("lstmkit.data").joinpath("builtin", f"{name}.csv")


def builtin_path(name: str) -> Path:
    """The file system path of the built-in CSV file ``name`` (e.g. to show it or copy it).

    From a zipped install the file is extracted to a temporary file that lives until exit.
    """
    res = _resource(_check_name(name, "builtin_path"))
    if isinstance(res, Path):
        return res
    return _extracted.enter_context(resources.as_file(res))


def load_series(name: str) -> tuple[np.ndarray, list[str], dict]:
    """Load a built-in series.

    Returns:
        ``(values (N,) float64, index list of N year strings, meta)`` where ``meta`` is a fresh
        dict of plain values: ``name, column, time_column, frequency, season, unit, description,
        source, license, n, start, end``.
    """
    info = _DATASETS[_check_name(name, "load_series")]
    with _resource(name).open("r", newline="", encoding="utf-8") as stream:
        values, index = _parse_series(
            stream,
            source=f"built-in dataset {name!r}",
            column=info["column"],
            time_column=info["time_column"],
            fill="none",
            min_rows=1,
            func="load_series",
        )
    meta = {"name": name, **info, "n": int(values.size), "start": index[0], "end": index[-1]}
    return values, index, meta
