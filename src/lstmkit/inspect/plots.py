"""PNG plots of traces and gradient flow. matplotlib is imported inside each function (and only
its object-oriented ``Figure``, no pyplot state), so importing this module costs nothing.

- :func:`plot_gates`: one heatmap per gate and state of one sample, units (rows) x steps.
- :func:`plot_states`: trajectories of selected units' cell state (LSTM ``c``, else ``h``).
- :func:`plot_gradient_flow`: ``‖∂L/∂h_t‖`` against the lag, several curves on a log scale.
- :func:`plot_text`: the input tokens (characters or words), each coloured by one unit's value.

Every function writes ``path`` and returns it as a :class:`pathlib.Path`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .trace import TANH_GATES, LayerTrace

DPI = 110


def _figure(width, height, margins=(0.75, 0.35, 0.45, 0.55)):
    """A Figure with fixed margins in inches (left, right, top, bottom): no layout engine,
    which would cost more than the drawing itself."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    left, right, top, bottom = margins
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height
    )
    return fig


def _integer_locator(**kwargs):
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True, **kwargs)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def value_range(name: str, values: np.ndarray) -> tuple[float, float, str]:
    """``(vmin, vmax, colormap)`` for a gate or state: σ gates [0, 1], tanh gates and h
    [-1, 1], c symmetric around 0 at its largest magnitude."""
    if name in TANH_GATES or name == "h":
        return -1.0, 1.0, "RdBu_r"
    if name == "c":
        m = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
        m = m or 1.0
        return -m, m, "RdBu_r"
    return 0.0, 1.0, "viridis"


def _check_sample(layer_trace, sample):
    B = layer_trace["h"].shape[0]
    if not 0 <= sample < B:
        raise ValueError(f"argument 'sample' must be in [0, {B}); got {sample}")


def plot_gates(layer_trace: LayerTrace, path, *, sample=0, max_units=64) -> Path:
    """Heatmaps of every gate and state of ``layer_trace`` for one sample: units x steps."""
    _check_sample(layer_trace, sample)
    names = list(layer_trace)
    H, T = layer_trace.units, layer_trace.timesteps
    shown = min(H, max_units)
    width = min(14.0, 3.0 + 0.06 * T) + 1.5
    fig = _figure(width, 1.0 + len(names) * (0.8 + 0.02 * shown), margins=(0.9, 0.8, 0.35, 0.5))
    fig.subplots_adjust(hspace=0.3)
    axes = fig.subplots(len(names), 1, squeeze=False, sharex=True)[:, 0]
    for ax, name in zip(axes, names):
        v = layer_trace[name][sample, :, :shown].T  # (units, T)
        vmin, vmax, cmap = value_range(name, v)
        im = ax.imshow(v, aspect="auto", interpolation="nearest", vmin=vmin, vmax=vmax, cmap=cmap)
        ax.set_ylabel(f"{name}\nunit", rotation=0, ha="right", va="center")
        ax.set_yticks([0, shown - 1] if shown > 1 else [0])  # fixed ticks: cheap to lay out
        fig.colorbar(im, cax=ax.inset_axes([1.015, 0.0, 0.015, 1.0]))
    axes[-1].xaxis.set_major_locator(_integer_locator())
    what = "time step" if layer_trace.order == "time" else "processing step"
    axes[-1].set_xlabel(what)
    more = f" (first {shown} of {H} units)" if shown < H else ""
    axes[0].set_title(f"{layer_trace.name}: gates and states of sample {sample}{more}")
    return _save(fig, path)


def plot_states(layer_trace: LayerTrace, path, *, units=None, sample=0, state=None) -> Path:
    """Trajectories of ``units`` (default: the 6 most active) of the cell state over the steps."""
    _check_sample(layer_trace, sample)
    state = state or ("c" if "c" in layer_trace else "h")
    if units is None:
        from .stats import unit_summary

        units = unit_summary(layer_trace, top=6).most_active
    units = [int(u) for u in units]
    bad = [u for u in units if not 0 <= u < layer_trace.units]
    if bad:
        raise ValueError(f"argument 'units' must lie in [0, {layer_trace.units}); got {bad}")
    fig = _figure(8.0, 3.6)
    ax = fig.subplots()
    v = layer_trace[state][sample]  # (T, H)
    for u in units:
        ax.plot(np.arange(len(v)), v[:, u], lw=1.4, label=f"unit {u}")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.xaxis.set_major_locator(_integer_locator())
    ax.set_xlabel("time step" if layer_trace.order == "time" else "processing step")
    ax.set_ylabel(state)
    ax.set_title(f"{layer_trace.name}: {state} of selected units, sample {sample}")
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def plot_gradient_flow(curves: dict, path, *, title=None, ylabel=None, spread=None) -> Path:
    """``curves``: label -> ``(lags,)`` norms, index = lag (e.g. ``StateFlow.by_lag()``), drawn
    on a log scale against the lag. ``spread``: label -> ``(low, high)`` arrays to shade."""
    fig = _figure(8.0, 4.2)
    ax = fig.subplots()
    for label, y in curves.items():
        y = np.asarray(y, np.float64)
        lags = np.arange(len(y))
        line = ax.semilogy(lags, np.where(y > 0, y, np.nan), lw=1.6, label=label)[0]
        if spread and label in spread:
            lo, hi = (np.asarray(a, np.float64) for a in spread[label])
            ax.fill_between(lags, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    ax.xaxis.set_major_locator(_integer_locator())
    ax.set_xlabel("lag: steps before the last one")
    ax.set_ylabel(ylabel or "‖∂L/∂h_t‖")
    ax.set_title(title or "Gradient flow")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_text(tokens, values, path, *, title=None, width=64, vmin=-1.0, vmax=1.0) -> Path:
    """The tokens (a string's characters, or a list of words) on a grid, each box coloured by
    ``values[t]``, one value per token; lines wrap at newlines and at ``width`` characters."""
    tokens = list(tokens)
    values = np.asarray(values, np.float64)
    if values.shape != (len(tokens),):
        raise ValueError(
            f"plot_text: argument 'values' must have shape ({len(tokens)},), one per token; "
            f"got {values.shape}"
        )
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    gap = 1 if any(len(t) > 1 for t in tokens) else 0  # words: a space between boxes
    cells, row, col = [], 0, 0  # (row, column, box width, token index)
    for t, tok in enumerate(tokens):
        w = max(1, len(tok))
        if tok == "\n" or (col and col + w > width):
            row, col = row + 1, 0
            if tok == "\n":
                continue
        cells.append((row, col, w, t))
        col += w + gap
    rows = row + 1
    height = 0.28 * rows + 1.1
    fig = _figure(0.16 * width + 0.6, height, margins=(0.3, 0.3, 0.35, 0.6))
    ax = fig.subplots()
    cmap, norm = colormaps["RdBu_r"], Normalize(vmin, vmax)
    for r, c, w, t in cells:
        v = values[t]
        face = cmap(norm(v)) if np.isfinite(v) else (0.9, 0.9, 0.9, 1.0)
        y = rows - 1 - r
        ax.add_patch(_rect(c, y, w, face))
        label = tokens[t].replace(" ", "·")
        ax.text(
            c + w / 2,
            y + 0.5,
            label,
            ha="center",
            va="center",
            family="monospace",
            fontsize=8,
            color="0.1",
        )
    ax.set_xlim(0, width)
    ax.set_ylim(0, rows)
    ax.set_axis_off()
    cax = ax.inset_axes([0.3, -0.35 / (0.28 * rows + 0.1), 0.4, 0.1 / (0.28 * rows + 0.1)])
    fig.colorbar(ScalarMappable(norm, cmap), cax=cax, orientation="horizontal")
    ax.set_title(title or "tokens coloured by activation")
    return _save(fig, path)


def _rect(x, y, w, face):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, 1, facecolor=face, edgecolor="white", lw=0.5)
