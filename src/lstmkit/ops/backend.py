"""Which implementation of the cell ops runs: the NumPy reference or the compiled fast path.

Backends:

- ``"numpy"``: :mod:`lstmkit.ops.lstm` / ``gru`` / ``rnn``, the readable reference.
- ``"numba"``: :mod:`lstmkit.ops.fast`, the same functions compiled with numba (whole time loop in
  one call; float32 evaluates tanh and sigmoid in float32 arithmetic, vectorised, at most 2.61
  and 2.41 ulp (:mod:`lstmkit.ops.fast.activations`); float64 is exact). Same
  signatures, return values and caches, so a cache from one backend feeds the other's backward.
- ``"auto"`` (the default): ``"numba"`` once the compiled kernels are in numba's cache for this
  CPU, the NumPy reference until then, while a background process compiles them
  (:mod:`lstmkit.ops.compiled`; ``LSTMKIT_COMPILE=now`` compiles in this process instead, ``off``
  keeps the reference). The switch happens at a safe point only (:func:`one_path`), never inside
  a ``fit``, ``predict`` or ``evaluate``. ``"numpy"`` when numba is not installed.

The environment variable ``LSTMKIT_BACKEND`` (``numpy``, ``numba`` or ``auto``) sets the starting
choice; :func:`set_backend` changes it at run time. numba stays optional: this module imports it
only when the numba backend is first used. Asking for ``"numba"`` by name compiles in this process
on the first call of each kernel for each float type (then loads it from the cache in later
processes).

    ops = ops_for("lstm")
    hs, (h_T, c_T), cache = ops.forward(x, h0, c0, kernel, recurrent_kernel, bias)
    grads = ops.backward(dhs, None, None, cache)

Cell options (Keras' ``activation``, ``recurrent_activation``, GRU ``reset_after``) are bound
into the functions ``ops_for`` returns. The compiled kernels run Keras' defaults (LSTM and GRU:
tanh and sigmoid, reset_after=True) and every activation whose derivative is a function of its
output (relu, hard_sigmoid, elu, selu, softsign, linear, ...: :func:`compiled_supports`); the
others (gelu, swish, mish, ...) and GRU ``reset_after=False`` run on the NumPy reference, whatever
the backend. A pair other than the defaults is compiled on its first use (under ``"auto"`` in the
background, the reference running meanwhile: :func:`compile_job`). A layer without bias passes a
zero bias: exact, and the compiled kernels stay in use.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import logging
import os
import threading
import time
from types import SimpleNamespace

import numpy as np

from . import activations, blas_threads, compiled

log = logging.getLogger("lstmkit.ops.backend")
BACKENDS = ("numpy", "numba", "auto")
CELLS = ("lstm", "gru", "rnn")

_choice: str | None = None  # what the user asked for; None = not yet read from the environment
_resolved: dict[str, str] = {}  # choice -> concrete backend, resolved once
_namespaces: dict[tuple, SimpleNamespace] = {}  # (backend, cell, options) -> the functions
_by_request: dict[tuple, SimpleNamespace] = {}  # what ops_for was asked -> the same namespaces


def _check_name(name, source: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{source} must be one of {list(BACKENDS)}; got {name!r}")
    return name


def _numba_available() -> bool:
    global _NUMBA
    if not _NUMBA:  # once found, always there (set_backend asks at every call of a benchmark)
        try:
            importlib.import_module("lstmkit.ops.fast")
        except ImportError:
            return False
        _NUMBA = True
    return True


_NUMBA = False


def set_backend(name: str) -> str:
    """Select ``"numpy"``, ``"numba"`` or ``"auto"``; returns the concrete backend now in use.

    Asking for ``"numba"`` when numba is not installed raises ImportError.
    """
    global _choice
    _check_name(name, "argument 'name'")
    if name == "numba" and not _numba_available():
        raise ImportError(
            "set_backend: backend 'numba' needs numba (pip install 'lstmkit[fast]'); "
            "use 'numpy' or 'auto'"
        )
    _choice = name
    return get_backend()


def _requested() -> str:
    """What was asked for: ``set_backend``'s choice, else ``LSTMKIT_BACKEND`` (read once)."""
    global _choice
    if _choice is None:
        _choice = _check_name(
            os.environ.get("LSTMKIT_BACKEND", "auto").strip().lower() or "auto",
            "environment variable LSTMKIT_BACKEND",
        )
    return _choice


def get_backend() -> str:
    """The concrete backend in use: ``"numpy"`` or ``"numba"``."""
    if _requested() == "auto":
        return "numpy" if _AUTO_IS_REFERENCE.get() else _resolve_auto()
    return _choice


#: inside :func:`reference_when_auto` (this thread's context only): ``"auto"`` is the reference
_AUTO_IS_REFERENCE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lstmkit_auto_is_reference", default=False
)


@contextlib.contextmanager
def reference_when_auto():
    """Inside, ``"auto"`` is the NumPy reference: for work too small to pay for loading numba
    and the compiled kernels (about 0.65 CPU s of a process; ``forecast predict`` on a small
    panel). Nothing is imported or compiled for it. A backend asked for by name
    (``LSTMKIT_BACKEND``, :func:`set_backend`, also inside the block) stands. Held in a context
    variable: other threads keep their ``"auto"``, and nothing global is written or restored."""
    token = _AUTO_IS_REFERENCE.set(True)
    try:
        yield
    finally:
        _AUTO_IS_REFERENCE.reset(token)


def dispatch_key() -> tuple:
    """What :func:`ops_for`'s answers depend on besides its arguments: the choice and the
    backend it resolves to now. A caller that keeps those answers (``Model.predict``'s plan)
    asks again when this changes."""
    resolved = get_backend()
    return (_choice, resolved)


def _resolve_auto() -> str:
    if _deferred():
        return _auto.backend()
    if "auto" not in _resolved:
        _resolved["auto"] = "numba" if _auto_compiles_now() else "numpy"
    return _resolved["auto"]


def _auto_deferred() -> bool:
    """Whether ``"auto"`` is asked for, outside :func:`reference_when_auto`, and its kernels
    come from the background compilation (``_deferred``)."""
    return _requested() == "auto" and not _AUTO_IS_REFERENCE.get() and _deferred()


def peek_backend() -> str:
    """:func:`get_backend` without side effects: what runs now, and no compilation started."""
    if _auto_deferred():
        return "numba" if any(compiled.ready(dt) for dt in compiled.DTYPES) else "numpy"
    return get_backend()


def waits_for_compilation() -> bool:
    """Whether ``"auto"`` runs the reference until a background compilation is done
    (:mod:`lstmkit.ops.compiled`)."""
    return _deferred()


def _auto_compiles_now() -> bool:
    """``"auto"`` when it does not wait for a background compilation: compiled in this process
    with ``LSTMKIT_COMPILE=now``; else (``off``, or no writable cache to carry a background
    compilation over) the reference."""
    return compiled.mode() == "now" and _numba_available()


def _deferred() -> bool:
    """Whether ``"auto"`` waits for a background compilation (the default mode, numba and SciPy
    installed, and a writable cache to carry the compiled kernels over to this process)."""
    global _DEFERRED
    if _DEFERRED is None:
        _DEFERRED = (
            compiled.mode() == "background"
            and compiled.toolchain_available()
            and compiled.writable() is None
        )
    return _DEFERRED


_DEFERRED: bool | None = None


class _AutoState:
    """The float types whose compiled kernels this process uses under ``"auto"`` (background
    mode). Re-read from the cache's markers only at safe points: outside every :func:`one_path`
    scope, at most every ``RECHECK_S`` seconds (one ``stat`` per float type)."""

    RECHECK_S = 0.5

    def __init__(self):
        self.ready: frozenset = frozenset()
        self.jobs: set = set()  # the activation pairs' compilations asked for ("float32-lstm-...")
        self.jobs_ready: frozenset = frozenset()
        self.depth = 0
        self.checked = -float("inf")
        self.lock = threading.RLock()

    def refresh(self) -> None:
        with self.lock:
            now = time.monotonic()
            if self.depth or now - self.checked < self.RECHECK_S:
                return
            self.checked = now
            self.jobs_ready = frozenset(j for j in self.jobs if compiled.ready(j))
            if len(self.ready) == len(compiled.DTYPES):
                return
            ready = frozenset(dt for dt in compiled.DTYPES if compiled.ready(dt))
            if "float32" not in ready:
                compiled.start("float32")  # the default float type comes first
            self.ready = ready

    def backend(self) -> str:
        self.refresh()
        return "numba" if self.ready else "numpy"

    def runs(self, dtype, job=None) -> bool:
        """Whether this float type's compiled kernels (with ``job``: those of an activation pair,
        :func:`compile_job`) run now; starts compiling them if not. Seen ready at safe points only."""
        name = _KERNEL_DTYPE.get(dtype)  # (every cell op of a step asks: np.dtype().name is ~1 us)
        if name is None:
            dt = np.dtype(dtype)
            name = _KERNEL_DTYPE[dtype] = dt.name if dt in (np.float32, np.float64) else "float64"
        name = name if job is None else f"{name}-{job}"
        if name in (self.ready if job is None else self.jobs_ready):
            return True
        if job is not None:
            self.jobs.add(name)
        compiled.start(name)
        return False


_auto = _AutoState()
#: a float type -> the name of the compiled kernels that run it ("float32" or "float64")
_KERNEL_DTYPE: dict = {}


def _enter_path() -> None:
    if _choice is None or _choice == "auto":
        get_backend()  # reads LSTMKIT_BACKEND once
        if _auto_deferred():
            _auto.refresh()
    with _auto.lock:
        _auto.depth += 1


def _leave_path() -> None:
    with _auto.lock:
        _auto.depth -= 1


@contextlib.contextmanager
def one_path_scope():
    """Inside, the ``"auto"`` backend does not change: the switch to the compiled kernels, once
    they are ready, waits for the outermost scope to end. Entering the outermost scope is a safe
    point: it looks for kernels that became ready, at most every ``RECHECK_S`` seconds (a look
    is a few file-system calls, 0.1 ms: at every call it was most of a small model's predict)."""
    _enter_path()
    try:
        yield
    finally:
        _leave_path()


def one_path(method):
    """Decorator: the whole call runs on one implementation (:func:`one_path_scope`); for
    ``fit``, ``predict``, ``evaluate`` and the ``*_on_batch`` methods, so that one fit is one
    path. What this means for reproducibility: :mod:`lstmkit.ops.compiled`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        # the scope without its generator: 4 Python calls fewer (a batch-1 predict is ~0.15 ms)
        _enter_path()
        try:
            return method(*args, **kwargs)
        finally:
            _leave_path()

    return wrapper


def _reference_infer(forward):
    def infer(*args, **kwargs):
        return forward(*args, **kwargs)[:2]  # drop the cache

    return infer


#: each cell's option defaults (Keras'); options equal to them are not bound
_DEFAULTS = {
    "lstm": {"activation": "tanh", "recurrent_activation": "sigmoid"},
    "gru": {"activation": "tanh", "recurrent_activation": "sigmoid", "reset_after": True},
    "rnn": {"activation": "tanh"},
}


def _options(cell, options) -> tuple:
    """The options that differ from ``cell``'s defaults, as a sorted hashable tuple."""
    unknown = sorted(set(options) - set(_DEFAULTS[cell]))
    if unknown:
        raise ValueError(
            f"ops_for: cell {cell!r} takes options {sorted(_DEFAULTS[cell])}; got {unknown}"
        )
    return tuple(sorted((k, v) for k, v in options.items() if v != _DEFAULTS[cell][k]))


def compiled_supports(cell: str, **options) -> bool:
    """Whether the compiled kernels run ``cell`` with these options (else the reference does):
    activations whose derivative is a function of their output
    (:data:`lstmkit.ops.activations.OUTPUT_DERIVED`), and GRU ``reset_after=True``."""
    return why_reference(cell, **options) is None


def why_reference(cell: str, **options) -> str | None:
    """Why the compiled kernels do not run ``cell`` with these options, or None when they do."""
    opts = dict(_options(cell, options))
    if opts.pop("reset_after", True) is not True:
        return "reset_after=False has no compiled kernel"
    for arg, name in opts.items():
        if not activations.compiles(name):
            return (
                f"{arg}={name!r} has a derivative that needs its pre-activation; the compiled "
                f"kernels run {list(activations.OUTPUT_DERIVED)}"
            )
    return None


def describe(cell: str, dtype, **options) -> str:
    """Which implementation runs ``cell`` with these options for ``dtype`` now, and why, without
    side effects (no compilation started): what a layer's ``kernel_report`` prints."""
    why = why_reference(cell, **options)
    if why is not None:
        return f"NumPy reference: {why}"
    if peek_backend() == "numpy":
        return "NumPy reference (the backend in use)"
    job = compile_job(cell, _options(cell, options))
    if _choice == "auto" and _deferred():
        name = np.dtype(dtype).name + ("" if job is None else f"-{job}")
        if not compiled.ready(name):
            return f"NumPy reference until the background compilation {name!r} is done"
    return "compiled kernels (numba)"


def compile_job(cell: str, opts: tuple) -> str | None:
    """The name of the background compilation that covers ``cell`` with options ``opts`` (as
    :func:`_options` gives them) beside the default one: None for Keras' defaults, which the
    float type's own compilation covers; else ``"<cell>-<activation>-<recurrent_activation>"``.
    Each pair's kernels are compiled on the first use of the pair (in the background under
    ``"auto"``) and numba's cache keeps them."""
    if not opts:
        return None
    o = {**_DEFAULTS[cell], **dict(opts)}
    names = [o["activation"]] + ([] if cell == "rnn" else [o["recurrent_activation"]])
    return "-".join([cell, *("linear" if n is None else n for n in names)])


def ops_for(cell: str, backend: str | None = None, **options) -> SimpleNamespace:
    """``forward``, ``backward``, ``step`` and ``infer`` (forward without the cache) for
    ``cell`` in ``"lstm"``, ``"gru"``, ``"rnn"``, from ``backend`` (default: :func:`get_backend`).

    ``options`` (``activation``, ``recurrent_activation``, ``reset_after``) are bound into
    ``forward``/``step``/``infer``; the namespace's ``backend`` says which implementation runs
    (``"numpy"`` when the compiled kernels lack an option).
    """
    # every layer call asks: answer a request seen before with one dict lookup
    request = (get_backend() if backend is None else backend, backend is None, cell,
               *options.items())  # fmt: skip
    ns = _by_request.get(request)
    if ns is None:
        auto = backend is None and _choice == "auto"
        ns = _by_request[request] = _lookup(cell, request[0], options, auto)
    return ns


def _lookup(cell, backend, options, request_auto=False) -> SimpleNamespace:
    if cell not in CELLS:
        raise ValueError(f"ops_for: argument 'cell' must be one of {list(CELLS)}; got {cell!r}")
    opts = _options(cell, options)
    if _check_name(backend, "ops_for: argument 'backend'") == "auto":
        backend, request_auto = _resolve_auto(), True
    if backend == "numba" and not compiled_supports(cell, **dict(opts)):
        log.debug("%s: NumPy reference: %s", cell, why_reference(cell, **dict(opts)))
        backend = "numpy"
    gated = backend == "numba" and request_auto and _deferred()
    key = (backend, cell, opts, gated)
    if key not in _namespaces:
        ns = _namespace(backend, cell, opts)
        if gated:
            ns = _gated(ns, _namespace("numpy", cell, opts), compile_job(cell, opts))
        _namespaces[key] = ns
    return _namespaces[key]


def _first_float(args):
    """The float type a call computes in: a cell cache's (backward), else its first array's."""
    caches = [a for a in args if isinstance(a, tuple) and hasattr(a, "_fields")]
    for a in caches[0] if caches else args:
        if isinstance(a, np.ndarray):
            return a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    return np.float64


def _gated(fast, reference, job=None) -> SimpleNamespace:
    """``fast``'s functions, each running ``reference``'s instead for a float type whose
    compiled kernels are not ready yet (``"auto"``, background mode: float64 compiles only when
    a float64 call asks for it), and for activations other than Keras' defaults, until their own
    background compilation ``job`` (:func:`compile_job`) is done. Either backward takes either
    forward's cache."""

    def gate(name):
        f, r = getattr(fast, name), getattr(reference, name)

        def call(*args, **kwargs):
            dt = _first_float(args)
            fast_now = _auto.runs(dt) and (job is None or _auto.runs(dt, job))
            return (f if fast_now else r)(*args, **kwargs)

        return call

    names = ("forward", "backward", "step", "infer")
    return SimpleNamespace(**{**vars(fast), **{n: gate(n) for n in names}})


def _namespace(backend, cell, opts) -> SimpleNamespace:
    if backend == "numba":
        mod = importlib.import_module(f"lstmkit.ops.fast.{cell}")
        infer = getattr(mod, f"{cell}_infer")
    else:
        mod = importlib.import_module(f"lstmkit.ops.{cell}")
        infer = None
    forward, step = getattr(mod, f"{cell}_forward"), getattr(mod, f"{cell}_step")
    backward = getattr(mod, f"{cell}_backward")
    if backend == "numba" and getattr(mod, "TAKES_WORKSPACE", False):
        forward, infer, backward = map(_in_workspace, (forward, infer, backward))
    if opts:  # the backward reads what it needs from the cache
        forward = functools.partial(forward, **dict(opts))
        step = functools.partial(step, **dict(opts))
        infer = infer and functools.partial(infer, **dict(opts))
    return SimpleNamespace(
        backend=backend,
        cell=cell,
        forward=forward,
        backward=backward,
        step=step,
        infer=infer or _reference_infer(forward),
    )


def _fast_threads() -> int:
    """lstmkit's own thread count when the fast path is in use, else 0. Inside a
    :func:`compute_scope`, the count the scope read at its start (what it set BLAS for): a
    training step asked ~7 times (each :func:`matmul`), ~20 Python calls each (the backend, an
    environment variable), about 8 % of a small model's step."""
    n = _SCOPE_THREADS.get()
    return _read_threads() if n is None else n


def fast_ops():
    """:mod:`lstmkit.ops.fast` when the compiled backend runs (inside a training step: as its
    compute scope read it), else None: for the kernels of ops that are no cell (the
    optimizers' flat Adam step, the embedding gradient)."""
    if _fast_threads() < 1:
        return None
    return _fast_module()


def _fast_module():
    """:mod:`lstmkit.ops.fast`, imported at the first call (numba is optional: never at this
    module's import), then from a global: a function-level import is ~1 us at every call, and
    a training step asked 3-9 times."""
    global _FAST
    if _FAST is None:
        from . import fast

        _FAST = fast
    return _FAST


_FAST = None


def _read_threads() -> int:
    if get_backend() != "numba":
        return 0
    return _fast_module().common.get_num_threads()


# The workspace of the step or prediction running on this thread (or asyncio task): set by its
# owner through compute_scope(workspace=...), read by the compiled LSTM ops when they are called
# (the layers stay unaware of it). A context variable: another thread never sees it.
_WORKSPACE: contextvars.ContextVar = contextvars.ContextVar("lstmkit_workspace", default=None)
# _fast_threads() as the innermost compute_scope read it at its start (None: not read)
_SCOPE_THREADS: contextvars.ContextVar = contextvars.ContextVar("lstmkit_threads", default=None)


def compute_scope(rows=None, workspace=None):
    """Run a whole training step or prediction inside: when the fast path spreads its work over
    its own threads (numba backend, ``LSTMKIT_NUM_THREADS`` > 1, the default on a multi-core
    machine), BLAS is made single-threaded for the duration, process-wide, and every product of
    the step is shared out by lstmkit instead (cell ops, :func:`matmul`). Two thread pools on the
    same cores fight: OpenBLAS's workers spin after each product while lstmkit's run, which made
    a 2-core training step 1.9x slower (measured: 45.6 ms against 24.4 ms, char LM of
    ``docs/text.md``).

    ``rows``: the batch rows of an inference call, when known. A batch of one runs its recurrent
    layers on the calling thread alone (their kernels share out rows), and any other op that
    does use lstmkit's threads makes BLAS single-threaded around itself (:func:`.fast.common.
    in_parallel`), so there is nothing to fight and the switch (four library calls, 5 us: 3 % of
    a batch-1 predict at config B, which made two threads slower than one) is skipped.

    The thread count is read once, at the start (``set_num_threads`` inside a scope counts from
    the next scope): the products of one step are shared out as the scope set BLAS up for.

    ``workspace``: a :class:`lstmkit.ops.workspace.Workspace` that the compiled ops called inside
    (on this thread) take their buffers from, its owner resetting it between steps; what they
    return is valid until that reset. None (the default, and outside every scope): fresh arrays.
    """
    return _ComputeScope(rows, workspace)


class _ComputeScope:
    """:func:`compute_scope` as a class (a training step enters one: a generator-based context
    manager cost ~3 us more per step)."""

    __slots__ = ("held", "rows", "threads_token", "token", "workspace")

    def __init__(self, rows, workspace):
        self.rows, self.workspace = rows, workspace

    def __enter__(self):
        rows = self.rows
        threads = None if rows is not None and rows < 2 else _read_threads()
        self.token = _WORKSPACE.set(self.workspace)
        self.threads_token = _SCOPE_THREADS.set(threads)  # read once (see _fast_threads)
        # lstmkit's own threads share out the products; or the NumPy reference runs while the
        # kernels compile in the background: the compiler has a core, and OpenBLAS's second
        # thread waiting on it made the reference's small products 2-5x slower (docs/speed.md,
        # "The first call")
        self.held = (threads is not None and threads >= 2) or (threads == 0 and compiled.busy())
        if self.held:
            try:
                blas_threads.hold_single()
            except BaseException:
                self._reset()
                raise

    def __exit__(self, *exc):
        try:
            if self.held:
                blas_threads.release_single()
        finally:
            self._reset()
        return False

    def _reset(self):
        _SCOPE_THREADS.reset(self.threads_token)
        _WORKSPACE.reset(self.token)


def give_back(*arrays) -> None:
    """Tell the workspace of the scope this runs in (if any) that nothing reads the buffers
    behind ``arrays`` (an op's outputs, or views of them) again in this step, so that a later op
    of the step may take them: for a layer that drops an op's output at once (``Bidirectional``
    after merging its directions, a recurrent layer that returns its last state only). What the
    reference counts of the old global pool found out by themselves. A no-op outside a scope and
    for arrays the workspace did not hand out."""
    ws = _WORKSPACE.get()
    if ws is not None:
        ws.give_back(*arrays)


def _in_workspace(fn):
    """``fn`` (a compiled op taking ``ws``) given the workspace of the scope it runs in."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return fn(*args, ws=_WORKSPACE.get(), **kwargs)

    return call


def matmul(a, b):
    """``a @ b`` for 2-D arrays. On the fast path with several threads the rows of the result
    are shared among lstmkit's threads (single-threaded BLAS on each), like the cell ops."""
    if _fast_threads() < 2:
        return np.matmul(a, b)
    return _fast_module().common.matmul(a, b)
