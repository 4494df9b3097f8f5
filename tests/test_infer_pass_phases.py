"""The inference pass in one loop or in two phases (``cells.lstm_pass_infer``): the same bits.

Two phases (the gate activations of the whole block, then the state update; what the AVX2 and
generic variants run, ``packed.pass_phases``) must give exactly what one loop gives (what
AVX-512 runs): the same scalar functions (``cells.lstm_gates``, ``cells.lstm_state``) in the
same order, only scheduled differently. Witness: the one loop, bit for bit, on the pass alone
(specials included) and through ``lstm_infer_fm`` on each of its paths (one thread, the batch
split, the unit split) under every variant this CPU can run. The reference tolerances are
checked by ``test_fast_lstm_fm.py`` and ``test_fast_variants.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")  # an optional dependency, like the rest of the fast path

from lstmkit.ops import compiled
from lstmkit.ops.fast import common, lstm_fm, packed
from lstmkit.ops.fast.cells import lstm_pass_infer
from lstmkit.ops.fast.elementwise import DEFAULT, acts_for


def _same(a, b) -> bool:
    return np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))


@pytest.mark.parametrize("m", [1, 7, 64, 333])
@pytest.mark.parametrize("pair", [DEFAULT, ("relu", "hard_sigmoid")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_phases_give_the_bits_of_one_loop(m, pair, dtype):
    rng = np.random.default_rng(m)
    z = (rng.standard_normal(4 * m) * 6).astype(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 3e-39], dtype)
    z[: min(4 * m, specials.size)] = specials[: 4 * m]
    cp = rng.standard_normal(m).astype(dtype)
    acts = acts_for(*pair)
    got = {}
    for phases in (1, 2):
        zz, cn, h = z.copy(), np.full(m, 7, dtype), np.full(m, 7, dtype)
        lstm_pass_infer(zz, cp, cn, h, m, acts, phases)
        got[phases] = cn, h
    assert _same(got[1][0], got[2][0]), "c_t"
    assert _same(got[1][1], got[2][1]), "h_t"


def test_only_avx512_keeps_the_one_loop():
    """Which variant runs which pass (the variants' table carries it to the kernels)."""
    assert {v: packed.pass_phases(v) for v in compiled.KERNEL_VARIANTS} == {
        "avx512": 1,
        "avx2": 2,
        "generic": 2,
    }
    for v in compiled.runnable_variants():
        for dt in (np.float32, np.float64):
            assert packed.kernels(dt, v)[3] == packed.pass_phases(v)


def _problem(T, B, D, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    s = 1.5 / np.sqrt(H)
    shapes = ((T, B, D), (B, H), (B, H), (D, 4 * H), (H, 4 * H), (4 * H,))
    args = [rng.uniform(-s, s, sh) if i >= 3 else rng.standard_normal(sh)
            for i, sh in enumerate(shapes)]  # fmt: skip
    mask = rng.random((T, B)) < 0.7
    return [a.astype(dtype) for a in args], mask


# one thread; the batch split (2 x 16 float32 columns); the unit split (16 columns, big steps)
PATHS = [(1, (5, 32, 6, 24)), (2, (5, 32, 6, 24)), (2, (4, 16, 16, 64))]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("threads", "shape"), PATHS)
@pytest.mark.parametrize("variant", compiled.runnable_variants())
def test_inference_gives_the_same_bits_in_either_pass(variant, threads, shape, dtype, masked,
                                                      monkeypatch):  # fmt: skip
    args, mask = _problem(*shape, dtype)
    real = packed.kernels

    def with_phases(phases):
        def kernels(dt, name=None):
            mk = real(dt, name).copy()
            mk[3] = phases
            return mk

        return kernels

    packed.set_variant(variant)
    common.set_num_threads(threads)
    try:
        got = {}
        for phases in (1, 2):
            monkeypatch.setattr(lstm_fm, "kernels", with_phases(phases))
            hs, (h_T, c_T) = lstm_fm.lstm_infer_fm(*args, mask=mask if masked else None)
            got[phases] = hs.copy(), h_T, c_T
    finally:
        common.set_num_threads(None)
        packed.set_variant(None)
    for name, a, b in zip(("hs", "h_T", "c_T"), got[1], got[2]):
        assert _same(a, b), name
