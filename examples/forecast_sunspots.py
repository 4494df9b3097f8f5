"""Forecast yearly sunspot numbers with an LSTM and compare it with the naive baselines.

The Python API of the single-series engine (`lstmkit forecast train --engine single`, the
earlier demo; `lstmkit forecast demo` now runs the global forecaster on M1):

    .venv/bin/python examples/forecast_sunspots.py
"""

import tempfile
from pathlib import Path

from lstmkit import load_model
from lstmkit.apps.forecast import DEMO_SETTINGS, backtest, forecast, train_forecaster
from lstmkit.apps.forecast_files import future_labels
from lstmkit.data import load_series

# 309 yearly values, 1700-2008, vendored from statsmodels (public domain)
values, years, info = load_series("sunspots")

# train | validation | test = 70/15/15 in time order; the test part (1963-2008) is only scored
report = train_forecaster(values, **DEMO_SETTINGS)
tried = {name: round(v, 2) for name, v in report.selection.items()}
print(f"season {report.season}, transform {report.transform} (validation RMSE {tried})")
print(f"{report.test_windows} forecasts of 12 years from origins inside the test part:")
print(report.format_table())

# the saved file carries the scaler, transform and window settings: a loaded model forecasts alike
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "sunspots.lstmkit"
    report.model.save(path)
    model = load_model(path)

next_years = future_labels(years, model.metadata["horizon"])
for year, value in zip(next_years, forecast(model, values)):
    print(f"{year}: {value:6.1f}")

# a backtest: hold out the last 12 years, forecast them from the years before
table, fc, actual = backtest(model, values)
print({name: round(row["RMSE"], 2) for name, row in table.items()})
