"""Scores of translations: BLEU and chrF computed by sacrebleu, and the exact-match rate.

sacrebleu tokenizes the hypotheses and references itself: ``tokenize="zh"`` (every CJK
character a token, the rest as ``13a``) for character-level targets (Chinese, Japanese),
``"13a"`` (the WMT standard) otherwise. A source may have several references (Tatoeba gives
several translations of one sentence): all of them are used, as in the reference recipe.
sacrebleu is imported inside :func:`scores`.
"""

from __future__ import annotations

import numpy as np

from .translate_tokens import LEVELS

__all__ = ["copy_baseline", "scores"]


def _reference_lists(references, n, func):
    if isinstance(references, str) or len(references) != n:
        got = "a str" if isinstance(references, str) else f"{len(references)} entries"
        raise ValueError(
            f"{func}: argument 'references' must have one entry per hypothesis ({n}); got {got}"
        )
    out = []
    for k, r in enumerate(references):
        refs = [r] if isinstance(r, str) else list(r)
        if not refs or not all(isinstance(x, str) for x in refs):
            raise ValueError(
                f"{func}: argument 'references' entry {k} must be a str or a non-empty list of "
                f"str; got {r!r:.80}"
            )
        out.append(refs)
    return out


def _streams(ref_lists):
    """sacrebleu's layout: reference stream j holds the j-th reference of every hypothesis,
    ``None`` where a hypothesis has fewer (sacrebleu skips those)."""
    width = max(map(len, ref_lists))
    return [[r[j] if j < len(r) else None for r in ref_lists] for j in range(width)]


def scores(hypotheses, references, target_level: str = "word", *, tokenize=None, lowercase=None):
    """BLEU and chrF (sacrebleu, 0-100) and the exact-match rate (0-1) of ``hypotheses``.

    Args:
        hypotheses: list of str.
        references: one entry per hypothesis, a str or a list of str (all its references).
        target_level: the target tokenizer's level: ``"char"`` scores with sacrebleu's
            ``tokenize="zh"`` (each CJK character a token), others with ``"13a"``.
        tokenize: overrides that choice (any sacrebleu tokenizer name).
        lowercase: compare case-insensitively; default True for ``"word"`` targets, whose
            tokenizer lower-cases, False otherwise.

    A hypothesis is an exact match when it equals one of its references after whitespace is
    folded (and case, with ``lowercase``).

    Returns:
        ``{"bleu": float, "chrf": float, "exact": float, "tokenize": str, "n": int}``: the
        scores, the sacrebleu tokenizer used, and the number of hypotheses.
    """
    func = "scores"
    if isinstance(hypotheses, str) or not all(isinstance(h, str) for h in hypotheses):
        raise ValueError(f"{func}: argument 'hypotheses' must be a list of str")
    hyps = list(hypotheses)
    if not hyps:
        raise ValueError(f"{func}: argument 'hypotheses' is empty; expected at least one")
    if target_level not in LEVELS:
        raise ValueError(
            f"{func}: argument 'target_level' must be one of {list(LEVELS)}; got {target_level!r}"
        )
    ref_lists = _reference_lists(references, len(hyps), func)
    tokenize = tokenize or ("zh" if target_level == "char" else "13a")
    lowercase = target_level == "word" if lowercase is None else bool(lowercase)
    import sacrebleu  # a regular dependency, imported where it is used

    streams = _streams(ref_lists)
    bleu = sacrebleu.corpus_bleu(hyps, streams, tokenize=tokenize, lowercase=lowercase)
    if lowercase:  # corpus_chrf has no lowercase option: fold the case of both sides here
        chrf = sacrebleu.corpus_chrf(
            [h.lower() for h in hyps], [[r and r.lower() for r in s] for s in streams]
        )
    else:
        chrf = sacrebleu.corpus_chrf(hyps, streams)

    def norm(t):
        t = " ".join(t.split())
        return t.lower() if lowercase else t

    exact = np.mean([norm(h) in {norm(r) for r in refs} for h, refs in zip(hyps, ref_lists)])
    return {
        "bleu": float(bleu.score),
        "chrf": float(chrf.score),
        "exact": float(exact),
        "tokenize": tokenize,
        "n": len(hyps),
    }


def copy_baseline(sources, references, target_level: str = "word", **kwargs) -> dict:
    """:func:`scores` of copying each source as its translation: the floor a model must beat."""
    return scores(list(sources), references, target_level, **kwargs)
