"""Look inside trained recurrent models: gates and states by name, gradient flow, per-unit
summaries, plots and a self-contained HTML report.

    from lstmkit.inspect import trace, gradient_flow, unit_summary
    tr = trace(model, x)                  # tr["lstm"]["f"]: (batch, timesteps, units)
    flow = gradient_flow(model, x, y)     # flow["lstm"].by_lag("h"): ‖∂L/∂h_t‖ against the lag
    stats = unit_summary(tr["lstm"])      # saturation, forget gate, time-scales, active units

Plots (:mod:`lstmkit.inspect.plots`) and the report (:mod:`lstmkit.inspect.report`) import
matplotlib inside the functions that draw; nothing here imports it at import time.
"""

from __future__ import annotations

from .gradflow import GradientFlow, StateFlow, gradient_flow
from .stats import UnitSummary, unit_summary
from .trace import LayerTrace, Trace, trace

__all__ = [
    "GradientFlow",
    "LayerTrace",
    "StateFlow",
    "Trace",
    "UnitSummary",
    "gradient_flow",
    "trace",
    "unit_summary",
]
