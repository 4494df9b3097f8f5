"""Hostile model files (issue 17): sizes checked against the file before anything is allocated,
JSON size and depth limited, every header value checked by type and range.

Each loader a user reaches is tried: ``lstmkit.load_model``, ``lstmkit.runtime.load``,
``Sequential.load_weights`` and ``lstmkit forecast predict``. Witnesses:

- time and memory measured around the refusal (CPU time, ``tracemalloc`` peak: NumPy reports its
  buffers there), against what the architecture would cost: the expected shapes and parameter
  counts are computed here from the documented weight layouts (``kernel (D, 4H)``,
  ``recurrent_kernel (H, 4H)``, ``bias (4H,)`` ...), not taken from the code under test;
- the exception type (a ``ModelFileError``, never ``MemoryError``, ``RecursionError`` or
  ``TypeError``) and a message naming the file, the field, the value and what was expected;
- for the shape derivation, the shapes a real ``build`` allocates, layer by layer.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc

import numpy as np
import pytest

import lstmkit
from lstmkit import LSTM, Dense, Sequential, runtime
from lstmkit import random as lk_random
from lstmkit.cli import main as cli
from lstmkit.layers import GRU, Bidirectional, Dropout, Embedding, Layer, Masking, SimpleRNN
from lstmkit.saving import ModelFileError
from model_files import (
    deep,
    edit_nested,
    forecaster_bytes,
    generic_bytes,
    join,
    language_model_bytes,
    layer_names,
    sequence_classifier_bytes,
    split,
    with_nested_text,
)

LOADERS = {
    "load_model": lambda p: lstmkit.load_model(p),
    "load_model(compile=False)": lambda p: lstmkit.load_model(p, compile=False),
    "runtime.load": lambda p: runtime.load(p),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    return {
        # the "60 KB file": LSTM(32) on 24 steps -> Dense(12) with its Adam state,
        # written by forecast train
        "forecast60k": forecaster_bytes(d, units=32, lookback=24, horizon=12),
        "forecast": forecaster_bytes(d),
        "text": language_model_bytes(d),
        "classify": sequence_classifier_bytes(d),
        "generic": generic_bytes(d),
    }


def write(tmp_path, blob, name="hostile.lstmkit"):
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def refused(load, path, seconds=1.0, megabytes=8.0) -> str:
    """``load(path)`` must raise ModelFileError within ``seconds`` of CPU time and ``megabytes``
    of peak traced allocation; returns the message."""
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(ModelFileError) as err:
            load(path)
    finally:
        elapsed = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    assert isinstance(err.value, ValueError)
    assert elapsed < seconds, f"refused after {elapsed:.2f} s of CPU time"
    assert peak < megabytes, f"refused after allocating {peak:.1f} MB"
    assert repr(os.fspath(path)) in str(err.value)  # the message names the file
    return str(err.value)


def set_units(units):
    def edit(spec):
        spec["config"]["layers"][0]["config"]["units"] = units

    return edit


# -- the cases ---------------------------------------------------------------------------
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_units_100000_in_a_60kb_file_is_refused_at_once(tmp_path, files, loader):
    # before: Sequential.from_config allocated a (100000, 400000) recurrent kernel: MemoryError
    path = write(tmp_path, edit_nested(files["forecast60k"], "model", set_units(100_000)))
    assert 50_000 < path.stat().st_size < 70_000
    msg = refused(LOADERS[loader], path)
    H, D = 100_000, 1
    lstm, dense = layer_names(path.read_bytes())
    assert "weights do not match the model" in msg
    assert f"{lstm}.kernel: expected shape ({D}, {4 * H}), got (1, 128)" in msg
    assert f"{lstm}.recurrent_kernel: expected shape ({H}, {4 * H}), got (32, 128)" in msg
    assert f"{lstm}.bias: expected shape ({4 * H},), got (128,)" in msg
    assert f"{dense}.kernel: expected shape ({H}, 12), got (32, 12)" in msg
    n = 4 * H * (D + H + 1) + H * 12 + 12
    assert f"the architecture implies {n:,} parameters, {4 * n:,} bytes" in msg


def test_units_4000_is_refused_in_under_a_second(tmp_path, files):
    # before: 2 minutes and 2.5 GB (an orthogonal 4000 x 16000 initializer), then the refusal
    path = write(tmp_path, edit_nested(files["forecast60k"], "model", set_units(4000)))
    lstm = layer_names(path.read_bytes())[0]
    for load in LOADERS.values():
        msg = refused(load, path, seconds=1.0, megabytes=4.0)
        assert f"{lstm}.recurrent_kernel: expected shape (4000, 16000), got (32, 128)" in msg


def test_load_weights_and_the_forecast_cli_refuse_it_too(tmp_path, files, capsys):
    path = write(tmp_path, edit_nested(files["forecast60k"], "model", set_units(100_000)))
    model = Sequential([LSTM(32, input_shape=(24, 1)), Dense(12)])
    before = model.get_weights()
    refused(model.load_weights, path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)

    csv = tmp_path / "series.csv"
    csv.write_text("t,y\n" + "".join(f"{i},{np.sin(i):.4f}\n" for i in range(60)))
    out = tmp_path / "fc.csv"
    start = time.process_time()
    assert cli(["forecast", "predict", str(path), str(csv), "--out", str(out)]) == 2
    assert time.process_time() - start < 1.0
    err = capsys.readouterr().err
    assert "recurrent_kernel: expected shape (100000, 400000), got (32, 128)" in err
    assert "Traceback" not in err and not out.exists()


def test_the_first_layers_input_shape_is_the_one_checked(tmp_path, files):
    # Sequential takes its input shape from the first layer's config when it has one (a case
    # the fuzz test found: the model's own input_shape said 2 features, the first layer's 2e6)
    def grow(spec):
        spec["config"]["layers"][0]["config"]["input_shape"] = [None, 2_000_000]

    path = write(tmp_path, edit_nested(files["classify"], "model", grow))
    for load in LOADERS.values():
        msg = refused(load, path)
        assert "forward.kernel: expected shape (2000000, 12), got (2, 12)" in msg


@pytest.mark.parametrize("where", ["header", *("model", "compile", "metadata")])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_deeply_nested_json_is_refused_without_recursion_error(tmp_path, files, where, loader):
    # before: json.loads raised RecursionError (not a ValueError)
    depth = 100_000
    if where == "header":  # the safetensors header itself
        header, buffer = split(files["generic"])
        raw = json.dumps(header)[:-1] + ', "x": ' + deep(depth) + "}"
        blob = join(None, buffer, raw=raw.encode())
    else:  # one of the JSON texts inside __metadata__
        blob = with_nested_text(files["generic"], where, deep(depth))
    msg = refused(LOADERS[loader], write(tmp_path, blob))
    assert f"nested {depth + (where == 'header')} deep, more than the limit of 64" in msg


def test_nesting_up_to_the_limit_loads(tmp_path, files):
    path = write(tmp_path, edit_nested(files["generic"], "metadata", lambda m: m.update(d=[[[1]]])))
    blob = with_nested_text(path.read_bytes(), "metadata", json.dumps({"d": json.loads(deep(63))}))
    assert lstmkit.load_model(write(tmp_path, blob)).metadata["d"] == json.loads(deep(63))


def test_a_header_larger_than_16_mb_is_refused(tmp_path, files):
    # before: accepted up to 100 MB of JSON (parsed into several times that in Python objects)
    blob = edit_nested(files["generic"], "metadata", lambda m: m.update(pad="x" * 17_000_000))
    msg = refused(LOADERS["runtime.load"], write(tmp_path, blob), seconds=2.0, megabytes=2.0)
    assert "header length" in msg and "16777216" in msg


def set_meta(key, value):
    def edit(meta):
        meta[key] = value

    return edit


def drop(key):
    def edit(obj):
        del obj[key]

    return edit


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_string_in_numeric_metadata_is_refused_when_loading(tmp_path, files, loader):
    # before: the file loaded, and forecasting raised TypeError (bad operand for unary -: 'str')
    path = write(tmp_path, edit_nested(files["forecast"], "metadata", set_meta("lookback", "8")))
    msg = refused(LOADERS[loader], path)
    assert "metadata (forecast) 'lookback' must be a positive int; got '8' (str)" in msg


def test_the_forecast_cli_reports_a_string_in_numeric_metadata_in_one_line(tmp_path, files, capsys):
    path = write(tmp_path, edit_nested(files["forecast"], "metadata", set_meta("lookback", "8")))
    csv = tmp_path / "series.csv"
    csv.write_text("t,y\n" + "".join(f"{i},{np.sin(i):.4f}\n" for i in range(60)))
    assert cli(["forecast", "predict", str(path), str(csv), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "'lookback' must be a positive int; got '8' (str)" in err and "Traceback" not in err


# -- every field by type and range ---------------------------------------------------------------
def layer0(key, value):
    def edit(spec):
        spec["config"]["layers"][0]["config"][key] = value

    return edit


def compile_field(key, value):
    def edit(comp):
        comp[key] = value

    return edit


def scaler(key, value):
    def edit(meta):
        meta["scaler"][key] = value

    return edit


def settings(key, value):
    def edit(meta):
        meta["settings"][key] = value

    return edit


def vocab(key, value):
    def edit(meta):
        meta["vocabulary"][key] = value

    return edit


NAN, INF = float("nan"), float("inf")
# (file, JSON text, edit, the message's field and expectation); what the old code did in a
# comment where it was not an error at all
FIELDS = {
    "forecast lookback 0": ("forecast", "metadata", set_meta("lookback", 0), "'lookback' must be a positive int; got 0"),
    "forecast lookback true": ("forecast", "metadata", set_meta("lookback", True), "'lookback' must be a positive int; got True (bool)"),
    "forecast lookback 7 (model reads 8)": ("forecast", "metadata", lambda m: m.update(lookback=7, norm_span=0), "'lookback' must be the model's input length 8; got 7"),
    "forecast horizon -3": ("forecast", "metadata", set_meta("horizon", -3), "'horizon' must be a positive int; got -3"),
    "forecast horizon 2.5": ("forecast", "metadata", set_meta("horizon", 2.5), "'horizon' must be a positive int; got 2.5 (float)"),
    "forecast season null": ("forecast", "metadata", set_meta("season", None), "'season' must be a positive int; got None"),
    "forecast season missing": ("forecast", "metadata", drop("season"), "has no 'season' (required)"),
    "forecast transform": ("forecast", "metadata", set_meta("transform", "cube"), "'transform' must be one of ['none', 'sqrt', 'log']; got 'cube'"),
    "forecast normalize": ("forecast", "metadata", set_meta("normalize", 5), "'normalize' must be one of"),
    "forecast norm_span > lookback": ("forecast", "metadata", set_meta("norm_span", 9), "'norm_span' must be at most lookback=8; got 9"),
    "forecast window_floor 0": ("forecast", "metadata", set_meta("window_floor", 0), "'window_floor' must be a finite number > 0; got 0"),
    "forecast column 5": ("forecast", "metadata", set_meta("column", 5), "'column' must be a string or null; got 5"),
    "forecast scaler mean NaN": ("forecast", "metadata", scaler("mean", [NAN]), "'scaler' 'mean' must be a finite number, or a non-empty list of them; got [nan]"),
    "forecast scaler mean str": ("forecast", "metadata", scaler("mean", ["a"]), "'scaler' 'mean' must be a finite number"),
    "forecast scaler scale 0": ("forecast", "metadata", scaler("scale", [0.0]), "'scaler' 'scale' must be a finite number > 0"),
    "forecast scaler scale inf": ("forecast", "metadata", scaler("scale", [INF]), "'scaler' 'scale' must be a finite number > 0"),
    "forecast scaler lengths": ("forecast", "metadata", scaler("scale", [1.0, 2.0]), "'scaler' 'scale' must be 1 numbers, as 'mean'; got [1.0, 2.0]"),
    # before: TypeError from StandardScaler(**config) (found by the fuzz test)
    "forecast scaler extra key": ("forecast", "metadata", scaler("", None), "'scaler' must be an object with keys ['mean', 'scale'] only (also ['']); got"),
    "forecast scaler empty": ("forecast", "metadata", scaler("mean", []), "'scaler' 'mean' must be"),
    "metadata a list": ("forecast", "metadata", lambda m: [m], "metadata must be a JSON object; got [{"),
    "text vocabulary of ints": ("text", "metadata", vocab("tokens", ["<pad>", "<unk>", 1, 2]), "'vocabulary' 'tokens' must be a list of distinct items, each a string"),
    "text vocabulary repeats": ("text", "metadata", lambda m: m["vocabulary"]["tokens"].__setitem__(3, m["vocabulary"]["tokens"][2]), "'vocabulary' 'tokens' must be a list of distinct items"),
    "text vocabulary level": ("text", "metadata", vocab("level", "byte"), "'vocabulary' 'level' must be one of ['char', 'word']; got 'byte'"),
    "text vocabulary one short": ("text", "metadata", lambda m: m["vocabulary"].update(tokens=m["vocabulary"]["tokens"][:-1]), "tokens; the model outputs"),
    "text vocabulary one long": ("text", "metadata", lambda m: m["vocabulary"]["tokens"].append("#"), "tokens; the model's Embedding reads ids below input_dim="),
    "text settings seq_len str": ("text", "metadata", settings("seq_len", "50"), "'settings' 'seq_len' must be a positive int; got '50' (str)"),
    "text settings learning_rate": ("text", "metadata", settings("learning_rate", "fast"), "'settings' 'learning_rate' must be a finite number; got 'fast' (str)"),
    "classify settings units": ("classify", "metadata", settings("units", [3]), "'settings' 'units' must be an int; got [3] (list)"),
    "classify no class": ("classify", "metadata", lambda m: m.update(classes=[]), "'classes' must be a list of distinct items, each a string, at least 1"),
    "classify class not a string": ("classify", "metadata", lambda m: m["classes"].__setitem__(0, 0), "'classes' must be a list of distinct items, each a string"),
    "classify classes vs output": ("classify", "metadata", lambda m: m["classes"].append("c9"), "'classes' has 4 labels; the model outputs 3 score(s)"),
    "classify kind": ("classify", "metadata", lambda m: m.update(kind="image"), "'kind' must be one of ['text', 'sequence']"),
    "classify scaler std 0": ("classify", "metadata", lambda m: m["scaler"].update(std=[1.0, 0.0]), "'scaler' 'std' must be a finite number > 0"),
    "classify scaler features": ("classify", "metadata", lambda m: m["scaler"].update(mean=[0.0], std=[1.0]), "'scaler.mean' must be 2 numbers, one per input feature"),
    "classify feature_columns": ("classify", "metadata", lambda m: m.update(feature_columns=["a"]), "'feature_columns' must be 2 names, one per feature"),
    "compile seed str": ("generic", "compile", compile_field("seed", "1"), "compile 'seed' must be an int or null; got '1' (str)"),
    "compile seed 1.5": ("generic", "compile", compile_field("seed", 1.5), "compile 'seed' must be an int or null; got 1.5 (float)"),
    "compile epoch 1.5": ("generic", "compile", compile_field("epoch", 1.5), "compile 'epoch' must be an int >= 0; got 1.5"),
    "compile metrics str": ("generic", "compile", compile_field("metrics", "mae"), "compile 'metrics' must be a list of names, or one such list per output or null; got 'mae'"),
    "compile optimizer 5": ("generic", "compile", compile_field("optimizer", 5), "compile 'optimizer' must be a name or {'class_name'"),
    "compile loss missing": ("generic", "compile", drop("loss"), "compile has no 'loss' (required)"),
    "compile learning rate inf": ("generic", "compile", lambda c: c["optimizer"]["config"].update(learning_rate=INF), "compile.optimizer.config.learning_rate must be a finite number"),
    "compile a list": ("generic", "compile", lambda c: [c], "compile must be a JSON object"),
    "layer units str": ("forecast", "model", layer0("units", "4"), "argument 'units' must be a positive int; got '4' (str)"),
    "layer units bool": ("forecast", "model", layer0("units", True), "argument 'units' must be a positive int; got True (bool)"),
    "layer units float": ("forecast", "model", layer0("units", 4.0), "argument 'units' must be a positive int; got 4.0 (float)"),
    "layer units 2**70": ("forecast", "model", layer0("units", 2**70), "argument 'units' must be a positive int"),
    "layer dropout 1": ("forecast", "model", layer0("dropout", 1.0), "argument 'dropout' must be a number in [0, 1); got 1.0"),
    "layer dropout str": ("forecast", "model", layer0("dropout", "0.1"), "argument 'dropout' must be a number in [0, 1); got '0.1' (str)"),
    # before: bool("false") is True, so the LSTM silently returned sequences
    "layer flag str": ("forecast", "model", layer0("return_sequences", "false"), "argument 'return_sequences' must be true or false; got 'false' (str)"),
    "layer name int": ("forecast", "model", layer0("name", 7), "argument 'name' must be a non-empty string"),
    "layer input_shape -1": ("forecast", "model", layer0("input_shape", [-1, 1]), "argument 'input_shape' must be"),
    "layer dtype": ("forecast", "model", layer0("dtype", "float16"), "argument 'dtype' must be 'float32' or 'float64' or null; got 'float16'"),
    "nested layer units": ("generic", "model", lambda s: s["config"]["layers"][1]["config"]["layer"]["config"].update(units=-2), "'layer' (GRU 'gru'): argument 'units' must be a positive int; got -2"),
    "duplicate layer names": ("generic", "model", lambda s: s["config"]["layers"][4]["config"].update(name="lstm"), "name 'lstm' is used twice"),
    "model dtype": ("generic", "model", lambda s: s["config"].update(dtype="int8"), "architecture 'dtype' must be 'float32' or 'float64' or null"),
    "model NaN": ("generic", "model", lambda s: s["config"]["layers"][0]["config"].update(mask_value=NAN), "must be a finite number"),
    "return_state in the middle": ("generic", "model", lambda s: s["config"]["layers"][3]["config"].update(return_state=True), "returns states; only the last layer of a Sequential model may"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FIELDS))
def test_every_header_value_is_checked_by_type_and_range(tmp_path, files, case):
    which, key, edit, expected = FIELDS[case]
    path = write(tmp_path, edit_nested(files[which], key, edit))
    for name, load in LOADERS.items():
        msg = refused(load, path)
        assert expected in msg, (name, msg)


def test_the_app_files_load_and_their_metadata_passes(files, tmp_path):
    """The control for the table above: the unedited files load through every loader (each
    writer's metadata passes its own schema) and the apps use them."""
    from lstmkit.apps.classify import predict_sequences
    from lstmkit.apps.forecast import forecast
    from lstmkit.apps.text import generate

    for which, blob in files.items():
        path = write(tmp_path, blob, f"{which}.lstmkit")
        for load in LOADERS.values():
            load(path)
    model = lstmkit.load_model(tmp_path / "forecast.lstmkit")
    assert forecast(model, np.linspace(9, 11, 30)).shape == (3,)
    assert len(generate(lstmkit.load_model(tmp_path / "text.lstmkit"), "the", 5, seed=0)) == 8
    seqs = [np.ones((4, 2)), np.zeros((3, 2))]
    assert len(predict_sequences(lstmkit.load_model(tmp_path / "classify.lstmkit"), seqs)) == 2


def test_in_memory_metadata_is_checked_by_the_apps_too(files, tmp_path):
    from lstmkit.apps.forecast import forecast

    model = lstmkit.load_model(write(tmp_path, files["forecast"]))
    model.metadata["horizon"] = "3"
    with pytest.raises(ValueError, match=r"'horizon' must be a positive int; got '3' \(str\)"):
        forecast(model, np.linspace(9, 11, 30))


# -- weights declared in the header --------------------------------------------------------------
def test_weights_of_the_wrong_dtype_are_refused(tmp_path, files):
    # before: I64 (or F64) bytes were cast into the float32 model without a word
    header, buffer = split(files["forecast"])
    dense = layer_names(files["forecast"])[-1]
    entry = header[f"weights/{dense}.bias"]
    begin, end = entry["data_offsets"]
    entry["dtype"], entry["shape"] = "I32", [3]  # same byte count, other meaning
    for load in LOADERS.values():
        msg = refused(load, write(tmp_path, join(header, buffer)))
        assert f"{dense}.bias: expected dtype F32, got I32" in msg and end - begin == 12


def test_building_while_loading_never_allocates_more_than_the_file_holds():
    from lstmkit.layers.base import skip_initializers

    with skip_initializers(max_bytes=4 * (3 * 8 + 2 * 8 + 8)):  # LSTM(2) on 3 features
        LSTM(2).build((5, 3))
    tracemalloc.start()
    try:
        expected = r"more than the 192 bytes of weights available"
        with pytest.raises(ValueError, match=expected), skip_initializers(max_bytes=192):
            LSTM(10**5).build((5, 3))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_loading_leaves_the_global_rng_alone(tmp_path, files):
    # before: building the model to load it drew its initial weights from the global RNG
    path = write(tmp_path, files["generic"])
    lstmkit.set_random_seed(5)
    state = lk_random.get_rng().bit_generator.state
    lstmkit.load_model(path)
    runtime.load(path)
    assert lk_random.get_rng().bit_generator.state == state


# -- shapes without allocating: the Layer protocol's weight_shapes -------------------------------
LAYERS = {
    "LSTM": (lambda: LSTM(5), (7, 3)),
    "LSTM variants": (lambda: LSTM(5, peephole=True, layer_norm=True, cifg=True), (7, 3)),
    "LSTM forget_bias float64": (lambda: LSTM(4, forget_bias=2.0, dtype="float64"), (6, 2)),
    "GRU": (lambda: GRU(4), (6, 2)),
    "SimpleRNN": (lambda: SimpleRNN(3, activation="relu"), (6, 2)),
    "Bidirectional": (lambda: Bidirectional(LSTM(3, return_sequences=True)), (5, 2)),
    "Bidirectional custom backward": (
        lambda: Bidirectional(GRU(3), backward_layer=GRU(3, go_backwards=True), merge_mode="sum"),
        (5, 2),
    ),
    "Embedding": (lambda: Embedding(11, 4), (5,)),
    "Dense 3-D": (lambda: Dense(4, use_bias=False), (6, 2)),
    "Dropout": (lambda: Dropout(0.5), (6, 2)),
    "Masking": (lambda: Masking(), (6, 2)),
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_weight_shapes_equal_the_shapes_a_real_build_allocates(kind):
    make, input_shape = LAYERS[kind]
    layer = make()
    shapes = layer.weight_shapes(input_shape, "float32")
    assert not layer.built and layer.params == {}
    real = make()
    real.build(input_shape, dtype="float32")
    assert shapes == {role: p.shape for role, p in real.params.items()}
    probe = layer.shape_only_copy(input_shape, "float32")
    assert {r: np.dtype(p.dtype) for r, p in probe.params.items()} == {
        r: p.dtype for r, p in real.params.items()
    }
    assert probe.compute_output_shape(input_shape) == real.compute_output_shape(input_shape)
    # a built layer answers too (from its config), and keeps its arrays
    before = {r: p.copy() for r, p in real.params.items()}
    assert real.weight_shapes(input_shape, "float32") == shapes
    for r, p in real.params.items():
        np.testing.assert_array_equal(p, before[r])


class Scaled(Layer):
    """A layer written the way other layers may be: it edits a weight after creating it and
    builds an inner layer itself in ``_build``."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = Dense(units)

    def _build(self, input_shape, rng):
        from lstmkit import initializers

        g = self.add_weight("gain", (self.units,), initializers.get("zeros"), rng)
        g[: self.units // 2] = 1.0  # like unit_forget_bias written in _build
        g *= 0.5
        self.inner.build(input_shape, rng, self.dtype)
        self.params.update({f"inner.{r}": p for r, p in self.inner.params.items()})

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)


def test_weight_shapes_cover_layers_that_edit_weights_and_build_inner_layers():
    real = Scaled(6)
    real.build((4, 3))
    assert real.params["gain"].tolist() == [0.5, 0.5, 0.5, 0, 0, 0]  # the edits ran
    expected = {"gain": (6,), "inner.kernel": (3, 6), "inner.bias": (6,)}
    assert {r: p.shape for r, p in real.params.items()} == expected
    assert Scaled(6).weight_shapes((4, 3)) == expected


def test_weight_shapes_of_a_huge_layer_allocate_nothing_and_draw_no_random_numbers():
    state = lk_random.get_rng().bit_generator.state
    tracemalloc.start()
    try:
        shapes = Scaled(10**9).weight_shapes((10, 10**6))
        lstm = LSTM(10**6).weight_shapes((10, 10**6))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert shapes["inner.kernel"] == (10**6, 10**9)
    assert lstm["recurrent_kernel"] == (10**6, 4 * 10**6)
    assert peak < 2**20
    assert lk_random.get_rng().bit_generator.state == state
