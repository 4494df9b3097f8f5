"""Settings for the whole test suite.

``LSTMKIT_COMPILE=now``: the ``"auto"`` backend compiles the kernels in the test process, as
before :mod:`lstmkit.ops.compiled` existed, instead of starting a background compilation per
test process and running the NumPy reference until it is done; the tests of that mode
(``tests/test_first_call.py``) set their own environment in the subprocesses they run.
"""

import os

os.environ.setdefault("LSTMKIT_COMPILE", "now")

import pytest

from lstmkit.ops import backend

#: the backends a test parametrised with ``use_backend`` runs on
BACKENDS = ["numpy"] + (["numba"] if backend._numba_available() else [])


@pytest.fixture(params=BACKENDS)
def use_backend(request):
    """The test runs once per backend, set for its duration (restored after)."""
    before = backend.get_backend()
    backend.set_backend(request.param)
    yield request.param
    backend.set_backend(before)


@pytest.fixture
def numpy_backend():
    """The NumPy reference backend for the test's duration (restored after)."""
    before = backend.get_backend()
    backend.set_backend("numpy")
    yield
    backend.set_backend(before)
