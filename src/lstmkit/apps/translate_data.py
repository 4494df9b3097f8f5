"""Data of the translation app: sentence pairs from CSV/TSV, the script of a language, padded
batches, a validation split without leaks, and the scores (BLEU, chrF, exact match).

- :func:`read_pairs`: two columns of a CSV or TSV file, strictly checked (messages name the file,
  the column and the lines).
- :func:`detect_level`: ``"char"`` for Chinese/Japanese text, ``"word"`` otherwise.
- :class:`Tokenizer` (``translate_tokens``): characters, words or sentencepiece subwords, with
  the reserved ids ``PAD=0, BOS=1, EOS=2, UNK=3``.
- :func:`pad_batch`: id arrays -> ``(ids (B, T) int32, lengths (B,) int64)``.
- :func:`split_validation`: validation pairs drawn as whole groups of pairs linked by a shared
  source or target sentence, so that no validation sentence is seen in training; every
  validation source keeps all its references (multi-reference BLEU).
- :func:`scores` / :func:`copy_baseline` (``translate_scores``): sacrebleu BLEU and chrF
  (``tokenize="zh"`` for character-level targets, ``"13a"`` otherwise) and the exact-match rate.
- :func:`synthetic_pairs` (``translate_synthetic``): tasks with known answers.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from dataclasses import dataclass

import numpy as np

from ..data.csvio import DataFileNotFoundError, _read_header
from ..data.rows import Listed
from ..data.utf8 import read_utf8
from .translate_scores import copy_baseline, scores
from .translate_synthetic import TASKS, synthetic_pairs
from .translate_tokens import BOS, EOS, LEVELS, PAD, SPECIALS, UNK, Tokenizer, detokenize_words

__all__ = [
    "BOS",
    "EOS",
    "LEVELS",
    "PAD",
    "SPECIALS",
    "TASKS",
    "UNK",
    "Split",
    "Tokenizer",
    "copy_baseline",
    "detect_level",
    "detokenize_words",
    "pad_batch",
    "read_pairs",
    "scores",
    "split_validation",
    "synthetic_pairs",
]

MAX_BYTES = (
    256 * 2**20
)  # largest pairs file read (Tatoeba en-zh: 3.7 MB); its text is held in memory
MAX_CELL_CHARS = 10_000  # longest sentence (the csv module's own field limit is 131,072)
EMPTY_MODES = ("skip", "error")


# -- reading pairs -------------------------------------------------------------------------------
def _delimiter(path: str, text: str) -> str:
    """Tab for ``.tsv``/``.tab``, comma for ``.csv``, else whichever of the two the header
    line holds more of."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".tsv", ".tab"):
        return "\t"
    if ext == ".csv":
        return ","
    header = text.lstrip("\r\n").split("\n", 1)[0]
    return "\t" if header.count("\t") > header.count(",") else ","


def _open_text(path, max_bytes: int, func: str) -> str:
    """The file's text, after checking that it exists and is at most ``max_bytes`` long (so a
    huge file or a huge line costs nothing before the refusal)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise DataFileNotFoundError(
            f"{func}: argument 'path' got {p!r}, which does not exist; expected a CSV or TSV file"
        )
    if os.path.isdir(p):
        raise ValueError(f"{func}: argument 'path' got a directory {p!r}, expected a CSV file")
    size = os.stat(p).st_size
    if size > max_bytes:
        raise ValueError(
            f"{func}: argument 'path' got {p!r} of {size:,} bytes, more than the limit of "
            f"{max_bytes:,} (max_bytes); split the file or raise max_bytes"
        )
    return read_utf8(p, arg="path", owner=func)


def _column(header, name, arg, source, func) -> int:
    if not isinstance(name, str) or name not in header:
        raise ValueError(
            f"{func}: argument {arg!r} names no column of {source}: got {name!r}, expected one "
            f"of {header}"
        )
    return header.index(name)


@dataclass
class _Rows:
    """What reading the data rows found: the pairs, and the problems listed by line."""

    sources: list
    targets: list
    ragged: Listed
    long: Listed
    empty: Listed


def _read_rows(reader, n_fields, cols) -> _Rows:
    out = _Rows([], [], Listed(), Listed(), Listed())
    s_col, t_col = cols
    line = reader.line_num
    for row in reader:
        first, line = line + 1, reader.line_num  # a quoted line break spans lines first..line
        if not any(cell.strip() for cell in row):
            continue  # blank lines carry no data
        if len(row) != n_fields:
            out.ragged.add(f"{first} ({len(row)} fields)")
            continue
        s, t = row[s_col].strip(), row[t_col].strip()
        if len(s) > MAX_CELL_CHARS or len(t) > MAX_CELL_CHARS:
            out.long.add(str(first))
        elif not s or not t:
            out.empty.add(str(first))
        else:
            out.sources.append(s)
            out.targets.append(t)
    return out


def read_pairs(
    path,
    source_column: str = "source",
    target_column: str = "target",
    *,
    empty: str = "skip",
    min_rows: int = 1,
    max_bytes: int = MAX_BYTES,
    log=None,
) -> tuple[list[str], list[str]]:
    """The sentence pairs of a CSV or TSV file: ``(sources, targets)``, two lists of str.

    The delimiter is a tab for ``.tsv``/``.tab``, a comma for ``.csv`` and otherwise the one
    the header holds more of. CSV follows the usual quoting; TSV has none (a ``"`` is text, as
    in Tatoeba and Anki exports). The first non-blank line is the header; blank lines are
    skipped; cells are stripped of surrounding whitespace.

    Args:
        path: a UTF-8 file (a byte-order mark is allowed) of at most ``max_bytes`` bytes.
        source_column, target_column: header names of the two sides.
        empty: a row with one side empty is ``"skip"``-ped, and the number skipped (with the
            first lines) is said through ``log`` (or ``warnings.warn`` without ``log``), or is an
            ``"error"``.
        min_rows: the pairs the caller needs (training needs a validation part: 2 at least).
        log: called with one line of text about skipped rows.

    Raises:
        DataFileNotFoundError: (a ``ValueError``) when ``path`` does not exist.
        ValueError: a directory, a file over ``max_bytes``, text that is not UTF-8 (the byte's
            offset, line and column), an empty file, a missing column (the header is listed),
            rows of the wrong length, a sentence over 10,000 characters, broken quoting (the
            line), empty sides with ``empty="error"``, fewer than ``min_rows`` pairs.
    """
    func = "read_pairs"
    if empty not in EMPTY_MODES:
        raise ValueError(f"{func}: argument 'empty' got {empty!r}, expected one of {EMPTY_MODES}")
    if isinstance(min_rows, bool) or not isinstance(min_rows, (int, np.integer)) or min_rows < 1:
        raise ValueError(f"{func}: argument 'min_rows' got {min_rows!r}, expected an int >= 1")
    if source_column == target_column:
        raise ValueError(
            f"{func}: arguments 'source_column' and 'target_column' both name {source_column!r}; "
            "expected two different columns"
        )
    text = _open_text(path, max_bytes, func)
    source = repr(os.fspath(path))
    delimiter = _delimiter(os.fspath(path), text)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True
    )
    try:
        header = _read_header(reader, source, 2, func, expected="rows of sentence pairs")
        cols = (
            _column(header, source_column, "source_column", source, func),
            _column(header, target_column, "target_column", source, func),
        )
        rows = _read_rows(reader, len(header), cols)
    except csv.Error as e:  # an unterminated quote, a field over the csv module's size limit
        raise ValueError(
            f"{func}: argument 'path' ({source}) is not valid CSV: got {str(e)!r} on line "
            f"{reader.line_num}, expected quotes only around whole fields, each closed"
        ) from None
    _check_rows(rows, header, (source_column, target_column), source, empty, log, func)
    if len(rows.sources) < min_rows:
        raise ValueError(
            f"{func}: argument 'path' ({source}) has too few sentence pairs: got "
            f"{len(rows.sources)}, expected at least {min_rows} (min_rows)"
        )
    return rows.sources, rows.targets


def _check_rows(rows: _Rows, header, columns, source, empty, log, func):
    if rows.ragged:
        raise ValueError(
            f"{func}: argument 'path' ({source}) has rows of the wrong length: got lines "
            f"{rows.ragged.text()}, expected {len(header)} fields like the header"
        )
    if rows.long:
        raise ValueError(
            f"{func}: argument 'path' ({source}) has sentences over {MAX_CELL_CHARS:,} "
            f"characters on lines {rows.long.text()}; expected one sentence a cell"
        )
    if not rows.empty:
        return
    what = f"an empty {columns[0]!r} or {columns[1]!r} cell"
    if empty == "error":
        raise ValueError(
            f"{func}: argument 'path' ({source}) has rows with {what}: lines "
            f"{rows.empty.text()}; expected a sentence on both sides (or pass empty='skip')"
        )
    msg = f"{func}: skipped {rows.empty.count} row(s) of {source} with {what} (lines {rows.empty.text()})"
    if log is not None:
        log(msg)
    else:
        warnings.warn(msg, stacklevel=3)


# -- the script of a language --------------------------------------------------------------------
_CJK_RANGES = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x3FFFF),  # Extensions B and later
)
DETECT_SAMPLE_CHARS = 200_000


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in _CJK_RANGES)


def detect_level(texts, threshold: float = 0.3) -> str:
    """``"char"`` when at least ``threshold`` of the letters of ``texts`` are Chinese
    characters, Hiragana or Katakana (scripts written without spaces between words), else
    ``"word"``. Texts with no letters at all (digits, symbols) are ``"char"``. Looks at the
    first 200,000 characters only. ``"subword"`` is never detected: ask for it."""
    if isinstance(texts, str) or not hasattr(texts, "__iter__"):
        raise ValueError(
            f"detect_level: argument 'texts' must be a list of str; got {type(texts).__name__}"
        )
    letters = cjk = seen = 0
    for t in texts:
        if not isinstance(t, str):
            raise ValueError(
                f"detect_level: argument 'texts' must hold str; got {type(t).__name__}"
            )
        t = t[: DETECT_SAMPLE_CHARS - seen]
        seen += len(t)
        alpha = [ch for ch in t if ch.isalpha()]
        letters += len(alpha)
        cjk += sum(map(_is_cjk, alpha))
        if seen >= DETECT_SAMPLE_CHARS:
            break
    if letters == 0:
        return "char"
    return "char" if cjk / letters >= threshold else "word"


# -- batches ---------------------------------------------------------------------------------------
def pad_batch(seqs, pad: int = PAD) -> tuple[np.ndarray, np.ndarray]:
    """``(ids (B, T) int32, lengths (B,) int64)``: the sequences left-aligned, ``pad`` after
    each one's end; ``T`` is the longest length (at least 1)."""
    if isinstance(seqs, np.ndarray) and seqs.ndim == 2:
        seqs = list(seqs)
    if not isinstance(seqs, (list, tuple)) or not seqs:
        raise ValueError(
            f"pad_batch: argument 'seqs' must be a non-empty list of 1-D id arrays; got "
            f"{type(seqs).__name__ if not isinstance(seqs, (list, tuple)) else 'an empty list'}"
        )
    arrays = [np.asarray(s) for s in seqs]
    for k, a in enumerate(arrays):
        if a.ndim != 1 or not (a.size == 0 or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(
                f"pad_batch: argument 'seqs' must hold 1-D integer arrays; got shape {a.shape} "
                f"dtype {a.dtype} at position {k}"
            )
    lengths = np.array([a.size for a in arrays], dtype=np.int64)
    ids = np.full((len(arrays), max(1, int(lengths.max()))), pad, dtype=np.int32)
    for row, a in zip(ids, arrays):
        row[: a.size] = a
    return ids, lengths


# -- the validation split --------------------------------------------------------------------------
@dataclass
class Split:
    """A training/validation split of sentence pairs.

    ``train_*`` and ``valid_*`` are the pairs (parallel lists). ``eval_sources`` are the distinct
    validation sources in first-seen order, and ``eval_references[k]`` all the targets of
    ``eval_sources[k]`` (its references for multi-reference BLEU)."""

    train_sources: list
    train_targets: list
    valid_sources: list
    valid_targets: list
    eval_sources: list
    eval_references: list


def _groups(sources, targets) -> np.ndarray:
    """Component id of every pair in the graph whose nodes are the distinct sentences and
    whose edges are the pairs (union-find with path halving)."""
    s_ids = {s: i for i, s in enumerate(dict.fromkeys(sources))}
    t_ids = {t: i + len(s_ids) for i, t in enumerate(dict.fromkeys(targets))}
    parent = list(range(len(s_ids) + len(t_ids)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for s, t in zip(sources, targets):
        a, b = find(s_ids[s]), find(t_ids[t])
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([find(s_ids[s]) for s in sources], dtype=np.int64)


def split_validation(sources, targets, n_valid: int, seed: int = 0) -> Split:
    """Hold out about ``n_valid`` pairs for validation, drawn as whole groups: pairs linked by a
    shared source or target sentence (directly or through others) go to the same side, so no
    validation sentence, source or target, appears in training. Groups are taken in a random
    order fixed by ``seed``, each when it still fits in ``n_valid``, so the result is exactly
    ``n_valid`` pairs unless the groups cannot make that number up. Returns a :class:`Split`."""
    func = "split_validation"
    sources = list(sources)
    targets = list(targets)
    if len(sources) != len(targets):
        raise ValueError(
            f"{func}: arguments 'sources' and 'targets' must have the same length; got "
            f"{len(sources)} and {len(targets)}"
        )
    n = len(sources)
    if (
        isinstance(n_valid, bool)
        or not isinstance(n_valid, (int, np.integer))
        or not (1 <= n_valid < n)
    ):
        raise ValueError(
            f"{func}: argument 'n_valid' must be an int from 1 to {n - 1} (the pairs less one); "
            f"got {n_valid!r}"
        )
    group = _groups(sources, targets)  # (N,) component of each pair
    ids, sizes = np.unique(group, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(ids))
    taken, room = [], int(n_valid)
    for g in order:
        if sizes[g] <= room:
            taken.append(ids[g])
            room -= int(sizes[g])
            if room == 0:
                break
    valid = np.isin(group, taken)
    if valid.all() or not valid.any():
        raise ValueError(
            f"{func}: the {n} pairs form groups linked by shared sentences too large to hold out "
            f"{n_valid} pairs and keep some for training; use other data or another n_valid"
        )
    return _make_split(sources, targets, valid)


def _make_split(sources, targets, valid) -> Split:
    tr = np.flatnonzero(~valid)
    va = np.flatnonzero(valid)
    refs: dict[str, list[str]] = {}
    for i in va:
        refs.setdefault(sources[i], []).append(targets[i])
    return Split(
        [sources[i] for i in tr],
        [targets[i] for i in tr],
        [sources[i] for i in va],
        [targets[i] for i in va],
        list(refs),
        list(refs.values()),
    )
