"""int8 weights with per-channel scales: ``lstmkit.quantize``, quantised files, ``runtime.load``
and ``to_onnx(quantize="int8")``.

Witnesses, none of them the code under test:
- the test quantises each matrix itself (``s = max|w[:, j]| / 127``, ``q = round(w / s)``) and
  reads the file with the safetensors library: the file holds exactly those int8 values and
  scales, and the runtime's output equals the float model run on ``q * s`` put in by the test;
- the error against the float model stays within what the step ``s / 2`` allows: exactly
  ``s[j] / 2`` for a Dense layer fed unit vectors, and a bound propagated through the LSTM
  equations with ``|sigmoid'| <= 1/4``, ``|tanh'| <= 1`` for a stacked LSTM + Dense;
- onnxruntime runs the quantised ONNX graph: equal to lstmkit's quantised runtime with the
  basic graph optimisations, and within the bound of its int8-activation MatMulNBits kernel
  (which the default optimisations put in for the Dense layer) otherwise;
- file sizes are measured on disk; hostile quantised files are refused with ModelFileError.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from lstmkit import GRU, LSTM, Bidirectional, Dense, Embedding, Sequential, SimpleRNN, runtime
from lstmkit.quantize import quantize_model, save_quantized
from lstmkit.saving import ModelFileError, load_model

MATRIX_ROLES = ("kernel", "recurrent_kernel", "embeddings")


# -- the test's own quantisation -----------------------------------------------------------------
def own_quantize(w):
    """Per column (last axis): ``(q int, s)`` with ``s = max|w| / 127``, ``q = round(w / s)``."""
    w64 = np.asarray(w, np.float64)
    s = np.abs(w64.reshape(-1, w64.shape[-1])).max(axis=0) / 127.0
    s = np.where(s > 0, s, 1.0)
    return np.round(w64 / s), s


def is_matrix(name, w):
    return name.split(".")[-1] in MATRIX_ROLES and w.ndim >= 2


def own_dequantized_copy(model, path):
    """A float copy of ``model`` (through a float file) holding ``q * s`` from
    :func:`own_quantize` in place of every matrix."""
    model.save(path)
    copy = load_model(path, compile=False)
    for name, w in copy.params.items():
        if is_matrix(name, w):
            q, s = own_quantize(w)
            w[...] = q * s.astype(w.dtype)  # the product in the model's dtype, as stored
    return copy


def spread_columns(model, seed):
    """Random weights whose columns differ in size by 100x, so a per-tensor scale (or a
    column mixed up with another) would show."""
    rng = np.random.default_rng(seed)
    for name, w in model.params.items():
        w[...] = 0.5 * rng.standard_normal(w.shape)
        if is_matrix(name, w):
            w *= np.exp(rng.uniform(np.log(0.01), 0, w.shape[-1]))
    return model


def models(dtype="float32"):
    """name -> (model, input) over the cells, Embedding and Bidirectional."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 9, 5))
    ids = rng.integers(1, 40, (4, 9))
    ids[0, 6:] = 0  # padding
    built = {
        "lstm": Sequential(
            [LSTM(12, return_sequences=True, input_shape=(None, 5)), LSTM(8), Dense(3)], dtype=dtype
        ),
        "gru": Sequential(
            [GRU(12, input_shape=(None, 5), return_sequences=True), Dense(3)], dtype=dtype
        ),
        "simple_rnn": Sequential(
            [SimpleRNN(12, input_shape=(None, 5)), Dense(3, activation="tanh")], dtype=dtype
        ),
        "embedding_bidirectional": Sequential(
            [
                Embedding(40, 6, mask_zero=True, input_shape=(None,)),
                Bidirectional(LSTM(7, return_sequences=True)),
                GRU(5),
                Dense(2),
            ],
            dtype=dtype,
        ),
    }
    inputs = {"embedding_bidirectional": ids}
    return {
        k: (spread_columns(m, i), inputs.get(k, x.astype(dtype)))
        for i, (k, m) in enumerate(built.items())
    }


CASES = [(k, dt) for dt in ("float32", "float64") for k in models()]


# -- the file and the runtime ------------------------------------------------------------------
@pytest.mark.parametrize("name,dtype", CASES)
def test_file_holds_the_tests_own_int8_and_scales(tmp_path, name, dtype):
    model, _ = models(dtype)[name]
    save_quantized(model, tmp_path / "q.lstmkit")
    stored = load_file(tmp_path / "q.lstmkit")  # the safetensors library, not lstmkit's reader
    matrices = 0
    for key, w in model.params.items():
        if not is_matrix(key, w):
            assert stored[f"weights/{key}"].dtype == np.dtype(dtype)
            np.testing.assert_array_equal(stored[f"weights/{key}"], w)
            continue
        matrices += 1
        q, s = own_quantize(w)
        assert stored[f"weights/{key}"].dtype == np.int8
        np.testing.assert_array_equal(stored[f"weights/{key}"], q)
        scale = stored[f"weights/{key}.scale"]
        assert scale.dtype == np.dtype(dtype) and scale.shape == (w.shape[-1],)
        np.testing.assert_allclose(scale, s, rtol=1e-6 if dtype == "float32" else 1e-14)
    assert matrices >= 3


@pytest.mark.parametrize("name,dtype", CASES)
def test_runtime_equals_the_float_model_on_weights_dequantised_by_the_test(tmp_path, name, dtype):
    model, x = models(dtype)[name]
    save_quantized(model, tmp_path / "q.lstmkit")
    rt = runtime.load(tmp_path / "q.lstmkit")
    reference = own_dequantized_copy(model, tmp_path / "f.lstmkit")
    y = rt.predict(x)
    assert y.dtype == np.dtype(dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y, reference.predict(x), rtol=tol, atol=tol)
    # and the quantisation did change the output (it is not the float model again)
    assert np.abs(y - model.predict(x)).max() > 10 * tol
    # load_model reads the same file into a full model with the same weights
    np.testing.assert_allclose(load_model(tmp_path / "q.lstmkit").predict(x), y, rtol=tol, atol=tol)


def test_dense_on_unit_vectors_errs_by_at_most_half_the_channels_step(tmp_path):
    """``x = e_i``: ``y' - y = q[i, j] s[j] - w[i, j]``, whose size is at most ``s[j] / 2`` (and
    the largest reaches ~0.5: the bound is tight, so a per-tensor scale or flooring fails)."""
    model = spread_columns(Sequential([Dense(16, input_shape=(40,))], dtype="float64"), 1)
    save_quantized(model, tmp_path / "q.lstmkit")
    x = np.eye(40)
    err = np.abs(runtime.load(tmp_path / "q.lstmkit").predict(x) - model.predict(x))  # (40, 16)
    step = np.abs(model.params[f"{model.layers[0].name}.kernel"]).max(axis=0) / 127  # (16,)
    ratio = err / (step / 2)
    assert ratio.max() <= 1 + 1e-9
    assert ratio.max() > 0.9


def _lstm_error_bound(x, K, R, D, h_units):
    """A bound on ``|y' - y|`` for ``LSTM (return_sequences=False) -> Dense``, from the
    per-channel steps of K, R, D and the equations' Lipschitz constants.

    With ``|h|, |g| <= 1``, gates in (0, 1), ``|c_t| <= t``: the pre-activation error is
    ``x dK + h' dR + (h' - h) R`` so ``ez <= |x| sK/2 + H sR/2 + eh |R|``; then ``di, df, do <=
    ez/4``, ``dg <= ez``, ``ec_t <= df (t-1) + ec_{t-1} + di + dg``, ``eh_t <= do + ec_t``; the
    Dense output errs by at most ``H sD/2 + eh |D|``."""
    sK, sR, sD = (np.abs(w).max(axis=0) / 127 for w in (K, R, D))
    B, T, _ = x.shape
    eh, ec = np.zeros((B, h_units)), np.zeros((B, h_units))
    for t in range(T):
        ez = np.abs(x[:, t]).sum(1, keepdims=True) * sK / 2 + h_units * sR / 2 + eh @ np.abs(R)
        ei, ef, eg, eo = np.split(ez, 4, axis=1)  # gate order i, f, g, o
        ec = np.minimum(ef / 4 * t + ec + ei / 4 + eg, 2 * (t + 1))
        eh = np.minimum(eo / 4 + ec, 2.0)
    return h_units * sD / 2 + eh @ np.abs(D)


def test_lstm_error_stays_within_the_bound_the_steps_imply(tmp_path):
    model = Sequential([LSTM(10, input_shape=(None, 4)), Dense(3)], dtype="float64")
    spread_columns(model, 2)
    x = np.random.default_rng(3).standard_normal((6, 5, 4))
    save_quantized(model, tmp_path / "q.lstmkit")
    err = np.abs(runtime.load(tmp_path / "q.lstmkit").predict(x) - model.predict(x))
    lstm, dense = model.layers
    p = model.params
    bound = _lstm_error_bound(
        x,
        p[f"{lstm.name}.kernel"],
        p[f"{lstm.name}.recurrent_kernel"],
        p[f"{dense.name}.kernel"],
        10,
    )
    assert (err <= bound).all()
    assert err.max() > 0  # quantised at all


# -- ONNX -----------------------------------------------------------------------------------------
def _ort(path, basic):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if basic:  # no MatMulNBits fusion: DequantizeLinear stays, float32 arithmetic throughout
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", list(models()))
def test_onnx_int8_agrees_with_the_quantised_runtime(tmp_path, name):
    from lstmkit.interop.onnx import to_onnx

    model, x = models()[name]
    save_quantized(model, tmp_path / "q.lstmkit")
    to_onnx(model, tmp_path / "q.onnx", quantize="int8")
    y_rt = runtime.load(tmp_path / "q.lstmkit").predict(x)
    # 1. basic optimisations: the same dequantised weights in float32 -> float32 rounding
    (y_basic,) = _ort(tmp_path / "q.onnx", basic=True).run(["y"], {"x": x})
    np.testing.assert_allclose(y_basic, y_rt, rtol=1e-5, atol=2e-6)
    # 2. defaults: DequantizeLinear + MatMul becomes MatMulNBits (accuracy level 4), which also
    # rounds the Dense input a to int8 per block of 32 (step <= max|a| / 127, and |a| <= 1 as
    # every model here feeds the Dense with a tanh h); the stated tolerance is that rounding's
    # bound, |dy_j| <= sum_i |w'_ij| / 254, doubled
    (y_default,) = _ort(tmp_path / "q.onnx", basic=False).run(["y"], {"x": x})
    w = runtime.load(tmp_path / "q.lstmkit").params[f"{model.layers[-1].name}.kernel"]
    tol = 2 / 254 * np.abs(w).sum(axis=0) + 1e-6  # (units,)
    assert (np.abs(y_default - y_rt) <= tol).all()


@pytest.mark.parametrize("name", ["lstm", "embedding_bidirectional"])
def test_files_are_about_four_times_smaller(tmp_path, name):
    from lstmkit.interop.onnx import to_onnx

    # a size where the tensors, not the JSON header, make the file
    if name == "lstm":
        model = Sequential(
            [LSTM(128, input_shape=(None, 32), return_sequences=True), LSTM(128), Dense(16)]
        )
    else:
        model = Sequential(
            [Embedding(2000, 64, input_shape=(None,)), Bidirectional(LSTM(64)), Dense(2)]
        )
    model.save(tmp_path / "f.lstmkit", include_optimizer=False)
    save_quantized(model, tmp_path / "q.lstmkit")
    to_onnx(model, tmp_path / "f.onnx")
    to_onnx(model, tmp_path / "q.onnx", quantize="int8")
    for ext in ("lstmkit", "onnx"):
        ratio = os.path.getsize(tmp_path / f"f.{ext}") / os.path.getsize(tmp_path / f"q.{ext}")
        assert 3.6 < ratio < 4.0, (ext, ratio)


# -- hostile quantised files ---------------------------------------------------------------------
def _good(tmp_path):
    model = Sequential([LSTM(6, input_shape=(None, 3), name="lstm"), Dense(2, name="dense")])
    spread_columns(model, 4)
    save_quantized(model, tmp_path / "good.lstmkit")
    with safe_open(tmp_path / "good.lstmkit", "np") as f:
        meta = f.metadata()
    return model, load_file(tmp_path / "good.lstmkit"), meta


def _edit_scale(value):
    def edit(t, meta):
        k = next(k for k in t if k.endswith("recurrent_kernel.scale"))
        t[k] = t[k].copy()
        t[k][1] = value

    return edit


def _int8(value):
    def edit(t, meta):
        k = next(k for k in t if k.endswith("lstm.kernel"))
        t[k] = t[k].copy()
        t[k][0, 0] = value

    return edit


def _pop_scale(t, meta):
    del t[next(k for k in t if k.endswith(".kernel.scale"))]


def _scale_shape(t, meta):
    k = next(k for k in t if k.endswith(".kernel.scale"))
    t[k] = np.concatenate([t[k], t[k][:1]])


def _float_kernel(t, meta):
    k = next(k for k in t if k.endswith("lstm.kernel"))
    t[k] = t[k].astype(np.float32)


def _scale_int(t, meta):
    k = next(k for k in t if k.endswith(".kernel.scale"))
    t[k] = np.ones(t[k].shape, np.int32)


def _scheme(t, meta):
    meta["quantization"] = "int4-per-block"


def _no_flag(t, meta):
    del meta["quantization"]


HOSTILE = {
    "NaN scale": (_edit_scale(np.nan), "1 scales are not finite and > 0"),
    "infinite scale": (_edit_scale(np.inf), "1 scales are not finite and > 0"),
    "zero scale": (_edit_scale(0.0), "1 scales are not finite and > 0"),
    "negative scale": (_edit_scale(-0.5), "1 scales are not finite and > 0"),
    "int8 -128": (_int8(-128), "int8 value -128 outside [-127, 127]"),
    "missing scale": (_pop_scale, "missing "),
    "scale of the wrong shape": (_scale_shape, "kernel.scale: expected shape"),
    "float kernel": (_float_kernel, "kernel: expected dtype I8, got F32"),
    "integer scale": (_scale_int, "kernel.scale: expected dtype F32, got I32"),
    "unknown scheme": (_scheme, "unsupported quantization 'int4-per-block'"),
    "int8 without the flag": (_no_flag, "expected dtype F32, got I8"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("loader", [runtime.load, load_model])
def test_hostile_quantised_files_are_refused(tmp_path, case, loader):
    _, tensors, meta = _good(tmp_path)
    edit, message = HOSTILE[case]
    edit(tensors, meta)
    save_file(tensors, tmp_path / "bad.lstmkit", metadata=meta)
    with pytest.raises(ModelFileError) as err:
        loader(tmp_path / "bad.lstmkit")
    assert message in str(err.value)
    assert "bad.lstmkit" in str(err.value)


def test_quantize_model_returns_int8_and_scales_and_refuses_nan():
    model = spread_columns(Sequential([GRU(4, input_shape=(None, 2)), Dense(1)]), 5)
    q = quantize_model(model)
    assert {k for k, v in q.items() if v.dtype == np.int8} == {
        k for k, w in model.params.items() if is_matrix(k, w)
    }
    model.params[next(iter(model.params))][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize_model(model)


# -- the command line ----------------------------------------------------------------------------
def test_export_verb_writes_both_quantised_files(tmp_path):
    from test_cli_args import run

    model, x = models()["lstm"]
    model.save(tmp_path / "m.lstmkit")
    code, out, err = run(
        [
            "export",
            "lstmkit",
            str(tmp_path / "m.lstmkit"),
            str(tmp_path / "q.lstmkit"),
            "--quantize",
            "int8",
        ]
    )
    assert code == 0, err
    reference = own_dequantized_copy(model, tmp_path / "f.lstmkit")
    y = runtime.load(tmp_path / "q.lstmkit").predict(x)
    np.testing.assert_allclose(y, reference.predict(x), rtol=1e-5, atol=1e-6)
    code, out, err = run(
        [
            "export",
            "onnx",
            str(tmp_path / "m.lstmkit"),
            str(tmp_path / "q.onnx"),
            "--quantize",
            "int8",
            "--check",
        ]
    )
    assert code == 0, err
    assert "int8 weights" in out and "max abs diff" in out
    (y_onnx,) = _ort(tmp_path / "q.onnx", basic=True).run(["y"], {"x": x})
    np.testing.assert_allclose(y_onnx, y, rtol=1e-5, atol=2e-6)
    code, _, err = run(["export", "lstmkit", str(tmp_path / "m.lstmkit"), str(tmp_path / "z")])
    assert code == 2 and "--quantize" in err and not (tmp_path / "z").exists()
