"""The attention matrix of a translation as a heatmap: target tokens (rows) by source tokens
(columns), each cell the weight the decoder gave that source token when it wrote that target
token.

matplotlib is imported inside the functions (its object-oriented ``Figure``, no pyplot state).
Chinese and Japanese tokens need a font with their glyphs: the first installed one of
``CJK_FONTS`` (or any other whose character map has them) is used; without one, characters no
installed font can draw are labelled by code point (``U+6211``) rather than drawn as empty boxes,
and a warning says so once per process.
"""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path

import numpy as np

from .._atomic import atomic_write

__all__ = ["CJK_FONTS", "attention_figure", "plot_attention", "save_attention"]

CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "Arial Unicode MS",
)
MAX_TOKENS = 400  # per axis: a sentence, not a document
MAX_FONT_FILES = 300  # font files whose character maps are searched for CJK glyphs
_PROBE = (0x6211, 0x3042)  # 我 (Han) and あ (Hiragana)
_warned = False


@functools.lru_cache(maxsize=1)
def _fonts():
    """``(family or None, charmap)``: the CJK font to draw with (None: matplotlib's default)
    and the set of code points that font can draw."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    def charmap(path):
        try:
            return set(FT2Font(path).get_charmap())
        except (OSError, RuntimeError, ValueError):
            return set()

    by_name = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    for name in CJK_FONTS:
        if name in by_name:
            return name, charmap(by_name[name])
    for f in font_manager.fontManager.ttflist[:MAX_FONT_FILES]:
        if f.name.startswith("Last Resort"):  # maps every code point to one box glyph
            continue
        cmap = charmap(f.fname)
        if all(c in cmap for c in _PROBE):
            return f.name, cmap
    return None, charmap(font_manager.findfont(font_manager.FontProperties()))


def _label(token: str, cmap: set) -> str:
    """``token`` with every character the font lacks written as its code point."""
    return "".join(ch if ord(ch) in cmap or ch.isspace() else f"U+{ord(ch):04X}" for ch in token)


def _labels(tokens, cmap):
    labels = [_label(t, cmap) for t in tokens]
    global _warned
    if labels != list(tokens) and not _warned:
        _warned = True
        warnings.warn(
            "plot_attention: no installed font has Chinese/Japanese glyphs, so those tokens are "
            "labelled by code point (U+6211); install one (e.g. fonts-noto-cjk) to see them",
            stacklevel=3,
        )
    return labels


def _check(weights, source_tokens, target_tokens):
    w = np.asarray(weights, dtype=np.float64)
    for arg, toks in (("source_tokens", source_tokens), ("target_tokens", target_tokens)):
        if isinstance(toks, str) or not all(isinstance(t, str) for t in toks):
            raise ValueError(f"plot_attention: argument '{arg}' must be a list of str")
        if not 1 <= len(toks) <= MAX_TOKENS:
            raise ValueError(
                f"plot_attention: argument '{arg}' must hold 1 to {MAX_TOKENS} tokens; got "
                f"{len(toks)}"
            )
    expected = (len(target_tokens), len(source_tokens))
    if w.shape != expected:
        raise ValueError(
            f"plot_attention: argument 'weights' must have shape (target tokens, source tokens) "
            f"= {expected}; got {w.shape}"
        )
    if not np.isfinite(w).all():
        raise ValueError("plot_attention: argument 'weights' holds NaN or infinite values")
    return w


def attention_figure(weights, source_tokens, target_tokens, title: str = ""):
    """The matplotlib ``Figure`` of the heatmap of ``weights (Tt, Ts)``: row ``i`` is target
    token ``i``, column ``j`` source token ``j``; the colour scale runs from 0 to 1 (softmax
    weights)."""
    w = _check(weights, source_tokens, target_tokens)
    from matplotlib.figure import Figure

    family, cmap = _fonts()
    Tt, Ts = w.shape
    width = min(24.0, 2.2 + 0.32 * Ts)
    height = min(24.0, 1.6 + 0.3 * Tt)
    fig = Figure(figsize=(width, height), dpi=110)
    ax = fig.subplots()
    im = ax.imshow(w, vmin=0.0, vmax=1.0, cmap="Greys", aspect="auto", interpolation="nearest")
    font = {"family": family} if family else {}
    ax.set_xticks(range(Ts), _labels(source_tokens, cmap), rotation=90, fontdict=font)
    ax.set_yticks(range(Tt), _labels(target_tokens, cmap), fontdict=font)
    ax.tick_params(labelsize=9)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(_label(title, cmap), fontdict=font)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()  # the token labels' lengths vary: let matplotlib fit the margins
    return fig


def plot_attention(weights, source_tokens, target_tokens, title: str = "") -> bytes:
    """PNG bytes of :func:`attention_figure` (rendered in memory, so that a caller writes its
    outputs only once all of them exist)."""
    fig = attention_figure(weights, source_tokens, target_tokens, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_attention(path, weights, source_tokens, target_tokens, title: str = "") -> Path:
    """Write :func:`plot_attention`'s PNG to ``path`` atomically; returns the path."""
    png = plot_attention(weights, source_tokens, target_tokens, title)

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(png)

    atomic_write(path, write)
    return Path(path)
