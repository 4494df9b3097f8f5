"""Data for the forecasting job: CSV I/O, built-in series, windows, splits, scalers, seasonality,
baselines. NumPy and the standard library only."""

from .baselines import mae, mase, naive_forecast, rmse, seasonal_naive_forecast
from .builtin import builtin_path, list_builtin, list_builtin_panels, load_panel, load_series
from .csvio import DataFileNotFoundError, read_series_csv, write_csv_atomic
from .dates import SeriesIndex
from .seasonality import SEASON_WINDOW, acf, detect_season
from .windows import MinMaxScaler, Split, StandardScaler, chronological_split, make_windows

__all__ = [
    "SEASON_WINDOW",
    "DataFileNotFoundError",
    "MinMaxScaler",
    "SeriesIndex",
    "Split",
    "StandardScaler",
    "acf",
    "builtin_path",
    "chronological_split",
    "detect_season",
    "list_builtin",
    "list_builtin_panels",
    "load_panel",
    "load_series",
    "mae",
    "make_windows",
    "mase",
    "naive_forecast",
    "read_series_csv",
    "rmse",
    "seasonal_naive_forecast",
    "write_csv_atomic",
]
