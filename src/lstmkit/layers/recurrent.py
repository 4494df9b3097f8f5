"""Recurrent layers with Keras semantics: LSTM, GRU, SimpleRNN.

The cell maths lives in ``lstmkit.ops`` (time-major, one function per direction of the pass);
a layer adds what is about *time and batches*: batch-major ``(batch, timesteps, features)``
input, masks, ``go_backwards``, initial and carried (stateful) state, dropout, and which outputs
to return.

Keras behaviours kept exactly:

- ``return_sequences=False`` returns the last output; with a mask that is the last *valid* h.
- A masked step leaves h and c unchanged; with ``return_sequences`` its output is the previous
  step's output (the carried h, or zeros before the first valid step: Keras' default), or zeros
  when ``zero_output_for_mask`` is set (``Bidirectional`` sets it, as Keras does).
- ``go_backwards`` reverses the whole padded sequence and returns outputs in reversed order.
- ``dropout`` is one mask per sequence on the inputs, ``recurrent_dropout`` one mask per sequence on
  ``h_{t-1}`` before the recurrent product (Keras 3 ``DropoutRNNCell``).

Every Keras 3 constructor argument is accepted (see :mod:`lstmkit.layers.rnn_options`):
``activation``/``recurrent_activation`` (any element-wise Keras activation), ``use_bias``,
initializers, regularizers (their penalties join the training loss, see
:mod:`lstmkit.regularizers`), constraints (applied after each optimizer step), ``seed``,
``unroll``, GRU ``reset_after``. Which kernels run (:meth:`RNNBase.kernel_report` says, for a
layer): the compiled ones for Keras' defaults, ``use_bias=False`` (a zero bias) and every
activation whose derivative is a function of its output, in either role (linear, relu, relu6,
leaky_relu, elu, selu, sigmoid, hard_sigmoid, tanh, hard_tanh, softplus, softsign, exponential,
log_sigmoid: :mod:`lstmkit.ops.fast.elementwise`; a pair other than tanh/sigmoid compiles on its
first use, see ``docs/speed.md``); the NumPy reference for those whose derivative needs the
pre-activation (gelu, swish/silu, hard_silu, mish, tanh_shrink, celu, squareplus, the shrinks,
sparse_plus, sparse_sigmoid) and GRU ``reset_after=False``
(:func:`lstmkit.ops.backend.compiled_supports`).

``seed``: the initial weights are drawn from ``default_rng([seed, 0, go_backwards])`` (so the
two directions of a Bidirectional differ), and the dropout masks from the layer's own stream
``default_rng([seed, 1])``, advanced at each training call, whatever generator the trainer hands
in: Keras' ``SeedGenerator``, and what ``Dropout(seed=)`` does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import initializers
from .. import random as _random
from ..ops import backend
from ..ops.lstm_variants import (
    LNParams,
    LSTMVariantCache,
    Variant,
    lstm_variants_backward,
    lstm_variants_forward,
    lstm_variants_step,
)
from . import rnn_options as options
from .base import Layer, check_array, check_mask


class RecurrentCache(NamedTuple):
    ops_cache: object
    mask: np.ndarray | None  # (T, B) time-major, after go_backwards
    input_dropout: np.ndarray | None  # (B, D) scaled keep-mask
    n_state: int
    has_initial_state: bool
    batch_major_shape: tuple
    activity: tuple | None = None  # the returned arrays, when an activity_regularizer needs them
    activity_penalty: float = 0.0  # its penalty, summed by lstmkit.regularizers.activity_penalty


class RNNBase(Layer):
    supports_masking = True
    cell = ""  # "lstm" | "gru" | "rnn"
    n_gates = 1
    state_names: tuple[str, ...] = ("h",)
    has_recurrent_activation = True  # LSTM, GRU: recurrent_activation; SimpleRNN has none

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        use_cudnn="auto",
        **kwargs,
    ):
        who = type(self).__name__
        if "implementation" in kwargs:  # Keras 2's choice of kernels: Keras 3 drops it too
            options.implementation(who, kwargs.pop("implementation"))
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"{who}: argument 'units' must be a positive int; got {units!r}")
        for arg, v in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{who}: argument '{arg}' must be in [0, 1); got {v!r}")
        self.units = int(units)
        self.activation = options.activation(who, "activation", activation)
        self.recurrent_activation = (
            options.activation(who, "recurrent_activation", recurrent_activation)
            if self.has_recurrent_activation
            else None
        )
        self.use_bias = options.flag(who, "use_bias", use_bias)
        self._set_weight_args(who, locals())
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = options.seed(who, seed)
        # Keras' SeedGenerator: a seeded layer draws its dropout masks from its own stream
        self._seed_rng = None if self.seed is None else np.random.default_rng([self.seed, 1])
        for arg in ("return_sequences", "return_state", "go_backwards", "stateful", "unroll"):
            setattr(self, arg, options.flag(who, arg, locals()[arg]))
        self.zero_output_for_mask = options.flag(who, "zero_output_for_mask", zero_output_for_mask)
        self.use_cudnn = options.use_cudnn(who, use_cudnn)
        self.states = None  # carried state in stateful mode: list of (B, H) arrays

    def _set_weight_args(self, who, args):
        """Initializers, regularizers and constraints from the constructor's arguments."""
        for arg in options.INITIALIZER_ARGS:
            setattr(self, arg, options.initializer(who, arg, args[arg]))
        for arg in options.REGULARIZER_ARGS:
            setattr(self, arg, options.regularizer(who, arg, args[arg]))
        for arg in options.CONSTRAINT_ARGS:
            setattr(self, arg, options.constraint(who, arg, args[arg]))

    @property
    def weight_names(self):
        return (
            ("kernel", "recurrent_kernel", "bias")
            if self.use_bias
            else ("kernel", "recurrent_kernel")
        )

    def weight_regularizers(self):
        return options.by_role(self, "regularizer")

    def weight_constraints(self):
        return options.by_role(self, "constraint")

    # -- parameters ---------------------------------------------------------------------------
    def _build(self, input_shape, rng):
        if len(input_shape) != 2:
            raise ValueError(
                f"{type(self).__name__}: input shape must be (timesteps, features); "
                f"got {tuple(input_shape)}"
            )
        if self.seed is not None:  # the backward copy in a Bidirectional starts elsewhere
            rng = np.random.default_rng([self.seed, 0, int(self.go_backwards)])
        D, H, G = input_shape[-1], self.units, self.n_gates
        self.add_weight("kernel", (D, G * H), initializers.get(self.kernel_initializer), rng)
        # Keras initialises the recurrent kernel (H, G*H) as one orthogonal matrix.
        self.add_weight(
            "recurrent_kernel", (H, G * H), initializers.get(self.recurrent_initializer), rng
        )
        if self.use_bias:
            self.add_weight("bias", self._bias_shape(), self._bias_init(), rng)

    def _bias_shape(self):
        return (self.n_gates * self.units,)

    def _bias_init(self):
        return initializers.get(self.bias_initializer)

    def _bias(self):
        """The bias the ops add: the parameter, or zeros with ``use_bias=False`` (exact, and the
        compiled kernels stay in use)."""
        if self.use_bias:
            return self.params["bias"]
        return np.zeros(self._bias_shape(), self.dtype)

    def _cell_options(self) -> dict:
        """Options bound into the cell ops (:func:`lstmkit.ops.backend.ops_for`)."""
        return {"activation": self.activation, "recurrent_activation": self.recurrent_activation}

    @property
    def input_dim(self):
        return self.built_input_shape[-1]

    def compute_output_shape(self, input_shape):
        T = input_shape[0]
        out = (T, self.units) if self.return_sequences else (self.units,)
        if self.return_state:
            return [out] + [(self.units,)] * len(self.state_names)
        return out

    def compute_mask(self, x, mask):
        if self.return_sequences and mask is not None:
            return mask[:, ::-1] if self.go_backwards else mask
        return None

    # -- cell adapters: uniform (hs, [states], cache) whatever the cell -------------------------
    def _ops(self):
        return backend.ops_for(self.cell, **self._cell_options())

    def kernel_report(self) -> str:
        """Which implementation runs this layer's cell now, and why not the compiled kernels
        when it is the NumPy reference."""
        if getattr(self, "is_variant", False):
            return "NumPy reference: the LSTM variants (lstmkit.ops.lstm_variants) have no kernel"
        return backend.describe(self.cell, self.dtype, **self._cell_options())

    # The adapters below are those of the one-state cells (GRU, SimpleRNN); LSTM, with its two
    # states and its variants, overrides them.
    def _weights(self):
        return self.params["kernel"], self.params["recurrent_kernel"], self._bias()

    def _cell_forward(self, x, states, mask, rmask):
        hs, h, cache = self._ops().forward(x, states[0], *self._weights(), mask, rmask)
        return hs, [h], cache

    def _cell_backward(self, dhs, dstates, cache, need_dx=True):
        """The cell's gradients; ``g["x"]`` may be None when ``need_dx`` is False."""
        return self._ops().backward(dhs, dstates[0], cache)

    def _cell_infer(self, x, states, mask):
        """``(hs, [final states])`` without a cache, through the cell's ``infer`` kernel."""
        hs, h = self._ops().infer(x, states[0], *self._weights(), mask)
        return hs, [h]

    # -- forward / backward ---------------------------------------------------------------------
    def _zeros_state(self, B):
        dt = np.dtype(self.dtype)
        return [np.zeros((B, self.units), dt) for _ in self.state_names]

    def reset_states(self, states=None):
        """Stateful mode: forget the carried state (or set it)."""
        self.states = None if states is None else [np.asarray(s, self.dtype) for s in states]

    reset_state = reset_states  # Keras 3's name

    def forward(self, x, *, training=False, mask=None, rng=None, initial_state=None):
        return self._run(x, training, mask, rng, initial_state, keep_cache=True)

    def infer(self, x, mask=None, initial_state=None):
        """Inference without the training cache (the fast path's ``infer`` kernel): the
        output of ``forward(x, training=False)`` with less memory and per-step work."""
        return self._run(x, False, mask, None, initial_state, keep_cache=False)[0]

    def _run(self, x, training, mask, rng, initial_state, keep_cache):
        x = check_array(self, x, rank=3, last_dim=self.input_dim if self.built else None)
        if not self.built:
            self.build(x.shape[1:], rng)
        x = x.astype(self.dtype, copy=False)
        B, T, D = x.shape
        mask = check_mask(self, mask, B, T)
        if mask is not None and not mask.any(axis=1).all():
            empty = np.flatnonzero(~mask.any(axis=1)).tolist()
            raise ValueError(
                f"{type(self).__name__}: argument 'mask' must keep at least one step of each "
                f"sequence; sequences {empty[:10]} have zero length"
            )
        states = self._initial_states(B, initial_state)
        in_drop = rec_drop = None
        if training and (self.dropout > 0 or self.recurrent_dropout > 0):
            rng = self._seed_rng or (rng if rng is not None else _random.get_rng())
        if training and self.dropout > 0:
            keep = 1.0 - self.dropout
            in_drop = (rng.random((B, D)) < keep).astype(self.dtype) / keep
            x = x * in_drop[:, None, :]
        if training and self.recurrent_dropout > 0:
            keep = 1.0 - self.recurrent_dropout
            rec_drop = (rng.random((B, self.units)) < keep).astype(self.dtype) / keep
        xt = x.transpose(1, 0, 2)  # (T, B, D) time-major
        mt = None if mask is None else mask.T
        if self.go_backwards:
            xt = xt[::-1]
            mt = None if mt is None else mt[::-1]
        if keep_cache:
            hs, final, ops_cache = self._cell_forward(xt, states, mt, rec_drop)
        else:
            (hs, final), ops_cache = self._cell_infer(xt, states, mt), None
        if self.stateful:
            self.states = [s.copy() for s in final]
        if self.return_sequences:
            if mt is not None:
                # Keras: a masked step outputs zeros (zero_output_for_mask) or the previous output,
                # which is zeros before the first valid step, not the initial h
                hs = hs * self._output_keep(mt)[:, :, None]
            out = hs.transpose(1, 0, 2)  # (B, T, H)
        else:
            out = final[0]
            backend.give_back(hs)  # (a copy of its last step is out: nothing reads hs again)
        returned = [out, *final] if self.return_state else [out]
        activity, penalty = self._activity(returned)
        cache = RecurrentCache(
            ops_cache, mt, in_drop, len(final), initial_state is not None, (B, T, D), activity,
            penalty,
        )  # fmt: skip
        return (returned if self.return_state else out), cache

    def _activity(self, returned):
        """``(arrays, penalty)`` of the activity regularizer: Keras 3 adds ``reg(a) / batch`` for
        every array the layer returns."""
        reg = self.activity_regularizer
        if reg is None:
            return None, 0.0
        return tuple(returned), sum(reg(a) / a.shape[0] for a in returned)

    def _activity_grads(self, dy, cache):
        """``dy`` plus the activity penalty's gradient on each returned array."""
        if cache.activity is None:
            return dy
        reg = self.activity_regularizer
        extra = [reg.grad(a) / a.shape[0] for a in cache.activity]
        if not self.return_state:
            return dy + extra[0]
        return [e if d is None else np.asarray(d) + e for d, e in zip(dy, extra)]

    def _output_keep(self, mt):
        """``(T, B)`` bool: steps whose sequence output is not forced to zero."""
        return mt if self.zero_output_for_mask else np.logical_or.accumulate(mt, axis=0)

    def _initial_states(self, B, initial_state):
        if initial_state is None:
            if self.stateful and self.states is not None:
                if self.states[0].shape[0] != B:
                    raise ValueError(
                        f"{type(self).__name__}: stateful layer carries state for batch "
                        f"{self.states[0].shape[0]}; got a batch of {B} (call reset_states())"
                    )
                return self.states
            return self._zeros_state(B)
        if isinstance(initial_state, np.ndarray) and len(self.state_names) == 1:
            initial_state = [initial_state]
        initial_state = list(initial_state)
        if len(initial_state) != len(self.state_names):
            raise ValueError(
                f"{type(self).__name__}: argument 'initial_state' must be a list of "
                f"{len(self.state_names)} arrays {list(self.state_names)}; got {len(initial_state)}"
            )
        out = []
        for name, s in zip(self.state_names, initial_state):
            s = check_array(self, s, arg="initial_state", rank=2, last_dim=self.units)
            if s.shape[0] != B:
                raise ValueError(
                    f"{type(self).__name__}: argument 'initial_state' ({name}) must have shape "
                    f"({B}, {self.units}); got {s.shape}"
                )
            out.append(s.astype(self.dtype, copy=False))
        return out

    def backward_with_state(self, dy, cache: RecurrentCache, need_dx=True):
        """Backward returning ``(dx, grads, dinitial_states)``; ``dx`` is None when
        ``need_dx`` is False and the cell can skip it (see :meth:`param_grads`)."""
        dx, g, dinit = self.backward_strided(dy, cache, need_dx)
        return (None if dx is None else np.ascontiguousarray(dx)), g, dinit

    def backward_strided(self, dy, cache: RecurrentCache, need_dx=True):
        """:meth:`backward_with_state` with ``dx (B, T, D)`` possibly a strided view (time
        reversed with ``go_backwards``) of a fresh array that nothing else refers to: a caller
        that sums it into another gradient (``Bidirectional``) saves the contiguous copy."""
        dy = self._activity_grads(dy, cache)
        if self.return_state:
            dout, *dstates = dy
            dstates = [None if d is None else np.asarray(d, self.dtype) for d in dstates]
        else:
            dout, dstates = dy, [None] * cache.n_state
        mt = cache.mask
        if self.return_sequences:
            dhs = np.asarray(dout, self.dtype).transpose(1, 0, 2)  # (T, B, H)
            if mt is not None:
                dhs = dhs * self._output_keep(mt)[:, :, None]
        else:
            dhs = None
            dstates[0] = dout if dstates[0] is None else dstates[0] + dout
        g = self._cell_backward(dhs, dstates, cache.ops_cache, need_dx)
        if not self.use_bias:
            del g["bias"]  # the ops saw a zero bias
        dx = g.pop("x")
        dinit = [g.pop(f"{s}0") for s in self.state_names]
        if not need_dx:
            return None, g, dinit
        if self.go_backwards:
            dx = dx[::-1]
        dx = dx.transpose(1, 0, 2)  # (B, T, D)
        if cache.input_dropout is not None:
            dx = dx * cache.input_dropout[:, None, :]
        return dx, g, dinit

    def backward(self, dy, cache):
        dx, grads, _ = self.backward_with_state(dy, cache)
        return dx, grads

    def param_grads(self, dy, cache):
        return self.backward_with_state(dy, cache, need_dx=False)[1]

    # -- streaming ------------------------------------------------------------------------------
    def step(self, x_t, states=None):
        """One time step for streaming inference: ``x_t (B, D) -> (h_t, [states])``."""
        x_t = check_array(self, x_t, arg="x_t", rank=2, last_dim=self.input_dim)
        x_t = x_t.astype(self.dtype, copy=False)
        states = self._zeros_state(x_t.shape[0]) if states is None else list(states)
        new = self._cell_step(x_t, states)
        return new[0], new

    def _cell_step(self, x_t, states):
        return [self._ops().step(x_t, states[0], *self._weights())]

    def get_config(self):
        """Every constructor argument, in Keras 3's form (weight arguments as config dicts)."""
        cfg = super().get_config()
        cfg.update(units=self.units, activation=self.activation)
        if self.has_recurrent_activation:
            cfg["recurrent_activation"] = self.recurrent_activation
        cfg["use_bias"] = self.use_bias
        cfg.update(options.config(self))
        cfg.update(
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            seed=self.seed,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            stateful=self.stateful,
            unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask,
        )
        if self.use_cudnn != "auto":
            cfg["use_cudnn"] = self.use_cudnn
        return cfg


class LSTM(RNNBase):
    """Long Short-Term Memory layer (Hochreiter & Schmidhuber 1997, with forget gate).

    ``i, f, o = σ(x W + h U + b)``, ``g = tanh(...)``, ``c_t = f ⊙ c_{t-1} + i ⊙ g``,
    ``h_t = o ⊙ tanh(c_t)`` (σ is ``recurrent_activation``, tanh ``activation``). Weights:
    ``kernel (D, 4H)``, ``recurrent_kernel (H, 4H)``, ``bias (4H,)`` (none with
    ``use_bias=False``), gate order i, f, g, o. Input ``(batch, timesteps, D)``; output
    ``(batch, H)`` or ``(batch, timesteps, H)`` with ``return_sequences``; states ``[h, c]``.
    ``unit_forget_bias=True`` starts the forget-gate bias at 1 (Keras default); ``forget_bias``
    sets another starting value (long lags want f close to 1, e.g. 5).

    Variants (equations in :mod:`lstmkit.ops.lstm_variants`; all off = the cell above):

    - ``peephole=True``: i and f see ``c_{t-1}``, o sees ``c_t``; extra weight
      ``peephole (3, H)`` (rows i, f, o), initialised to 0.
    - ``cifg=True``: coupled input-forget gate, ``i = 1 - f``; gates f, g, o, so the kernels and
      bias have 3H columns.
    - ``forget_gate=False``: the 1997 cell, ``f = 1``; gates i, g, o (3H columns).
    - ``layer_norm=True``: LN on ``x W`` and ``h U`` (gains ``ln_gamma_x``, ``ln_gamma_h``, (G*H,))
      and on ``c`` before tanh (``ln_gamma_c``, ``ln_beta_c``, (H,)).
    - ``zoneout=r`` or ``(r_c, r_h)``: in training each unit keeps its previous c (h) with
      probability r_c (r_h); at inference the expectation ``r c_{t-1} + (1 - r) c_t``.
    """

    cell = "lstm"
    n_gates = 4
    state_names = ("h", "c")

    def __init__(
        self,
        units,
        unit_forget_bias=True,
        forget_bias=None,
        peephole=False,
        cifg=False,
        forget_gate=True,
        layer_norm=False,
        zoneout=0.0,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = options.flag("LSTM", "unit_forget_bias", unit_forget_bias)
        self.forget_bias = None if forget_bias is None else float(forget_bias)
        self.peephole = bool(peephole)
        self.cifg = bool(cifg)
        self.forget_gate = bool(forget_gate)
        self.layer_norm = bool(layer_norm)
        self.variant = Variant(cifg=self.cifg, forget_gate=self.forget_gate)
        try:
            self.n_gates = len(self.variant.gates)
        except ValueError as e:
            raise ValueError(f"LSTM: {e}") from None
        if not self.forget_gate and self.forget_bias is not None:
            raise ValueError(
                f"LSTM: argument 'forget_bias' needs the forget gate; got forget_bias="
                f"{self.forget_bias} with forget_gate=False"
            )
        rates = zoneout if isinstance(zoneout, (list, tuple)) else (zoneout, zoneout)
        if len(rates) != 2 or not all(
            isinstance(r, (int, float, np.number)) and 0.0 <= r < 1.0 for r in rates
        ):
            raise ValueError(
                "LSTM: argument 'zoneout' must be a rate in [0, 1) or a pair (cell rate, hidden "
                f"rate); got {zoneout!r}"
            )
        self.zoneout_rates = (float(rates[0]), float(rates[1]))  # (c, h)
        if self.is_variant and (self.activation, self.recurrent_activation) != ("tanh", "sigmoid"):
            raise ValueError(
                "LSTM: arguments 'activation' and 'recurrent_activation' must be 'tanh' and "
                "'sigmoid' for the variants (peephole, cifg, forget_gate=False, layer_norm, "
                f"zoneout); got {self.activation!r} and {self.recurrent_activation!r}"
            )

    @property
    def is_variant(self) -> bool:
        """True when any variant switch is on (then the NumPy variant ops run)."""
        return (
            self.peephole
            or self.cifg
            or not self.forget_gate
            or self.layer_norm
            or self.zoneout_rates != (0.0, 0.0)
        )

    @property
    def weight_names(self):
        names = super().weight_names
        if self.peephole:
            names += ("peephole",)
        if self.layer_norm:
            names += ("ln_gamma_x", "ln_gamma_h", "ln_gamma_c", "ln_beta_c")
        return names

    def _build(self, input_shape, rng):
        super()._build(input_shape, rng)
        H, GH = self.units, self.n_gates * self.units
        if self.peephole:  # 0: starts as the plain cell
            self.add_weight("peephole", (3, H), initializers.get("zeros"), rng)
        if self.layer_norm:
            self.add_weight("ln_gamma_x", (GH,), initializers.get("ones"), rng)
            self.add_weight("ln_gamma_h", (GH,), initializers.get("ones"), rng)
            self.add_weight("ln_gamma_c", (H,), initializers.get("ones"), rng)
            self.add_weight("ln_beta_c", (H,), initializers.get("zeros"), rng)

    def _bias_init(self):
        base = initializers.get(self.bias_initializer)
        start = (
            self.forget_bias
            if self.forget_bias is not None
            else (1.0 if self.unit_forget_bias else None)
        )
        block = self.variant.block("f", self.units)
        if start is None or block is None:
            return base

        def init(shape, rng, dtype):
            b = base(shape, rng, dtype)
            b[block] = start
            return b

        return init

    def _variant_args(self, zoneout=None):
        p = self.params
        ln = None
        if self.layer_norm:
            ln = LNParams(p["ln_gamma_x"], p["ln_gamma_h"], p["ln_gamma_c"], p["ln_beta_c"])
        return {
            "variant": self.variant,
            "peephole": p.get("peephole"),
            "ln": ln,
            "zoneout": zoneout,
        }

    def forward(self, x, *, training=False, mask=None, rng=None, initial_state=None):
        # RNNBase hands the cell adapter no training flag or rng; zoneout needs both, so they
        # are visible to _cell_forward for the duration of this one call only.
        self._zoneout_call = (training, rng if rng is not None else _random.get_rng())
        try:
            return super().forward(
                x, training=training, mask=mask, rng=rng, initial_state=initial_state
            )
        finally:
            self._zoneout_call = None

    def _zoneout(self, T, B):
        """(d_c, d_h): Bernoulli keep-previous draws (T, B, H) in training, else the rates."""
        if self.zoneout_rates == (0.0, 0.0):
            return None
        training, rng = getattr(self, "_zoneout_call", None) or (False, None)
        if not training:
            return tuple(np.asarray(r, self.dtype) for r in self.zoneout_rates)
        shape = (T, B, self.units)
        return tuple((rng.random(shape) < r).astype(self.dtype) for r in self.zoneout_rates)

    def _cell_forward(self, x, states, mask, rmask):
        k, u, b = self._weights()
        if self.is_variant:
            zoneout = self._zoneout(x.shape[0], x.shape[1])
            hs, (h, c), cache = lstm_variants_forward(
                x, states[0], states[1], k, u, b, mask, rmask, **self._variant_args(zoneout)
            )
            return hs, [h, c], cache
        hs, (h, c), cache = self._ops().forward(x, states[0], states[1], k, u, b, mask, rmask)
        return hs, [h, c], cache

    def _cell_infer(self, x, states, mask):
        if self.is_variant:
            return self._cell_forward(x, states, mask, None)[:2]
        k, u, b = self._weights()
        hs, (h, c) = self._ops().infer(x, states[0], states[1], k, u, b, mask)
        return hs, [h, c]

    def _cell_backward(self, dhs, dstates, cache, need_dx=True):
        if isinstance(cache, LSTMVariantCache):
            return lstm_variants_backward(dhs, dstates[0], dstates[1], cache)
        return self._ops().backward(dhs, dstates[0], dstates[1], cache, need_dx)

    def _cell_step(self, x_t, states):
        k, u, b = self._weights()
        if self.is_variant:
            zoneout = self._zoneout(1, x_t.shape[0])  # never training here: the expectation
            h, c = lstm_variants_step(x_t, *states, k, u, b, **self._variant_args(zoneout))
            return [h, c]
        h, c = self._ops().step(x_t, *states, k, u, b)
        return [h, c]

    def get_config(self):
        cfg = super().get_config()
        cfg["unit_forget_bias"] = self.unit_forget_bias
        if self.forget_bias is not None:
            cfg["forget_bias"] = self.forget_bias
        # variant switches only when on, so plain LSTM configs stay Keras' configs
        for arg, default in (
            ("peephole", False),
            ("cifg", False),
            ("forget_gate", True),
            ("layer_norm", False),
        ):
            if getattr(self, arg) != default:
                cfg[arg] = getattr(self, arg)
        zc, zh = self.zoneout_rates
        if (zc, zh) != (0.0, 0.0):
            cfg["zoneout"] = zc if zc == zh else [zc, zh]
        return cfg


class GRU(RNNBase):
    """Gated Recurrent Unit, Keras 3 conventions.

    ``reset_after=True`` (default; cuDNN/PyTorch): ``z = σ(x W_z + h U_z + b)``, ``r = σ(...)``,
    ``n = tanh(x W_n + b_in + r ⊙ (h U_n + b_hn))``, ``h_t = z ⊙ h_{t-1} + (1 - z) ⊙ n``;
    ``bias (2, 3H)`` = [input bias; recurrent bias]. ``reset_after=False`` (Keras 2 / TF):
    ``n = tanh(x W_n + b_n + (r ⊙ h) U_n)`` and one ``bias (3H,)``. Weights ``kernel (D, 3H)``,
    ``recurrent_kernel (H, 3H)``, gate order z, r, n; tanh and σ are ``activation`` and
    ``recurrent_activation``.
    """

    cell = "gru"
    n_gates = 3

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = options.flag("GRU", "reset_after", reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _cell_options(self):
        return {**super()._cell_options(), "reset_after": self.reset_after}

    def get_config(self):
        cfg = super().get_config()
        cfg["reset_after"] = self.reset_after
        return cfg


class SimpleRNN(RNNBase):
    """Plain (Elman) RNN: ``h_t = activation(x_t W + h_{t-1} U + b)``, tanh by default.

    Weights ``kernel (D, H)``, ``recurrent_kernel (H, H)``, ``bias (H,)``.
    """

    cell = "rnn"
    n_gates = 1
    has_recurrent_activation = False

    def __init__(self, units, activation="tanh", **kwargs):
        if "recurrent_activation" in kwargs:
            raise ValueError(
                "SimpleRNN: has no argument 'recurrent_activation' (only LSTM and GRU have one); "
                f"got recurrent_activation={kwargs['recurrent_activation']!r}"
            )
        super().__init__(units, activation=activation, **kwargs)

    def _cell_options(self):
        return {"activation": self.activation}
