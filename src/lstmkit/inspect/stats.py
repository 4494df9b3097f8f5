"""Per-unit summaries of a traced layer: saturation, forget gates and memory time-scales, activity.

All statistics run over the steps the layer ran (masked steps are left out) and every sample.

- **Saturation** of a gate, per unit: the share of its values in the outer tenths of its range,
  below 0.1 or above 0.9 for a σ gate (i, f, o, z, r), below -0.8 or above 0.8 for a tanh gate
  (g, n: the same thresholds on the range mapped to [0, 1]). A saturated σ/tanh passes almost no
  gradient (its derivative is below 0.09 / 0.36 there).
- **Forget gate and time-scale**: ``f̄`` is the mean forget gate of a unit (LSTM ``f``; for a GRU
  the gate that keeps the old state, ``z``, since ``h = z ⊙ h_prev + (1 - z) ⊙ n``). Multiplying by
  ``f̄`` every step shrinks a memory by ``e`` after ``τ = -1 / ln f̄`` steps: the unit's memory
  time-scale (∞ when ``f̄ = 1``). A SimpleRNN has no gate, so no time-scale.
- **Activity**: the mean ``|h|`` of each unit; ``most_active``/``least_active`` list unit indices,
  the most (least) active first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .trace import TANH_GATES, LayerTrace

SATURATION_LOW, SATURATION_HIGH = 0.1, 0.9
#: the gate whose mean sets a unit's time-scale
KEEP_GATE = {"lstm": "f", "gru": "z"}


@dataclass(frozen=True)
class UnitSummary:
    """Per-unit numbers of one traced layer; every array has shape ``(units,)``."""

    name: str
    cell: str
    saturation: dict  # gate -> (units,) share of saturated values
    keep_gate: str | None  # "f" (LSTM), "z" (GRU) or None
    forget_mean: np.ndarray | None  # (units,) mean of keep_gate
    timescale: np.ndarray | None  # (units,) -1 / ln(forget_mean), in steps
    activity: np.ndarray  # (units,) mean |h|
    most_active: np.ndarray  # unit indices, most active first
    least_active: np.ndarray  # unit indices, least active first

    def table(self) -> list[dict]:
        """One row per unit (plain Python numbers), for reports and CSV files."""
        rows = []
        for u in range(len(self.activity)):
            row = {"unit": u, "activity": float(self.activity[u])}
            for g, s in self.saturation.items():
                row[f"saturation_{g}"] = float(s[u])
            if self.forget_mean is not None:
                row[f"mean_{self.keep_gate}"] = float(self.forget_mean[u])
                row["timescale"] = float(self.timescale[u])
            rows.append(row)
        return rows


def saturation(values: np.ndarray, gate: str, valid: np.ndarray) -> np.ndarray:
    """``(units,)`` share of saturated values of ``values (B, T, H)`` over the ``valid (B, T)``
    steps (see the module docstring for the thresholds)."""
    v = values[valid]  # (N, H)
    if gate in TANH_GATES:
        v = (v + 1.0) / 2.0  # tanh's [-1, 1] onto σ's [0, 1]
    return ((v < SATURATION_LOW) | (v > SATURATION_HIGH)).mean(axis=0)


def timescale(f_mean: np.ndarray) -> np.ndarray:
    """``-1 / ln f``: steps after which repeated multiplication by ``f`` leaves 1/e; ∞ at f = 1."""
    f = np.asarray(f_mean, np.float64)
    with np.errstate(divide="ignore"):
        return np.where(f >= 1.0, np.inf, -1.0 / np.log(np.clip(f, 1e-300, None)))


def unit_summary(layer_trace: LayerTrace, top: int = 5) -> UnitSummary:
    """Saturation per gate, mean forget gate and time-scale, activity, and the ``top`` most and
    least active units of one :class:`~lstmkit.inspect.trace.LayerTrace`."""
    if not isinstance(layer_trace, LayerTrace):
        raise TypeError(
            "unit_summary: argument 'layer_trace' must be a LayerTrace (trace(model, x)[name]); "
            f"got {type(layer_trace).__name__}"
        )
    valid = layer_trace.valid()
    sat = {g: saturation(layer_trace[g], g, valid) for g in layer_trace.gates}
    keep = KEEP_GATE.get(layer_trace.cell)
    f_mean = tau = None
    if keep is not None:
        f_mean = layer_trace[keep][valid].astype(np.float64).mean(axis=0)
        tau = timescale(f_mean)
    activity = np.abs(layer_trace["h"][valid].astype(np.float64)).mean(axis=0)
    order = np.argsort(-activity, kind="stable")
    k = min(int(top), len(activity))
    return UnitSummary(
        layer_trace.name,
        layer_trace.cell,
        sat,
        keep,
        f_mean,
        tau,
        activity,
        order[:k],
        order[::-1][:k],
    )
