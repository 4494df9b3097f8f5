"""Each cell's pointwise step and its derivative, written once; every compiled kernel inlines them.

Every step takes ``acts``, the layer's activation pair (:mod:`.elementwise`: φ = ``activation``,
tanh by default; ρ = ``recurrent_activation``, sigmoid), resolved when numba compiles the caller,
so each pair has its own machine code and the default pair's is what it was before pairs existed.
LSTM, gate blocks in the order of :data:`lstmkit.ops.gates.LSTM_GATES`, from the whole
pre-activation ``z`` (bias included); backward from the stored activations and ``φ(c)`` (written
here for the defaults; ``ρ'`` and ``φ'`` from the outputs in general)::

    i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
    c = f * c_prev + i * g        h = o * tanh(c)
    dc_t = dc + dh * o * (1 - tanh(c)^2)                     # dL/dc_t through both paths
    dz_i = dc_t * g * i(1 - i)    dz_f = dc_t * c_prev * f(1 - f)
    dz_g = dc_t * i * (1 - g^2)   dz_o = dh * tanh(c) * o(1 - o)    dc_prev = dc_t * f

:func:`lstm_cell` (:func:`lstm_gates`, then :func:`lstm_state`) and :func:`lstm_cell_grad` are
scalar and ``inline="always"``: numba pastes them into the caller's loop, so a flat loop over
contiguous blocks vectorises as if written out (the float32 activations of :mod:`.activations`
at the full float32 width). The passes below run them over a chunk of ``m`` units (feature-major: ``m = units * B`` values of ``(H, B)``
blocks; row-major: one row's ``H``), gate blocks a stride apart; the feature-major kernels
(:mod:`.lstm_fm`), the row-major ones and the streaming step (:mod:`.lstm`) all call them. Each
pass slices its operands before the loop: with the offsets inside the loop numba's vectoriser
gives up (measured 80 vs 11.5 us per step at H=128, B=32).
"""

from __future__ import annotations

from numba import njit, types
from numba.extending import overload

from ..gates import GRU_GATES, LSTM_GATES
from ._jit import JIT as _JIT
from .activations import one_
from .elementwise import dphi, drho, phi, rho

_I, _F, _G, _O = (LSTM_GATES.index(k) for k in ("i", "f", "g", "o"))
_Z, _R, _N = (GRU_GATES.index(k) for k in ("z", "r", "n"))


@njit(inline="always")
def lstm_gates(acts, zi, zf, zg, zo):
    """One unit's gate activations: pre-activations -> ``(i, f, g, o)``."""
    return rho(acts, zi), rho(acts, zf), phi(acts, zg), rho(acts, zo)


@njit(inline="always")
def lstm_state(acts, i, f, g, o, c_prev):
    """One unit's state update: the gates and c_{t-1} -> ``(c, φ(c), h)``."""
    c = f * c_prev + i * g
    tc = phi(acts, c)
    return c, tc, o * tc


@njit(inline="always")
def lstm_cell(acts, zi, zf, zg, zo, c_prev):
    """One unit's step: pre-activations and c_{t-1} -> ``(i, f, g, o, c, φ(c), h)``; ``acts``
    the pair (φ, ρ), default (tanh, sigmoid): :func:`lstm_gates`, then :func:`lstm_state`."""
    i, f, g, o = lstm_gates(acts, zi, zf, zg, zo)
    c, tc, h = lstm_state(acts, i, f, g, o, c_prev)
    return i, f, g, o, c, tc, h


@njit(inline="always")
def lstm_cell_grad(acts, i, f, g, o, tc, c_prev, dh, dc):
    """One unit's derivative: the step's cached values and dL/dh_t, dL/dc_t (the latter from
    the step after) -> ``(dz_i, dz_f, dz_g, dz_o, dL/dc_{t-1})``; derivatives from the outputs
    (``ρ'(i) = i (1 - i)``, ``φ'(g) = 1 - g^2`` for the defaults)."""
    d = dc + dh * o * dphi(acts, tc)
    return (d * g * drho(acts, i), d * c_prev * drho(acts, f), d * i * dphi(acts, g),
            dh * tc * drho(acts, o), d * f)  # fmt: skip


@njit(inline="always")
def lstm_blocks(a, o, s, m):
    """The gate blocks i, f, g, o of a flat array: ``m`` values each from ``o + k * s``."""
    return (a[o + _I * s : o + _I * s + m], a[o + _F * s : o + _F * s + m],
            a[o + _G * s : o + _G * s + m], a[o + _O * s : o + _O * s + m])  # fmt: skip


@njit(**_JIT)
def lstm_pass(z, zs, a, gs, o, cp, cn, tc, h, ho, m, acts):
    """Training forward over one chunk: pre-activations ``z`` (gate blocks ``zs`` apart) ->
    activations into ``a`` (blocks ``gs`` apart, from ``o``; ``a`` may be ``z``), c_t into
    ``cn``, tanh(c_t) into ``tc`` (c_{t-1} ``cp`` read, all from ``o``), h_t into ``h`` from
    ``ho + o``."""
    zi, zf, zg, zo = lstm_blocks(z, 0, zs, m)
    ai, af, ag, ao = lstm_blocks(a, o, gs, m)
    cp, cn, tc, h = cp[o : o + m], cn[o : o + m], tc[o : o + m], h[ho + o : ho + o + m]
    for k in range(m):
        ai[k], af[k], ag[k], ao[k], cn[k], tc[k], h[k] = lstm_cell(acts, zi[k], zf[k], zg[k],
                                                                   zo[k], cp[k])  # fmt: skip


@njit(**_JIT)
def lstm_pass_infer(z, cp, cn, h, m, acts, phases=1):
    """Inference over one chunk: pre-activations ``z`` (gate blocks ``m`` apart) and c_{t-1}
    -> c_t and h_t only (``cn`` may be ``cp``). ``phases`` 2: the gate activations of the whole
    chunk first, into ``z`` (its blocks then hold i, f, g, o), then the state update, the same
    bits; 1: both in one loop (see :func:`.packed.pass_phases` for which a variant takes)."""
    zi, zf, zg, zo = lstm_blocks(z, 0, m, m)
    if phases == 2:
        for k in range(m):
            zi[k], zf[k], zg[k], zo[k] = lstm_gates(acts, zi[k], zf[k], zg[k], zo[k])
        for k in range(m):
            c, _, hk = lstm_state(acts, zi[k], zf[k], zg[k], zo[k], cp[k])
            cn[k] = c
            h[k] = hk
        return
    for k in range(m):
        _, _, _, _, c, _, hk = lstm_cell(acts, zi[k], zf[k], zg[k], zo[k], cp[k])
        cn[k] = c
        h[k] = hk


@njit(**_JIT)
def lstm_pass_grad(a, gs, o, tc, cp, dh, dc, dz, zo, zs, m, acts):
    """Backward over one chunk: activations ``a`` (gate blocks ``gs`` apart), tanh(c_t) ``tc``
    and c_{t-1} ``cp``, all from ``o``; dL/dh_t, dL/dc_t in ``dh, dc`` (from ``o``), dc becomes
    dL/dc_{t-1}; dL/dz out into ``dz`` from ``zo``, gate blocks ``zs`` apart."""
    ai, af, ag, ao = lstm_blocks(a, o, gs, m)
    di, df, dg, do = lstm_blocks(dz, zo, zs, m)
    tc, cp, dh, dc = tc[o : o + m], cp[o : o + m], dh[o : o + m], dc[o : o + m]
    for k in range(m):
        di[k], df[k], dg[k], do[k], dc[k] = lstm_cell_grad(acts, ai[k], af[k], ag[k], ao[k],
                                                           tc[k], cp[k], dh[k], dc[k])  # fmt: skip


@njit(**_JIT)
def add_row(out, zr, xr, br):
    """``out = zr + (xr + br)`` for one row: ``(x W + b) + h U``, rounded in the reference's
    order (``out`` may be ``zr``)."""
    for k in range(zr.shape[0]):
        out[k] = zr[k] + (xr[k] + br[k])


@njit(inline="always")
def carry_over(run, new, old):
    """Around every kernel's step, forward and back: rows ``b`` of ``new (B, n)`` whose step the
    mask skips (``run[b]`` False) take ``old``'s, so the state (h, c; dh, dc in BPTT) passes a
    skipped step unchanged. Feature-major ``(n, B)`` blocks are passed transposed."""
    for b in range(new.shape[0]):
        if not run[b]:
            for j in range(new.shape[1]):
                new[b, j] = old[b, j]


# --- GRU ----------------------------------------------------------------------------------------


@njit(inline="always")
def gru_cell(acts, az, ar, xn, hun, h_prev):
    """One unit's step: ``az, ar`` the whole z and r pre-activations, ``xn = (x W + b_in)_n``,
    ``hun = (h U + b_rec)_n`` -> ``(z, r, n, h)``; ``acts`` the pair (φ, ρ)."""
    z = rho(acts, az)
    r = rho(acts, ar)
    n = phi(acts, xn + r * hun)
    return z, r, n, z * h_prev + (one_(z) - z) * n


@njit(inline="always")
def gru_cell_grad(acts, z, r, n, hun, h_prev, dh):
    """One unit's derivative -> ``(dz_z, dz_r, dz_n, d(h U)_n, the part of dL/dh_{t-1} that
    skips U)``."""
    dn = dh * (one_(dh) - z) * dphi(acts, n)
    dr = dn * hun * drho(acts, r)
    return dh * (h_prev - n) * drho(acts, z), dr, dn, dn * r, dh * z


@njit(**_JIT)
def gru_pass(ur, bu, xr, bi, hp, gr, hunr, hn, H, acts):
    """One row: ``ur = h_in @ U``, ``xr = x @ W`` and the biases -> gates z, r, n into ``gr``,
    ``(h U + b_rec)_n`` into ``hunr``, h_t into ``hn``."""
    z0, r0, n0 = _Z * H, _R * H, _N * H
    for j in range(H):
        # (x W + b_in) + (h U + b_rec), rounded in the reference's order
        hun = ur[n0 + j] + bu[n0 + j]
        gr[z0 + j], gr[r0 + j], gr[n0 + j], hn[j] = gru_cell(
            acts, (xr[z0 + j] + bi[z0 + j]) + (ur[z0 + j] + bu[z0 + j]),
            (xr[r0 + j] + bi[r0 + j]) + (ur[r0 + j] + bu[r0 + j]),
            xr[n0 + j] + bi[n0 + j], hun, hp[j],
        )  # fmt: skip
        hunr[j] = hun


@njit(**_JIT)
def gru_pass_grad(a, hun, hp, dh, dxw, dhu, blend, H, acts):
    """One row: gates ``a``, ``(h U + b_rec)_n``, h_{t-1} and dL/dh_t -> dL/d(x W + b_in) into
    ``dxw``, dL/d(h U + b_rec) into ``dhu``, and ``dh * z`` (dL/dh_{t-1} past U) into ``blend``."""
    z0, r0, n0 = _Z * H, _R * H, _N * H
    for j in range(H):
        dz, dr, dn, dun, blend[j] = gru_cell_grad(acts, a[z0 + j], a[r0 + j], a[n0 + j], hun[j],
                                                  hp[j], dh[j])  # fmt: skip
        dxw[z0 + j], dxw[r0 + j], dxw[n0 + j] = dz, dr, dn
        dhu[z0 + j], dhu[r0 + j], dhu[n0 + j] = dz, dr, dun  # n sees hu_n only through r * hu_n


# --- simple RNN: h = φ(z) -------------------------------------------------------------------------


@njit(**_JIT)
def rnn_pass(zr, xr, br, yr, acts, H):
    """One row: ``yr = φ((xr + br) + zr)``, the reference's rounding order (``yr`` must not
    alias ``zr`` or ``xr``: the loops would not vectorise)."""
    for j in range(H):
        yr[j] = phi(acts, (xr[j] + br[j]) + zr[j])


@njit(**_JIT)
def rnn_pass_grad(yr, dh, d, acts, H):
    """One row: ``d = dh * φ'`` from φ's output ``yr``."""
    for j in range(H):
        d[j] = dh[j] * dphi(acts, yr[j])


# --- each cell's row for the row-major time loops of :mod:`.rows` ---------------------------------
#
# A cell's buffers travel as a plain tuple (numba types it about 1 us faster per call than a
# namedtuple). Forward: what the cell keeps per step, ``(n, B, ...)`` with n = T, or 1 reused at
# inference; BPTT: those it reads, then ``dzx`` dL/d(x W + b_in) and ``dzr`` dL/d(h U + b_rec)
# ``(T, B, G)``, last (one array twice but for the GRU)::
#
#     forward   LSTM (gates, c, tanh_c)                GRU (gates, hu_n)   RNN (y,)
#     BPTT      LSTM (gates, c, tanh_c, dc, dzx, dzr)  GRU (gates, hu_n, h, dzx, dzr)
#               RNN (y, dzx, dzr)
#
# gates (n, B, G); LSTM c (T+1, B, H) with c0 first, tanh_c (T, B, H), dc (B, H) dL/dc_t in
# place; GRU hu_n (n, B, H) = (h U + b_rec)_n, h (T+1, B, H) with h0 first; RNN y (n, B, H),
# φ's output before the mask. The length tells the cells apart (it differs between the cells in
# each direction) and picks the cell's row functions below when numba compiles the loop: each
# cell has its own machine code and the loop holds no branch on it.


def row_step(cell, acts, t, s, b, u, xw, bias, hp, h, z):
    """Row ``b`` of step ``t`` (stored at ``s``): ``u = (h_in U)[b]`` and ``xw = (x W)[t, b]``
    ``(G,)``, the bias (the GRU's: a tuple of its two rows), h_{t-1} ``hp`` -> the cell's buffers and h_t into ``h``; ``z (G,)``
    scratch."""


def row_grad(cell, acts, t, b, dh, blend):
    """Row ``b`` of step ``t`` of BPTT from dL/dh_t ``dh``: fills the cell's ``dzx``, ``dzr``
    (LSTM: dc becomes dL/dc_{t-1}) and ``blend``, the part of dL/dh_{t-1} that skips U (the GRU's
    ``dh * z``; left as it is by the others)."""


def carry_state(cell, run, t, b0, b1):
    """Masked rows (``run`` False) of the state besides h carried over (the LSTM's c)."""


def _lstm_step(cell, acts, t, s, b, u, xw, bias, hp, h, z):
    gates, c, tanh_c = cell
    # z apart from the gates: the same array as input and output of the pass would send it to
    # LLVM's scalar loop (its run-time overlap check fails)
    add_row(z, u, xw, bias)
    H = h.shape[0]
    lstm_pass(z, H, gates[s, b], H, 0, c[t, b], c[t + 1, b], tanh_c[s, b], h, 0, H, acts)


def _lstm_grad(cell, acts, t, b, dh, blend):
    gates, c, tanh_c, dc, dz, _ = cell
    H = dh.shape[0]
    lstm_pass_grad(gates[t, b], H, 0, tanh_c[t, b], c[t, b], dh, dc[b], dz[t, b], 0, H, H, acts)


def _lstm_carry(cell, run, t, b0, b1):
    carry_over(run, cell[1][t + 1, b0:b1], cell[1][t, b0:b1])  # c


def _gru_step(cell, acts, t, s, b, u, xw, bias, hp, h, z):
    gates, hu_n = cell
    b_in, b_rec = bias
    gru_pass(u, b_rec, xw, b_in, hp, gates[s, b], hu_n[s, b], h, h.shape[0], acts)


def _gru_grad(cell, acts, t, b, dh, blend):
    gates, hu_n, h, dxw, dhu = cell
    gru_pass_grad(gates[t, b], hu_n[t, b], h[t, b], dh, dxw[t, b], dhu[t, b], blend, dh.shape[0],
                  acts)  # fmt: skip


def _rnn_step(cell, acts, t, s, b, u, xw, bias, hp, h, z):
    y = cell[0]
    rnn_pass(u, xw, bias, y[s, b], acts, h.shape[0])
    h[:] = y[s, b]


def _rnn_grad(cell, acts, t, b, dh, blend):
    rnn_pass_grad(cell[0][t, b], dh, cell[1][t, b], acts, dh.shape[0])


def _no_carry(cell, run, t, b0, b1):
    pass


# by the length of the cell's tuple
_STEP = {3: _lstm_step, 2: _gru_step, 1: _rnn_step}
_GRAD = {6: _lstm_grad, 5: _gru_grad, 3: _rnn_grad}
_CARRY = {3: _lstm_carry, 2: _no_carry, 1: _no_carry}


def _length(cell):
    return len(cell) if isinstance(cell, types.BaseTuple) else None


@overload(row_step, inline="always")
def _ov_step(cell, acts, t, s, b, u, xw, bias, hp, h, z):
    return _STEP.get(_length(cell))


@overload(row_grad, inline="always")
def _ov_grad(cell, acts, t, b, dh, blend):
    return _GRAD.get(_length(cell))


@overload(carry_state, inline="always")
def _ov_carry(cell, run, t, b0, b1):
    return _CARRY.get(_length(cell))
