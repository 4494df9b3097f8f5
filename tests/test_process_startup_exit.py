"""What a command-line process pays before and after its work (docs/forecast.md, "Outside the
training steps"): the compiled kernels load SciPy's BLAS module without the ``scipy.linalg``
package (``lstmkit.ops.cython_blas``), and the entry points end without the interpreter's final
garbage collection (``lstmkit._system.skip_final_collection``).

Witnesses, none of them a timing: ``sys.modules`` of a fresh process; a product computed by
calling SciPy's ``sgemm`` through the address numba's lookup gives (ctypes) against NumPy's;
``gc.get_freeze_count()`` read by an ``atexit`` handler of the process, which runs after the
entry point has returned.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _python(code, *args, stdin=None):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, stdin=stdin, check=False)  # fmt: skip


# sgemm through the address numba's get_cython_function_address finds (what the kernels call),
# on a 2x3 @ 3x2 product, against NumPy's
SGEMM = r"""
import ctypes, sys
import numpy as np
from numba.extending import get_cython_function_address
a = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
b = np.arange(6, dtype=np.float32).reshape(3, 2) * 0.5 + 1
c = np.zeros((2, 2), np.float32)
f = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)(
    get_cython_function_address("scipy.linalg.cython_blas", "sgemm"))
i = lambda v: ctypes.byref(ctypes.c_int(v))
one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
# row-major C = A @ B is column-major C^T = B^T A^T: gemm("N", "N", n, m, k, B, A)
f(ctypes.c_char_p(b"N"), ctypes.c_char_p(b"N"), i(2), i(2), i(3), ctypes.byref(one),
  b.ctypes.data, i(2), a.ctypes.data, i(3), ctypes.byref(zero), c.ctypes.data, i(2))
assert np.array_equal(c, a @ b), (c, a @ b)
"""


def test_the_kernels_load_scipys_blas_without_the_scipy_linalg_package():
    pytest.importorskip("numba")
    code = (
        "import sys\nimport lstmkit.ops.fast\n"
        "print(sorted(m for m in ('scipy.linalg', 'numpy.f2py', 'numpy.testing') "
        "if m in sys.modules))\n"
        "print(sys.modules['scipy.linalg.cython_blas'].__file__)\n" + SGEMM + "print('sgemm ok')"
    )
    out = _python(code)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "[]"  # none of them imported
    plain = _python("import scipy.linalg.cython_blas as m; print(m.__file__)")
    assert lines[1] == plain.stdout.strip()  # the very file the package's import loads
    assert lines[2] == "sgemm ok"


def test_scipy_linalg_imported_afterwards_holds_the_same_module():
    code = (
        "import sys\nfrom lstmkit.ops import cython_blas\nm = cython_blas.load()\n"
        "assert 'scipy.linalg' not in sys.modules\n"
        "import scipy.linalg.cython_blas\n"
        "assert scipy.linalg.cython_blas is m  # the attribute, as an ordinary import sets it\n"
        "from scipy.linalg import cython_blas as c2\nassert c2 is m\n"
        "import numpy as np, scipy.linalg\n"
        "x = scipy.linalg.solve(np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 5.0]))\n"
        "assert np.allclose(x, [0.8, 1.4]), x\nprint('ok')"
    )
    out = _python(code)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_without_the_extension_file_the_ordinary_import_serves():
    pytest.importorskip("numba")
    code = (
        "import sys\nfrom lstmkit.ops import cython_blas\n"
        "cython_blas._extension_file = lambda: None\n"
        "m = cython_blas.load()\nassert 'scipy.linalg' in sys.modules\n" + SGEMM + "print('ok')"
    )
    out = _python(code)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# the entry point run as `python -m ...` would run it; an atexit handler registered before it
# (so it runs after the entry point returned) prints the freeze count
AT_EXIT = (
    "import atexit, gc, runpy, sys\n"
    "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0, flush=True))\n"
    "runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
)


@pytest.mark.parametrize(
    "module, args",
    [
        ("lstmkit", ["--version"]),  # (the command line ends by SystemExit)
        ("lstmkit.apps.forecast_heldout", ["DIR"]),  # its parent gone before the input
        ("lstmkit.apps.forecast_child", ["missing.npz", "out.npz"]),  # ends by an error
    ],
)
def test_entry_points_end_without_the_final_collection(module, args, tmp_path):
    if module != "lstmkit":
        args = [str(tmp_path) if a == "DIR" else str(tmp_path / a) for a in args]
    out = _python(AT_EXIT.format(module=module), *args, stdin=subprocess.DEVNULL)
    assert out.stdout.strip().splitlines()[-1] == "frozen True", (out.stdout, out.stderr)


def test_main_itself_leaves_the_collector_alone(tmp_path, capsys):
    from lstmkit.cli import main

    before = gc.get_freeze_count()
    status = main(["forecast", "predict", str(tmp_path / "none.lstmkit"), str(tmp_path / "d.csv"),
                   "--out", str(tmp_path / "fc.csv")])  # fmt: skip
    assert status == 2 and "none.lstmkit" in capsys.readouterr().err
    assert gc.get_freeze_count() == before


# `forecast train` (the saved fit only) and `forecast predict` on a small panel in one fresh
# process; then the modules neither path needs
PANEL_PATHS = r"""
import sys
from lstmkit.cli import main
csv, model, out = sys.argv[1:4]
fast = ["--horizon", "4", "--units", "4", "--epochs", "2", "--patience", "1", "--ensemble", "1"]
assert main(["forecast", "train", csv, "--out", model, "--no-evaluate", *fast]) == 0
assert main(["forecast", "predict", model, csv, "--out", out]) == 0
print([m for m in ("lstmkit.apps.forecast", "lstmkit.apps.forecast_files", "scipy.linalg")
       if m in sys.modules])
"""


def test_panel_train_and_predict_import_neither_the_single_series_app_nor_scipy_linalg(tmp_path):
    csv = tmp_path / "panel.csv"
    rows = ["unique_id,ds,y"]
    for k, name in enumerate(("A", "B", "C")):
        for t in range(32):
            rows.append(
                f"{name},{2000 + t // 4}-{1 + 3 * (t % 4):02d}-01,{10 + k + (t % 4) + 0.1 * t}"
            )
    csv.write_text("\n".join(rows) + "\n")
    out = _python(PANEL_PATHS, str(csv), str(tmp_path / "m.lstmkit"), str(tmp_path / "fc.csv"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert len((tmp_path / "fc.csv").read_text().splitlines()) == 1 + 3 * 4  # the forecasts
