"""The inspection report: PNG plots plus one self-contained HTML page that shows them with numbers.

:func:`write_report` traces a model on an input, summarises every recurrent layer per unit,
measures the gradient flow, draws the plots (:mod:`lstmkit.inspect.plots`) and writes
``report.html``. The page needs no network and no other file: the images are embedded as base64
``data:`` URIs (and also link to the PNG files written next to it), the CSS and JavaScript are
inline. For a text model it shows the input characters (or words) coloured by one unit, and
hovering one shows every gate and state of the chosen unit at that step.

:func:`write_cell_comparison` writes the adding-problem comparison of a plain RNN, a GRU and
LSTMs (:mod:`lstmkit.inspect.compare`) the same way.

Inputs (:func:`load_input`): a ``.npy`` array (read with ``allow_pickle=False``), a ``.csv`` of
numbers (one row per time step, one column per feature; a non-numeric first row is a header),
or, for a text model, a UTF-8 text file. A model is a text model when its metadata holds a
vocabulary (see :func:`text_codec`); its text is shown token by token (characters or words).
"""

from __future__ import annotations

import base64
import csv
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..layers import Embedding
from .gradflow import gradient_flow
from .plots import plot_gates, plot_gradient_flow, plot_states, plot_text
from .stats import unit_summary
from .trace import trace

#: the most tokens (characters or words) of a text a report reads and shows one by one
MAX_TEXT_TOKENS = 2000
#: lags listed in the gradient-flow tables (those the sequences reach)
TABLE_LAGS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


# -- inputs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextCodec:
    """How a text model reads text: ``tokenize(text) -> [token]``, ``ids([token]) -> (n,) ids``;
    ``level`` is ``"char"`` or ``"word"``."""

    level: str
    tokenize: Callable[[str], list]
    ids: Callable[[list], np.ndarray]


def text_codec(metadata) -> TextCodec | None:
    """The text codec a model's metadata describes, or None for a numeric model.

    - ``metadata["vocabulary"]``: :class:`lstmkit.data.text.Vocabulary` as ``to_dict()`` wrote it
      (``lstmkit text`` and text classifiers): its own tokenizer, unknown tokens to ``<unk>``.
    - ``metadata["vocab"]`` (hand-made char models): a string or list of characters (id =
      position) or a dict character -> id; a character outside it is an error unless the
      vocabulary has ``"<unk>"``.
    """
    meta = dict(metadata or {})
    if "vocabulary" in meta:
        from ..data.text import Vocabulary

        v = Vocabulary.from_dict(meta["vocabulary"])
        return TextCodec(v.level, v.tokenize, v.ids)
    source = meta.get("vocab")
    if source is None:
        if meta.get("app") == "text":
            raise ValueError(
                "inspect: the model's metadata says app='text' but holds no 'vocabulary'"
            )
        return None
    if isinstance(source, dict):
        index = {str(k): int(v) for k, v in source.items()}
    elif isinstance(source, (str, list, tuple)):
        index = {str(tok): i for i, tok in enumerate(source)}
    else:
        raise ValueError(  # noqa: TRY004 - a bad model file, reported like the others
            "inspect: the model's 'vocab' must be a string, list or dict; "
            f"got {type(source).__name__}"
        )
    unk = index.get("<unk>")

    def ids(tokens):
        missing = sorted({t for t in tokens if t not in index})
        if missing and unk is None:
            raise ValueError(
                "inspect: the input text has characters outside the model's vocabulary: "
                f"{missing[:10]!r}{' ...' if len(missing) > 10 else ''}"
            )
        return np.array([index.get(t, unk) for t in tokens], dtype=np.int64)

    return TextCodec("char", list, ids)


def encode_text(model, text: str):
    """``(x, tokens)``: ``text`` as the model's input, one sequence (ids for an Embedding model,
    else one-hot), and the tokens it read: cut to the model's fixed length, or to
    :data:`MAX_TEXT_TOKENS`."""
    codec = text_codec(getattr(model, "metadata", None))
    if codec is None:
        raise ValueError("inspect: the model has no text vocabulary in its metadata")
    tokens = codec.tokenize(text)
    T = model.input_shape[0] if model.input_shape else None
    if T is not None and len(tokens) < T:
        raise ValueError(
            f"inspect: the model reads exactly {T} {codec.level} tokens; the input text has "
            f"{len(tokens)}"
        )
    tokens = tokens[: T if T is not None else MAX_TEXT_TOKENS]
    if not tokens:
        raise ValueError("inspect: the input text is empty")
    ids = np.asarray(codec.ids(tokens), dtype=np.int64)[None]  # (1, T)
    if model.layers and isinstance(model.layers[0], Embedding):
        return ids, tokens
    depth = model.input_shape[-1]
    if ids.max() >= depth:
        raise ValueError(
            f"inspect: vocabulary ids reach {ids.max()}; the model's one-hot input has {depth}"
        )
    return np.eye(depth, dtype=np.float32)[ids], tokens


def read_numbers(path) -> np.ndarray:
    """A ``.npy`` (no pickles) or ``.csv`` file -> array. CSV: rows x columns, a header row that
    does not parse as numbers is skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"inspect: input file {str(path)!r} does not exist")
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"inspect: numbers must come as .npy or .csv; got {path.name!r}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if rows:
        try:
            [float(c) for c in rows[0]]
        except ValueError:
            rows = rows[1:]  # a header
    if not rows:
        raise ValueError(f"inspect: {path.name!r} holds no rows of numbers")
    try:
        return np.array([[float(c) for c in r] for r in rows])
    except ValueError as e:
        raise ValueError(f"inspect: {path.name!r}: {e}") from None


def load_input(model, path):
    """``(x, tokens)`` for ``model`` from a file (module docstring); ``tokens`` is None unless
    the model is a text model read from a text file. A single sequence gains the batch axis."""
    path = Path(path)
    is_text_model = text_codec(getattr(model, "metadata", None)) is not None
    if path.suffix.lower() not in (".npy", ".csv"):
        if not is_text_model:
            raise ValueError(
                f"inspect: argument '--input' must be a .npy or .csv file for this numeric model; "
                f"got {path.name!r}"
            )
        if not path.is_file():
            raise FileNotFoundError(f"inspect: input file {str(path)!r} does not exist")
        return encode_text(model, path.read_text(encoding="utf-8"))
    x = read_numbers(path)
    rank = 1 + len(model.input_shape)  # with the batch axis
    if x.ndim == rank - 1:
        x = x[None]
    elif rank == 2 and x.ndim == 2 and path.suffix.lower() == ".csv" and x.shape[1] == 1:
        x = x.T  # one column of ids: one sequence
    fits = all(e is None or e == s for e, s in zip(model.input_shape, x.shape[1:]))
    if x.ndim != rank or not fits:
        raise ValueError(
            f"inspect: the model takes inputs of shape (batch, {', '.join(map(str, model.input_shape))})"
            f"; {path.name!r} holds shape {x.shape}"
        )
    if rank == 2:  # token ids for an Embedding
        x = x.astype(np.int64)
    return x, None


# -- HTML pieces -----------------------------------------------------------------------------------
def _data_uri(path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _figure_html(path, caption) -> str:
    name = html.escape(Path(path).name)
    return (
        f'<figure><a href="{name}"><img src="{_data_uri(path)}" alt="{html.escape(caption)}">'
        f'</a><figcaption>{html.escape(caption)} (<a href="{name}">{name}</a>)</figcaption>'
        "</figure>"
    )


def _fmt(v, digits=3) -> str:
    if v is None:
        return "–"
    v = float(v)
    if not np.isfinite(v):
        return "∞" if v > 0 else ("–" if np.isnan(v) else "-∞")
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def _table(header, rows, cls="") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _layer_summary_html(s) -> str:
    rows = [
        [f"saturation of {g}", _fmt(v.mean()), _fmt(v.min()), _fmt(v.max())]
        for g, v in s.saturation.items()
    ]
    if s.forget_mean is not None:
        rows.append(
            [
                f"mean {s.keep_gate}",
                _fmt(s.forget_mean.mean()),
                _fmt(s.forget_mean.min()),
                _fmt(s.forget_mean.max()),
            ]
        )
        rows.append(
            [
                "time-scale -1/ln " + s.keep_gate + " (steps)",
                _fmt(np.median(s.timescale)),
                _fmt(s.timescale.min()),
                _fmt(s.timescale.max()),
            ]
        )
    rows.append(
        [
            "activity mean |h|",
            _fmt(s.activity.mean()),
            _fmt(s.activity.min()),
            _fmt(s.activity.max()),
        ]
    )
    table = _table(["over units", "mean (time-scale: median)", "min", "max"], rows, "summary")
    most = ", ".join(f"{u} ({_fmt(s.activity[u])})" for u in s.most_active)
    least = ", ".join(f"{u} ({_fmt(s.activity[u])})" for u in s.least_active)
    units = s.table()
    per_unit = _table(
        list(units[0]),
        [[_fmt(v) if k != "unit" else v for k, v in r.items()] for r in units],
        "units",
    )
    return (
        f"{table}<p>Most active units (mean |h|): {most}<br>Least active units: {least}</p>"
        f"<details><summary>Every unit</summary>{per_unit}</details>"
    )


def _flow_table(curves, n) -> str:
    lags = [k for k in TABLE_LAGS if k < n]
    rows = [[label] + [_fmt(c[k]) for k in lags] for label, c in curves.items()]
    return _table(["lag"] + [str(k) for k in lags], rows, "flow")


def _magnitude(v) -> float:
    """The largest finite |v| (1 when there is none or it is 0): a symmetric colour range."""
    v = np.abs(np.asarray(v, np.float64))
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size and v.max() > 0 else 1.0


def _json_array(a, digits=4):
    """Nested lists with NaN as null (JSON has no NaN), rounded to ``digits`` decimals."""
    a = np.round(np.asarray(a, np.float64), digits)
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1100px;
color:#1b1b1b;padding:0 1em;line-height:1.45}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right}
th:first-child,td:first-child{text-align:left}thead{background:#f4f4f4}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
nav a{margin-right:1em}.note{color:#555;font-size:.9em}
#text-view{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;
line-height:1.9;border:1px solid #ddd;padding:.6em;max-height:28em;overflow:auto}
#text-view .ch{padding:.15em .05em;cursor:default;border-radius:2px}
#text-view .ch.hover{outline:2px solid #222}
#gate-panel{position:sticky;bottom:0;background:#fffbe6;border:1px solid #e5d38a;padding:.5em;
min-height:2.5em;font-family:ui-monospace,Menlo,Consolas,monospace;margin-top:.5em}
.controls label{margin-right:1em}
"""

JS = r"""
(function(){
  const DATA = JSON.parse(document.getElementById('trace-data').textContent);
  const view = document.getElementById('text-view');
  if (!view) return;
  const layerSel = document.getElementById('text-layer');
  const unitSel = document.getElementById('text-unit');
  const colourSel = document.getElementById('text-colour');
  const panel = document.getElementById('gate-panel');
  const spans = view.querySelectorAll('.ch');
  function layer(){ return DATA.layers[layerSel.value]; }
  function fillUnits(){
    const L = layer(), keep = Math.min(+unitSel.value || 0, L.units - 1);
    unitSel.innerHTML = '';
    for (let u = 0; u < L.units; u++){
      const o = document.createElement('option'); o.value = u; o.textContent = u; unitSel.appendChild(o);
    }
    unitSel.value = keep;
    const prev = colourSel.value;
    colourSel.innerHTML = '';
    for (const n of L.names){
      const o = document.createElement('option'); o.value = n; o.textContent = n; colourSel.appendChild(o);
    }
    colourSel.value = L.names.includes(prev) ? prev : L.colour;
  }
  function colour(v, lo, hi){
    if (v === null) return '#eeeeee';
    let s = (v - lo) / (hi - lo) * 2 - 1; s = Math.max(-1, Math.min(1, s));
    const a = Math.abs(s), r = s > 0 ? 255 : Math.round(255 * (1 - a)),
          b = s < 0 ? 255 : Math.round(255 * (1 - a)), g = Math.round(255 * (1 - a));
    return 'rgb(' + r + ',' + g + ',' + b + ')';
  }
  function paint(){
    const L = layer(), u = +unitSel.value, n = colourSel.value, range = L.ranges[n];
    spans.forEach(function(sp){
      const t = +sp.dataset.t; sp.style.background = colour(L.values[n][t][u], range[0], range[1]);
    });
  }
  function fmt(v){ return v === null ? 'skipped' : v.toFixed(3); }
  function show(sp){
    const L = layer(), u = +unitSel.value, t = +sp.dataset.t;
    const ch = DATA.text[t] === '\n' ? '\\n' : DATA.text[t];
    let s = 'step ' + t + ' \u2018' + ch + '\u2019, ' + layerSel.value + ' unit ' + u + ':';
    for (const n of L.names){ s += '  ' + n + ' = ' + fmt(L.values[n][t][u]); }
    panel.textContent = s;
    spans.forEach(function(x){ x.classList.remove('hover'); });
    sp.classList.add('hover');
  }
  view.addEventListener('mouseover', function(e){
    const sp = e.target.closest('.ch'); if (sp) show(sp);
  });
  layerSel.addEventListener('change', function(){ fillUnits(); paint(); });
  unitSel.addEventListener('change', paint);
  colourSel.addEventListener('change', paint);
  fillUnits(); unitSel.value = DATA.unit; paint();
})();
"""


def _token_html(tok) -> str:
    return "⏎\n" if tok == "\n" else html.escape(tok)


def _text_section(tokens, tr, unit) -> tuple[str, dict]:
    layers = {}
    for name, lt in tr.items():
        values, ranges = {}, {}
        for n in lt:
            v = lt[n][0]  # (T, H) of the one sequence
            values[n] = _json_array(v)
            lo, hi = (0.0, 1.0) if n in lt.gates and n not in ("g", "n") else (-1.0, 1.0)
            if n in ("c", "h"):  # states: symmetric at the layer's largest magnitude
                m = _magnitude(v)
                lo, hi = -m, m
            ranges[n] = [lo, hi]
        layers[name] = {
            "cell": lt.cell,
            "units": lt.units,
            "names": list(lt),
            "values": values,
            "ranges": ranges,
            "colour": "h",
        }
    sep = " " if _is_words(tokens) else ""  # words: a space between them, not in the span
    parts = []
    for t, tok in enumerate(tokens):
        if sep and t and tok != "\n" and tokens[t - 1] != "\n":
            parts.append(sep)
        parts.append(f'<span class="ch" data-t="{t}">{_token_html(tok)}</span>')
    spans = "".join(parts)
    options = "".join(f'<option value="{html.escape(n)}">{html.escape(n)}</option>' for n in tr)
    body = (
        '<section id="text"><h2>Text</h2>'
        '<p class="controls"><label>layer <select id="text-layer">' + options + "</select></label>"
        '<label>unit <select id="text-unit"></select></label>'
        '<label>colour by <select id="text-colour"></select></label></p>'
        '<p class="note">Each token is coloured by the chosen unit\'s value at the step that '
        "read it (red high, blue low; σ gates on [0, 1], tanh gates on [-1, 1], c and h on "
        "± the layer's largest magnitude). Hover a token to see every gate and state of the "
        "unit there.</p>"
        f'<div id="text-view">{spans}</div><div id="gate-panel">hover a token</div></section>'
    )
    return body, {"text": list(tokens), "unit": int(unit), "layers": layers}


def _is_words(tokens) -> bool:
    """Word tokens (shown with spaces between them) rather than characters."""
    return any(len(t) > 1 for t in tokens)


def _page(title, nav, body, data) -> str:
    blob = json.dumps(data, allow_nan=False, ensure_ascii=True).replace("</", "<\\/")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><nav>{nav}</nav>{body}"
        f'<script type="application/json" id="trace-data">{blob}</script>'
        f"<script>{JS}</script></body></html>\n"
    )


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


# -- reports -----------------------------------------------------------------------------------------
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
        slug = _slug(name)
        s = unit_summary(lt)
        # the chosen units where this layer has them, else its most active ones
        follow = [u for u in units or () if u < lt.units] or list(s.most_active[:6])
        gates_png = plot_gates(lt, out / f"{slug}_gates.png", sample=sample)
        states_png = plot_states(lt, out / f"{slug}_states.png", units=follow, sample=sample)
        kind = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}[lt.cell]
        nav.append(f'<a href="#layer-{slug}">{html.escape(name)}</a>')
        body.append(
            f'<section id="layer-{slug}"><h2>{html.escape(name)} ({kind}, {lt.units} units)</h2>'
            + _layer_summary_html(s)
            + _figure_html(gates_png, f"{name}: gates and states over time, sample {sample}")
            + _figure_html(
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
        + _figure_html(flow_png, "gradient norm against the lag (steps before the last)")
        + _flow_table(curves, n)
        + f'<p class="note">L = {_fmt(flow.loss, 6)}.</p></section>'
    )
    data = {"text": [], "unit": 0, "layers": {}}
    if text is not None:
        lt = tr[first]
        fits = [u for u in units or () if u < lt.units]
        unit = fits[0] if fits else int(unit_summary(lt).most_active[0])
        m = _magnitude(lt["h"][0])
        text_png = plot_text(
            tokens,
            lt["h"][0, :, unit],
            out / "text.png",
            vmin=-m,
            vmax=m,
            title=f"{first}: h of unit {unit} at each token",
        )
        section, data = _text_section(tokens, tr, unit)
        nav.append('<a href="#text">text</a>')
        body.append(
            section.replace(
                "</section>", _figure_html(text_png, f"{first}: unit {unit}") + "</section>"
            )
        )
    report = out / "report.html"
    report.write_text(_page(title, " ".join(nav), "".join(body), data), encoding="utf-8")
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
    table = _table(
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
                _fmt(r["norm_h"]),
                _fmt(r["ratio_to_rnn"]),
                _fmt(r["ratio_min"]),
                _fmt(r["ratio_max"]),
                _fmt(r.get("norm_c")),
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
        + _figure_html(png, "gradient norm against the lag")
        + table
        + _flow_table(medians, n)
    )
    report = out / "cells.html"
    page = _page(
        "lstmkit inspect: gradient flow of RNN, GRU and LSTM",
        "",
        body,
        {"text": [], "unit": 0, "layers": {}},
    )
    report.write_text(page, encoding="utf-8")
    return report, cmp, rows
