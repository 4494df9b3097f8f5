"""Property: whatever is done to a valid model file, every loader either refuses it with a
``ModelFileError`` or loads a model that works, within a time and a memory bound.

The files are real ones written by the apps (a forecaster, a character language model, a
sequence classifier) and a hand-made stack (Embedding, Bidirectional GRU, peephole LSTM, Dense,
with Adam state). Mutations: bytes flipped anywhere, in the header or in the tensors, truncation, trailing bytes,
and edits of the header JSON at any depth, inside the nested ``model`` / ``compile`` /
``metadata`` texts too: values replaced by huge, negative or non-finite numbers, strings, null,
booleans, containers or deeply nested lists; sizes in the architecture multiplied; keys dropped
or added; tensor shapes, dtypes and offsets changed (also consistently, so that the header still
tiles the file).

Outcomes checked through ``lstmkit.load_model`` (with and without ``compile``),
``lstmkit.runtime.load`` and the app that wrote the file (``forecast``, ``generate``,
``predict_sequences``):

- a refusal is a ``ModelFileError`` (a ``ValueError``); the apps may also raise ``ValueError``
  for a value that is legal in the file but not for their input (e.g. a ``log`` transform of a
  negative history). Anything else (``TypeError``, ``KeyError``, ``MemoryError``,
  ``RecursionError``, ``IndexError`` ...) fails the test;
- a load predicts an output of the shape its architecture declares, finite whenever every
  weight is finite and at most 1e3 in magnitude (bounded inputs, bounded activations);
- each case takes under 2 s of CPU time and 64 MB of traced allocations (the files are < 30 KB;
  before the checks, one changed digit could ask for gigabytes).

A few hundred cases in CI (derandomized, so CI is reproducible), thousands under ``make slow``.
"""

from __future__ import annotations

import json
import math
import time
import tracemalloc
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lstmkit
from lstmkit import runtime
from lstmkit.saving import ModelFileError
from model_files import (
    NESTED,
    TEXT,
    forecaster_bytes,
    generic_bytes,
    join,
    language_model_bytes,
    sample_input,
    sequence_classifier_bytes,
    split,
)

CPU_SECONDS = 2.0
MEGABYTES = 64.0


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    d = tmp_path_factory.mktemp("bases")
    files = {
        "forecast": forecaster_bytes(d),
        "text": language_model_bytes(d),
        "classify": sequence_classifier_bytes(d),
        "generic": generic_bytes(d),
    }
    return files, d / "fuzzed.lstmkit"


# -- mutations -------------------------------------------------------------------------------------
class Nested:
    """A JSON text inside ``__metadata__``, parsed so that edits can reach inside it."""

    def __init__(self, value):
        self.value = value


class Raw:
    """Raw JSON text: ints past Python's 4300-digit str limit, nesting deeper than json.dumps
    can write."""

    def __init__(self, text):
        self.text = text


def _dumps(tree) -> str:
    raws = []

    def default(o):
        if isinstance(o, Nested):
            return _dumps(o.value)
        if isinstance(o, Raw):
            raws.append(o.text)
            return f"\x00raw{len(raws) - 1}\x00"
        raise TypeError(type(o))

    text = json.dumps(tree, default=default)
    for i, r in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{i}\x00"), r)
    return text


def _tree(blob):
    header, buffer = split(blob)
    meta = header.get("__metadata__", {})
    for key in NESTED:
        if isinstance(meta.get(key), str):
            meta[key] = Nested(json.loads(meta[key]))
    return header, buffer


def _slots(tree):
    """Every ``(container, key)`` in the tree, nested JSON texts included."""
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Nested):
            out.append((node, "value"))
            stack.append(node.value)
        elif isinstance(node, dict):
            out.extend((node, k) for k in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            out.extend((node, i) for i in range(len(node)))
            stack.extend(node)
    return out


def _regions(header):
    """The slots by region: the tensor entries, ``__metadata__`` itself, and each nested JSON
    text (drawn region first, so that the small ones are edited as often as the big ones)."""
    meta = header.get("__metadata__", {})
    regions = {
        "tensors": _slots({k: v for k, v in header.items() if k != "__metadata__"}),
        "__metadata__": [(meta, k) for k in meta],
    }
    regions.update({k: _slots(meta[k]) for k in NESTED if isinstance(meta.get(k), Nested)})
    return {k: v for k, v in regions.items() if v}


def _get(c, k):
    return c.value if isinstance(c, Nested) else c[k]


def _set(c, k, v):
    if isinstance(c, Nested):
        c.value = v
    else:
        c[k] = v


SCALARS = st.one_of(
    st.sampled_from([0, -1, 1, 2, 3, 7, 2**31, 2**62, 2**64, 10**20, -(10**9), 10**6]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, -0.5, 1.0, 1e308, 1e-320, float("nan"), float("inf")]),
    st.text(max_size=12),
    st.sampled_from(["", "24", "float16", "Sequential", "LSTM", "none", "log", "true", "x" * 5000]),
    st.none(),
    st.booleans(),
    st.builds(lambda n: Raw("9" * n), st.sampled_from([30, 400, 5000])),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=6), SCALARS, max_size=3),
    st.builds(lambda d: json.loads("[" * d + "]" * d), st.integers(2, 70)),
)


def _edit_json(data, header):
    regions = _regions(header)
    # the app facts twice as often: each app reads them in its own way
    region = data.draw(st.sampled_from(sorted(regions) + ["metadata"] * ("metadata" in regions)))
    parent, key = data.draw(st.sampled_from(regions[region]), label="slot")
    value = _get(parent, key)
    how = data.draw(st.sampled_from(["replace", "replace", "tweak", "drop", "add", "nest"]))
    if how == "nest":
        depth = data.draw(st.sampled_from([60, 70, 5000, 100_000]), label="depth")
        _set(parent, key, Raw("[" * depth + "0" + "]" * depth))
    elif how == "tweak" and isinstance(value, int) and not isinstance(value, bool):
        factor = data.draw(st.sampled_from([-1, 0, 2, 1000, 10**6]), label="factor")
        _set(parent, key, value * factor + data.draw(st.integers(-2, 2), label="shift"))
    elif how == "drop" and isinstance(parent, (dict, list)):
        del parent[key]
    elif how == "add" and isinstance(value, (dict, list)):
        extra = data.draw(VALUES, label="added")
        if isinstance(value, dict):
            value[data.draw(st.text(max_size=8), label="new key")] = extra
        else:
            value.append(extra)
    else:
        _set(parent, key, data.draw(VALUES, label="value"))
    return how


def _grow(data, blob):
    """Multiply one int of the architecture (a size, mostly): the issue's case."""
    header, buffer = _tree(blob)
    spec = header["__metadata__"]["model"]
    ints = [(c, k) for c, k in _slots(spec) if type(_get(c, k)) is int]
    parent, key = data.draw(st.sampled_from(ints), label="int")
    _set(parent, key, _get(parent, key) * data.draw(st.sampled_from([3, 100, 10**4, 10**6])))
    return join(None, buffer, raw=_dumps(header).encode())


def _edit_tensor(data, header, buffer):
    """Change one tensor entry: its shape (also keeping its byte size, so that the header
    still tiles the file), its dtype, or its offsets."""
    names = sorted(k for k in header if k != "__metadata__")
    e = header[data.draw(st.sampled_from(names), label="tensor")]
    how = data.draw(st.sampled_from(["same size", "shape", "dtype", "offsets"]), label="edit")
    n = math.prod(e["shape"])
    if how == "same size":  # the header stays consistent: only the architecture check sees it
        e["shape"] = data.draw(st.sampled_from([[n], [1, n], [n, 1], e["shape"][::-1], []]))
        if e["shape"] == [] and n != 1:
            e["shape"] = [n]
    elif how == "shape":
        e["shape"] = data.draw(st.lists(st.integers(0, 2**40), max_size=4), label="shape")
    elif how == "dtype":
        e["dtype"] = data.draw(st.sampled_from(["F64", "F16", "I64", "I32", "U8", "BOOL", "BF16"]))
    else:
        e["data_offsets"] = [o + data.draw(st.integers(-8, 8)) for o in e["data_offsets"]]
    return join(header, buffer)


#: mutation kinds, repeated by weight: header edits and architecture sizes most often
KINDS = (
    ["json"] * 3
    + ["grow"] * 3
    + ["tensor", "flip header", "flip data", "flip data", "flip"]
    + ["cut", "append"]
)


def mutate(data, blob) -> bytes:
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    event(f"mutation: {kind}")
    if kind == "json":
        header, buffer = _tree(blob)
        for _ in range(data.draw(st.integers(1, 3), label="edits")):
            event(f"json edit: {_edit_json(data, header)}")
        return join(None, buffer, raw=_dumps(header).encode())
    if kind == "grow":
        return _grow(data, blob)
    if kind == "tensor":
        return _edit_tensor(data, *split(blob))
    if kind == "cut":
        return blob[: data.draw(st.integers(0, len(blob) - 1), label="length")]
    if kind == "append":
        return blob + data.draw(st.binary(min_size=1, max_size=64), label="tail")
    start, end = 0, len(blob)
    if kind != "flip":  # the header, or the tensors' bytes (the weights' values)
        cut = 8 + int.from_bytes(blob[:8], "little")
        start, end = (0, cut) if kind == "flip header" else (cut, len(blob))
    out = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        i = data.draw(st.integers(start, end - 1), label="at")
        out[i] ^= data.draw(st.integers(1, 255), label="xor")
    return bytes(out)


# -- outcomes --------------------------------------------------------------------------------------
LOADERS = {
    "load_model": lambda p: lstmkit.load_model(p),
    "load_model(compile=False)": lambda p: lstmkit.load_model(p, compile=False),
    "runtime.load": runtime.load,
}


def _bounded_weights(model) -> bool:
    return all(
        np.isfinite(p).all() and np.abs(p).max(initial=0) <= 1e3 for p in model.params.values()
    )


def check_model(model, who):
    x = sample_input(model)
    if x is None:
        return
    y = model.predict(x)
    y = y[0] if isinstance(y, list) else y  # return_state on the last layer
    out = model.output_shape[1:]  # Keras' shapes: the batch axis first
    expected = (len(x),) + tuple(x.shape[1 + i] if s is None else s for i, s in enumerate(out))
    assert y.shape == expected, f"{who}: predict gave {y.shape}, the architecture says {expected}"
    if _bounded_weights(model):
        assert np.isfinite(y).all(), f"{who}: non-finite output from bounded weights"


def use_app(kind, model):
    """The app that wrote the file, on the loaded model; a ValueError is a clean refusal."""
    from lstmkit.apps.classify import predict_sequences
    from lstmkit.apps.forecast import forecast, forecaster_meta
    from lstmkit.apps.text import generate

    try:
        if kind == "forecast":
            meta = forecaster_meta(model)
            if meta["lookback"] > 10_000:
                return
            fc = forecast(model, 10 + np.sin(np.arange(meta["lookback"] + 5)))
            assert fc.shape == (meta["horizon"],)
        elif kind == "text":
            assert generate(model, TEXT[:3], 3, seed=0).startswith(TEXT[:3])
        elif kind == "classify":
            rows = predict_sequences(model, [np.ones((4, 2)), np.zeros((3, 2))])
            assert len(rows) == 2 and all(0 <= p <= 1 for _, p in rows)
    except ModelFileError:
        raise
    except ValueError:
        event("app: ValueError")


def outcome(kind, path) -> str:
    """Run every loader on ``path``; returns "loaded" or "refused"."""
    result = set()
    for who, load in LOADERS.items():
        try:
            model = load(path)
        except ModelFileError as e:
            assert str(e), who
            result.add("refused")
            continue
        result.add("loaded")
        check_model(model, who)
        if who == "load_model(compile=False)":
            use_app(kind, model)
    return "loaded" if "loaded" in result else "refused"  # compile=True may refuse alone


def check_mutation(bases, data) -> str:
    files, path = bases
    kind = data.draw(st.sampled_from(sorted(files)), label="file")
    path.write_bytes(mutate(data, files[kind]))
    tracemalloc.start()
    start = time.process_time()
    try:
        result = outcome(kind, path)
        elapsed = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert elapsed < CPU_SECONDS, f"{elapsed:.2f} s of CPU time"
    assert peak < MEGABYTES, f"{peak:.1f} MB allocated"
    event(f"outcome: {result}")
    return result


def run(bases, **config):
    outcomes = Counter()

    @settings(
        deadline=None,  # the bound is CPU time, checked above: wall time varies with the load
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **config,
    )
    @given(data=st.data())
    def prop(data):
        outcomes[check_mutation(bases, data)] += 1

    prop()
    return outcomes


def test_mutated_model_files_load_correctly_or_are_refused_cleanly(bases):
    outcomes = run(bases, max_examples=250, derandomize=True)
    # the cases exercised both outcomes: not every mutation is caught by the first check
    assert outcomes["loaded"] >= 20 and outcomes["refused"] >= 100, outcomes


@pytest.mark.slow
def test_many_mutated_model_files(bases):
    outcomes = run(bases, max_examples=5000)
    assert outcomes["loaded"] >= 100 and outcomes["refused"] >= 1000, outcomes
