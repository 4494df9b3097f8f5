"""Text as token ids: tokenising, vocabularies, stateful chunks for truncated BPTT, padded batches.

Vocabulary layout (the same for characters and words)::

    id 0  "<pad>"   padding; Embedding(mask_zero=True) masks it
    id 1  "<unk>"   any token not in the vocabulary
    id 2+ tokens by descending training frequency (ties: sorted), at most ``max_size`` ids in all

A vocabulary is plain JSON (``to_dict``/``from_dict``) and travels in ``model.metadata``, so a
saved model encodes and decodes text exactly as it did in training.

Truncated BPTT layout (``stateful_chunks``), the classic one of char-rnn and the PyTorch word
language model: the token stream is cut into ``B`` equal parallel streams, one per batch row, and
each stream into consecutive chunks of ``T`` steps. Row ``b`` of chunk ``k + 1`` continues row
``b`` of chunk ``k``, so a stateful LSTM carries its state across chunks while gradients stop at
the chunk edge (every chunk is its own forward/backward call)::

    ids      a b c d e f g h i j k l m n o p q r s t u v w x y    (25 tokens)
    streams  B = 2, n = (25 - 1) // 2 = 12 inputs each; targets are the inputs shifted by one
             row 0: a b c d e f | g h i j k l      targets b c d e f g | h i j k l m
             row 1: m n o p q r | s t u v w x      targets n o p q r s | t u v w x y
    chunks   T = 6: x (2 chunks, B, T), y the same shape
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from .sequences import pad_sequences

__all__ = [
    "LEVELS",
    "PAD",
    "PAD_ID",
    "UNK",
    "UNK_ID",
    "Vocabulary",
    "detokenize",
    "pad_sequences",
    "read_labelled_texts",
    "stateful_chunks",
    "tokenize",
]

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
SPECIALS = (PAD, UNK)
LEVELS = ("char", "word")

# A word: letters/digits with inner apostrophes ("don't", "o'er"); every other non-space character
# (punctuation) is a token of its own; a newline is kept as a token so line structure survives.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*|\n|[^\s]")
# no space before these when words are joined back into text
_NO_SPACE_BEFORE = set(".,;:!?)]}'\n")
_NO_SPACE_AFTER = set("([{\n")


def _check_level(level, owner):
    if level not in LEVELS:
        raise ValueError(f"{owner}: argument 'level' must be one of {list(LEVELS)}; got {level!r}")


def tokenize(text: str, level: str = "char", lower: bool = False) -> list[str]:
    """``"char"``: every character; ``"word"``: words, punctuation marks and newlines."""
    _check_level(level, "tokenize")
    if not isinstance(text, str):
        raise TypeError(f"tokenize: argument 'text' must be a str; got {type(text).__name__}")
    if lower:
        text = text.lower()
    return list(text) if level == "char" else _WORD.findall(text)


def detokenize(tokens, level: str = "char") -> str:
    """Inverse of :func:`tokenize` for characters; for words, spaces between tokens except
    before closing punctuation and around newlines."""
    _check_level(level, "detokenize")
    if level == "char":
        return "".join(tokens)
    out = []
    prev = "\n"
    for tok in tokens:
        if out and tok[:1] not in _NO_SPACE_BEFORE and prev[-1:] not in _NO_SPACE_AFTER:
            out.append(" ")
        out.append(tok)
        prev = tok
    return "".join(out)


class Vocabulary:
    """Token <-> id map with ``<pad>`` = 0 and ``<unk>`` = 1 (see the module docstring).

    ``Vocabulary.build(texts, level="word", max_size=10000, min_freq=1, lower=True)`` counts the
    tokens of one text or a list of texts. ``encode(text) -> (n,) int32 ids``,
    ``decode(ids) -> text`` (padding dropped).
    """

    def __init__(self, tokens, level="char", lower=False):
        _check_level(level, "Vocabulary")
        tokens = list(tokens)
        if tokens[:2] != list(SPECIALS):
            tokens = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        if len(set(tokens)) != len(tokens):
            raise ValueError("Vocabulary: argument 'tokens' must not repeat a token")
        self.level, self.lower = level, bool(lower)
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts, level="char", max_size=None, min_freq=1, lower=False):
        """Count tokens in ``texts`` (a str or a list of str) and keep the most frequent:
        at most ``max_size`` ids including the two special tokens, each seen ``min_freq``
        times or more."""
        _check_level(level, "Vocabulary.build")
        counts = Counter()
        for text in [texts] if isinstance(texts, str) else texts:
            counts.update(tokenize(text, level, lower))
        return cls.from_counts(counts, level, max_size, min_freq, lower)

    @classmethod
    def from_counts(cls, counts, level="char", max_size=None, min_freq=1, lower=False):
        """The vocabulary of a token -> count mapping (or a token list, counted first)."""
        if max_size is not None and (not isinstance(max_size, (int, np.integer)) or max_size < 3):
            raise ValueError(
                f"Vocabulary: argument 'max_size' must be an int >= 3 (two special tokens and at "
                f"least one real one); got {max_size!r}"
            )
        counts = Counter(counts) if not isinstance(counts, dict) else Counter(dict(counts))
        for s in SPECIALS:
            counts.pop(s, None)
        ranked = sorted(
            (t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIALS)]
        return cls(list(SPECIALS) + ranked, level=level, lower=lower)

    def __len__(self):
        return len(self.tokens)

    def __contains__(self, token):
        return token in self.index

    def __repr__(self):
        return f"Vocabulary(level={self.level!r}, size={len(self)}, lower={self.lower})"

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.level, self.lower)

    def ids(self, tokens) -> np.ndarray:
        get = self.index.get
        return np.fromiter((get(t, UNK_ID) for t in tokens), dtype=np.int32, count=len(tokens))

    def encode(self, text: str) -> np.ndarray:
        """Text -> ``(n_tokens,)`` int32 ids; unknown tokens become ``UNK_ID``."""
        return self.ids(self.tokenize(text))

    def decode(self, ids, skip_padding=True) -> str:
        toks = [self.tokens[int(i)] for i in np.asarray(ids).reshape(-1)]
        if skip_padding:
            toks = [t for t in toks if t != PAD]
        return detokenize(toks, self.level)

    def to_dict(self) -> dict:
        return {"level": self.level, "lower": self.lower, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, d):
        try:
            return cls(d["tokens"], level=d["level"], lower=d.get("lower", False))
        except (KeyError, TypeError) as e:
            raise ValueError(
                f"Vocabulary.from_dict: expected {{'level', 'lower', 'tokens'}}; got {d!r:.200}"
            ) from e


def stateful_chunks(ids, batch_size, seq_len, drop_remainder=True):
    """``(x, y)`` for truncated BPTT: chunk ``k`` is ``x[k], y[k]``, each ``(batch_size, T)``.

    Inputs are ``ids[:-1]`` and targets ``ids[1:]``, each cut into ``batch_size`` equal streams
    (the last ``< batch_size`` tokens are dropped). With ``drop_remainder`` (training) only full
    chunks of ``seq_len`` steps are kept and ``x``, ``y`` are arrays ``(n_chunks, batch_size,
    seq_len)``; without it (scoring every token) a shorter last chunk is kept and ``x``, ``y``
    are lists of ``(batch_size, T_k)`` arrays.
    """
    ids = np.asarray(ids)
    for arg, v in (("batch_size", batch_size), ("seq_len", seq_len)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"stateful_chunks: argument '{arg}' must be a positive int; got {v!r}")
    n = (len(ids) - 1) // batch_size  # inputs per stream
    full = n // seq_len
    if (full if drop_remainder else n) < 1:
        need = batch_size * (seq_len if drop_remainder else 1) + 1
        raise ValueError(
            f"stateful_chunks: {len(ids)} tokens are too few for {batch_size} streams of "
            f"{seq_len if drop_remainder else 1} steps; need at least {need}"
        )
    xs = ids[: batch_size * n].reshape(batch_size, n)  # stream b = ids[b*n : (b+1)*n]
    ys = ids[1 : batch_size * n + 1].reshape(batch_size, n)
    if drop_remainder:
        x = xs[:, : full * seq_len].reshape(batch_size, full, seq_len).transpose(1, 0, 2)
        y = ys[:, : full * seq_len].reshape(batch_size, full, seq_len).transpose(1, 0, 2)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)
    starts = range(0, n, seq_len)
    return [xs[:, s : s + seq_len] for s in starts], [ys[:, s : s + seq_len] for s in starts]


def read_labelled_texts(path, text_column="text", label_column="label"):
    """``(texts, labels)`` (two lists of str) from a CSV file with a header row.

    Rows with an empty text or label are an error (reported by line); a UTF-8 BOM is ignored;
    a file that is not UTF-8 is refused with the offset of its first bad byte.
    """
    import csv
    import io
    import os

    from .csvio import DataFileNotFoundError
    from .utf8 import read_utf8

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFileNotFoundError(
            f"read_labelled_texts: argument 'path' must be an existing CSV file; got {path!r}"
        )
    with io.StringIO(read_utf8(path, "path", "read_labelled_texts"), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"read_labelled_texts: {path!r} is empty")
        header = [h.strip() for h in header]
        cols = []
        for arg, name in (("text_column", text_column), ("label_column", label_column)):
            if name not in header:
                raise ValueError(
                    f"read_labelled_texts: argument '{arg}' must name a column of {path!r}; got "
                    f"{name!r}, columns are {header}"
                )
            cols.append(header.index(name))
        texts, labels, bad = [], [], []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) <= max(cols) or not row[cols[0]].strip() or not row[cols[1]].strip():
                bad.append(line)
                continue
            texts.append(row[cols[0]])
            labels.append(row[cols[1]].strip())
    if bad:
        raise ValueError(
            f"read_labelled_texts: {path!r} lines {bad[:10]}{' ...' if len(bad) > 10 else ''} "
            f"have an empty or missing {text_column!r} or {label_column!r} cell"
        )
    if not texts:
        raise ValueError(f"read_labelled_texts: {path!r} has no data rows")
    return texts, labels
