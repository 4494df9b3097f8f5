"""Optional packages: import one, or say which lstmkit extra installs it.

``pip install lstmkit`` brings NumPy, numba, SciPy, tqdm, matplotlib and safetensors. The
interop packages are extras, installed on request::

    pip install 'lstmkit[torch]'   # to_torch / from_torch, .pt state-dict files
    pip install 'lstmkit[onnx]'    # to_onnx, `lstmkit export onnx` (onnxruntime for --check)
    pip install 'lstmkit[keras]'   # to_keras / from_keras (.keras files need h5py, a Keras dependency)
    pip install 'lstmkit[ray]'     # lstmkit.distributed, `--engine ray`

A feature that needs a missing one raises :class:`MissingExtraError`, which is both an
``ImportError`` (what a missing module has always raised) and a ``ValueError`` (what the CLI turns
into one clean line and exit code 2)::

    to_onnx needs the 'onnx' extra: pip install 'lstmkit[onnx]' (no module named 'onnx')
"""

from __future__ import annotations

import importlib

# module (top-level name) -> the extra that installs it
EXTRAS = {
    "torch": "torch",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "keras": "keras",
    "h5py": "keras",
    "sentencepiece": "translate",
    "ray": "ray",
}


class MissingExtraError(ImportError, ValueError):
    """An optional package a feature needs is not installed; the message names the extra."""


def _missing(e: ImportError, module: str) -> bool:
    """True when ``e`` says ``module`` itself is absent (not installed, or blocked with
    ``sys.modules[module] = None``), as opposed to a broken installation of it, which keeps its
    own error."""
    return isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] == module


def message(feature: str, module: str, extra: str | None = None) -> str:
    extra = extra or EXTRAS[module]
    return (
        f"{feature} needs the '{extra}' extra: pip install 'lstmkit[{extra}]' "
        f"(no module named '{module}')"
    )


def require(module: str, feature: str, extra: str | None = None):
    """``importlib.import_module(module)``, or :class:`MissingExtraError` naming the extra.

    ``module`` may be dotted (``"torch.nn"``); the extra is looked up by its top-level name.
    ``feature`` is what the user asked for (``"to_onnx"``, ``"lstmkit export onnx"``).
    """
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if not _missing(e, top):
            raise
        raise MissingExtraError(message(feature, top, extra), name=top) from None


def keras(feature: str):
    """Import Keras 3 for ``feature``. Keras needs a backend chosen before it is imported
    (``KERAS_BACKEND``): when none is set and neither TensorFlow nor JAX is installed, PyTorch's
    (the one lstmkit's tests use). A missing backend is reported as the extra to add."""
    import importlib.util
    import os
    import sys

    if (
        "keras" not in sys.modules
        and "KERAS_BACKEND" not in os.environ
        and not any(importlib.util.find_spec(m) for m in ("tensorflow", "jax"))
    ):
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        return importlib.import_module("keras")
    except ImportError as e:
        if _missing(e, "keras"):
            raise MissingExtraError(message(feature, "keras"), name="keras") from None
        backend = (e.name or "").split(".")[0]
        if isinstance(e, ModuleNotFoundError) and backend in ("torch", "tensorflow", "jax"):
            raise MissingExtraError(
                f"{feature} needs a Keras backend: pip install 'lstmkit[keras,torch]' "
                f"(KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r}; no module named "
                f"'{backend}')",
                name=backend,
            ) from None
        raise
