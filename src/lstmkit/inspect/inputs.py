"""Model inputs from files: numbers (``.npy``, ``.csv``) or, for a text model, text.

- ``.npy``: read with ``np.load(allow_pickle=False)``; ``(timesteps, features)`` is one sequence,
  ``(batch, timesteps, features)`` a batch (token ids: ``(timesteps,)`` or ``(batch, timesteps)``).
- ``.csv``: numbers, one row per time step and one column per feature (a first row that does not
  parse as numbers is a header): one sequence.
- anything else: UTF-8 text, for a text model only. A model is a text model when its metadata
  holds a vocabulary (:func:`text_codec`); the text is read token by token (characters or
  words), at most :data:`MAX_TEXT_TOKENS`.

Numbers go to the model as they are: encode them the way the model was trained.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..layers import Embedding

#: the most tokens (characters or words) of a text that are read and shown one by one
MAX_TEXT_TOKENS = 2000


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
        raise ValueError(
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
    T = model.input_shape[1] if model.input_shape else None
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
    shape = tuple(model.input_shape[1:])  # without the batch axis
    rank = 1 + len(shape)
    if x.ndim == rank - 1:
        x = x[None]
    elif rank == 2 and x.ndim == 2 and path.suffix.lower() == ".csv" and x.shape[1] == 1:
        x = x.T  # one column of ids: one sequence
    fits = all(e is None or e == s for e, s in zip(shape, x.shape[1:]))
    if x.ndim != rank or not fits:
        raise ValueError(
            f"inspect: the model takes inputs of shape (batch, {', '.join(map(str, shape))})"
            f"; {path.name!r} holds shape {x.shape}"
        )
    if rank == 2:  # token ids for an Embedding
        x = x.astype(np.int64)
    return x, None
