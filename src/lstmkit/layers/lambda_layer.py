"""``Lambda``: a NumPy function as a layer, with the gradient you give it.

lstmkit has no automatic differentiation: a ``Lambda`` that is trained through needs its
vector-Jacobian product too, ``gradient(x, y, dy, **arguments) -> dx`` (``dy = dLoss/dy``,
``dx = dLoss/dx`` of the shape of ``x``; for a list of inputs a list of arrays). Without one
the layer still predicts, and ``backward`` raises a ValueError that says so. Example::

    import numpy as np
    from lstmkit.layers import Dense, LSTM, Lambda
    from lstmkit import Sequential

    def last_step(x):                    # (B, T, H) -> (B, H)
        return x[:, -1, :]

    def last_step_grad(x, y, dy):        # the gradient goes to the last step only
        dx = np.zeros_like(x)
        dx[:, -1, :] = dy
        return dx

    model = Sequential([
        LSTM(16, return_sequences=True, input_shape=(10, 3)),
        Lambda(last_step, gradient=last_step_grad),
        Dense(1),
    ])

Saving: functions are code, and model files never hold code. A model with a ``Lambda`` saves
the functions' registered names; register them (in the program that loads the file too)
before ``save``/``load_model``::

    Lambda.register(last_step)           # or @Lambda.register above the def
    Lambda.register(last_step_grad)

``output_shape`` (without the batch axis, or a callable of the batched input shape, as in
Keras) is needed only when the function cannot be run on zeros of the input shape.
``mask``: None (the layer emits no mask) or a callable ``mask(x, input_mask)``. ``arguments``:
keyword arguments passed to ``function`` (and to ``gradient``), saved in the config.
"""

from __future__ import annotations

import numpy as np

from .base import Layer, fmt_shape

_REGISTRY: dict[str, object] = {}


def _function_name(fn):
    """The registered name of ``fn``, else ``module.qualname`` (which a load will not find)."""
    for name, f in _REGISTRY.items():
        if f is fn:
            return name
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _resolve(who, arg, value):
    if value is None or callable(value):
        return value
    if isinstance(value, str) and value in _REGISTRY:
        return _REGISTRY[value]
    raise ValueError(
        f"{who}: argument '{arg}' names function {value!r}, which is not registered; call "
        "Lambda.register(fn) in this program before loading (model files never hold code)"
    )


class Lambda(Layer):
    supports_masking = False

    def __init__(
        self,
        function,
        output_shape=None,
        mask=None,
        arguments=None,
        gradient=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        who = f"Lambda {self.name!r}"
        self.function = _resolve(who, "function", function)
        if self.function is None:
            raise ValueError(f"{who}: argument 'function' must be a callable; got None")
        self.gradient = _resolve(who, "gradient", gradient)
        self.mask = _resolve(who, "mask", mask)
        self.supports_masking = self.mask is not None
        self.output_shape = (
            _resolve(who, "output_shape", output_shape)
            if isinstance(output_shape, str) or callable(output_shape)
            else None
            if output_shape is None
            else tuple(output_shape)
        )
        if arguments is not None and not isinstance(arguments, dict):
            raise ValueError(f"{who}: argument 'arguments' must be a dict; got {arguments!r}")
        self.arguments = dict(arguments or {})

    @staticmethod
    def register(fn, name=None):
        """Register ``fn`` under ``name`` (default ``module.qualname``) so that saved models
        refer to it by name; returns ``fn`` (usable as a decorator)."""
        if not callable(fn):
            raise ValueError(f"Lambda.register: argument 'fn' must be callable; got {fn!r}")
        name = name or f"{fn.__module__}.{fn.__qualname__}"
        if not isinstance(name, str):
            raise ValueError(f"Lambda.register: argument 'name' must be a str; got {name!r}")
        _REGISTRY[name] = fn
        return fn

    def __call__(self, x, mask=None, training=False, **kwargs):
        if isinstance(x, (list, tuple)) and not self.built:
            self.multi_input = True  # called on a list: the function receives the list
        return super().__call__(x, mask=mask, training=training, **kwargs)

    # -- shapes ----------------------------------------------------------------------------------
    def build(self, input_shape, rng=None, dtype=None):
        if input_shape and isinstance(input_shape[0], (list, tuple)):
            self.multi_input = True
        super().build(input_shape, rng, dtype)

    def compute_output_shape(self, input_shape):
        multi = bool(input_shape) and isinstance(input_shape[0], (list, tuple))
        if callable(self.output_shape):  # Keras: a function of the batched shape
            batched = [(None, *s) for s in input_shape] if multi else (None, *input_shape)
            return tuple(self.output_shape(batched))[1:]
        if self.output_shape is not None:
            return self.output_shape
        # run the function on zeros of the input shape (unknown sizes as 1)
        shapes = input_shape if multi else [input_shape]
        zeros = [np.zeros((1, *(d or 1 for d in s)), self.dtype or "float32") for s in shapes]
        with np.errstate(all="ignore"):
            y = self.function(zeros if multi else zeros[0], **self.arguments)
        return tuple(np.shape(y))[1:]

    def compute_mask(self, x, mask):
        return None if self.mask is None else self.mask(x, mask)

    # -- computation -----------------------------------------------------------------------------
    def _inputs(self, x):
        if isinstance(x, (list, tuple)):
            return [np.asarray(a) for a in x]
        return np.asarray(x)

    def forward(self, x, *, training=False, mask=None, rng=None):
        x = self._inputs(x)
        multi = isinstance(x, list)
        if not self.built:
            first = x[0] if multi else x
            shapes = [a.shape[1:] for a in x] if multi else first.shape[1:]
            self.build(shapes, rng, first.dtype if first.dtype.kind == "f" else None)
        y = self.function(x, **self.arguments)
        n = len(x[0] if multi else x)
        if not isinstance(y, np.ndarray) or y.ndim < 1 or len(y) != n:
            got = f"shape {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
            raise ValueError(
                f"Lambda {self.name!r}: the function must return an array of shape (batch, ...) "
                f"with batch {n}; got {got}"
            )
        return y, (x, y)

    def backward(self, dy, cache):
        x, y = cache
        if self.gradient is None:
            raise ValueError(
                f"Lambda {self.name!r}: no gradient was given, so nothing can be trained "
                "through this layer; pass Lambda(function, gradient=lambda x, y, dy: ...) "
                "(lstmkit has no automatic differentiation)"
            )
        dx = self.gradient(x, y, dy, **self.arguments)
        self._check_grad(x, dx)
        return dx, {}

    def _check_grad(self, x, dx):
        pairs = list(zip(x, dx)) if isinstance(x, list) else [(x, dx)]
        if isinstance(x, list) and (not isinstance(dx, (list, tuple)) or len(dx) != len(x)):
            raise ValueError(
                f"Lambda {self.name!r}: the gradient must return a list of {len(x)} arrays"
            )
        for a, d in pairs:
            if np.shape(d) != a.shape:
                raise ValueError(
                    f"Lambda {self.name!r}: the gradient must have the input's shape "
                    f"{fmt_shape(a.shape)}; got {np.shape(d)}"
                )

    def get_config(self):
        cfg = super().get_config()
        shape = self.output_shape
        cfg.update(
            function=_function_name(self.function),
            output_shape=_function_name(shape) if callable(shape) else shape and list(shape),
            mask=None if self.mask is None else _function_name(self.mask),
            arguments=self.arguments,
            gradient=None if self.gradient is None else _function_name(self.gradient),
        )
        return cfg
