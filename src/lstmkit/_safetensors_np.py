"""A NumPy-only reader and writer for the safetensors format (no pickle, no extra dependency).

The format (https://github.com/huggingface/safetensors, "Format" section)::

    8 bytes      N, unsigned little-endian 64-bit: the header's length in bytes
    N bytes      UTF-8 JSON object: {"__metadata__": {str: str}, "<name>": {"dtype": "F32",
                 "shape": [2, 3], "data_offsets": [begin, end]}, ...}; may end in spaces
    rest         the byte buffer; tensor bytes are little-endian, C order, at
                 data_offsets relative to the start of the buffer

Validation is strict, like the reference implementation: the header must be a JSON object with no
duplicate keys, at most :data:`MAX_DEPTH` deep (checked without recursion before it is parsed); every entry has exactly ``dtype``, ``shape`` and ``data_offsets``; the dtype is a
known one; ``end - begin`` equals ``prod(shape) * itemsize``; the tensors tile the buffer exactly
(no gaps, no overlaps, nothing after the last one). Anything else raises :class:`SafetensorsError`
naming the file and the problem. Arrays come back as fresh, writable, native-order copies, bit for
bit the stored bytes (NaN payloads included). :func:`read_header` reads and checks the header
alone, so a caller can check the declared sizes before reading (allocating) any tensor.

lstmkit's runtime reads model files with this module so that inference needs only NumPy.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import NamedTuple

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
#: the deepest JSON nesting read (the reference's serde_json stops at 128; a header needs 3)
MAX_DEPTH = 64


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


# -- bounded JSON ------------------------------------------------------------------------------
#: a JSON string, written as the unrolled loop "[^"\\]*(?:\\.[^"\\]*)*": linear time, and no
#: per-character backtracking state in ``re`` whatever the length
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN, _CLOSE = np.zeros(256, np.int8), np.zeros(256, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_CLOSE[[ord("]"), ord("}")]] = 1


def json_depth(raw: bytes, chunk: int = 1 << 20) -> int:
    """The deepest nesting of ``[`` and ``{`` in JSON text ``raw`` (brackets inside strings do
    not count). Linear time, no recursion, memory ~ ``chunk`` bytes beyond the text: it runs
    *before* ``json.loads``, whose recursion a deep document would exhaust."""
    code = np.frombuffer(_JSON_STRING.sub(b'""', raw), np.uint8)
    depth = deepest = 0
    for i in range(0, len(code), chunk):
        c = code[i : i + chunk]
        level = depth + np.cumsum(_OPEN[c].astype(np.int32) - _CLOSE[c])  # (chunk,)
        if len(level):
            deepest, depth = max(deepest, int(level.max())), int(level[-1])
    return deepest


def loads_bounded(raw, where: str, max_bytes: int, max_depth: int = MAX_DEPTH, hook=None):
    """``json.loads(raw)`` once ``raw`` (bytes or str) is known to be at most ``max_bytes``
    long and ``max_depth`` deep; anything else raises :class:`SafetensorsError` naming
    ``where``. Numbers beyond Python's digit limit are refused too (a ValueError in json)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise SafetensorsError(
            f"{where}: {len(data):,} bytes, more than the limit of {max_bytes:,}"
        )
    depth = json_depth(data)
    if depth > max_depth:
        raise SafetensorsError(f"{where}: nested {depth} deep, more than the limit of {max_depth}")
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=hook)
    except SafetensorsError as e:
        raise SafetensorsError(f"{where}: {e}") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise SafetensorsError(f"{where}: not valid UTF-8 JSON: {e}") from None


# -- reading -------------------------------------------------------------------------------------
class Entry(NamedTuple):
    name: str
    dtype: str  # the safetensors code, "F32" ...
    shape: tuple
    begin: int  # byte offsets in the buffer
    end: int


class Header(NamedTuple):
    """A validated header: ``entries`` sorted by offset, tiling the buffer exactly."""

    path: str
    entries: list
    metadata: dict
    start: int  # where the buffer starts in the file (8 + header length)
    size: int  # the file's size in bytes


def _entry(where, name, info) -> Entry:
    if not name:
        raise SafetensorsError(f"{where}: empty tensor name")
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise SafetensorsError(
            f"{where}: tensor {name!r} must be an object with exactly 'dtype', 'shape' and "
            f"'data_offsets'; got {info!r:.200}"
        )
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(code, str) or code not in DTYPES:
        raise SafetensorsError(
            f"{where}: tensor {name!r} has dtype {code!r:.40}; this reader supports "
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
    return Entry(name, code, tuple(shape), offsets[0], offsets[1])


def _tile(where, entries, size):
    """The tensors must tile the ``size``-byte buffer exactly: no gap, overlap or trailing byte."""
    pos = 0
    for e in entries:
        if e.begin != pos:
            what = "overlaps the previous tensor" if e.begin < pos else "leaves a gap before it"
            raise SafetensorsError(
                f"{where}: tensor {e.name!r} starts at byte {e.begin} and {what} (expected {pos})"
            )
        pos = e.end
    if pos != size:
        raise SafetensorsError(
            f"{where}: tensors cover {pos} bytes of a {size}-byte buffer (truncated or trailing data)"
        )


def parse_header(path, raw: bytes, size: int, max_depth: int = MAX_DEPTH) -> Header:
    """Validate the header bytes ``raw`` of a ``size``-byte file -> :class:`Header`."""
    where = f"safetensors file {path!r}"
    if raw[:1] != b"{":
        raise SafetensorsError(f"{where}: header must start with '{{'; got {raw[:1]!r}")
    header = loads_bounded(raw, f"{where}: header", len(raw), max_depth, _no_duplicates)
    if not isinstance(header, dict):
        raise SafetensorsError(
            f"{where}: header must be a JSON object; got {type(header).__name__}"
        )
    meta = header.pop("__metadata__", None)
    if meta is not None and not (
        isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())
    ):
        raise SafetensorsError(f"{where}: '__metadata__' must map strings to strings")
    entries = sorted(
        (_entry(where, name, info) for name, info in header.items()),
        key=lambda e: (e.begin, e.end),
    )
    start = 8 + len(raw)
    _tile(where, entries, size - start)
    return Header(path, entries, dict(meta or {}), start, size)


def read_header(path, max_header: int = MAX_HEADER, max_depth: int = MAX_DEPTH) -> Header:
    """Read and validate only the header of a safetensors file (the buffer is not read): the
    sizes it declares are checked against the file's size before anything is allocated."""
    path = os.fspath(path)
    where = f"safetensors file {path!r}"
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            n = int.from_bytes(f.read(8), "little") if size >= 8 else 0
            if size < 8:
                raise SafetensorsError(f"{where} is too short ({size} bytes) to hold a header")
            if n < 2 or n > max_header or 8 + n > size:
                raise SafetensorsError(
                    f"{where}: header length {n} is invalid for a file of {size} bytes "
                    f"(expected 2 .. min({max_header}, {size - 8}))"
                )
            raw = f.read(n)
    except OSError as e:
        raise SafetensorsError(f"cannot read safetensors file {path!r}: {e}") from None
    if len(raw) != n:
        raise SafetensorsError(f"{where} is truncated (the file changed while it was read)")
    return parse_header(path, raw, size, max_depth)


def read_tensors(header: Header, names=None) -> dict:
    """``{name: array}`` for the entries of ``header`` (those in ``names``, if given): fresh,
    writable, native-order arrays, bit for bit the stored bytes, read straight into place
    (memory: the tensors themselves)."""
    where = f"safetensors file {header.path!r}"
    out = {}
    try:
        with open(header.path, "rb") as f:
            if os.fstat(f.fileno()).st_size != header.size:
                raise SafetensorsError(f"{where} changed size while it was read")
            for e in header.entries:
                if names is None or e.name in names:
                    out[e.name] = _read_one(f, where, header.start, e)
    except OSError as e:
        raise SafetensorsError(f"cannot read safetensors file {header.path!r}: {e}") from None
    return out


def _read_one(f, where, start, e: Entry) -> np.ndarray:
    dt = DTYPES[e.dtype]
    a = np.empty(e.shape, dt)
    f.seek(start + e.begin)
    if a.nbytes and f.readinto(memoryview(a.reshape(-1)).cast("B")) != a.nbytes:
        raise SafetensorsError(f"{where} is truncated (the file changed while it was read)")
    if e.dtype == "BOOL":
        raw = a.view(np.uint8)
        if raw.size and raw.max() > 1:
            raise SafetensorsError(
                f"{where}: tensor {e.name!r} is BOOL but holds bytes other than 0 and 1"
            )
    return a if dt.isnative else a.astype(dt.newbyteorder("="))


def read_metadata(path) -> dict:
    """The ``__metadata__`` dict of a safetensors file (validated like :func:`load_file`)."""
    return read_header(path).metadata


def load_file_with_metadata(path) -> tuple[dict, dict]:
    """``(tensors {name: array}, metadata {str: str})`` from one read of the file."""
    header = read_header(path)
    return read_tensors(header), header.metadata


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
