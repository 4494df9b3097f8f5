"""The inspection report: PNG plots plus one self-contained HTML page that shows them with numbers.

:func:`write_report` traces a model on an input, summarises every recurrent layer per unit,
measures the gradient flow, draws the plots (:mod:`lstmkit.inspect.plots`) and writes
``report.html``. The page needs no network and no other file: the images are embedded as base64
``data:`` URIs (and also link to the PNG files written next to it), the CSS and JavaScript are
inline (:mod:`lstmkit.inspect.html`). For a text model it shows the input characters (or words)
coloured by one unit, and hovering one shows every gate and state of the chosen unit at that step.

:func:`write_cell_comparison` writes the adding-problem comparison of a plain RNN, a GRU and
LSTMs (:mod:`lstmkit.inspect.compare`) the same way. Inputs from files: :mod:`lstmkit.inspect.inputs`.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from . import html as h
from .gradflow import gradient_flow
from .inputs import encode_text, load_input, read_numbers, text_codec
from .plots import plot_gates, plot_gradient_flow, plot_states, plot_text
from .stats import unit_summary
from .trace import trace

__all__ = [
    "encode_text",
    "load_input",
    "read_numbers",
    "text_codec",
    "write_cell_comparison",
    "write_report",
    "write_translation_report",
]


def write_report(
    model,
    x,
    out_dir,
    *,
    y=None,
    mask=None,
    text=None,
    sample=0,
    units=None,
    loss=None,
    title=None,
) -> Path:
    """Trace ``model`` on ``x``, write the plots and ``report.html`` into ``out_dir``; returns
    the report's path.

    ``y``: targets for the gradient flow (with ``loss``, default the model's or ``"mse"``);
    without them the gradient is that of each sample's largest output. ``text``: the tokens of
    ``x`` (one sequence) for a text model, a string of characters or a list of tokens (as
    :func:`encode_text` returns them). ``sample``: which sequence the heatmaps show;
    ``units``: which units the state plot follows (default the most active).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tr = trace(model, x, mask=mask)
    B = len(next(iter(tr.values()))["h"])
    if not 0 <= sample < B:
        raise ValueError(f"inspect: argument 'sample' must be in [0, {B}); got {sample}")
    if text is not None:
        tokens = list(text)
        T = next(iter(tr.values())).timesteps
        if B != 1 or len(tokens) != T:
            raise ValueError(
                f"inspect: argument 'text' must hold one token per step of one sequence "
                f"({T}); got {len(tokens)} tokens for a batch of {B}"
            )
    if units is not None:
        units = [int(u) for u in units]
        widest = max(lt.units for lt in tr.values())
        if not units or min(units) < 0 or max(units) >= widest:
            raise ValueError(
                f"inspect: argument 'units' must list units in [0, {widest}); got {units}"
            )
    flow = gradient_flow(model, x, y, loss=loss, mask=mask)
    title = title or f"lstmkit inspect: {model.name}"
    nav, body = [], []
    xs = np.asarray(x).shape
    body.append(
        f'<p class="note">Input shape {xs}; heatmaps show sample {sample}. Gradient flow: '
        + (
            "the loss on the given targets"
            if y is not None
            else "each sample's largest output at its last step (no targets given)"
        )
        + ", ‖∂L<sub>b</sub>/∂h<sub>t</sub>‖ averaged over samples at each lag.</p>"
    )
    first = None
    for name, lt in tr.items():
        first = first or name
        slug = h.slug(name)
        s = unit_summary(lt)
        # the chosen units where this layer has them, else its most active ones
        follow = [u for u in units or () if u < lt.units] or list(s.most_active[:6])
        gates_png = plot_gates(lt, out / f"{slug}_gates.png", sample=sample)
        states_png = plot_states(lt, out / f"{slug}_states.png", units=follow, sample=sample)
        kind = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}[lt.cell]
        nav.append(f'<a href="#layer-{slug}">{html.escape(name)}</a>')
        body.append(
            f'<section id="layer-{slug}"><h2>{html.escape(name)} ({kind}, {lt.units} units)</h2>'
            + h.layer_summary_html(s)
            + h.figure_html(gates_png, f"{name}: gates and states over time, sample {sample}")
            + h.figure_html(
                states_png,
                f"{name}: {'c' if 'c' in lt else 'h'} of units "
                f"{', '.join(map(str, follow))}, sample {sample}",
            )
            + "</section>"
        )
    curves = {}
    for name, f in flow.items():
        curves[f"{name} h"] = f.by_lag("h")
        if f.c is not None:
            curves[f"{name} c"] = f.by_lag("c")
    flow_png = plot_gradient_flow(
        curves,
        out / "gradient_flow.png",
        title=f"{model.name}: gradient flow",
        ylabel="‖∂L/∂h_t‖, ‖∂L/∂c_t‖",
    )
    n = min(len(c) for c in curves.values())
    nav.append('<a href="#gradient-flow">gradient flow</a>')
    body.append(
        '<section id="gradient-flow"><h2>Gradient flow</h2>'
        + h.figure_html(flow_png, "gradient norm against the lag (steps before the last)")
        + h.flow_table(curves, n)
        + f'<p class="note">L = {h.fmt(flow.loss, 6)}.</p></section>'
    )
    data = {"text": [], "unit": 0, "layers": {}}
    if text is not None:
        lt = tr[first]
        fits = [u for u in units or () if u < lt.units]
        unit = fits[0] if fits else int(unit_summary(lt).most_active[0])
        m = h.magnitude(lt["h"][0])
        text_png = plot_text(
            tokens,
            lt["h"][0, :, unit],
            out / "text.png",
            vmin=-m,
            vmax=m,
            title=f"{first}: h of unit {unit} at each token",
        )
        section, data = h.text_section(tokens, tr, unit)
        nav.append('<a href="#text">text</a>')
        body.append(
            section.replace(
                "</section>", h.figure_html(text_png, f"{first}: unit {unit}") + "</section>"
            )
        )
    report = out / "report.html"
    report.write_text(h.page(title, " ".join(nav), "".join(body), data), encoding="utf-8")
    return report


def write_cell_comparison(out_dir, *, T=100, units=32, batch=32, seeds=(0, 1, 2, 3, 4), lag=100):
    """Run :func:`~lstmkit.inspect.compare.compare_cells`, write ``gradient_flow_cells.png`` and
    ``cells.html`` into ``out_dir``; returns ``(report path, comparison, rows at lag)``."""
    from .compare import compare_cells

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cmp = compare_cells(T=T, units=units, batch=batch, seeds=seeds)
    n = cmp.curves[cmp.reference].shape[1]
    if not 0 <= lag < n:
        raise ValueError(f"inspect: argument 'lag' must be in [0, {n}); got {lag}")
    medians = {label: cmp.median(label) for label in cmp.curves}
    spread = {
        label: (c.min(axis=0), c.max(axis=0)) for label, c in cmp.curves.items() if len(c) > 1
    }
    png = plot_gradient_flow(
        medians,
        out / "gradient_flow_cells.png",
        spread=spread,
        title=f"Adding problem T={T}, {units} units, at initialisation "
        f"(median of {len(cmp.seeds)} seeds)",
    )
    rows = cmp.at_lag(lag)
    table = h.table(
        [
            "cell",
            f"‖∂L/∂h‖ at lag {lag}",
            "ratio to SimpleRNN (median)",
            "min",
            "max",
            f"‖∂L/∂c‖ at lag {lag}",
        ],
        [
            [
                r["cell"],
                h.fmt(r["norm_h"]),
                h.fmt(r["ratio_to_rnn"]),
                h.fmt(r["ratio_min"]),
                h.fmt(r["ratio_max"]),
                h.fmt(r.get("norm_c")),
            ]
            for r in rows
        ],
    )
    body = (
        f'<p class="note">Adding problem (lstmkit.tasks.adding_problem, minimal length {T}), '
        f"batch {batch}, seeds {list(cmp.seeds)}; each model is cell({units}) + Dense(1) with "
        "Keras' default initialisers, MSE loss, untrained. Curves: median over seeds of "
        "‖∂L<sub>b</sub>/∂h<sub>t</sub>‖ averaged over the batch; bands: min to max over seeds."
        "</p>"
        + h.figure_html(png, "gradient norm against the lag")
        + table
        + h.flow_table(medians, n)
    )
    report = out / "cells.html"
    page = h.page(
        "lstmkit inspect: gradient flow of RNN, GRU and LSTM",
        "",
        body,
        {"text": [], "unit": 0, "layers": {}},
    )
    report.write_text(page, encoding="utf-8")
    return report, cmp, rows


def write_translation_report(alignment, out_dir, *, title=None) -> Path:
    """``report.html`` for a translation model on one sentence: the attention heatmap (source
    tokens by target tokens, ``attention.png``) beside the decoder LSTM's gates i, f, g, o and
    its states over the target steps (``decoder_gates.png``, ``decoder_states.png``, the plots
    and unit tables of :func:`write_report`). ``alignment``: what
    :func:`lstmkit.apps.translate.align` returns. Every PNG is rendered before any file is
    written; each file is written atomically."""
    from .._atomic import atomic_write
    from .attention import plot_attention

    a = alignment
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_attention(
        a.attention, a.source_tokens, a.target_tokens, title="attention: target by source"
    )
    att_png = out / "attention.png"
    atomic_write(att_png, lambda tmp: Path(tmp).write_bytes(png))
    lt = a.decoder
    s = unit_summary(lt)
    gates_png = plot_gates(lt, out / "decoder_gates.png")
    follow = list(s.most_active[:6])
    states_png = plot_states(lt, out / "decoder_states.png", units=follow)
    src = " ".join(a.source_tokens)
    body = (
        f'<p class="note">Source tokens: {html.escape(src)}<br>Greedy translation: '
        f"{html.escape(a.translation)} ({len(a.target_tokens)} steps, EOS included)</p>"
        '<section id="attention"><h2>Attention</h2>'
        + h.figure_html(
            att_png, "attention weights: one row per target token, softmax over the source tokens"
        )
        + "</section>"
        + f'<section id="layer-decoder"><h2>decoder (LSTM, {lt.units} units)</h2>'
        + h.layer_summary_html(s)
        + h.figure_html(
            gates_png, "decoder: gates i, f, g, o and states c, h over the target steps"
        )
        + h.figure_html(states_png, f"decoder: c of units {', '.join(map(str, follow))}")
        + "</section>"
    )
    nav = '<a href="#attention">attention</a> <a href="#layer-decoder">decoder gates</a>'
    page = h.page(title or "lstmkit inspect: translation", nav, body,
                  {"text": [], "unit": 0, "layers": {}})  # fmt: skip
    report = out / "report.html"
    atomic_write(report, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return report
