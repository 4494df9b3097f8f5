"""The optimizer base class: argument checks, clipping, weight decay, schedules, lazy slots,
state and config. The update rules live in ``sgd.py``, ``adam.py``, ``rmsprop.py`` and
``adagrad.py``; the package docstring states them all.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..ops import backend
from ._checks import non_negative, positive
from .schedules import SCHEDULES, LearningRateSchedule


def _learning_rate(owner, value):
    """A float >= 0, a schedule instance, or a serialised schedule ``{"class_name", "config"}``."""
    if isinstance(value, dict):
        name = value.get("class_name")
        if name not in SCHEDULES:
            raise ValueError(
                f"{owner}: argument 'learning_rate' names an unknown schedule {name!r}; "
                f"expected one of {sorted(SCHEDULES)}"
            )
        return SCHEDULES[name].from_config(value.get("config", {}))
    if isinstance(value, LearningRateSchedule):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or value < 0:
        raise ValueError(
            f"{owner}: argument 'learning_rate' must be a float >= 0 or a LearningRateSchedule; "
            f"got {value!r}"
        )
    return float(value)


# ------------------------------------------------------------------------------- optimizers


class Optimizer:
    """Base class: argument checks, clipping, schedules, lazy slots, state and config."""

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
    ):
        owner = type(self).__name__
        self._learning_rate = _learning_rate(owner, learning_rate)
        self.weight_decay = (
            None if weight_decay is None else non_negative(owner, "weight_decay", weight_decay)
        )
        self._decay_exclusions = None  # a compiled regex over parameter names, or None
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(
                f"{owner}: arguments 'clipnorm' and 'global_clipnorm' are aliases (both clip the "
                f"global norm); pass one; got clipnorm={clipnorm!r}, "
                f"global_clipnorm={global_clipnorm!r}"
            )
        if clipvalue is not None and (clipnorm is not None or global_clipnorm is not None):
            raise ValueError(
                f"{owner}: only one of 'clipnorm', 'global_clipnorm' and 'clipvalue' can be set "
                f"(as in Keras); got clipnorm={clipnorm!r}, global_clipnorm={global_clipnorm!r}, "
                f"clipvalue={clipvalue!r}"
            )
        for arg, value in (
            ("clipnorm", clipnorm),
            ("clipvalue", clipvalue),
            ("global_clipnorm", global_clipnorm),
        ):
            if value is not None:
                positive(owner, arg, value)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.iterations = 0
        self._slots: dict[str, dict[str, np.ndarray]] = {}  # slot -> param name -> array

    # -- learning rate
    @property
    def learning_rate(self) -> float:
        """The rate the next ``apply`` will use (the schedule evaluated at ``iterations``)."""
        lr = self._learning_rate
        return float(lr(self.iterations)) if isinstance(lr, LearningRateSchedule) else lr

    @learning_rate.setter
    def learning_rate(self, value):
        owner = type(self).__name__
        if isinstance(self._learning_rate, LearningRateSchedule) and not isinstance(
            value, (LearningRateSchedule, dict)
        ):
            # Keras raises here too: overwriting a schedule with a float silently loses it.
            raise TypeError(
                f"{owner}: 'learning_rate' was created as a {type(self._learning_rate).__name__} "
                f"schedule and cannot be set to {value!r}; expected another LearningRateSchedule"
            )
        self._learning_rate = _learning_rate(owner, value)

    # -- slots
    def slot_names(self) -> tuple[str, ...]:
        """The slots this configuration keeps per parameter (e.g. ``("m", "v")`` for Adam)."""
        return ()

    def _slot(self, slot, name, p, initial_value=0.0):
        if name is _ALL:  # the update of every parameter at once (_FlatStep)
            return self._flat.slot(self, slot, initial_value)
        arrays = self._slots.setdefault(slot, {})
        a = arrays.get(name)
        if a is None:
            a = arrays[name] = np.full_like(p, initial_value)
        elif a.shape != p.shape:
            raise ValueError(
                f"{type(self).__name__}: slot '{slot}/{name}' has shape {a.shape} but parameter "
                f"{name!r} has shape {p.shape}; expected equal shapes (state from another model?)"
            )
        return a

    # -- the update
    def apply(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array in ``params`` in place from ``grads``; ``iterations += 1``."""
        same = self._check(params, grads)  # every gradient an ndarray of its parameter's dtype
        flat = self._flat_step(params)
        # with a flat step whose gradients need no cast, the clipnorm scale is applied to the
        # gathered gradients (the same products, one array)
        gathered = flat is not None and same and self._clips_gathered(grads)
        if gathered:  # the norm from the gathered gradients (one square for all; same sums)
            flat.gather(grads)
            scale = self._norm_scale(flat, grads)
        else:
            grads, scale = self._clip(grads, defer=flat is not None and same)
        lr = self.learning_rate
        self._decay(params, lr)
        self._prepare_step()
        if flat is not None:  # one update for all parameters (see _FlatStep)
            flat.run(self, params, grads, lr, scale, gathered)
        else:
            for name, p in params.items():
                self._update(name, p, np.asarray(grads[name]).astype(p.dtype, copy=False), lr)
        self.iterations += 1

    def _prepare_step(self):
        """Work shared by every parameter of one step (Nadam's momentum product)."""

    def _update(self, name, p, g, lr):  # pragma: no cover - abstract
        raise NotImplementedError

    def _flat_step(self, params):
        """The :class:`_FlatStep` for ``params`` (made or remade when the parameters' names,
        shapes or dtype changed), or None when the update goes parameter by parameter: an
        ``_update`` that is not one of lstmkit's own (a subclass's may depend on ``name``), or
        parameters of mixed dtypes."""
        if type(self)._update not in ELEMENTWISE_UPDATES:
            return None
        flat = self.__dict__.get("_flat")
        if flat is None or not flat.fits(params):
            flat = self._flat = _FlatStep.make(params)
        return flat if flat.dtype is not None and flat.ready(self) else None

    # -- decoupled weight decay (Keras: every optimizer takes ``weight_decay``)
    def exclude_from_weight_decay(self, var_names=None):
        """Parameters whose dotted name contains any of ``var_names`` (regular expressions,
        searched as Keras does, e.g. ``["bias"]``) are not decayed. Not part of the config, as in
        Keras."""
        names = [var_names] if isinstance(var_names, str) else list(var_names or [])
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError(
                f"{type(self).__name__}.exclude_from_weight_decay: argument 'var_names' must be "
                f"a list of non-empty strings; got {var_names!r}"
            )
        self._decay_exclusions = re.compile("|".join(sorted(set(names)))) if names else None

    def _decay(self, params, lr):
        # Keras' _apply_weight_decay, before the update and with the step's lr: p <- p - p*wd*lr
        if not self.weight_decay:
            return
        for name, p in params.items():
            if self._decay_exclusions is None or not self._decay_exclusions.search(name):
                p -= p * p.dtype.type(self.weight_decay) * p.dtype.type(lr)

    def _check(self, params, grads):
        """Raises for bad arguments; True when every gradient is an ndarray of its parameter's
        shape and dtype."""
        if params.keys() == grads.keys():  # the common case first, in one loop
            same = True
            for k, p in params.items():
                g = grads[k]
                fine = type(p) is np.ndarray and p.dtype.kind == "f"  # (kind "f": floating)
                if not (fine and type(g) is np.ndarray and g.shape == p.shape):
                    break
                same = same and g.dtype == p.dtype
            else:
                return same
        where = f"{type(self).__name__}.apply"
        missing = sorted(set(params) - set(grads))
        extra = sorted(set(grads) - set(params))
        if missing or extra:
            raise ValueError(
                f"{where}: argument 'grads' must have the same keys as 'params'; "
                f"missing {missing}, unexpected {extra}"
            )
        bad = []
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                got = f"ndarray of {p.dtype}" if isinstance(p, np.ndarray) else type(p).__name__
                bad.append(f"params[{name!r}] must be a floating np.ndarray; got {got}")
            elif np.shape(grads[name]) != p.shape:
                bad.append(
                    f"grads[{name!r}] must have shape {p.shape}; got {np.shape(grads[name])}"
                )
        if bad:
            raise ValueError(f"{where}: " + "; ".join(bad))
        return False

    def _clip(self, grads, defer=False):
        """``(clipped grads, None)``; with ``defer``: ``(grads, clipnorm scale or None)``, the
        scale for the caller to apply."""
        if self.clipnorm is not None or self.global_clipnorm is not None:
            scale = self._clipnorm_scale(np.square(g, dtype=np.float64) for g in grads.values())
            if scale is not None:
                if defer:
                    return grads, scale
                grads = {
                    k: np.asarray(g) * np.asarray(scale, np.asarray(g).dtype)
                    for k, g in grads.items()
                }
        if self.clipvalue is not None:
            grads = {k: np.clip(g, -self.clipvalue, self.clipvalue) for k, g in grads.items()}
        return grads, None

    def _clips_gathered(self, grads) -> bool:
        """Whether the clipnorm scale can come from the flat step's gathered gradients: a norm
        limit and no clipvalue, every gradient C-contiguous (so that the sum of squares over its
        part of the flat vector is the very sum ``_clip`` takes over the array)."""
        if self.clipvalue is not None or (self.clipnorm is None and self.global_clipnorm is None):
            return False
        for g in grads.values():
            if not g.flags.c_contiguous:
                return False
        return True

    def _norm_scale(self, flat, grads):
        """``_clip(grads, defer=True)``'s scale from ``flat.g`` (gathered): each gradient's part
        of its squares, in ``grads``' order, as ``_clip`` takes them; on the compiled backend in
        one call that sums them as NumPy does (``ops/fast/optim.py``: the same total)."""
        fast = backend.fast_ops() if flat.g.dtype in _KERNEL_FLOATS else None
        if fast is not None:
            return self._scale_of(fast.sum_squares(flat.g, flat.bounds(grads)))
        parts = flat.views_of_own()[1]
        np.square(flat.g, out=flat.sq, dtype=np.float64)  # (into a buffer: the same squares)
        return self._clipnorm_scale([parts[name] for name in grads])

    def _clipnorm_scale(self, squares):
        """The clipnorm factor (None: the norm is within the limit) from each gradient's float64
        squares (arrays, summed one by one in order: ``np.add.reduce`` is ``np.sum`` without its
        Python wrapper, the same sums)."""
        total = 0
        for sq in squares:
            total += float(np.add.reduce(sq, axis=None))
        return self._scale_of(total)

    def _scale_of(self, total):
        """The clipnorm factor (None: within the limit) from the squared norm ``total``."""
        limit = self.clipnorm if self.clipnorm is not None else self.global_clipnorm
        norm = math.sqrt(total)
        return limit / norm if norm > limit else None

    # -- state (resume exactly)
    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of every slot as ``"slot/param"`` plus ``"iterations"`` (int64 scalar)."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for slot, arrays in self._slots.items():
            for name, a in arrays.items():
                state[f"{slot}/{name}"] = a.copy()
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Replace iterations and all slots by (copies of) ``state`` from ``get_state``."""
        owner = f"{type(self).__name__}.set_state"
        if "iterations" not in state:
            raise ValueError(
                f"{owner}: argument 'state' must contain 'iterations'; got keys {sorted(state)}"
            )
        it = np.asarray(state["iterations"])
        if it.shape != () or not np.issubdtype(it.dtype, np.integer) or int(it) < 0:
            raise ValueError(
                f"{owner}: state['iterations'] must be an integer scalar >= 0; got "
                f"{state['iterations']!r}"
            )
        slots, bad = {}, []
        for key, value in state.items():
            if key == "iterations":
                continue
            slot, sep, name = key.partition("/")
            if not sep or not name or slot not in self.slot_names():
                bad.append(key)
            else:
                slots.setdefault(slot, {})[name] = np.array(value, copy=True)
        if bad:
            raise ValueError(
                f"{owner}: argument 'state' has unexpected keys {sorted(bad)}; expected "
                f"'iterations' and '<slot>/<param>' with slot in {list(self.slot_names())}"
            )
        self.iterations, self._slots = int(it), slots

    # -- config
    def get_config(self) -> dict:
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = {"class_name": type(lr).__name__, "config": lr.get_config()}
        return {
            "learning_rate": lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)  # learning_rate dicts are deserialised by the constructor

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


#: the float types the compiled kernels of ``ops/fast/optim.py`` take
_KERNEL_FLOATS = (np.float32, np.float64)

#: what ``_slot`` is given as the parameter name by the one update of every parameter
_ALL = object()

#: the ``_update`` methods that work element by element, the same on any array (filled in by the
#: modules that define them)
ELEMENTWISE_UPDATES: set = set()


class _FlatStep:
    """Every parameter updated by one call of the optimizer's ``_update`` instead of one call per
    array: a small model's step (the forecaster's: 7 arrays) spent more in the per-array Python
    and NumPy call overhead than in the arithmetic.

    The parameters and gradients are gathered into one flat vector each (C order, parameters in
    ``params`` order), ``_update`` runs once on them (``name`` is ``_ALL``: its slots are one
    flat vector per slot, see :meth:`slot`) and the parameters get their parts back. Every
    update rule is element by element, so each element goes through exactly the same float
    operations as in the per-array update: the weights are bit-identical.

    The optimizer's slots stay per parameter in ``_slots`` (``get_state``, ``_slot``), as views
    of the flat slot vectors. Made again when the parameter names, shapes or dtype change; a flat
    slot is made again from ``_slots`` when an entry there is no longer its view (``set_state``,
    or a caller's assignment). A slot of another dtype than the parameters (state restored from
    a float64 run) sends the step the per-array way, which computes in the slot's dtype.
    """

    __slots__ = ("bounds_of", "dtype", "flat_slots", "g", "key", "names", "p", "parts", "spans",
                 "sq", "sq_parts", "views", "where")  # fmt: skip

    def __init__(self, key, dtype, spans):
        self.key, self.dtype, self.spans = key, dtype, spans  # spans: [(name, shape, a, b)]
        self.where = {name: (a, b) for name, _, a, b in spans}  # name -> its part (a, b)
        self.names = tuple(name for name, *_ in spans)
        n = spans[-1][3] if spans else 0
        self.p = None if dtype is None else np.empty(n, dtype)
        self.g = None if dtype is None else np.empty(n, dtype)
        self.flat_slots, self.views = {}, {}  # slot -> flat vector, its views in _slots
        self.bounds_of = {}  # an order of names -> bounds() of it
        # each parameter's part of p, shaped; the gradients' float64 squares and their parts
        # by name (made once, not at each step: slicing and reshaping 7 parts cost ~5 us)
        self.sq = np.empty(n, np.float64)
        self.parts, self.sq_parts = self._parts()

    def bounds(self, names) -> np.ndarray:
        """``(k, 2)`` int64: the part ``(a, b)`` of the flat vectors of each of ``names`` (an
        iterable of parameter names, e.g. the gradients' dict), in that order (cached by it)."""
        order = tuple(names)
        b = self.bounds_of.get(order)
        if b is None:
            if len(self.bounds_of) >= 8:  # (orders that keep changing: start again)
                self.bounds_of.clear()
            b = np.array([self.where[n] for n in order], np.int64).reshape(-1, 2)
            self.bounds_of[order] = b
        return b

    def _parts(self):
        """Views of ``p`` (shaped) and of ``sq`` (by name), one per parameter."""
        parts = [] if self.p is None else [self.p[a:b].reshape(s) for _, s, a, b in self.spans]
        return parts, {name: self.sq[a:b] for name, _, a, b in self.spans}

    def views_of_own(self):
        """``(parts, sq_parts)``, made again when they are not views of this step's own ``p``
        and ``sq`` (a deep copy of the optimizer copies them into separate arrays)."""
        if self.parts and (self.parts[0].base is not self.p or self.sq_parts[self.names[0]].base
                           is not self.sq):  # fmt: skip
            self.parts, self.sq_parts = self._parts()
        return self.parts, self.sq_parts

    @classmethod
    def make(cls, params):
        dtypes = {p.dtype for p in params.values()}
        dtype = dtypes.pop() if len(dtypes) == 1 else None
        spans, a = [], 0
        for name, p in params.items():
            spans.append((name, p.shape, a, a + p.size))
            a += p.size
        return cls(_key(params), dtype, spans)

    def fits(self, params) -> bool:
        return _key(params) == self.key

    def ready(self, opt) -> bool:
        """Whether every slot ``opt`` keeps is (or can be made) a flat vector of this dtype."""
        for slot in opt.slot_names():
            arrays = opt._slots.get(slot)
            if arrays and not self._current(slot, arrays):
                for a in arrays.values():
                    if a.dtype != self.dtype:
                        return False
        return True

    def gather(self, grads):
        """The gradients into ``self.g``, in ``params`` order."""
        # astype(p.dtype) of each gradient, as the per-array update does ("unsafe" is astype's)
        gs = [grads[name] for name in self.names]
        np.concatenate([g.ravel() if type(g) is np.ndarray else np.ravel(g) for g in gs],
                       out=self.g, casting="unsafe")  # fmt: skip

    def run(self, opt, params, grads, lr, scale=None, gathered=False):
        """``opt._update`` once over every parameter (``scale``: the clipnorm factor the
        gradients still need; ``gathered``: ``self.g`` holds them already, :meth:`gather`);
        each parameter gets its part back."""
        ps = [params[name] for name in self.names]
        np.concatenate([p.ravel() for p in ps], out=self.p)
        if not gathered:
            self.gather(grads)
        if scale is not None:  # g * scale in g's dtype, as _clip computes it
            self.g *= np.asarray(scale, self.g.dtype)
        opt._update(_ALL, self.p, self.g, lr)
        for p, part in zip(ps, self.views_of_own()[0]):
            p[...] = part

    def slot(self, opt, slot, initial_value):
        """The flat vector of ``slot``, whose parts are ``opt._slots[slot][name]``."""
        arrays = opt._slots.setdefault(slot, {})
        if not self._current(slot, arrays):
            self._gather(opt, slot, arrays, initial_value)
        return self.flat_slots[slot]

    def _current(self, slot, arrays) -> bool:
        views, flat = self.views.get(slot), self.flat_slots.get(slot)
        if views is None:
            return False
        for name, v in views.items():  # (a loop: a generator is one Python call per item)
            if arrays.get(name) is not v or v.base is not flat:  # (base: not a deep copy's)
                return False
        return True

    def _gather(self, opt, slot, arrays, initial_value):
        """A new flat vector for ``slot`` holding what ``_slots`` holds (``initial_value`` for
        parameters without a slot yet), and ``_slots`` pointed at its parts."""
        flat = np.full(self.p.size, initial_value, dtype=self.dtype)
        for name, shape, a, b in self.spans:
            old = arrays.get(name)
            if old is not None:
                if old.shape != shape:
                    raise ValueError(
                        f"{type(opt).__name__}: slot '{slot}/{name}' has shape {old.shape} but "
                        f"parameter {name!r} has shape {shape}; expected equal shapes (state from "
                        "another model?)"
                    )
                flat[a:b] = old.ravel()
        views = {name: flat[a:b].reshape(shape) for name, shape, a, b in self.spans}
        arrays.update(views)
        self.flat_slots[slot], self.views[slot] = flat, views


def fast_flat(name, *arrays):
    """The compiled kernels of ``ops/fast/optim.py`` when ``name`` is the flat update, the
    compiled backend runs (inside a training step: as its compute scope read it) and ``arrays``
    are 1-D contiguous arrays of one float type; else None (the NumPy update)."""
    if name is not _ALL:
        return None
    dt = arrays[0].dtype
    if dt not in _KERNEL_FLOATS:
        return None
    for a in arrays:
        if a.dtype != dt or a.ndim != 1 or not a.flags.c_contiguous:
            return None
    return backend.fast_ops()


def _key(params) -> list:
    return [(name, p.shape, p.dtype) for name, p in params.items()]
