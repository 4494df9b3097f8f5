"""A plain RNN, a GRU and LSTMs side by side: gradient flow on the adding problem at initialisation.

For each seed: one batch of the adding problem (:func:`lstmkit.tasks.adding_problem`, minimal
length ``T``, masked), and for each cell a fresh ``Sequential([cell(units), Dense(1)])`` with
Keras' default initialisers (``glorot_uniform`` kernels, ``orthogonal`` recurrent kernels, zero
biases except the LSTM's forget-gate bias), built from ``lstmkit.set_random_seed(seed)``. The MSE
loss is differentiated with :func:`lstmkit.inspect.gradient_flow`; each curve is
``‖∂L_b/∂h_t‖`` averaged over the batch at each lag (0 = each sequence's last step; lags beyond
T - 1 average the sequences long enough to have them).

The table reports, at one lag, the median over seeds of each cell's norm and of its ratio to the
SimpleRNN's on the same data and seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import random as _random
from ..layers import GRU, LSTM, Dense, SimpleRNN
from ..models import Sequential
from ..tasks import adding_problem
from .gradflow import gradient_flow

#: label -> layer factory; the first one is the reference for the ratios
CELLS = {
    "SimpleRNN (tanh)": lambda units: SimpleRNN(units),
    "GRU": lambda units: GRU(units),
    "LSTM (forget bias 1)": lambda units: LSTM(units),  # Keras' unit_forget_bias
    "LSTM (forget bias 5)": lambda units: LSTM(units, forget_bias=5.0),
}


@dataclass(frozen=True)
class CellComparison:
    """``curves[label]``: ``(seeds, lags)`` mean ``‖∂L/∂h_t‖`` by lag; ``cell_curves[label]`` the
    same for the LSTM cell state ``‖∂L/∂c_t‖`` (LSTMs only)."""

    curves: dict
    cell_curves: dict
    seeds: tuple
    T: int
    units: int
    batch: int

    @property
    def reference(self) -> str:
        return next(iter(self.curves))

    def median(self, label, state="h") -> np.ndarray:
        return np.median((self.curves if state == "h" else self.cell_curves)[label], axis=0)

    def at_lag(self, lag) -> list[dict]:
        """One row per cell: median norm at ``lag`` and median ratio to the reference cell."""
        ref = self.curves[self.reference][:, lag]
        rows = []
        for label, c in self.curves.items():
            row = {
                "cell": label,
                "lag": int(lag),
                "norm_h": float(np.median(c[:, lag])),
                "ratio_to_rnn": float(np.median(c[:, lag] / ref)),
                "ratio_min": float(np.min(c[:, lag] / ref)),
                "ratio_max": float(np.max(c[:, lag] / ref)),
            }
            if label in self.cell_curves:
                row["norm_c"] = float(np.median(self.cell_curves[label][:, lag]))
            rows.append(row)
        return rows


def compare_cells(T=100, units=32, batch=32, seeds=(0, 1, 2, 3, 4), cells=None) -> CellComparison:
    """Gradient flow of every cell in ``cells`` (default :data:`CELLS`) on the adding problem."""
    cells = CELLS if cells is None else cells
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("compare_cells: argument 'seeds' must hold at least one seed; got none")
    curves = {label: [] for label in cells}
    cell_curves = {}
    for seed in seeds:
        data = adding_problem(batch, T, seed=seed, dtype="float64")
        for label, make in cells.items():
            _random.set_random_seed(seed)
            model = Sequential([make(units), Dense(1)], dtype="float64")
            model.build((None, *data.x.shape[1:]))
            flow = gradient_flow(model, data.x, data.y, loss="mse", mask=data.mask)
            f = flow[model.layers[0].name]
            curves[label].append(f.by_lag("h"))
            if f.c is not None:
                cell_curves.setdefault(label, []).append(f.by_lag("c"))
    # lags up to the longest sequence present in every batch (lag k averages the samples
    # longer than k; every sample has lags 0 .. T-1)
    n = min(len(c) for v in curves.values() for c in v)
    return CellComparison(
        {k: np.array([c[:n] for c in v]) for k, v in curves.items()},
        {k: np.array([c[:n] for c in v]) for k, v in cell_curves.items()},
        seeds,
        T,
        units,
        batch,
    )
