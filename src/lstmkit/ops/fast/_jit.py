"""The options every kernel is compiled with. ``cache`` is False when no cache directory is
writable (:mod:`lstmkit.ops.compiled`): numba would otherwise refuse to decorate the kernels."""

from .. import compiled

JIT = {"cache": compiled.writable() is None, "nogil": True, "error_model": "numpy"}
