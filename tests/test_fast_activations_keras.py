"""Keras' non-default activations of LSTM, GRU and SimpleRNN on the compiled kernels.

- Which run compiled: every activation whose derivative is a function of its output
  (:data:`lstmkit.ops.activations.OUTPUT_DERIVED`); gelu, swish, mish ... stay on the reference.
- Numbers: the layer on the numba backend with the NumPy reference made to raise (so the compiled
  forward, backward, inference and streaming step are the ones that ran), against the same
  equations in torch with ``torch.nn.functional``'s activations and autograd: outputs, final
  states and the gradients of x, every weight and the initial states, masked input with holes,
  float32 and float64, batch 3 (LSTM: feature-major kernels) and batch 1 (row-major ones).
  The default run covers the activations Keras tutorials use; every activation in both roles
  of each cell is marked slow (one compilation per pair and float type on a cold cache).
  ``tests/test_recurrent_args.py`` checks every activation against Keras 3 layers as well.
- Background compilation under ``"auto"``: a pair whose kernels are not ready runs the reference
  and asks for its own job; the default pair needs none.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lstmkit.ops.gru as ref_gru
import lstmkit.ops.lstm as ref_lstm
import lstmkit.ops.rnn as ref_rnn
from lstmkit.layers import GRU, LSTM, SimpleRNN
from lstmkit.ops import backend
from lstmkit.ops.activations import OUTPUT_DERIVED

T, D, H = 5, 4, 3
MASK = np.array([[1, 1, 0, 1, 1], [1, 0, 1, 1, 0], [0, 1, 1, 1, 1]], bool)
CELLS = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}

#: the oracle's activations: torch's own functions (Keras 3 definitions, defaults included)
TORCH = {
    "linear": lambda z: z,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.2),  # keras.activations.leaky_relu's default
    "elu": F.elu,
    "selu": F.selu,
    "sigmoid": torch.sigmoid,
    # Keras 3's relu6(z + 3) / 6 from torch ops: F.hardsigmoid's backward multiplies by a float32
    # 1/6 (1e-8 off in float64, measured), its forward is the same
    "hard_sigmoid": lambda z: F.relu6(z + 3) / 6,
    "tanh": torch.tanh,
    "hard_tanh": F.hardtanh,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "exponential": torch.exp,
    "log_sigmoid": F.logsigmoid,
}
assert set(TORCH) == set(OUTPUT_DERIVED)

# what Keras tutorials use first; the default run
TUTORIAL = [
    ("LSTM", "relu", "hard_sigmoid"),
    ("LSTM", "softsign", "sigmoid"),
    ("GRU", "elu", "hard_sigmoid"),
    ("GRU", "selu", "linear"),
    ("SimpleRNN", "relu", None),
    ("SimpleRNN", "elu", None),
    ("SimpleRNN", "selu", None),
    ("SimpleRNN", "softsign", None),
    ("SimpleRNN", "linear", None),
]


def every_pair():
    """Each activation as ``activation`` and, paired with another, as ``recurrent_activation``."""
    names = list(OUTPUT_DERIVED)
    for cell in CELLS:
        for k, act in enumerate(names):
            rec = None if cell == "SimpleRNN" else names[(k + 5) % len(names)]
            if (cell, act, rec) not in TUTORIAL:
                yield pytest.param(cell, act, rec, marks=pytest.mark.slow)


@pytest.fixture
def compiled_only(monkeypatch):
    """The numba backend, with every function of the NumPy reference raising: a layer that fell
    back to it (forward, backward, step) fails."""
    for name, value in (("_namespaces", {}), ("_by_request", {}), ("_choice", None)):
        monkeypatch.setattr(backend, name, value)
    backend.set_backend("numba")
    for mod, cell in ((ref_lstm, "lstm"), (ref_gru, "gru"), (ref_rnn, "rnn")):
        for kind in ("forward", "backward", "step"):

            def refuse(*a, _name=f"{cell}_{kind}", **k):
                raise AssertionError(f"the NumPy reference {_name} ran")

            monkeypatch.setattr(mod, f"{cell}_{kind}", refuse)


# --- the oracle: the cells' equations in torch ----------------------------------------------------


def _lstm_step(x, states, k, u, b, act, rec):
    h, c = states
    i, f, g, o = torch.split(x @ k + h @ u + b, H, dim=-1)
    c = rec(f) * c + rec(i) * act(g)
    return [rec(o) * act(c), c]


def _gru_step(x, states, k, u, b, act, rec):
    (h,) = states
    xz, hz = torch.split(x @ k + b[0], H, -1), torch.split(h @ u + b[1], H, -1)
    z, r = rec(xz[0] + hz[0]), rec(xz[1] + hz[1])
    return [z * h + (1 - z) * act(xz[2] + r * hz[2])]


def _rnn_step(x, states, k, u, b, act, rec):
    return [act(x @ k + b + states[0] @ u)]


STEPS = {"LSTM": _lstm_step, "GRU": _gru_step, "SimpleRNN": _rnn_step}


def torch_run(cell, act, rec, weights, x, init, mask):
    """Keras' masking: a skipped step keeps the state and outputs the previous output."""
    states, prev, outs = list(init), torch.zeros_like(init[0]), []
    for t in range(x.shape[1]):
        new = STEPS[cell](x[:, t], states, *weights, TORCH[act], TORCH.get(rec))
        m = (
            torch.ones((x.shape[0], 1), dtype=bool)
            if mask is None
            else torch.tensor(mask[:, t, None])
        )
        prev = torch.where(m, new[0], prev)
        states = [torch.where(m, a, s) for a, s in zip(new, states)]
        outs.append(prev)
    return torch.stack(outs, 1), states


# --- the layer against it -----------------------------------------------------------------------


def setup(cell, act, rec, dtype, B, seed=0):
    kw = {"activation": act} if rec is None else {"activation": act, "recurrent_activation": rec}
    layer = CELLS[cell](H, return_sequences=True, return_state=True, dtype=dtype, **kw)
    layer.build((T, D), rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    scale = 0.15 if "exponential" in kw.values() else 0.5  # e^z and e^c must stay moderate
    for p in layer.params.values():  # non-zero biases (GRU: both rows)
        p[...] = scale * rng.standard_normal(p.shape)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    init = [0.5 * rng.standard_normal((B, H)).astype(dtype) for _ in layer.state_names]
    return layer, x, init


def oracle(layer, cell, act, rec, x, init, mask, W):
    """Outputs and gradients in float64 torch from the layer's own weights and inputs."""
    leaves = [
        torch.tensor(np.asarray(a, np.float64), requires_grad=True)
        for a in [x, *layer.get_weights(), *init]
    ]
    n = len(layer.weight_names)
    out, final = torch_run(cell, act, rec, leaves[1 : 1 + n], leaves[0], leaves[1 + n :], mask)
    sum(
        (t * torch.tensor(np.asarray(w, np.float64))).sum() for t, w in zip([out, *final], W)
    ).backward()
    return [out.detach().numpy(), *(s.detach().numpy() for s in final)], [
        a.grad.numpy() for a in leaves
    ]


def assert_close(ours, want, dtype, what):
    assert ours.shape == want.shape, what
    err = np.abs(ours - want).max() / max(np.abs(want).max(), 1.0)
    assert err <= (1e-5 if dtype == "float32" else 1e-11), f"{what}: relative error {err:.1e}"


def check(cell, act, rec, dtype, B, mask):
    layer, x, init = setup(cell, act, rec, dtype, B)
    assert layer._ops().backend == "numba"
    y, cache = layer.forward(x, mask=mask, initial_state=init)
    assert getattr(cache.ops_cache, "z", None) is None  # no pre-activations: the compiled forward
    rng = np.random.default_rng(7)
    W = [rng.standard_normal(a.shape).astype(dtype) for a in y]
    dx, grads, dinit = layer.backward_with_state(W, cache)
    want_y, want_g = oracle(layer, cell, act, rec, x, init, mask, W)
    for k, (a, b) in enumerate(zip(y, want_y)):
        assert_close(a, b, dtype, f"output {k}")
    ours = [dx, *(grads[r] for r in layer.weight_names), *dinit]
    names = ["x", *layer.weight_names, *(f"initial {s}" for s in layer.state_names)]
    for name, a, b in zip(names, ours, want_g):
        assert_close(a, b, dtype, f"d{name}")
    # inference kernels (no cache) and, unmasked, the streaming step
    assert_close(layer.infer(x, mask=mask, initial_state=init)[0], want_y[0], dtype, "infer")
    if mask is None:
        states = init
        for t in range(T):
            h, states = layer.step(x[:, t], states)
            assert_close(h, want_y[0][:, t], dtype, f"step {t}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell,act,rec", [*TUTORIAL, *every_pair()])
def test_compiled_activations_match_torch(compiled_only, cell, act, rec, dtype):
    check(cell, act, rec, dtype, 3, MASK)


@pytest.mark.parametrize(
    "cell,act,rec",
    [("LSTM", "relu", "hard_sigmoid"), ("GRU", "elu", "hard_sigmoid"), ("SimpleRNN", "selu", None)],
)
def test_batch_of_one_and_no_mask(compiled_only, cell, act, rec):
    """B = 1: the LSTM's row-major training kernels and its BLAS-free inference rows; without a
    mask, the streaming ``step`` of every cell too."""
    check(cell, act, rec, "float32", 1, None)


def test_which_activations_compile():
    for name in OUTPUT_DERIVED:
        assert backend.compiled_supports("lstm", activation=name, recurrent_activation=name)
        assert backend.compiled_supports("gru", activation=name, recurrent_activation=name)
        assert backend.compiled_supports("rnn", activation=name)
    for name in ("gelu", "swish", "silu", "mish", "hard_silu", "tanh_shrink", "celu"):
        assert not backend.compiled_supports("lstm", recurrent_activation=name)
        assert not backend.compiled_supports("rnn", activation=name)
    assert not backend.compiled_supports("gru", activation="relu", reset_after=False)
    assert backend.compiled_supports("rnn", activation=None)  # Keras' None: linear


def test_a_pair_not_yet_compiled_runs_the_reference_and_asks_for_its_own_job(monkeypatch):
    """``"auto"`` in background mode, float32's default kernels ready: a relu/hard_sigmoid LSTM
    runs the reference (bit for bit) and starts the pair's job; once the job's marker is seen at
    a safe point, the compiled kernels run. The default pair needs no job."""
    import time

    from lstmkit.ops import compiled

    started, ready = [], {"float32"}
    monkeypatch.setattr(compiled, "start", started.append)
    monkeypatch.setattr(compiled, "ready", lambda job: job in ready)
    for name, value in (("_namespaces", {}), ("_by_request", {}), ("_choice", "auto"),
                        ("_DEFERRED", True), ("_auto", backend._AutoState())):  # fmt: skip
        monkeypatch.setattr(backend, name, value)
    backend._auto.ready = frozenset({"float32"})
    backend._auto.checked = time.monotonic() + 1e9  # no look at the markers until reset
    pair = {"activation": "relu", "recurrent_activation": "hard_sigmoid"}
    ops = backend.ops_for("lstm", **pair)
    rng = np.random.default_rng(0)
    B = 3
    args = [rng.standard_normal(s).astype("float32")
            for s in ((T, B, D), (B, H), (B, H), (D, 4 * H), (H, 4 * H), (4 * H,))]  # fmt: skip
    hs, _, cache = ops.forward(*args)
    want = ref_lstm.lstm_forward(*args, **pair)[0]
    assert np.array_equal(hs, want) and cache.z is not None  # the reference's cache
    assert started == ["float32-lstm-relu-hard_sigmoid"]
    backend.ops_for("lstm").forward(*args)  # the default pair: no job of its own
    assert started == ["float32-lstm-relu-hard_sigmoid"]
    ready.add("float32-lstm-relu-hard_sigmoid")
    backend._auto.checked = -1e9
    with backend.one_path_scope():  # the safe point sees the marker
        hs2, _, cache2 = ops.forward(*args)
    assert cache2.z is None  # the compiled kernels ran
    np.testing.assert_allclose(hs2, want, rtol=1e-5, atol=1e-6)
    assert backend.compile_job("rnn", (("activation", "elu"),)) == "rnn-elu"


def test_the_layer_says_which_kernels_run_and_why(monkeypatch):
    monkeypatch.setattr(backend, "_choice", "numba")
    assert LSTM(3, activation="relu", recurrent_activation="hard_sigmoid").kernel_report() == (
        "compiled kernels (numba)"
    )
    report = GRU(3, recurrent_activation="swish").kernel_report()
    assert report.startswith("NumPy reference: recurrent_activation='swish' has a derivative")
    assert "reset_after=False" in GRU(3, reset_after=False).kernel_report()


def test_a_pair_job_starts_a_worker_for_that_pair_only(monkeypatch, tmp_path):
    """``compiled.start`` of a pair's job runs the worker with the float type and the pair, which
    ``main`` parses back into the job name (markers ``ready-float32-lstm-relu-hard_sigmoid-*``)."""
    import subprocess

    from lstmkit.ops import compiled

    monkeypatch.setenv("LSTMKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(compiled, "_started", {})
    argv, jobs = [], []

    class Popen:
        pid = 1

        def __init__(self, args, **kw):
            argv.append(args)

        def poll(self):
            return None

    monkeypatch.setattr(subprocess, "Popen", Popen)
    assert compiled.start("float32-lstm-relu-hard_sigmoid") == 1
    assert argv[0][-3:] == ["--dtype", "float32", "lstm-relu-hard_sigmoid"]
    assert compiled.state("float32-lstm-relu-hard_sigmoid") == "compiling"
    monkeypatch.setattr(compiled, "_worker", jobs.append)
    compiled.main(argv[0][-3:])
    compiled.main(["--dtype", "float64"])
    assert jobs == ["float32-lstm-relu-hard_sigmoid", "float64"]
    assert compiled.job_parts(jobs[0]) == ("float32", ("lstm", "relu", "hard_sigmoid"))
    assert compiled.job_parts("float64") == ("float64", None)
