"""SciPy's ``scipy.linalg.cython_blas`` for the compiled kernels, without the ``scipy.linalg``
package.

numba's ``np.dot`` and ``ops.fast.blas.gemm_address`` call BLAS through the function pointers
this extension module exports (``__pyx_capi__``); importing it the ordinary way first runs
``scipy/linalg/__init__.py``, which imports SciPy's array-API layer and through it
``numpy.f2py``, ``numpy.testing``, ``unittest`` and ``charset_normalizer``: 0.15-0.2 s of every
process that loads the kernels (``python -X importtime``; docs/forecast.md, "Outside the training
steps"), none of it used by the kernels. :func:`load` executes the same extension file under the
same name and registers it in ``sys.modules``, where a later ``import scipy.linalg.cython_blas``
(numba's, SciPy's own) finds it; ``import scipy.linalg`` still works and then holds this module.
Any trouble finding or loading the file: the ordinary import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

NAME = "scipy.linalg.cython_blas"
PARENT = "scipy.linalg"


def load():
    """The ``scipy.linalg.cython_blas`` module, loaded once per process (see the module doc)."""
    module = sys.modules.get(NAME)
    if module is not None:
        return module
    path = None if PARENT in sys.modules else _extension_file()  # (imported: nothing to save)
    spec = None if path is None else importlib.util.spec_from_file_location(NAME, path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = module
        try:
            spec.loader.exec_module(module)
        except Exception:  # noqa: BLE001  (any failure: SciPy's own way below)
            del sys.modules[NAME]
        else:
            sys.meta_path.insert(0, _AttributeOnParent())
            return module
    return importlib.import_module(NAME)


class _AttributeOnParent(importlib.abc.MetaPathFinder):
    """Waits for ``import scipy.linalg`` and then, as the import system does for a submodule
    imported the ordinary way, sets the package's attribute ``cython_blas`` to the module
    :func:`load` registered (``scipy.linalg.cython_blas.dgemm``-style code keeps working)."""

    def find_spec(self, name, path=None, target=None):
        if name != PARENT:
            return None
        sys.meta_path.remove(self)  # once; the other finders find the package
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.cython_blas = sys.modules[NAME]

        spec.loader.exec_module = exec_module  # (this spec's own loader instance)
        return spec


def _extension_file() -> str | None:
    """``.../scipy/linalg/cython_blas<extension suffix>`` of the installed SciPy, or None. The
    ``scipy`` package itself is imported (a few ms): its ``__init__`` prepares the loading of
    SciPy's libraries where a platform needs it (Windows' DLL directories)."""
    import scipy

    for root in getattr(scipy, "__path__", ()):
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(root, "linalg", "cython_blas" + suffix)
            if os.path.isfile(path):
                return path
    return None
