"""The row-major inference kernel (``lstmkit.ops.fast.lstm._lstm_infer_rows``: batches too narrow
for the feature-major kernels, i.e. B = 1 through ``lstm_infer``) against PyTorch.

Its product ``z = bias + x kernel + h U`` adds four rows of the weights per pass
(``_add_product``), then one row at a time for the rest: the shapes below cover the unrolled
passes alone (D = 8, H = 4, 64), the leftover rows alone (D = 1, 3), both (D = 5, 13; H = 7, 67),
and vector remainders of every width (4H = 28, 268). Weights are copied into ``nn.LSTMCell``
with both of its bias vectors non-zero; masks (steps skipped, t = 0 included) follow Keras: a
skipped step carries h and c over (``oracles.torch_cell_run``). Bounds: float64 1e-10, float32
1e-5 relative to the largest magnitude, as ``test_layers_torch.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")  # an optional dependency, like the rest of the fast path
pytest.importorskip("torch")

from lstmkit.ops.fast import lstm as fast
from lstmkit.ops.fast.elementwise import acts_for
from oracles import torch_cell_run

TOL = {np.float64: 1e-10, np.float32: 1e-5}
SHAPES = [  # (T, D, H)
    (1, 1, 1),
    (5, 3, 4),
    (9, 5, 7),
    (40, 8, 64),
    (7, 13, 67),
]


def problem(T, B, D, H, dtype, masked, seed=0):
    rng = np.random.default_rng(seed)
    s = 1.5 / np.sqrt(H)  # large enough that some gates saturate
    x = rng.standard_normal((T, B, D))
    h0, c0 = 0.5 * rng.standard_normal((2, B, H))
    kernel = rng.uniform(-s, s, (D, 4 * H))
    U = rng.uniform(-s, s, (H, 4 * H))
    bias = rng.uniform(-s, s, 4 * H)
    b_hh = rng.uniform(0.05, 0.2, 4 * H) * rng.choice([-1, 1], 4 * H)  # torch's second bias
    mask = rng.random((T, B)) < 0.6 if masked else None
    if masked:
        mask[0, 0] = False  # a skipped first step carries h0 and c0
    cast = [a.astype(dtype) for a in (x, h0, c0, kernel, U, bias)]
    return cast, b_hh.astype(dtype), mask


def torch_outputs(args, b_hh, mask):
    x, h0, c0, kernel, U, bias = args
    zeros = [np.zeros_like(h0)] * 2
    hs, (h_T, c_T), _ = torch_cell_run(
        "lstm", x, (h0, c0), (kernel, U, bias), np.zeros_like(x[..., :1]).repeat(h0.shape[1], -1),
        zeros, mask=mask, b_hh=b_hh,
    )  # fmt: skip
    return hs, h_T, c_T


def assert_close(got, want, dtype, what):
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(np.asarray(got, np.float64) - want).max()) / scale
    assert got.dtype == dtype and got.shape == want.shape, what
    assert err <= TOL[dtype], f"{what}: scaled error {err:.3g} > {TOL[dtype]:.0e}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True], ids=["", "mask"])
@pytest.mark.parametrize(("T", "D", "H"), SHAPES)
def test_batch_one_inference_matches_torch(T, D, H, masked, dtype):
    """``lstm_infer`` at B = 1: the dispatch sends it to the row-major kernel."""
    args, b_hh, mask = problem(T, 1, D, H, dtype, masked)
    assert fast.FM_MIN_BATCH > 1
    hs, (h_T, c_T) = fast.lstm_infer(*args, mask=mask)
    want_hs, want_h, want_c = torch_outputs(args, b_hh, mask)
    assert_close(hs, want_hs, dtype, "hs")
    assert_close(h_T, want_h, dtype, "h_T")
    assert_close(c_T, want_c, dtype, "c_T")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True], ids=["", "mask"])
def test_row_kernel_runs_each_row_of_a_batch(masked, dtype):
    """B > 1 straight into the row kernel (the dispatch never sends it one): every row is its own
    sequence, each with its own mask column."""
    T, B, D, H = 11, 3, 5, 67
    args, b_hh, mask = problem(T, B, D, H, dtype, masked, seed=1)
    x, h0, c0, kernel, U, bias = args
    m = np.ones((1, 1), bool) if mask is None else mask
    acts = acts_for("tanh", "sigmoid")  # the default pair, as lstm_infer passes it
    hs, h_T, c_T = fast._lstm_infer_rows(x, h0, c0, kernel, U, bias, m, masked, acts)
    want_hs, want_h, want_c = torch_outputs(args, b_hh, mask)
    assert_close(hs, want_hs, dtype, "hs")
    assert_close(h_T, want_h, dtype, "h_T")
    assert_close(c_T, want_c, dtype, "c_T")


def test_batch_one_predict_runs_the_row_kernel(monkeypatch):
    """What users call: ``predict`` of a batch of one goes through the row kernel, and agrees
    with PyTorch."""
    import lstmkit
    from lstmkit.layers import LSTM
    from lstmkit.ops import backend

    calls = []
    real = fast._lstm_infer_rows

    def counted(*a):
        calls.append(a[0].shape)
        return real(*a)

    monkeypatch.setattr(fast, "_lstm_infer_rows", counted)
    before = backend.get_backend()
    backend.set_backend("numba")
    try:
        lstmkit.set_random_seed(3)
        model = lstmkit.Sequential([LSTM(67, return_sequences=True, input_shape=(9, 5))])
        model.build()
        args, b_hh, _ = problem(9, 1, 5, 67, np.float32, False, seed=2)
        x, h0, _, kernel, U, bias = args
        model.set_weights([kernel, U, bias])
        got = model.predict(x.transpose(1, 0, 2), batch_size=1)
    finally:
        backend.set_backend(before)
    assert calls == [(9, 1, 5)]
    zero = np.zeros_like(h0)
    want_hs, _, _ = torch_outputs([x, zero, zero, kernel, U, bias], b_hh, None)
    assert_close(got, want_hs.transpose(1, 0, 2), np.float32, "predict")
