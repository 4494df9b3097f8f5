"""The NumPy-only runtime (``lstmkit.runtime``) and its safetensors reader (``lstmkit._safetensors_np``).

- in a fresh interpreter, ``import lstmkit.runtime`` + ``load`` + ``predict`` imports none of
  torch, matplotlib, onnx, tqdm, safetensors or lstmkit's trainer, and equals the full model's
  ``predict`` (with ``LSTMKIT_BACKEND=numpy`` not even numba or scipy is imported);
- the runtime equals ``Sequential.predict`` on masked, bidirectional and embedding models, and
  refuses corrupt or mismatched files with ``ModelFileError``;
- the reader returns bit-identical arrays (every dtype, NaN payloads, -0.0, empty and 0-d
  tensors) and the metadata of files written by the safetensors library; the writer's bytes equal
  the library's; hostile headers are refused with errors that say what is wrong.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from interop_models import randomize
from lstmkit import GRU, LSTM, Bidirectional, Dense, Embedding, Masking, Sequential, runtime
from lstmkit import _safetensors_np as stnp
from lstmkit.ops import backend
from lstmkit.saving import ModelFileError

FORBIDDEN = [
    "torch",
    "matplotlib",
    "onnx",
    "onnxruntime",
    "tqdm",
    "safetensors",
    "keras",
    "h5py",
    "lstmkit.models",
    "lstmkit.models.training",
    "lstmkit.optimizers",
    "lstmkit.losses",
    "lstmkit.callbacks",
    "lstmkit.interop",
]

PROBE = """
import json, sys
import numpy as np
import lstmkit.runtime as runtime
model = runtime.load(sys.argv[1])
y = model.predict(np.load(sys.argv[2]))
np.save(sys.argv[3], y)
print(json.dumps(sorted(m for m in sys.modules)))
"""


def _forecaster():
    model = Sequential(
        [
            LSTM(16, return_sequences=True, input_shape=(12, 3), name="lstm"),
            GRU(8, name="gru"),
            Dense(4, activation="tanh", name="dense"),
        ]
    )
    return randomize(model, 0)


@pytest.mark.parametrize("backend_name,weights", [("auto", "float"), ("numpy", "float"),
                                                  ("numpy", "int8")])  # fmt: skip
def test_runtime_imports_only_numpy_and_equals_predict(tmp_path, backend_name, weights):
    model = _forecaster()
    path, xpath, ypath = tmp_path / "m.lstmkit", tmp_path / "x.npy", tmp_path / "y.npy"
    if weights == "int8":  # a quantised file (lstmkit.quantize); the expected output is the
        from lstmkit.quantize import save_quantized  # model on weights dequantised here

        save_quantized(model, path)
        for name, w in model.params.items():
            if name.endswith("kernel"):
                s = np.abs(w).max(axis=0) / 127
                w[...] = np.round(w / s) * s
    else:
        model.save(path)
    x = np.random.default_rng(1).standard_normal((5, 12, 3)).astype(np.float32)
    np.save(xpath, x)
    env = dict(os.environ, LSTMKIT_BACKEND=backend_name)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(xpath), str(ypath)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    modules = set(json.loads(out.stdout))
    assert sorted(modules & set(FORBIDDEN)) == []
    if backend_name == "numpy":
        assert not {"numba", "scipy"} & modules
    previous = backend.get_backend()
    backend.set_backend(backend_name)
    try:
        expected = model.predict(x)
    finally:
        backend.set_backend(previous)
    assert np.abs(np.load(ypath) - expected).max() <= 1e-6


def _save(model, tmp_path, name="m.lstmkit"):
    path = tmp_path / name
    model.save(path)
    return runtime.load(path)


def test_runtime_equals_predict_on_masked_and_bidirectional_models(tmp_path):
    text = Sequential(
        [
            Embedding(9, 4, mask_zero=True, input_shape=(None,)),
            Bidirectional(GRU(5, return_sequences=True)),
            LSTM(3),
            Dense(2),
        ]
    )
    randomize(text, 2)
    ids = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8], [2, 0, 0, 0, 0]])
    rt = _save(text, tmp_path, "text.lstmkit")
    assert np.abs(rt.predict(ids) - text.predict(ids)).max() == 0
    assert rt.output_shape == (None, 2)

    series = randomize(
        Sequential([Masking(0.0, input_shape=(6, 2)), LSTM(4, return_sequences=True), Dense(1)]), 3
    )
    x = np.random.default_rng(4).standard_normal((40, 6, 2))
    x[0, 3:] = 0
    rt = _save(series, tmp_path, "series.lstmkit")
    assert np.abs(rt.predict(x, batch_size=16) - series.predict(x)).max() <= 1e-6
    mask = np.ones((40, 6), bool)
    mask[1, 4:] = False
    assert (
        np.abs(rt.predict(x, mask=mask) - series.predict(x, mask=mask, batch_size=64)).max() <= 1e-6
    )


def test_runtime_keeps_metadata_and_checks_inputs(tmp_path):
    model = _forecaster()
    model.metadata = {"scaler": {"mean": 1.5}}
    rt = _save(model, tmp_path)
    assert rt.metadata == {"scaler": {"mean": 1.5}}
    with pytest.raises(ValueError, match=r"must have shape \(batch, 12, 3\); got \(2, 12, 4\)"):
        rt.predict(np.zeros((2, 12, 4), np.float32))
    with pytest.raises(ValueError, match=r"x_t.*\(batch, 3\)"):
        rt.step(np.zeros((2, 4), np.float32))


def test_runtime_refuses_bad_files(tmp_path):
    model = _forecaster()
    good = tmp_path / "m.lstmkit"
    model.save(good)
    blob = good.read_bytes()

    bad = tmp_path / "truncated.lstmkit"
    bad.write_bytes(blob[:-5])
    with pytest.raises(ModelFileError, match="truncated"):
        runtime.load(bad)

    other = tmp_path / "other.safetensors"
    stnp.save_file({"a": np.zeros(3, np.float32)}, other)
    with pytest.raises(ModelFileError, match="not an lstmkit model file"):
        runtime.load(other)

    tensors, meta = stnp.load_file_with_metadata(good)
    del tensors["weights/dense.bias"]
    tensors["weights/dense.kernel"] = np.zeros((9, 4), np.float32)
    mismatched = tmp_path / "mismatched.lstmkit"
    stnp.save_file(tensors, mismatched, metadata=meta)
    with pytest.raises(ModelFileError, match=r"missing dense.bias.*dense.kernel: expected shape"):
        runtime.load(mismatched)

    with pytest.raises(ModelFileError, match="existing file"):
        runtime.load(tmp_path / "nope.lstmkit")


# -- the safetensors reader and writer --------------------------------------------------------
def _all_dtypes():
    rng = np.random.default_rng(0)
    t = {
        "f64": rng.standard_normal((3, 4)),
        "f32": rng.standard_normal((2, 3, 2)).astype(np.float32),
        "f16": rng.standard_normal(5).astype(np.float16),
        "i64": rng.integers(-(2**62), 2**62, size=4),
        "i32": rng.integers(-(2**30), 2**30, size=(2, 2)).astype(np.int32),
        "i16": np.array([-32768, 0, 32767], np.int16),
        "i8": np.array([-128, 5, 127], np.int8),
        "u64": np.array([0, 2**64 - 1], np.uint64),
        "u32": np.array([2**32 - 1], np.uint32),
        "u16": np.array([65535, 1], np.uint16),
        "u8": np.arange(256, dtype=np.uint8),
        "bool": np.array([[True, False], [False, True]]),
        "scalar": np.array(3.25, np.float32),
        "empty": np.zeros((0, 7), np.float32),
    }
    # special float bit patterns: a NaN with a payload, -0.0, +-inf, a subnormal
    special = np.array([0x7FC00123, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001], np.uint32)
    t["special"] = special.view(np.float32)
    return t


def test_reader_is_bit_identical_to_the_library(tmp_path):
    from safetensors.numpy import load_file, save_file

    tensors = _all_dtypes()
    path = tmp_path / "lib.safetensors"
    save_file(tensors, path, metadata={"format": "np", "note": "ünïcode"})
    ours, meta = stnp.load_file_with_metadata(path)
    ref = load_file(path)
    assert meta == {"format": "np", "note": "ünïcode"}
    assert list(ours) == list(ref) and set(ours) == set(tensors)
    for k, a in ref.items():
        assert ours[k].dtype == a.dtype and ours[k].shape == a.shape, k
        assert ours[k].tobytes() == a.tobytes() == tensors[k].tobytes(), k
        assert ours[k].flags.writeable and ours[k].flags.c_contiguous


def test_writer_matches_the_library(tmp_path):
    from safetensors.numpy import load_file, save_file

    tensors = _all_dtypes()
    lib, ours = tmp_path / "lib.safetensors", tmp_path / "ours.safetensors"
    save_file(tensors, lib, metadata={"k": "v"})
    stnp.save_file(tensors, ours, metadata={"k": "v"})
    assert ours.read_bytes() == lib.read_bytes()
    back = load_file(ours)
    assert all(back[k].tobytes() == tensors[k].tobytes() for k in tensors)


def _file(header, data=b"", raw=None):
    head = raw if raw is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + data


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
HOSTILE = {
    "too short": (b"\x01\x00", "too short"),
    "length beyond file": (struct.pack("<Q", 1000) + b"{}", "header length 1000 is invalid"),
    "huge length": (struct.pack("<Q", 2**63) + b"{}", "is invalid"),
    "not json": (_file(None, raw=b"{not json}"), "not valid UTF-8 JSON"),
    "bad utf8": (_file(None, raw=b'{"\xff": 1}'), "not valid UTF-8 JSON"),
    "json array": (_file(None, raw=b"[1, 2]"), "must start with"),
    "duplicate key": (_file(None, raw=b'{"a": {}, "a": {}}'), "duplicate key 'a'"),
    "unknown dtype": (_file({"a": {**F32, "dtype": "BF16"}}, b"\0" * 8), "dtype 'BF16'"),
    "negative shape": (_file({"a": {**F32, "shape": [-2]}}, b"\0" * 8), "non-negative ints"),
    "bool shape": (_file({"a": {**F32, "shape": [True]}}, b"\0" * 4), "non-negative ints"),
    "size mismatch": (_file({"a": {**F32, "shape": [3]}}, b"\0" * 8), "needs 12 bytes"),
    "reversed offsets": (_file({"a": {**F32, "data_offsets": [8, 0]}}, b"\0" * 8), "0 <= begin"),
    "extra field": (_file({"a": {**F32, "x": 1}}, b"\0" * 8), "exactly 'dtype'"),
    "overlap": (
        _file({"a": F32, "b": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12),
        "overlaps",
    ),
    "gap": (_file({"a": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12), "leaves a gap"),
    "trailing data": (_file({"a": F32}, b"\0" * 12), "cover 8 bytes of a 12-byte buffer"),
    "truncated buffer": (_file({"a": F32}, b"\0" * 5), "cover 8 bytes of a 5-byte buffer"),
    "metadata not strings": (_file({"__metadata__": {"a": 1}}), "map strings to strings"),
    "bool byte 2": (
        _file({"a": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02"),
        "other than 0 and 1",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_headers_are_refused(tmp_path, case):
    blob, message = HOSTILE[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(stnp.SafetensorsError, match=message):
        stnp.load_file(path)
    with pytest.raises(ModelFileError):
        runtime.load(path)


def test_writer_rejects_unsupported_dtypes(tmp_path):
    with pytest.raises(ValueError, match="complex128"):
        stnp.save_file({"a": np.zeros(2, complex)}, tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match="metadata"):
        stnp.save_file({"a": np.zeros(2)}, tmp_path / "c.safetensors", metadata={"a": 1})
