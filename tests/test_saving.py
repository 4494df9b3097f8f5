"""``model.save`` / ``lstmkit.load_model``: one safetensors file, never pickle, atomic, strict.

Witnesses:
- bit-identical round trips: predictions, weights, config and optimizer state after save -> load;
- an uninterrupted seeded run: save after epoch k, load, ``fit(initial_epoch=k)`` must reproduce
  its loss curve and final weights exactly (Adam state, shuffling and dropout all resume);
- the file system: a writer that crashes halfway leaves the previous bytes and no temp files;
- hostile files built here by hand (random bytes, truncation, lying header lengths, a live pickle
  whose unpickling would create a marker file, tampered tensors and architecture JSON) each give
  a ``ModelFileError`` (a ``ValueError``) that says what is wrong.
"""

from __future__ import annotations

import json
import os
import pickle
import struct

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import lstmkit
from lstmkit import LSTM, Dense, Sequential, load_model
from lstmkit.callbacks import ModelCheckpoint
from lstmkit.layers import GRU, Bidirectional, Dropout, Embedding
from lstmkit.saving import ModelFileError


def forecaster(dtype=None, seed=3):
    lstmkit.set_random_seed(seed)
    model = Sequential(
        [
            LSTM(5, input_shape=(6, 2), return_sequences=True, dropout=0.2, recurrent_dropout=0.1),
            Dropout(0.3),
            Bidirectional(GRU(3)),
            Dense(1),
        ],
        dtype=dtype,
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def series(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, 6, 2)).astype("float32"),
        rng.standard_normal((n, 1)).astype("float32"),
    )


def saved(tmp_path, name="model.lstmkit", epochs=1):
    model = forecaster()
    x, y = series()
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    path = tmp_path / name
    model.save(path)
    return model, path


def rewrite(path, tensors=None, meta=None, edit_meta=None):
    """Re-save a model file with changed tensors and/or metadata (what a tamperer would do)."""
    with safe_open(str(path), "np") as f:
        old_meta = f.metadata()
    tensors = load_file(str(path)) if tensors is None else tensors
    meta = dict(old_meta if meta is None else meta)
    if edit_meta:
        edit_meta(meta)
    save_file(tensors, str(path), metadata=meta)


def edit_model_json(path, edit):
    def _edit(meta):
        spec = json.loads(meta["model"])
        edit(spec)
        meta["model"] = json.dumps(spec)

    rewrite(path, edit_meta=_edit)


# -- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [None, "float64"])
def test_save_load_predicts_bit_identically(tmp_path, dtype):
    model = forecaster(dtype)
    x, y = series()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.metadata = {"scaler": {"mean": 0.5, "scale": 2.0}}
    model.save(tmp_path / "m.lstmkit")
    loaded = load_model(tmp_path / "m.lstmkit")
    assert loaded.get_config() == model.get_config()
    assert loaded.metadata == model.metadata
    assert set(loaded.params) == set(model.params)
    for k, v in model.params.items():
        assert loaded.params[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded.params[k], v)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    state, loaded_state = model.optimizer.get_state(), loaded.optimizer.get_state()
    assert sorted(state) == sorted(loaded_state) and int(loaded_state["iterations"]) == 5
    for k in state:
        np.testing.assert_array_equal(loaded_state[k], state[k])
    assert loaded.seed == model.seed


def test_embedding_model_round_trip(tmp_path):
    lstmkit.set_random_seed(0)
    model = Sequential(
        [
            Embedding(12, 4, mask_zero=True, input_shape=(5,)),
            LSTM(3, return_sequences=True),
            Dense(2),
        ]
    )
    ids = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 11]])
    model.save(tmp_path / "e.lstmkit")  # never compiled: architecture and weights only
    loaded = load_model(tmp_path / "e.lstmkit")
    assert not loaded.compiled
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))


def test_resumed_run_continues_the_uninterrupted_loss_curve_exactly(tmp_path):
    x, y = series()
    straight = forecaster()
    full = straight.fit(x, y, epochs=4, batch_size=8, verbose=0).history

    first = forecaster()
    first.fit(x, y, epochs=2, batch_size=8, verbose=0)
    first.save(tmp_path / "ckpt.lstmkit")
    resumed = load_model(tmp_path / "ckpt.lstmkit")
    rest = resumed.fit(x, y, epochs=4, batch_size=8, verbose=0, initial_epoch=2)

    assert rest.epoch == [2, 3]
    assert rest.history["loss"] == full["loss"][2:]
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_without_optimizer_state_the_optimizer_starts_fresh(tmp_path):
    model, _ = saved(tmp_path)
    model.save(tmp_path / "light.lstmkit", include_optimizer=False)
    loaded = load_model(tmp_path / "light.lstmkit")
    assert loaded.compiled and loaded.optimizer.iterations == 0
    assert not any(k.startswith("optimizer/") for k in load_file(str(tmp_path / "light.lstmkit")))
    assert not load_model(tmp_path / "light.lstmkit", compile=False).compiled


def test_save_weights_load_weights_and_checkpoint_callback(tmp_path):
    model, _ = saved(tmp_path)
    x, y = series()
    other = forecaster(seed=99)
    assert not np.array_equal(other.predict(x), model.predict(x))
    model.save_weights(tmp_path / "w.lstmkit")
    other.load_weights(tmp_path / "w.lstmkit")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))

    pattern = str(tmp_path / "ck" / "e{epoch}.lstmkit")
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=8,
        verbose=0,
        callbacks=[ModelCheckpoint(pattern, save_weights_only=True)],
    )
    assert sorted(os.listdir(tmp_path / "ck")) == ["e1.lstmkit", "e2.lstmkit"]
    other.load_weights(tmp_path / "ck" / "e2.lstmkit")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))

    lstmkit.set_random_seed(0)
    different = Sequential(
        [LSTM(5, input_shape=(6, 2), return_sequences=True), Dropout(0.1), GRU(3), Dense(1)]
    )
    before = different.get_weights()
    with pytest.raises(ModelFileError, match="weights do not match the model") as err:
        different.load_weights(tmp_path / "w.lstmkit")
    msg = str(err.value)  # the renamed file keys that the other model does not have, all listed
    assert f"missing {different.layers[2].name}.bias (2, 9)" in msg
    assert f"unexpected {different.layers[2].name}.forward.bias (2, 9)" in msg
    for a, b in zip(before, different.get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing was half-loaded


def test_saving_an_unbuilt_model_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="has not been built"):
        Sequential([LSTM(2), Dense(1)]).save(tmp_path / "x.lstmkit")
    assert os.listdir(tmp_path) == []


# -- atomic writes ------------------------------------------------------------------------------
def crashing_writer(tensors, filename, metadata=None):
    with open(filename, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{partial")
    raise OSError("disk full (simulated)")


def test_a_crash_mid_save_keeps_the_previous_file_and_leaves_no_temp_files(tmp_path, monkeypatch):
    model, path = saved(tmp_path)
    before = path.read_bytes()
    model.fit(*series(), epochs=1, batch_size=8, verbose=0)  # new weights to (fail to) save
    monkeypatch.setattr("safetensors.numpy.save_file", crashing_writer)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "new.lstmkit")
    assert os.listdir(tmp_path) == [path.name]  # no half-written new file either
    monkeypatch.undo()
    model.save(path)  # and a good save does replace it
    assert path.read_bytes() != before
    np.testing.assert_array_equal(load_model(path).predict(series()[0]), model.predict(series()[0]))


# -- corrupt, truncated and hostile files -------------------------------------------------------
class Plant:
    """Unpickling this creates the file at ``path``: proof that something was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_the_pickle_payload_is_live():
    # the control for the pickle tests below: unpickling really would create the marker
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        marker = os.path.join(d, "control")
        pickle.loads(pickle.dumps(Plant(marker))).close()
        assert os.path.exists(marker)


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_file_is_rejected_without_being_unpickled(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.lstmkit"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(Plant(marker)))
    else:
        torch = pytest.importorskip("torch")
        torch.save({"weights": Plant(marker)}, path)
    with pytest.raises(ModelFileError, match="not an lstmkit model file|corrupt or truncated"):
        load_model(path)
    assert not marker.exists()


def _bytes_of_a_good_file(tmp_path):
    return saved(tmp_path, name="good.lstmkit")[1].read_bytes()


def _header_len(blob):
    return struct.unpack("<Q", blob[:8])[0]


CORRUPTIONS = {
    "empty": lambda good: b"",
    "random bytes": lambda good: np.random.default_rng(0).bytes(4096),
    "seven bytes": lambda good: good[:7],
    "truncated in the header": lambda good: good[: 8 + _header_len(good) // 2],
    "truncated in the tensors": lambda good: good[: len(good) - 100],
    "header length beyond the file": lambda good: struct.pack("<Q", len(good)) + good[8:],
    "huge header length": lambda good: struct.pack("<Q", 2**62) + good[8:],
    "zero header length": lambda good: struct.pack("<Q", 0) + good[8:],
    "header not utf-8": lambda good: struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc",
    "header not json": lambda good: struct.pack("<Q", 8) + b"{oops: 1",
    "header a json list": lambda good: struct.pack("<Q", 2) + b"[]",
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_or_truncated_files_give_a_model_file_error(tmp_path, kind):
    bad = tmp_path / "bad.lstmkit"
    bad.write_bytes(CORRUPTIONS[kind](_bytes_of_a_good_file(tmp_path)))
    with pytest.raises(ModelFileError, match=r"load_model: .*bad\.lstmkit") as err:
        load_model(bad)
    assert isinstance(err.value, ValueError)


def test_missing_path_and_directory_give_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="argument 'path' must be an existing file"):
        load_model(tmp_path / "nope.lstmkit")
    with pytest.raises(ModelFileError, match="argument 'path' must be an existing file"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    "meta, message",
    [
        ({}, r"not an lstmkit model file \(format None\)"),
        (
            {"format": "keras", "format_version": "1"},
            r"not an lstmkit model file \(format 'keras'\)",
        ),
        ({"format": "lstmkit", "format_version": "99"}, "format version '99'"),
    ],
)
def test_valid_safetensors_with_the_wrong_format_tag_is_rejected(tmp_path, meta, message):
    path = tmp_path / "other.safetensors"
    save_file(
        {"weights/dense.kernel": np.zeros((2, 1), np.float32)}, str(path), metadata=meta or None
    )
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_wrong_shapes_are_all_listed_in_one_error(tmp_path):
    model, path = saved(tmp_path)
    tensors = load_file(str(path))
    lstm, _, bi, dense = (layer.name for layer in model.layers)
    tensors[f"weights/{lstm}.kernel"] = np.zeros((3, 20), np.float32)
    tensors[f"weights/{bi}.backward.bias"] = np.zeros((2, 8), np.float32)
    tensors[f"weights/{dense}.bias"] = np.zeros((2,), np.float32)
    rewrite(path, tensors)
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    msg = str(err.value)
    assert f"{lstm}.kernel: expected shape (2, 20), got (3, 20)" in msg
    assert f"{bi}.backward.bias: expected shape (2, 9), got (2, 8)" in msg
    assert f"{dense}.bias: expected shape (1,), got (2,)" in msg


@pytest.mark.parametrize("change", ["missing", "extra", "nan", "inf"])
def test_missing_extra_and_non_finite_weights_are_rejected(tmp_path, change):
    model, path = saved(tmp_path)
    tensors = load_file(str(path))
    key = f"weights/{model.layers[-1].name}.kernel"
    if change == "missing":
        del tensors[key]
        expected = f"missing {key[len('weights/') :]} (6, 1)"  # Bidirectional concat: 2 * 3
    elif change == "extra":
        tensors["weights/stowaway.kernel"] = np.ones((2, 2), np.float32)
        expected = "unexpected stowaway.kernel (2, 2)"
    else:
        tensors[key] = tensors[key].copy()
        tensors[key][1, 0] = np.nan if change == "nan" else np.inf
        expected = f"{key[len('weights/') :]}: contains NaN or Inf"
    rewrite(path, tensors)
    with pytest.raises(ModelFileError, match="weights do not match the model") as err:
        load_model(path)
    assert expected in str(err.value)


def test_tampered_optimizer_state_is_rejected(tmp_path):
    model, path = saved(tmp_path)
    tensors = load_file(str(path))
    key = f"optimizer/m/{model.layers[-1].name}.kernel"
    assert key in tensors
    tensors[key] = np.zeros((4, 4), np.float32)
    tensors["optimizer/iterations"] = np.array([1, 2], np.int64)
    rewrite(path, tensors)
    with pytest.raises(ModelFileError, match=r"optimizer state does not match.*expected shape"):
        load_model(path)
    assert load_model(path, compile=False).predict(series()[0]).shape == (40, 1)


def test_tampered_compile_settings_are_rejected(tmp_path):
    _, path = saved(tmp_path)

    def edit(meta):
        comp = json.loads(meta["compile"])
        comp["optimizer"] = {"class_name": "Adam", "config": {"learning_rate": -1}}
        meta["compile"] = json.dumps(comp)

    rewrite(path, edit_meta=edit)
    with pytest.raises(ModelFileError, match="invalid compile settings.*learning_rate"):
        load_model(path)


def _first_layer(spec):
    return spec["config"]["layers"][0]


ARCH_EDITS = {
    "unknown layer class": (
        lambda spec: _first_layer(spec).update(class_name="TFOpLambda"),
        "unknown layer class 'TFOpLambda'",
    ),
    "unexpected constructor kwarg": (
        lambda spec: _first_layer(spec)["config"].update(function="os.system('touch x')"),
        "unexpected keyword argument 'function'",
    ),
    "unknown nested layer class": (
        lambda spec: spec["config"]["layers"][2]["config"]["layer"].update(class_name="Exec"),
        "unknown layer class 'Exec'",
    ),
    "unexpected nested kwarg": (
        lambda spec: spec["config"]["layers"][2]["config"]["layer"]["config"].update(code="x"),
        "unexpected keyword argument 'code'",
    ),
    "layer config not a dict": (
        lambda spec: _first_layer(spec).update(config=["LSTM", 5]),
        "must be a dict",
    ),
    "invalid value": (
        lambda spec: _first_layer(spec)["config"].update(units=-5),
        "argument 'units' must be a positive int",
    ),
    "unsupported model class": (
        lambda spec: spec.update(class_name="Transformer"),
        "unsupported model description",
    ),
    "layers missing": (
        lambda spec: spec["config"].pop("layers"),
        "must be a dict with a 'layers' list",
    ),
}


@pytest.mark.parametrize("kind", sorted(ARCH_EDITS))
def test_hostile_or_broken_architecture_json_is_rejected(tmp_path, kind):
    _, path = saved(tmp_path)
    edit, message = ARCH_EDITS[kind]
    edit_model_json(path, edit)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_architecture_that_is_not_json_is_rejected(tmp_path):
    _, path = saved(tmp_path)
    rewrite(path, edit_meta=lambda meta: meta.update(model="{'class_name': 'Sequential'"))
    with pytest.raises(ModelFileError, match="corrupt 'model' JSON"):
        load_model(path)
