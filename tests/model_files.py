"""Small real model files written by the apps, and tools to take their bytes apart and put
them back together (what a tamperer does). Shared by test_hostile_files.py and
test_fuzz_model_files.py; only public lstmkit names are used, so the tests run against any
version of the reader.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np

import lstmkit
from lstmkit import LSTM, Dense, Sequential
from lstmkit.layers import GRU, Bidirectional, Dropout, Embedding

# -- taking a file apart -------------------------------------------------------------------------
NESTED = ("model", "compile", "metadata")  # JSON texts inside __metadata__


def split(blob: bytes):
    """``(header dict, buffer bytes)`` of a (trusted) safetensors file."""
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def join(header, buffer: bytes, raw: bytes | None = None) -> bytes:
    """Safetensors bytes from a header (dict, or ``raw`` JSON bytes) and a buffer."""
    raw = json.dumps(header, separators=(",", ":")).encode() if raw is None else raw
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + buffer


def edit_nested(blob: bytes, key: str, edit) -> bytes:
    """The file with ``__metadata__[key]`` (a JSON text) parsed, passed to ``edit`` (which
    changes it in place or returns a replacement), and written back."""
    header, buffer = split(blob)
    value = json.loads(header["__metadata__"][key])
    out = edit(value)
    header["__metadata__"][key] = json.dumps(value if out is None else out)
    return join(header, buffer)


def layer_names(blob: bytes) -> list:
    """The names of the layers in a file's architecture, in order."""
    spec = json.loads(split(blob)[0]["__metadata__"]["model"])
    return [lc["config"]["name"] for lc in spec["config"]["layers"]]


def with_nested_text(blob: bytes, key: str, text: str) -> bytes:
    header, buffer = split(blob)
    header["__metadata__"][key] = text
    return join(header, buffer)


def deep(depth: int, leaf="0") -> str:
    return "[" * depth + leaf + "]" * depth


# -- model files written by the apps ---------------------------------------------------------
def forecaster_bytes(tmp_path, units=4, lookback=8, horizon=3) -> bytes:
    """``forecast train`` on a short noisy sine: the metadata its writer produces."""
    from lstmkit.apps.forecast import train_forecaster

    t = np.arange(160)
    values = 10 + np.sin(2 * np.pi * t / 12) + 0.1 * np.random.default_rng(0).standard_normal(160)
    report = train_forecaster(
        values, lookback=lookback, horizon=horizon, units=units, epochs=1, patience=1,
        transform="none", seed=0,
    )  # fmt: skip
    path = tmp_path / "forecaster.lstmkit"
    report.model.save(path)
    return path.read_bytes()


TEXT = "the quick brown fox jumps over the lazy dog. " * 8


def language_model_bytes(tmp_path) -> bytes:
    from lstmkit.apps.text import train_language_model

    report = train_language_model(
        TEXT, level="char", embed_dim=3, units=4, layers=1, seq_len=6, batch_size=2, epochs=1,
        max_steps=2, seed=0,
    )  # fmt: skip
    path = tmp_path / "lm.lstmkit"
    report.model.save(path)
    return path.read_bytes()


def sequence_classifier_bytes(tmp_path) -> bytes:
    from lstmkit.apps.classify import train_sequence_classifier

    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((int(rng.integers(3, 7)), 2)) + (i % 3) for i in range(30)]
    labels = [f"c{i % 3}" for i in range(30)]
    report = train_sequence_classifier(seqs, labels, units=3, epochs=1, dropout=0.0, seed=0)
    path = tmp_path / "seq.lstmkit"
    report.model.save(path)
    return path.read_bytes()


def generic_bytes(tmp_path) -> bytes:
    """Embedding -> Bidirectional(GRU) -> Dropout -> LSTM -> Dense, compiled and trained one
    step (optimizer state saved), metadata without an app."""
    lstmkit.set_random_seed(0)
    model = Sequential(
        [
            Embedding(7, 3, mask_zero=True, input_shape=(5,), name="embedding"),
            Bidirectional(GRU(2, return_sequences=True, name="gru"), name="bigru"),
            Dropout(0.2, name="dropout"),
            LSTM(3, peephole=True, name="lstm"),
            Dense(2, name="dense"),
        ]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], seed=1)
    ids = np.random.default_rng(0).integers(1, 7, (4, 5))
    model.fit(ids, np.zeros((4, 2), np.float32), epochs=1, batch_size=4, verbose=0)
    model.metadata = {"note": "hand-made", "vocab": "abcdef"}
    path = tmp_path / "generic.lstmkit"
    model.save(path)
    return path.read_bytes()


def sample_input(model, batch=2, steps=5):
    """A deterministic input for ``model`` (ids for an Embedding model), or None when it would
    be large (a hostile but consistent input length)."""
    shape = (batch,) + tuple(steps if s is None else s for s in model.input_shape[1:])
    if math.prod(shape) > 4096:
        return None
    first = model.layers[0]
    if isinstance(first, Embedding):
        return (np.arange(math.prod(shape)).reshape(shape) % (first.input_dim - 1)) + 1
    return np.cos(np.arange(math.prod(shape))).reshape(shape).astype(np.float32)
