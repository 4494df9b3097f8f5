"""HTML building blocks of the report: tables, embedded figures, the text view and its script.

The page is self-contained: figures are ``data:`` URIs, CSS and JavaScript are inline, and the
numbers the script needs travel in a ``<script type="application/json">`` block (``</`` escaped,
NaN as null), so no file or network is fetched when it is opened.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

#: lags listed in the gradient-flow tables (those the sequences reach)
TABLE_LAGS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def data_uri(path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def figure_html(path, caption) -> str:
    name = html.escape(Path(path).name)
    return (
        f'<figure><a href="{name}"><img src="{data_uri(path)}" alt="{html.escape(caption)}">'
        f'</a><figcaption>{html.escape(caption)} (<a href="{name}">{name}</a>)</figcaption>'
        "</figure>"
    )


def fmt(v, digits=3) -> str:
    if v is None:
        return "–"
    v = float(v)
    if not np.isfinite(v):
        return "∞" if v > 0 else ("–" if np.isnan(v) else "-∞")
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def table(header, rows, cls="") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def layer_summary_html(s) -> str:
    """A :class:`~lstmkit.inspect.stats.UnitSummary` as tables: over units, then every unit."""
    rows = [
        [f"saturation of {g}", fmt(v.mean()), fmt(v.min()), fmt(v.max())]
        for g, v in s.saturation.items()
    ]
    if s.forget_mean is not None:
        rows.append(
            [
                f"mean {s.keep_gate}",
                fmt(s.forget_mean.mean()),
                fmt(s.forget_mean.min()),
                fmt(s.forget_mean.max()),
            ]
        )
        rows.append(
            [
                "time-scale -1/ln " + s.keep_gate + " (steps)",
                fmt(np.median(s.timescale)),
                fmt(s.timescale.min()),
                fmt(s.timescale.max()),
            ]
        )
    rows.append(
        [
            "activity mean |h|",
            fmt(s.activity.mean()),
            fmt(s.activity.min()),
            fmt(s.activity.max()),
        ]
    )
    summary = table(["over units", "mean (time-scale: median)", "min", "max"], rows, "summary")
    most = ", ".join(f"{u} ({fmt(s.activity[u])})" for u in s.most_active)
    least = ", ".join(f"{u} ({fmt(s.activity[u])})" for u in s.least_active)
    units = s.table()
    per_unit = table(
        list(units[0]),
        [[fmt(v) if k != "unit" else v for k, v in r.items()] for r in units],
        "units",
    )
    return (
        f"{summary}<p>Most active units (mean |h|): {most}<br>Least active units: {least}</p>"
        f"<details><summary>Every unit</summary>{per_unit}</details>"
    )


def flow_table(curves, n) -> str:
    lags = [k for k in TABLE_LAGS if k < n]
    rows = [[label] + [fmt(c[k]) for k in lags] for label, c in curves.items()]
    return table(["lag"] + [str(k) for k in lags], rows, "flow")


def magnitude(v) -> float:
    """The largest finite |v| (1 when there is none or it is 0): a symmetric colour range."""
    v = np.abs(np.asarray(v, np.float64))
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size and v.max() > 0 else 1.0


def json_array(a, digits=4):
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


def token_html(tok) -> str:
    return "⏎\n" if tok == "\n" else html.escape(tok)


def text_section(tokens, tr, unit) -> tuple[str, dict]:
    layers = {}
    for name, lt in tr.items():
        values, ranges = {}, {}
        for n in lt:
            v = lt[n][0]  # (T, H) of the one sequence
            values[n] = json_array(v)
            lo, hi = (0.0, 1.0) if n in lt.gates and n not in ("g", "n") else (-1.0, 1.0)
            if n in ("c", "h"):  # states: symmetric at the layer's largest magnitude
                m = magnitude(v)
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
    sep = " " if is_words(tokens) else ""  # words: a space between them, not in the span
    parts = []
    for t, tok in enumerate(tokens):
        if sep and t and tok != "\n" and tokens[t - 1] != "\n":
            parts.append(sep)
        parts.append(f'<span class="ch" data-t="{t}">{token_html(tok)}</span>')
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


def is_words(tokens) -> bool:
    """Word tokens (shown with spaces between them) rather than characters."""
    return any(len(t) > 1 for t in tokens)


def page(title, nav, body, data) -> str:
    blob = json.dumps(data, allow_nan=False, ensure_ascii=True).replace("</", "<\\/")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><nav>{nav}</nav>{body}"
        f'<script type="application/json" id="trace-data">{blob}</script>'
        f"<script>{JS}</script></body></html>\n"
    )


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
