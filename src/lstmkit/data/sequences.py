"""Variable-length sequences: padding with masks, and labelled numeric sequences from a long CSV.

Padding puts the padding at the *end* (``padding="post"``) by default: a masked recurrent layer
skips padded steps, and ``Bidirectional``'s backward direction, which reads the padded sequence
from its far end, then starts at the last valid step (see :mod:`lstmkit.layers.bidirectional`)::

    padded, mask = pad_sequences([[5, 3, 9], [7]])     # ids (2, 3), mask (2, 3) bool
    # padded = [[5, 3, 9], [7, 0, 0]];  mask = [[T, T, T], [T, F, F]]

Numeric sequences come as one row per frame (the Japanese Vowels layout)::

    utterance,frame,label,c1,...,c12
    0,0,1,1.86,...                      rows of one sequence are consecutive, in frame order

``read_sequence_csv`` returns ``(list of (T_i, D) arrays, labels)``; ``SequenceScaler``
standardises each feature with statistics over the training frames only (padding excluded).
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from .csvio import DataFileNotFoundError
from .utf8 import read_utf8

__all__ = ["LabelEncoder", "SequenceScaler", "pad_sequences", "read_sequence_csv"]


def pad_sequences(sequences, maxlen=None, value=0, padding="post", truncating="post", dtype=None):
    """Pad a list of sequences to one length; returns ``(padded, mask)``.

    ``sequences``: token-id lists (-> ``padded (N, T)``) or ``(T_i, D)`` arrays
    (-> ``padded (N, T, D)``). ``maxlen`` defaults to the longest sequence; longer ones are cut
    at the end (``truncating="post"``) or the start (``"pre"``). ``mask (N, T)`` is True at real
    steps. ``dtype`` defaults to int32 for ids and float32 for feature arrays.
    """
    for arg, v in (("padding", padding), ("truncating", truncating)):
        if v not in ("pre", "post"):
            raise ValueError(f"pad_sequences: argument '{arg}' must be 'pre' or 'post'; got {v!r}")
    seqs = [np.asarray(s) for s in sequences]
    if not seqs:
        raise ValueError("pad_sequences: argument 'sequences' must hold at least one sequence")
    ranks = {s.ndim for s in seqs}
    if len(ranks) != 1 or ranks.pop() not in (1, 2):
        raise ValueError(
            "pad_sequences: argument 'sequences' must hold 1-D id sequences or 2-D (T, features) "
            f"arrays, all of the same rank; got ranks {sorted({s.ndim for s in seqs})}"
        )
    feat = seqs[0].shape[1:]  # () for ids, (D,) for features
    bad = [i for i, s in enumerate(seqs) if s.shape[1:] != feat]
    if bad:
        raise ValueError(
            f"pad_sequences: every sequence must have {feat[0]} features like sequence 0; "
            f"sequences {bad[:10]} differ"
        )
    if dtype is None:
        dtype = "int32" if not feat and all(s.dtype.kind in "iub" for s in seqs) else "float32"
    lengths = np.array([len(s) for s in seqs])
    T = int(lengths.max()) if maxlen is None else int(maxlen)
    if T < 1:
        raise ValueError(f"pad_sequences: argument 'maxlen' must be >= 1; got {maxlen!r}")
    padded = np.full((len(seqs), T) + feat, value, dtype=dtype)
    mask = np.zeros((len(seqs), T), dtype=bool)
    for i, s in enumerate(seqs):
        s = s[:T] if truncating == "post" else s[max(0, len(s) - T) :]
        n = len(s)
        if n == 0:
            continue
        if padding == "post":
            padded[i, :n], mask[i, :n] = s, True
        else:
            padded[i, T - n :], mask[i, T - n :] = s, True
    return padded, mask


class LabelEncoder:
    """Class labels (any strings) <-> ids ``0..C-1`` in sorted order (numbers sort numerically)."""

    def __init__(self, classes):
        self.classes = [str(c) for c in classes]
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise ValueError(f"LabelEncoder: argument 'classes' must be distinct; got {classes!r}")
        self._index = {c: i for i, c in enumerate(self.classes)}

    @classmethod
    def fit(cls, labels):
        uniq = {str(v) for v in labels}

        def key(v):
            try:
                return (0, float(v), v)
            except ValueError:
                return (1, 0.0, v)

        return cls(sorted(uniq, key=key))

    def encode(self, labels) -> np.ndarray:
        out, unknown = [], []
        for v in labels:
            i = self._index.get(str(v))
            if i is None:
                unknown.append(str(v))
            out.append(-1 if i is None else i)
        if unknown:
            raise ValueError(
                f"LabelEncoder: labels {sorted(set(unknown))[:10]} were not seen in training; "
                f"known classes are {self.classes}"
            )
        return np.asarray(out, dtype=np.int64)

    def decode(self, ids) -> list[str]:
        return [self.classes[int(i)] for i in np.asarray(ids).reshape(-1)]

    def __len__(self):
        return len(self.classes)

    def to_dict(self) -> dict:
        return {"classes": list(self.classes)}

    @classmethod
    def from_dict(cls, d):
        return cls(d["classes"])


class SequenceScaler:
    """Per-feature standardisation ``(x - mean) / std`` over all frames of the training
    sequences; constant features keep scale 1."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, sequences):
        frames = np.concatenate([np.asarray(s, np.float64) for s in sequences], axis=0)
        std = frames.std(axis=0)
        return cls(frames.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, sequences):
        return [((np.asarray(s, np.float64) - self.mean) / self.std) for s in sequences]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d):
        return cls(d["mean"], d["std"])


def read_sequence_csv(
    path,
    sequence_column="utterance",
    label_column="label",
    time_column="frame",
    feature_columns=None,
):
    """Labelled multichannel sequences from a CSV with one row per frame.

    Rows with the same ``sequence_column`` value form one sequence; they must be consecutive.
    When ``time_column`` is present, frames are ordered by it (and must be distinct).
    ``feature_columns`` defaults to every other column. Returns ``(sequences, labels,
    feature_columns)``: a list of ``(T_i, D)`` float64 arrays, a list of label strings (one per
    sequence; it must be constant within a sequence), and the feature names used. With
    ``label_column=None`` (frames to classify) ``labels`` holds each sequence's id instead.
    The file must be UTF-8 (a byte-order mark is ignored); otherwise the error names the first
    bad byte's offset, line and column.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFileNotFoundError(
            f"read_sequence_csv: argument 'path' must be an existing CSV file; got {path!r}"
        )
    with io.StringIO(read_utf8(path, "path", "read_sequence_csv"), newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"read_sequence_csv: {path!r} is empty") from None
        rows = [r for r in reader if r]
    if label_column is None:
        label_column = sequence_column
    for arg, name in (("sequence_column", sequence_column), ("label_column", label_column)):
        if name not in header:
            raise ValueError(
                f"read_sequence_csv: argument '{arg}' must name a column of {path!r}; got "
                f"{name!r}, columns are {header}"
            )
    if time_column is not None and time_column not in header:
        time_column = None  # frames are then taken in file order
    skip = {sequence_column, label_column, time_column}
    if feature_columns is None:
        feature_columns = [h for h in header if h not in skip]
    missing = [c for c in feature_columns if c not in header]
    if missing or not feature_columns:
        raise ValueError(
            f"read_sequence_csv: argument 'feature_columns' must name columns of {path!r}; "
            f"missing {missing}, columns are {header}"
        )
    si, li = header.index(sequence_column), header.index(label_column)
    ti = None if time_column is None else header.index(time_column)
    fi = [header.index(c) for c in feature_columns]
    bad_len = [n + 2 for n, r in enumerate(rows) if len(r) != len(header)]
    if bad_len:
        raise ValueError(
            f"read_sequence_csv: {path!r} lines {bad_len[:10]} have a different number of cells "
            f"than the header ({len(header)})"
        )
    try:
        values = np.array([[float(r[i]) for i in fi] for r in rows], dtype=np.float64)
    except ValueError as e:
        raise ValueError(
            f"read_sequence_csv: {path!r} has a non-numeric feature cell: {e}"
        ) from None
    if not np.isfinite(values).all():
        line = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0]) + 2
        raise ValueError(f"read_sequence_csv: {path!r} line {line} has NaN or Inf features")
    keys = [r[si] for r in rows]
    sequences, labels, seen = [], [], set()
    start = 0
    for end in range(1, len(rows) + 1):
        if end < len(rows) and keys[end] == keys[start]:
            continue
        key = keys[start]
        if key in seen:
            raise ValueError(
                f"read_sequence_csv: rows of sequence {key!r} in {path!r} are not consecutive "
                f"(again at line {start + 2})"
            )
        seen.add(key)
        block = values[start:end]
        labs = {rows[k][li] for k in range(start, end)}
        if len(labs) != 1:
            raise ValueError(
                f"read_sequence_csv: sequence {key!r} in {path!r} has several labels {sorted(labs)}"
            )
        if ti is not None:
            t = np.array([float(rows[k][ti]) for k in range(start, end)])
            if len(np.unique(t)) != len(t):
                raise ValueError(
                    f"read_sequence_csv: sequence {key!r} in {path!r} repeats a {time_column!r} value"
                )
            block = block[np.argsort(t, kind="stable")]
        sequences.append(block)
        labels.append(labs.pop())
        start = end
    if not sequences:
        raise ValueError(f"read_sequence_csv: {path!r} has no data rows")
    return sequences, labels, list(feature_columns)
