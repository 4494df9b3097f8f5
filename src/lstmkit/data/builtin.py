"""Built-in yearly series and panels shipped inside the package (``lstmkit/data/builtin/*.csv``).

The two series come from statsmodels' datasets (public domain, as statsmodels states); where they
come from and how they were written is in ``builtin/README.md``. The panel ``m1_yearly`` (the M1
competition's yearly series, CC BY 4.0) is credited in ``builtin/m1_yearly.md``. They are read through ``importlib.resources``
so they load from a wheel, an editable install or a zip alike.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

import numpy as np

from .csvio import _parse_series

__all__ = ["builtin_path", "list_builtin", "list_builtin_panels", "load_panel", "load_series"]

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

# name -> what a built-in panel (long format, read by ``lstmkit.apps.panel_io.read_panel``) is;
# its credit and licence are in ``builtin/<name>.md``.
_PANELS: dict[str, dict] = {
    "m1_yearly": {
        "horizon": 6,
        "frequency": "yearly",
        "description": "The 181 yearly series of the M1 forecasting competition (Makridakis et al. "
        "1982), 15-58 points each; forecast the last 6 of each.",
        "source": "Monash Time Series Forecasting Archive (Godahewa et al. 2021), "
        "m1_yearly_dataset, as bundled in aeon 1.6.0",
        "license": "CC BY 4.0 (the Monash archive's licence; credit in builtin/m1_yearly.md)",
    },
}

# Keeps files extracted from a zipped install alive until the interpreter exits.
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def list_builtin() -> list[str]:
    """Names accepted by ``load_series`` and ``builtin_path``, sorted."""
    return sorted(_DATASETS)


def list_builtin_panels() -> list[str]:
    """Names accepted by ``load_panel`` (and ``builtin_path``), sorted."""
    return sorted(_PANELS)


def _check_name(name: object, func: str, panels: bool = False) -> str:
    known = list_builtin() + (list_builtin_panels() if panels else [])
    if name not in known:
        raise ValueError(
            f"{func}: argument 'name' must be a built-in dataset: got {name!r}, "
            f"expected one of {known}"
        )
    return name  # type: ignore[return-value]


def _resource(name: str):
    return resources.files("lstmkit.data").joinpath("builtin", f"{name}.csv")


def builtin_path(name: str) -> Path:
    """The file system path of the built-in CSV file ``name`` (e.g. to show it or copy it).

    From a zipped install the file is extracted to a temporary file that lives until exit.
    """
    res = _resource(_check_name(name, "builtin_path", panels=True))
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
    if name in _PANELS:
        raise ValueError(
            f"load_series: argument 'name' got {name!r}, a built-in panel of many series; "
            f"expected one of {list_builtin()} (load panels with load_panel)"
        )
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


def load_panel(name: str):
    """Load a built-in panel as a ``lstmkit.apps.panel.Panel`` (its ``notes`` say what it is).

    Returns:
        ``(panel, meta)``: ``meta`` is a fresh dict of plain values: ``name, horizon,
        frequency, description, source, license, n_series``.
    """
    func = "load_panel"
    if name not in _PANELS:
        raise ValueError(
            f"{func}: argument 'name' must be a built-in panel: got {name!r}, expected one of "
            f"{list_builtin_panels()}"
        )
    from ..apps.panel_io import read_panel  # the panel reader lives with the forecasting app

    panel = read_panel(builtin_path(name))
    return panel, {"name": name, **_PANELS[name], "n_series": panel.n_series}
