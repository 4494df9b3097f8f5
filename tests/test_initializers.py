"""Initializers against Keras 3's formulas and Keras' own samples (torch backend).

- Variance-scaling family (glorot/he/lecun, uniform and truncated normal) on 1-D, 2-D and 3-D
  shapes (Keras' fan rules, receptive field included): the uniform bound sqrt(3 s) is respected
  and reached, the truncated normal is cut at 2 sigma of its pre-truncation std, and the sample
  std is Keras' target sqrt(s), as are Keras' own samples of the same shape (both within 3%).
- RandomUniform/RandomNormal/TruncatedNormal defaults and arguments; Orthogonal is orthogonal
  (rows or columns, gain, 3-D shapes flattened Keras' way); Zeros/Ones/Constant/Identity equal
  Keras' arrays exactly.
- Seeds: an int seed gives the same array at every call (Keras' int-seed semantics, checked on
  Keras too); layers with ``seed=`` build the same weights whatever generator they are handed.
- Configs: our dicts are Keras' dicts (``keras.initializers.serialize``), and Keras' dicts build
  our objects.
"""

from __future__ import annotations

import math
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import pytest

from lstmkit import initializers
from lstmkit.layers import GRU, LSTM, SimpleRNN

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# name -> (scale, mode, distribution) as Keras documents them
FAMILY = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}
# shape -> (fan_in, fan_out) by Keras' rule, written out
SHAPES = {(40000,): (40000, 40000), (150, 300): (150, 300), (5, 60, 100): (300, 500)}


def keras_array(init, shape):
    return keras.ops.convert_to_numpy(init(shape, dtype="float64"))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", FAMILY)
def test_variance_scaling_family_statistics(name, shape):
    scale, mode, dist = FAMILY[name]
    fan_in, fan_out = SHAPES[shape]
    fan = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
    target_std = math.sqrt(scale / fan)
    ours = initializers.get(name)(shape, np.random.default_rng(0), "float64")
    keras.utils.set_random_seed(0)
    theirs = keras_array(keras.initializers.get(name), shape)
    assert ours.shape == theirs.shape == shape
    for who, a in (("lstmkit", ours), ("keras", theirs)):
        assert abs(a.std() / target_std - 1) < 0.03, who
        assert abs(a.mean()) < 0.03 * target_std, who
        if dist == "uniform":
            limit = math.sqrt(3 * scale / fan)
            assert np.abs(a).max() <= limit and np.abs(a).max() > 0.99 * limit, who
        else:  # cut at 2 std of the untruncated normal, whose std is target / .8796...
            cut = 2 * target_std / 0.87962566103423978
            assert np.abs(a).max() <= cut and np.abs(a).max() > 0.97 * cut, who


@pytest.mark.parametrize(
    "make,mean,std,bound",
    [
        (lambda m: m.RandomUniform(), 0.0, 0.1 / math.sqrt(12), 0.05),
        (lambda m: m.RandomUniform(-0.2, 0.6), 0.2, 0.8 / math.sqrt(12), None),
        (lambda m: m.RandomNormal(), 0.0, 0.05, None),
        (lambda m: m.RandomNormal(mean=1.0, stddev=0.3), 1.0, 0.3, None),
        # a normal cut at 2 std keeps 0.8796^2 of its variance
        (lambda m: m.TruncatedNormal(), 0.0, 0.05 * 0.87962566103423978, 0.1),
        (lambda m: m.TruncatedNormal(0.5, 0.2), 0.5, 0.2 * 0.87962566103423978, None),
    ],
)
def test_random_initializers_statistics(make, mean, std, bound):
    shape = (200, 200)
    ours = make(initializers)(shape, np.random.default_rng(1), "float64")
    theirs = keras_array(make(keras.initializers), shape)
    for who, a in (("lstmkit", ours), ("keras", theirs)):
        assert abs(a.mean() - mean) < 0.02 * max(std, abs(mean)), who
        assert abs(a.std() / std - 1) < 0.03, who
        if bound is not None:
            assert np.abs(a - mean).max() <= bound + 1e-12, who


@pytest.mark.parametrize("shape", [(30, 120), (120, 30), (4, 5, 40), (64, 64)], ids=str)
def test_orthogonal_is_orthogonal(shape):
    gain = 1.7
    q = initializers.Orthogonal(gain=gain)(shape, np.random.default_rng(2), "float64")
    flat = q.reshape(-1, shape[-1])  # Keras: rows = prod(shape[:-1]), columns = shape[-1]
    r, c = flat.shape
    gram = flat.T @ flat if r >= c else flat @ flat.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(r, c)), atol=1e-12)
    k = keras_array(keras.initializers.Orthogonal(gain=gain), shape).reshape(-1, shape[-1])
    kgram = k.T @ k if r >= c else k @ k.T
    np.testing.assert_allclose(kgram, gain**2 * np.eye(min(r, c)), atol=1e-5)  # Keras: float32


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.Zeros(),
        lambda m: m.Ones(),
        lambda m: m.Constant(0.25),
        lambda m: m.Identity(gain=3.0),
    ],
)
@pytest.mark.parametrize("shape", [(3, 5), (4, 4), (5, 2)], ids=str)
def test_deterministic_initializers_equal_keras(make, shape):
    ours = make(initializers)(shape, None, "float32")
    np.testing.assert_array_equal(ours, keras_array(make(keras.initializers), shape))
    assert ours.dtype == np.float32


def test_identity_needs_two_dimensions():
    with pytest.raises(ValueError, match=r"Identity: the shape must be 2-D; got \(3, 3, 3\)"):
        initializers.Identity()((3, 3, 3), None, "float32")


@pytest.mark.parametrize("name", [*FAMILY, "orthogonal", "random_uniform", "truncated_normal"])
def test_int_seed_repeats_like_keras(name):
    cls = type(initializers.get(name))
    a, b = (cls(seed=5)((20, 30), np.random.default_rng(k), "float32") for k in (0, 1))
    np.testing.assert_array_equal(a, b)  # the generator handed in does not matter
    c = cls(seed=6)((20, 30), None, "float32")
    assert not np.array_equal(a, c)
    kcls = type(keras.initializers.get(name))
    ka = keras_array(kcls(seed=5), (20, 30))
    np.testing.assert_array_equal(ka, keras_array(kcls(seed=5), (20, 30)))  # Keras does the same
    # unseeded objects draw from the generator they are given
    u = cls()((20, 30), np.random.default_rng(3), "float32")
    np.testing.assert_array_equal(u, cls()((20, 30), np.random.default_rng(3), "float32"))
    assert not np.array_equal(u, cls()((20, 30), np.random.default_rng(4), "float32"))


@pytest.mark.parametrize("cls", [LSTM, GRU, SimpleRNN])
def test_layer_seed_fixes_the_initial_weights(cls):
    a, b, c = cls(8, seed=11), cls(8, seed=11), cls(8, seed=12)
    for layer, k in ((a, 0), (b, 1), (c, 0)):
        layer.build((5, 3), rng=np.random.default_rng(k))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.params["kernel"], c.params["kernel"])


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("GlorotUniform", {"seed": 3}),
        ("GlorotNormal", {}),
        ("HeNormal", {"seed": 1}),
        ("HeUniform", {}),
        ("LecunNormal", {}),
        ("LecunUniform", {"seed": 2}),
        ("Orthogonal", {"gain": 2.0, "seed": 4}),
        ("RandomUniform", {"minval": -1.0, "maxval": 2.0, "seed": 9}),
        ("RandomNormal", {"mean": 0.5, "stddev": 0.1}),
        ("TruncatedNormal", {"stddev": 0.3}),
        ("VarianceScaling", {"scale": 3.0, "mode": "fan_out", "distribution": "uniform"}),
        ("Zeros", {}),
        ("Ones", {}),
        ("Constant", {"value": 0.5}),
        ("Identity", {"gain": 2.0}),
    ],
)
def test_configs_are_keras_configs(name, kwargs):
    ours = initializers.serialize(getattr(initializers, name)(**kwargs))
    theirs = keras.initializers.serialize(getattr(keras.initializers, name)(**kwargs))
    if name == "Identity":  # Keras 3.15's Identity.get_config() forgets its gain; we keep it
        assert theirs["config"] == {} and ours["config"] == {"gain": 2.0}
        theirs = {**theirs, "config": {"gain": 2.0}}
        assert keras.initializers.get(ours).gain == 2.0  # and Keras reads ours
    assert ours == theirs
    again = initializers.get(theirs)  # Keras' dict builds ours
    assert type(again).__name__ == name and initializers.serialize(again) == theirs


def test_layer_initializers_by_name_object_and_dict():
    layer = LSTM(
        64,
        kernel_initializer="he_normal",
        recurrent_initializer=initializers.Identity(gain=0.5),
        bias_initializer={"class_name": "Constant", "config": {"value": 0.25}},
    )
    layer.build((5, 200), rng=np.random.default_rng(0))
    k = layer.params["kernel"]
    assert abs(k.std() / math.sqrt(2 / 200) - 1) < 0.03  # fan_in = D
    np.testing.assert_array_equal(layer.params["recurrent_kernel"], 0.5 * np.eye(64, 256))
    # unit_forget_bias: Keras' concat(init(H), ones(H), init(2H))
    theirs = keras.layers.LSTM(64, bias_initializer=keras.initializers.Constant(0.25))
    theirs.build((None, 5, 200))
    np.testing.assert_array_equal(
        layer.params["bias"], keras.ops.convert_to_numpy(theirs.cell.bias)
    )


def test_default_draws_are_unchanged():
    """Models seeded before these classes existed build the same weights (the former functions'
    draws: uniform(-sqrt(6 / (fan_in + fan_out)), +) and the QR of one normal matrix)."""
    rng = np.random.default_rng(7)
    expected = rng.uniform(-math.sqrt(6 / 70), math.sqrt(6 / 70), size=(30, 40)).astype("float32")
    got = initializers.get("glorot_uniform")((30, 40), np.random.default_rng(7), "float32")
    np.testing.assert_array_equal(got, expected)
    a = np.random.default_rng(8).normal(size=(40, 10))
    q, r = np.linalg.qr(a)
    expected = (q * np.sign(np.diag(r))).T.astype("float32")
    got = initializers.get("orthogonal")((10, 40), np.random.default_rng(8), "float32")
    np.testing.assert_array_equal(got, expected)


def test_bad_initializers_are_named():
    with pytest.raises(ValueError, match="argument 'initializer': unknown initializer 'glorot'"):
        initializers.get("glorot")
    with pytest.raises(ValueError, match="VarianceScaling: argument 'mode' must be one of"):
        initializers.VarianceScaling(mode="fan_mean")
    with pytest.raises(ValueError, match="RandomUniform: argument 'seed' must be None or a non"):
        initializers.RandomUniform(seed="x")
    with pytest.raises(ValueError, match="a SeedGenerator seed is not supported"):
        initializers.get({"class_name": "GlorotUniform", "config": {"seed": {"class_name": "S"}}})


@pytest.mark.parametrize(
    "name",
    ["constant", "identity", "ones", "zeros", "random_uniform", "random_normal",
     "truncated_normal", "variance_scaling", "orthogonal", "glorot_uniform", "glorot_normal",
     "he_uniform", "he_normal", "lecun_uniform", "lecun_normal"],
)  # fmt: skip
def test_keras_lower_case_spellings_are_the_classes(name):
    ours, theirs = getattr(initializers, name)(), getattr(keras.initializers, name)()
    assert (
        initializers.serialize(ours)["class_name"]
        == keras.initializers.serialize(theirs)["class_name"]
    )
