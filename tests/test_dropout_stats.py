"""``dropout`` and ``recurrent_dropout`` of the LSTM and GRU layers in training mode: statistics.

The definition (Keras 3 ``DropoutRNNCell``; Gal & Ghahramani 2016): one Bernoulli(keep) mask per
sequence on the inputs (``D`` entries) and one on ``h_{t-1}`` before the recurrent product
(``H`` entries), the same at every step, each kept entry scaled by ``1 / keep`` ("inverted"
dropout, so that a unit's expected input is its value without dropout).

Witnesses:

- **the exact distribution**, enumerated: with ``D = 3`` inputs and ``H = 2`` units there are only
  ``2^(D+H)`` masks. PyTorch's ``nn.LSTMCell`` / ``nn.GRUCell`` (weights copied in, both bias
  vectors non-zero; ``tests/oracles.py``), fed ``x * m / keep`` and ``h * r / keep``, gives the
  output for every mask, and the mask probabilities ``keep^k (1 - keep)^(n - k)`` give the exact
  mean and variance of the layer's output. A batch of N copies of one sequence through the layer
  (float64) must then (a) land every sample on one of those outputs, (b) hit each with its
  probability, and (c) have mean and variance within 5 standard errors of the exact ones;
- **Keras 3** ``layers.LSTM`` / ``layers.GRU`` with the same weights, called with
  ``training=True`` on the same batch: its empirical mean must agree with the exact one (which
  checks the definition above against Keras) and with the layer's. Keras draws one mask per gate
  when ``recurrent_dropout > 0`` where lstmkit draws one for all gates; the two give the same
  distribution when ``h`` reaches only one gate block, so the recurrent kernel is zero outside
  one block for that comparison.

Seeds are fixed (the tests are deterministic); N is large enough that a mask missing its
``1 / keep`` scaling moves the mean by many standard errors.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from lstmkit.layers import GRU, LSTM
from oracles import torch_cell_run

T, D, H = 4, 3, 2
N = 20000  # samples (sequences) per run
Z = 5.0  # tolerance in standard errors
LAYERS = {"lstm": LSTM, "gru": GRU}
CASES = {  # (dropout, recurrent_dropout)
    "dropout": (0.4, 0.0),
    "recurrent_dropout": (0.0, 0.5),
    "both": (0.3, 0.5),
}


def make_case(cell, seed=0, rec_block=None):
    """Weights, one input sequence ``(T, D)`` and a non-zero initial state, all float64.

    ``rec_block``: keep the recurrent kernel only in that gate block (the Keras comparison).
    """
    rng = np.random.default_rng(seed)
    G = 4 if cell == "lstm" else 3
    kernel = rng.normal(scale=0.9, size=(D, G * H))
    recurrent = rng.normal(scale=1.2, size=(H, G * H))
    if rec_block is not None:
        keep = np.zeros(G, bool)
        keep[rec_block] = True
        recurrent = recurrent * np.repeat(keep, H)[None, :]
    bias = rng.uniform(-0.5, 0.5, size=(G * H,) if cell == "lstm" else (2, G * H))
    x = rng.uniform(0.6, 1.5, size=(T, D)) * rng.choice([-1, 1], size=(T, D))  # no entry near 0
    state = [rng.uniform(0.5, 0.9, size=H) * rng.choice([-1, 1], size=H)]
    if cell == "lstm":
        state.append(rng.normal(size=H))
    b_hh = rng.uniform(0.2, 0.6, size=G * H) if cell == "lstm" else None  # torch's 2nd bias
    return (kernel, recurrent, bias), x, state, b_hh


def exact_distribution(cell, params, x, state, b_hh, rate, rec_rate):
    """Every mask pair, its probability, and PyTorch's output sequence for it.

    Returns ``(probs (K,), outputs (K, T, H))``.
    """
    in_masks = _masks(D, rate)
    rec_masks = _masks(H, rec_rate)
    pairs = list(itertools.product(in_masks, rec_masks))
    K = len(pairs)
    probs = np.array([pi * pr for (_, pi), (_, pr) in pairs])
    xs = np.stack([x * mi / (1 - rate) for (mi, _), _ in pairs], axis=1)  # (T, K, D)
    rmask = np.stack([mr / (1 - rec_rate) for _, (mr, _) in pairs])  # (K, H)
    st = tuple(np.tile(s, (K, 1)) for s in state)
    zeros = np.zeros((T, K, H)), tuple(np.zeros((K, H)) for _ in st)
    hs, _, _ = torch_cell_run(
        cell, xs, st, params, *zeros, recurrent_mask=None if rec_rate == 0 else rmask, b_hh=b_hh
    )
    return probs, hs.transpose(1, 0, 2)


def _masks(n, rate):
    """All 0/1 masks of length n with their probability under Bernoulli(keep = 1 - rate)."""
    if rate == 0:
        return [(np.ones(n), 1.0)]
    keep = 1 - rate
    return [
        (np.array(bits, float), keep ** sum(bits) * rate ** (n - sum(bits)))
        for bits in itertools.product((0, 1), repeat=n)
    ]


def lstmkit_samples(cell, params, x, state, rate, rec_rate, seed):
    layer = LAYERS[cell](
        H, dropout=rate, recurrent_dropout=rec_rate, return_sequences=True, dtype="float64"
    )
    layer.build((T, D))
    layer.set_weights(list(params))
    xs = np.broadcast_to(x, (N, T, D)).copy()
    init = [np.tile(s, (N, 1)) for s in state]
    y, _ = layer.forward(xs, training=True, rng=np.random.default_rng(seed), initial_state=init)
    return y  # (N, T, H)


def _moments(probs, outputs):
    mean = np.tensordot(probs, outputs, axes=1)
    var = np.tensordot(probs, (outputs - mean) ** 2, axes=1)
    fourth = np.tensordot(probs, (outputs - mean) ** 4, axes=1)
    return mean, var, fourth


def assert_mean_within(sample_mean, mean, se, what):
    z = np.abs(sample_mean - mean) / se
    assert z.max() < Z, f"{what}: mean off by {z.max():.1f} standard errors\n{sample_mean - mean}"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cell", LAYERS)
def test_training_outputs_follow_the_exact_dropout_distribution(cell, case):
    rate, rec_rate = CASES[case]
    params, x, state, b_hh = make_case(cell, seed=1)
    probs, support = exact_distribution(cell, params, x, state, b_hh, rate, rec_rate)
    y = lstmkit_samples(cell, params, x, state, rate, rec_rate, seed=2)

    # (a) every sample is the output of one mask pair, exactly (float64)
    flat_y, flat_s = y.reshape(N, -1), support.reshape(len(probs), -1)
    dist = np.abs(flat_y[:, None, :] - flat_s[None, :, :]).max(-1)  # (N, K)
    nearest = dist.argmin(1)
    worst = dist[np.arange(N), nearest].max()
    assert worst < 1e-9, f"a training output is no masked-and-rescaled sequence's (off {worst:.3g})"
    gaps = np.abs(flat_s[:, None] - flat_s[None]).max(-1) + np.eye(len(probs))
    assert gaps.min() > 1e-4  # the masks are told apart by their outputs

    # (b) each mask pair as often as its probability (binomial counts)
    counts = np.bincount(nearest, minlength=len(probs))
    sd = np.sqrt(N * probs * (1 - probs))
    z = np.abs(counts - N * probs) / sd
    assert z.max() < Z, f"mask frequencies off by {z.max():.1f} sd: {counts} vs {N * probs}"

    # (c) mean and variance of the output at every step and unit
    mean, var, fourth = _moments(probs, support)
    assert_mean_within(y.mean(0), mean, np.sqrt(var / N), "output")
    se_var = np.sqrt((fourth - var**2) / N)
    z_var = np.abs(y.var(0) - var) / se_var
    assert z_var.max() < Z, f"variance off by {z_var.max():.1f} standard errors"


def test_inverted_scaling_keeps_the_expected_input_projection():
    """A linear probe in closed form: with the recurrent kernel 0 and T = 1 an LSTM's gate
    pre-activations are ``(x * m / keep) @ kernel + bias``, whose expectation is the no-dropout
    value ``x @ kernel + bias``. With the input, forget and output gates pinned open (bias 30)
    and c0 = 0 the output is h = tanh(tanh(z_g)), so z_g = artanh(artanh(h)) is recovered from
    each sample and its mean compared with the no-dropout value."""
    rate = 0.4
    rng = np.random.default_rng(3)
    layer = LSTM(H, dropout=rate, dtype="float64")
    layer.build((1, D))
    kernel = np.zeros((D, 4 * H))
    kernel[:, 2 * H : 3 * H] = rng.normal(scale=0.3, size=(D, H))  # g block only
    bias = np.full(4 * H, 30.0)
    bias[2 * H : 3 * H] = 0.1
    layer.set_weights([kernel, np.zeros((H, 4 * H)), bias])
    x = rng.uniform(0.5, 1.0, size=(1, 1, D))
    y, _ = layer.forward(np.repeat(x, N, 0), training=True, rng=np.random.default_rng(4))
    z_g = np.arctanh(np.arctanh(y))  # (N, H) = (x * m / keep) @ W_g + b_g
    expected = x[0, 0] @ kernel[:, 2 * H : 3 * H] + 0.1
    # Var of (x * m / keep) @ W_g: sum_d (x_d W_dg)^2 (1 - keep) / keep
    se = np.sqrt(((x[0, 0, :, None] * kernel[:, 2 * H : 3 * H]) ** 2).sum(0) * rate / (1 - rate))
    assert_mean_within(z_g.mean(0), expected, se / np.sqrt(N), "input projection")


# -- Keras 3 as the witness of the definition -----------------------------------------------------
def _keras_mean(cell, params, x, state, rate, rec_rate, seed):
    import keras

    cls = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    layer = cls(H, dropout=rate, recurrent_dropout=rec_rate, return_sequences=True, seed=seed)
    layer.build((None, T, D))
    layer.set_weights([np.asarray(p, np.float32) for p in params])
    xs = np.broadcast_to(x, (N, T, D)).astype(np.float32)
    init = [np.tile(s, (N, 1)).astype(np.float32) for s in state]
    y = keras.ops.convert_to_numpy(layer(xs, initial_state=init, training=True))
    return y.astype(np.float64).mean(0)


@pytest.mark.parametrize("case", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("cell", LAYERS)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mean_output_matches_keras(cell, case):
    pytest.importorskip("keras")
    rate, rec_rate = CASES[case]
    # h reaches one gate block only (g for the LSTM, n for the GRU), so that Keras' per-gate
    # recurrent masks and lstmkit's shared one give the same distribution
    block = {"lstm": 2, "gru": 2}[cell] if rec_rate else None
    params, x, state, b_hh = make_case(cell, seed=5, rec_block=block)
    probs, support = exact_distribution(cell, params, x, state, b_hh, rate, rec_rate)
    mean, var, _ = _moments(probs, support)
    se = np.sqrt(var / N)
    theirs = _keras_mean(cell, params, x, state, rate, rec_rate, seed=6)
    assert_mean_within(theirs, mean, se, "Keras against the exact expectation")
    ours = lstmkit_samples(cell, params, x, state, rate, rec_rate, seed=7).mean(0)
    assert_mean_within(ours, theirs, np.sqrt(2) * se, "lstmkit against Keras")
