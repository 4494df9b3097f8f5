"""A NumPy-only reader and writer for the safetensors format (no pickle, no extra dependency).

The format (https://github.com/huggingface/safetensors, "Format" section)::

    8 bytes      N, unsigned little-endian 64-bit: the header's length in bytes
    N bytes      UTF-8 JSON object: {"__metadata__": {str: str}, "<name>": {"dtype": "F32",
                 "shape": [2, 3], "data_offsets": [begin, end]}, ...}; may end in spaces
    rest         the byte buffer; tensor bytes are little-endian, C order, at
                 data_offsets relative to the start of the buffer

Validation is strict, like the reference implementation: the header must be a JSON object with no
duplicate keys; every entry has exactly ``dtype``, ``shape`` and ``data_offsets``; the dtype is a
known one; ``end - begin`` equals ``prod(shape) * itemsize``; the tensors tile the buffer exactly
(no gaps, no overlaps, nothing after the last one). Anything else raises :class:`SafetensorsError`
naming the file and the problem. Arrays come back as fresh, writable, native-order copies, bit for
bit the stored bytes (NaN payloads included).

lstmkit's runtime reads model files with this module so that inference needs only NumPy.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

#: safetensors dtype code -> little-endian NumPy dtype. BF16 and the FP8 types have no NumPy
#: equivalent and are rejected by name.
DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("bool"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}
_RANK = {
    c: i
    for i, c in enumerate(
        ["BOOL", "U8", "I8", "I16", "U16", "F16", "I32", "U32", "F32", "F64", "I64", "U64"]
    )
}

#: the reference implementation's limit on the header size
MAX_HEADER = 100_000_000


class SafetensorsError(ValueError):
    """A safetensors file that is truncated, corrupt or hostile."""


def _no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise SafetensorsError(f"duplicate key {k!r} in the JSON header")
        seen[k] = v
    return seen


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse(path: str, blob: bytes):
    """Validate ``blob`` (a whole file) -> ``(entries sorted by offset, metadata, buffer start)``."""
    where = f"safetensors file {path!r}"
    if len(blob) < 8:
        raise SafetensorsError(f"{where} is too short ({len(blob)} bytes) to hold a header")
    n = int.from_bytes(blob[:8], "little")
    if n < 2 or n > MAX_HEADER or 8 + n > len(blob):
        raise SafetensorsError(
            f"{where}: header length {n} is invalid for a file of {len(blob)} bytes "
            f"(expected 2 .. min({MAX_HEADER}, {len(blob) - 8}))"
        )
    raw = blob[8 : 8 + n]
    if raw[:1] != b"{":
        raise SafetensorsError(f"{where}: header must start with '{{'; got {raw[:1]!r}")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except SafetensorsError as e:
        raise SafetensorsError(f"{where}: {e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{where}: header is not valid UTF-8 JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(
            f"{where}: header must be a JSON object; got {type(header).__name__}"
        )
    meta = header.pop("__metadata__", None)
    if meta is not None and not (
        isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())
    ):
        raise SafetensorsError(f"{where}: '__metadata__' must map strings to strings")
    entries = []
    for name, info in header.items():
        if not name:
            raise SafetensorsError(f"{where}: empty tensor name")
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(
                f"{where}: tensor {name!r} must be an object with exactly 'dtype', 'shape' and "
                f"'data_offsets'; got {info!r:.200}"
            )
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if code not in DTYPES:
            raise SafetensorsError(
                f"{where}: tensor {name!r} has dtype {code!r}; this reader supports "
                f"{sorted(DTYPES)} (BF16/FP8 have no NumPy type)"
            )
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            raise SafetensorsError(
                f"{where}: tensor {name!r} must have a shape of non-negative ints; got {shape!r:.100}"
            )
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise SafetensorsError(
                f"{where}: tensor {name!r} must have data_offsets [begin, end] with "
                f"0 <= begin <= end; got {offsets!r:.100}"
            )
        nbytes = math.prod(shape) * DTYPES[code].itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise SafetensorsError(
                f"{where}: tensor {name!r} of dtype {code} and shape {tuple(shape)} needs {nbytes} "
                f"bytes; its data_offsets {offsets} span {offsets[1] - offsets[0]}"
            )
        entries.append((name, code, tuple(shape), offsets[0], offsets[1]))
    entries.sort(key=lambda e: (e[3], e[4]))
    start = 8 + n
    size = len(blob) - start
    pos = 0
    for name, _, _, begin, end in entries:
        if begin != pos:
            what = "overlaps the previous tensor" if begin < pos else "leaves a gap before it"
            raise SafetensorsError(
                f"{where}: tensor {name!r} starts at byte {begin} and {what} (expected {pos})"
            )
        pos = end
    if pos != size:
        raise SafetensorsError(
            f"{where}: tensors cover {pos} bytes of a {size}-byte buffer (truncated or trailing data)"
        )
    return entries, dict(meta or {}), start


def _read(path):
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise SafetensorsError(f"cannot read safetensors file {path!r}: {e}") from None
    return path, blob


def _arrays(path, blob, entries, start) -> dict:
    out = {}
    for name, code, shape, begin, end in entries:
        dt = DTYPES[code]
        if code == "BOOL":
            raw = np.frombuffer(blob, np.uint8, end - begin, start + begin)
            if raw.size and raw.max() > 1:
                raise SafetensorsError(
                    f"safetensors file {path!r}: tensor {name!r} is BOOL but holds bytes other "
                    "than 0 and 1"
                )
        a = np.frombuffer(blob, dt, (end - begin) // dt.itemsize, start + begin)
        out[name] = a.astype(dt.newbyteorder("="), copy=True).reshape(shape)
    return out


def read_metadata(path) -> dict:
    """The ``__metadata__`` dict of a safetensors file (validated like :func:`load_file`)."""
    path, blob = _read(path)
    return _parse(path, blob)[1]


def load_file_with_metadata(path) -> tuple[dict, dict]:
    """``(tensors {name: array}, metadata {str: str})`` from one read of the file."""
    path, blob = _read(path)
    entries, meta, start = _parse(path, blob)
    return _arrays(path, blob, entries, start), meta


def load_file(path) -> dict:
    """``{name: np.ndarray}``, like ``safetensors.numpy.load_file``."""
    return load_file_with_metadata(path)[0]


def save_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    """Serialise ``{name: array}`` (and string metadata) to safetensors bytes."""
    if metadata is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError("save_file: argument 'metadata' must map str to str")
    arrays = {}
    for name, a in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"save_file: invalid tensor name {name!r}")
        a = np.asarray(a)
        code = _CODES.get(a.dtype.newbyteorder("="))
        if code is None:
            raise ValueError(
                f"save_file: tensor {name!r} has dtype {a.dtype}; expected one of "
                f"{sorted(str(d) for d in _CODES)}"
            )
        arrays[name] = (code, a)
    # The reference writer's order (its dtype enum, descending, then the name): larger items come
    # first, which keeps every tensor aligned, and the bytes equal the library's.
    order = sorted(arrays, key=lambda k: (-_RANK[arrays[k][0]], k))
    header, chunks, pos = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name in order:
        code, a = arrays[name]
        data = np.ascontiguousarray(a, DTYPES[code]).tobytes()
        header[name] = {
            "dtype": code,
            "shape": list(a.shape),
            "data_offsets": [pos, pos + len(data)],
        }
        chunks.append(data)
        pos += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # pad so the buffer starts 8-byte aligned
    return len(raw).to_bytes(8, "little") + raw + b"".join(chunks)


def save_file(tensors: dict, path, metadata: dict | None = None) -> None:
    """Write ``{name: array}`` to ``path`` (readable by ``safetensors.numpy.load_file``)."""
    data = save_bytes(tensors, metadata)
    with open(os.fspath(path), "wb") as f:
        f.write(data)
