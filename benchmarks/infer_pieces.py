"""The pieces of one inference step, timed alone in compiled loops (CPU-time minima, one thread,
float32, the variant in use), for configs A and C:

- ``pass``: the pointwise pass over ``H * B`` cells, in one loop and in two phases
  (``cells.lstm_pass_infer``; the product's output copied in fresh each step, its copy timed
  apart and subtracted);
- ``copies``: ``h_t (H, B)`` into the ``(B, T, H)`` output and ``x_{t+1}`` into ``xh``, by the
  scalar loops inference had and by ``transpose.transpose_into``;
- ``hoist``: the per-step product over ``[1; x_t; h_{t-1}]`` (``K = 1 + D + H``) against the
  input projection hoisted out of the loop (one product over all ``T * B`` columns, ``K = 1 +
  D``) plus a per-step product over ``h`` (``K = H``) and the add of ``xw_t``.

    python benchmarks/infer_pieces.py [--configs A,C] [--rounds 15]

Prints microseconds a step and the load average. Every pair is checked to give the same bits.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from numba import njit

from lstmkit.ops.fast import packed
from lstmkit.ops.fast.cells import lstm_pass_infer
from lstmkit.ops.fast.common import aligned_empty
from lstmkit.ops.fast.elementwise import DEFAULT, acts_for
from lstmkit.ops.fast.packed import MR, matmul_packed, pack_rows, panels
from lstmkit.ops.fast.transpose import transpose_into

CONFIGS = {"A": (100, 32, 32, 128), "B": (100, 16, 16, 64), "C": (50, 64, 64, 256),
           "D": (200, 16, 16, 32)}  # fmt: skip


@njit
def _pass(z, z0, cp, cn, h, m, acts, phases, n):
    for _ in range(n):
        z[:] = z0  # the product's output, fresh each step
        lstm_pass_infer(z, cp, cn, h, m, acts, phases)


@njit
def _copy(z, z0, n):
    for _ in range(n):
        z[:] = z0


@njit
def _h_loops(nx, r0, out):
    B, T, H = out.shape
    for t in range(T):
        for b in range(B):
            row = out[b, t]
            for j in range(H):
                row[j] = nx[r0 + j, b]


@njit
def _h_tiles(nx, r0, out, mk):
    for t in range(out.shape[1]):
        transpose_into(nx[r0 : r0 + out.shape[2]], out[:, t], mk)


@njit
def _x_loops(xb, nx):
    B, T, D = xb.shape
    for t in range(T - 1):
        for d in range(D):
            for b in range(B):
                nx[1 + d, b] = xb[b, t + 1, d]


@njit
def _x_tiles(xb, nx, mk):
    for t in range(xb.shape[1] - 1):
        transpose_into(xb[:, t + 1], nx[1 : 1 + xb.shape[2]], mk)


@njit
def _products(Ap, M, X, Z, mk, n):
    for _ in range(n):
        matmul_packed(Ap, 0, M, X, Z, mk)


@njit
def _add(Z, XW):
    z = Z.ravel()
    for t in range(XW.shape[0]):
        xw = XW[t].ravel()
        for k in range(z.size):
            z[k] = z[k] + xw[k]


def _best(fns, rounds, per):
    """CPU-time minimum of each ``fn()`` divided by ``per``, order reversed every round (us)."""
    res = {k: [] for k in fns}
    for r in range(rounds):
        for k in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            t0 = time.process_time()
            fns[k]()
            res[k].append(time.process_time() - t0)
    return {k: 1e6 * min(v) / per for k, v in res.items()}


def _packed(A):
    Ap = aligned_empty((panels(A.shape[0]), A.shape[1], MR), np.float32)
    pack_rows(np.ascontiguousarray(A), 0, A.shape[0], Ap, 0)
    return Ap


def time_pass(name, rounds, rng):
    _, B, _, H = CONFIGS[name]
    m, f32 = H * B, np.float32
    acts = acts_for(*DEFAULT)
    z0 = aligned_empty((4 * m,), f32)
    z0[:] = 2 * rng.standard_normal(4 * m)
    z, cp, cn, h = (aligned_empty((n,), f32) for n in (4 * m, m, m, m))
    cp[:] = rng.standard_normal(m)
    got = []
    for ph in (1, 2):
        _pass(z, z0, cp, cn, h, m, acts, ph, 1)
        got.append((cn.copy(), h.copy()))
    assert all(np.array_equal(a, b) for a, b in zip(*got)), "the two passes differ"
    n = 200
    t = _best({"one loop": lambda: _pass(z, z0, cp, cn, h, m, acts, 1, n),
               "two phases": lambda: _pass(z, z0, cp, cn, h, m, acts, 2, n),
               "copy": lambda: _copy(z, z0, n)}, rounds, n)  # fmt: skip
    one, two = t["one loop"] - t["copy"], t["two phases"] - t["copy"]
    print(f"{name} pass ({m} cells): one loop {one:.2f} us ({1e3 * one / m:.2f} ns a cell), "
          f"two phases {two:.2f} us ({1e3 * two / m:.2f} ns a cell)")  # fmt: skip


def time_copies(name, rounds, rng):
    T, B, D, H = CONFIGS[name]
    K, f32 = 1 + D + H, np.float32
    mk = packed.kernels(f32)
    nx = aligned_empty((K, B), f32)
    nx[:] = rng.standard_normal((K, B))
    out, out2 = aligned_empty((B, T, H), f32), aligned_empty((B, T, H), f32)
    xb = rng.standard_normal((B, T, D)).astype(f32)
    nx2 = nx.copy()
    _h_loops(nx, 1 + D, out), _h_tiles(nx, 1 + D, out2, mk)
    _x_loops(xb, nx), _x_tiles(xb, nx2, mk)
    assert np.array_equal(out, out2) and np.array_equal(nx, nx2), "the copies differ"
    t = _best({"h loops": lambda: _h_loops(nx, 1 + D, out),
               "h tiles": lambda: _h_tiles(nx, 1 + D, out, mk),
               "x loops": lambda: _x_loops(xb, nx), "x tiles": lambda: _x_tiles(xb, nx, mk)},
              rounds, T)  # fmt: skip
    print(
        f"{name} copies, us a step: h_t into out {t['h loops']:.2f} (loops) {t['h tiles']:.2f} "
        f"(tiles); x_t+1 into xh {t['x loops']:.2f} (loops) {t['x tiles']:.2f} (tiles)"
    )


def time_products(name, rounds, rng):
    T, B, D, H = CONFIGS[name]
    K, f32 = 1 + D + H, np.float32
    mk = packed.kernels(f32)
    nx = aligned_empty((K, B), f32)
    nx[:] = rng.standard_normal((K, B))
    W = rng.standard_normal((4 * H, K)).astype(f32)
    full, rec, inp = _packed(W), _packed(W[:, 1 + D :]), _packed(W[:, : 1 + D])
    xin = aligned_empty((1 + D, T * B), f32)
    xin[:] = rng.standard_normal((1 + D, T * B))
    Z, XW = aligned_empty((4 * H, B), f32), aligned_empty((4 * H, T * B), f32)
    XWt = aligned_empty((T, 4 * H, B), f32)
    XWt[:] = 0.1
    t = _best({"per step, K = 1 + D + H": lambda: _products(full, 4 * H, nx, Z, mk, T),
               "per step, K = H": lambda: _products(rec, 4 * H, nx[1 + D :], Z, mk, T),
               "hoisted, K = 1 + D": lambda: _products(inp, 4 * H, xin, XW, mk, 1),
               "add xw_t": lambda: _add(Z, XWt)}, rounds, T)  # fmt: skip
    hoisted = t["per step, K = H"] + t["hoisted, K = 1 + D"] + t["add xw_t"]
    print(
        f"{name} products, us a step: "
        + ", ".join(f"{k} {v:.1f}" for k, v in t.items())
        + f"; hoisted in all {hoisted:.1f} against {t['per step, K = 1 + D + H']:.1f}"
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="A,C")
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"variant {packed.variant()}, load average before {os.getloadavg()}")
    for name in args.configs.split(","):
        for piece in (time_pass, time_copies, time_products):
            piece(name, args.rounds, rng)
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
