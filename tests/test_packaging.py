"""Packaging: what `pip install lstmkit` declares, `python -m lstmkit`, `lstmkit info`, the
missing-extra messages and the README's command lines.

Witnesses: pyproject.toml read with tomllib; /proc/cpuinfo, ``os.sched_getaffinity`` and the
packages' own ``__version__`` read here; missing packages simulated with
``sys.modules[name] = None`` (what Python does for a module it cannot import), in a subprocess
for the CLI; argparse's own parser for the README examples. The wheel itself is built and
installed into a fresh venv by ``.ci/check-wheel.sh`` (a CI step of its own).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tomllib

import lstmkit
from lstmkit import LSTM, Dense, Sequential
from lstmkit._optional import MissingExtraError
from lstmkit.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def _python(code, *args, cwd=None, **env):
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        env=_env(**env),
        cwd=cwd,
        timeout=300,
    )


# --- pyproject ----------------------------------------------------------------------------------
def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(reqs):
    return {re.split(r"[<>=!\[;\s]", r, maxsplit=1)[0].lower() for r in reqs}


def test_plain_install_brings_the_full_experience_and_interop_stays_optional():
    project = _pyproject()["project"]
    deps = _names(project["dependencies"])
    assert deps == {"numpy", "numba", "scipy", "tqdm", "matplotlib", "safetensors", "sacrebleu"}
    extras = project["optional-dependencies"]
    assert _names(extras["torch"]) == {"torch"}
    assert _names(extras["onnx"]) == {"onnx", "onnxruntime"}
    assert _names(extras["keras"]) == {"keras"}
    assert _names(extras["forecast"]) == {"statsforecast"}
    assert _names(extras["translate"]) == {"sentencepiece"}
    assert _names(extras["ray"]) == {"ray"}
    optional = {"torch", "onnx", "onnxruntime", "keras", "statsforecast", "sentencepiece", "ray"}
    assert not optional & deps
    # former extras still resolve, to packages that are now regular dependencies
    assert _names(extras["apps"]) | _names(extras["fast"]) <= deps
    test = extras["test"]
    assert "torch==2.13.0" in test  # unpinned, pip would fetch a multi-GB CUDA build
    assert {"scikit-learn", "statsmodels", "hypothesis", "pytest-xdist", "ruff"} <= _names(test)
    assert "lstmkit[torch,onnx,keras,forecast,translate,ray]" in test  # CI installs Ray
    assert project["scripts"]["lstmkit"] == "lstmkit.cli:script"  # main, then a quick exit
    data = _pyproject()["tool"]["setuptools"]["package-data"]["lstmkit"]
    assert {"data/builtin/*.csv", "data/builtin/*.md"} <= set(data)
    assert project["version"] == lstmkit.__version__


# --- python -m lstmkit --------------------------------------------------------------------------
def test_python_m_lstmkit_is_the_cli(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "lstmkit", "--version"],
        check=False,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert (
        out.returncode == 0
        and out.stdout.strip() == f"lstmkit {_pyproject()['project']['version']}"
    )
    # the same command, the same output and exit code as the console script's entry point
    args = ["export", "torch", str(tmp_path / "missing.lstmkit"), str(tmp_path / "w.safetensors")]
    via_m = subprocess.run(
        [sys.executable, "-m", "lstmkit", *args],
        check=False,
        capture_output=True,
        text=True,
        env=_env(),
    )
    via_main = _python("import sys; from lstmkit.cli import main; sys.exit(main())", *args)
    assert via_m.returncode == via_main.returncode == 2
    assert via_m.stderr == via_main.stderr and "missing.lstmkit" in via_m.stderr


# --- lstmkit info -------------------------------------------------------------------------------
INFO = """
import json, sys
from lstmkit.cli import main
rc = main(["info", "--json"])
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(rc)
"""
HEAVY = {"torch", "keras", "onnx", "onnxruntime", "tensorflow", "jax", "matplotlib", "h5py"}


def _info(**env):
    out = _python(INFO, **env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), set(json.loads(out.stderr.splitlines()[-1]))


def _cpuinfo_flags():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return {f: f in have for f in ("avx", "avx2", "fma", "avx512f")}
    raise AssertionError("no flags line in /proc/cpuinfo")


def _installed_versions():
    """Versions from the packages themselves, not their metadata (which info reads): the
    ``__version__`` line of torch's and Keras' version files (importing torch takes seconds),
    onnxruntime's attribute."""
    import importlib.util

    import onnxruntime

    found = {"onnxruntime": onnxruntime.__version__}
    for name, file in (("torch", "version.py"), ("keras", "src/version.py")):
        (folder,) = importlib.util.find_spec(name).submodule_search_locations
        text = Path(folder, file).read_text()
        found[name] = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", text, re.MULTILINE)[1]
    return found


def test_info_on_the_numpy_backend_imports_no_compiler_and_no_extra():
    report, modules = _info(LSTMKIT_BACKEND="numpy", LSTMKIT_NUM_THREADS="3")
    assert report["lstmkit"]["version"] == lstmkit.__version__
    assert report["numpy"] == np.__version__
    assert report["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert report["backend"] == {
        "name": "numpy",
        "requested": "numpy",
        "available": True,
        "reason": "LSTMKIT_BACKEND=numpy",
    }
    assert report["kernels"]["compiled"] is False
    assert report["threads"]["LSTMKIT_NUM_THREADS"] == "3" and report["threads"]["lstmkit"] is None
    assert report["cpu"]["flags"] == _cpuinfo_flags()
    assert report["cpu"]["usable_cpus"] == len(os.sched_getaffinity(0))
    assert not modules & (HEAVY | {"numba", "llvmlite", "scipy"}), modules & (HEAVY | {"numba"})


def test_info_on_the_compiled_backend_reports_kernels_threads_blas_and_extras():
    report, modules = _info(
        LSTMKIT_BACKEND=None, LSTMKIT_NUM_THREADS="3", OPENBLAS_NUM_THREADS="2", NUMBA_CPU_NAME=None
    )
    import numba
    import scipy

    assert report["backend"]["name"] == "numba" and report["backend"]["requested"] == "auto"
    kernels = report["kernels"]
    assert kernels["compiled"] and kernels["numba"] == numba.__version__
    # what numba compiles for agrees with what the kernel says the CPU has
    assert kernels["target_features"] == _cpuinfo_flags()
    assert report["threads"]["lstmkit"] == 3
    assert report["threads"]["default"] == len(os.sched_getaffinity(0))
    libs = report["blas"]["libraries"]
    assert libs and all(lib["api"] == "openblas" for lib in libs)
    # OPENBLAS_NUM_THREADS reached every BLAS loaded (OpenBLAS caps it at the CPU count)
    assert {lib["threads"] for lib in libs} == {min(2, os.cpu_count())}
    assert report["dependencies"]["scipy"] == scipy.__version__
    for name, version in _installed_versions().items():
        assert report["extras"][name]["version"] == version
    assert report["extras"]["onnxruntime"]["extra"] == "onnx"
    assert not modules & HEAVY, modules & HEAVY  # versions come from metadata, not imports


def test_info_says_why_the_numpy_backend_runs_when_numba_is_missing():
    code = "import sys; sys.modules['numba'] = None\n" + INFO
    out = _python(code, LSTMKIT_BACKEND=None)
    assert out.returncode == 0, out.stderr
    backend = json.loads(out.stdout)["backend"]
    assert backend["name"] == "numpy" and backend["requested"] == "auto" and backend["available"]
    assert "cannot run" in backend["reason"] and "numba" in backend["reason"]
    # asked for by name, numba is reported as unusable instead of crashing info
    out = _python(code, LSTMKIT_BACKEND="numba")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["backend"]["name"] == "numba" and not report["backend"]["available"]
    assert (
        "LSTMKIT_BACKEND=numba, but the compiled kernels cannot run" in report["backend"]["reason"]
    )
    assert report["kernels"]["compiled"] is False and report["threads"]["lstmkit"] is None


def test_info_text_has_one_line_per_topic(capsys, monkeypatch):
    monkeypatch.setenv("LSTMKIT_NUM_THREADS", "2")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    keys = [ln.split()[0] for ln in out.splitlines() if not ln.startswith(" ")]
    for key in ("lstmkit", "python", "numpy", "backend", "kernels", "cpu", "threads", "blas",
                "dependencies", "extras"):  # fmt: skip
        assert key in keys, out
    assert f"lstmkit         {lstmkit.__version__} " in out
    assert re.search(r"^threads +2 \(LSTMKIT_NUM_THREADS=2\)", out, re.MULTILINE), out
    # a package is listed once: as an extra or among the others found, not both
    found = [
        name
        for ln in out.splitlines()
        if ln.startswith(("extras", "also found"))
        for name in re.findall(r"([A-Za-z][\w.-]*) \d", ln)
    ]
    assert len(found) == len(set(found)), out


# --- missing extras -----------------------------------------------------------------------------
def _tiny_model(path=None):
    model = Sequential([LSTM(3, input_shape=(4, 2), name="lstm"), Dense(1, name="dense")])
    if path is not None:
        model.save(path)
    return model


BLOCKED_CLI = "import sys\nfor m in sys.argv[1].split(','): sys.modules[m] = None\n" + (
    "from lstmkit.cli import main\nsys.exit(main(sys.argv[2:]))\n"
)


@pytest.mark.parametrize(
    ("blocked", "command", "out", "message"),
    [
        ("onnx", ["export", "onnx"], "m.onnx",
         "lstmkit export onnx needs the 'onnx' extra: pip install 'lstmkit[onnx]'"),
        ("onnxruntime", ["export", "onnx", "--check"], "m.onnx",
         "lstmkit export onnx --check needs the 'onnx' extra: pip install 'lstmkit[onnx]'"),
        ("torch", ["export", "torch"], "w.pt",
         "lstmkit export torch to .pt needs the 'torch' extra: pip install 'lstmkit[torch]'"),
        ("keras", ["export", "keras"], "m.keras",
         "lstmkit export keras needs the 'keras' extra: pip install 'lstmkit[keras]'"),
    ],
)  # fmt: skip
def test_cli_names_the_missing_extra_in_one_line(tmp_path, blocked, command, out, message):
    model = tmp_path / "m.lstmkit"
    _tiny_model(model)
    argv = [*command[:2], str(model), str(tmp_path / out), *command[2:]]
    res = _python(BLOCKED_CLI, blocked, *argv)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert lines[0].endswith(f"(no module named '{blocked}')")
    assert not (tmp_path / out).exists()


def test_safetensors_export_needs_no_torch(tmp_path):
    model = tmp_path / "m.lstmkit"
    _tiny_model(model)
    out = tmp_path / "w.safetensors"
    res = _python(BLOCKED_CLI, "torch", "export", "torch", model, out)
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 0


@pytest.fixture
def block(monkeypatch):
    def blocked(*names):
        for name in names:
            # the submodules too: import_module("torch.nn") looks in sys.modules first
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                monkeypatch.setitem(sys.modules, key, None)
            monkeypatch.setitem(sys.modules, name, None)

    return blocked


def _raises_missing(fn, feature, extra):
    with pytest.raises(MissingExtraError) as info:
        fn()
    e = info.value
    assert isinstance(e, ImportError) and isinstance(e, ValueError)
    assert str(e).startswith(feature), e
    assert f" needs the '{extra}' extra: pip install 'lstmkit[{extra}]' (no module named" in str(e)


def test_python_api_names_the_missing_extra(tmp_path, block):
    from lstmkit.interop.keras import from_keras, to_keras
    from lstmkit.interop.onnx import to_onnx
    from lstmkit.interop.torch import (
        from_torch,
        load_state_dict_file,
        save_state_dict_file,
        to_torch,
    )

    model = _tiny_model()
    pt = tmp_path / "w.pt"
    pt.write_bytes(b"not read")
    keras_file = tmp_path / "m.keras"
    spec = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4, 2]}},
        {"class_name": "Dense", "config": {"units": 1, "name": "dense"}}]}}  # fmt: skip
    with zipfile.ZipFile(keras_file, "w") as zf:
        zf.writestr("config.json", json.dumps(spec))
        zf.writestr("model.weights.h5", b"")
    block("torch", "onnx", "keras", "h5py")
    _raises_missing(lambda: to_torch(model), "to_torch", "torch")
    _raises_missing(lambda: from_torch(object()), "from_torch", "torch")
    _raises_missing(lambda: save_state_dict_file(model, pt), "save_state_dict_file", "torch")
    _raises_missing(lambda: load_state_dict_file(pt), "load_state_dict_file", "torch")
    _raises_missing(lambda: to_onnx(model, tmp_path / "m.onnx"), "to_onnx", "onnx")
    _raises_missing(lambda: to_keras(model), "to_keras", "keras")
    _raises_missing(lambda: from_keras(keras_file), "from_keras", "keras")
    assert not (tmp_path / "m.onnx").exists()


def test_keras_without_its_backend_names_both_extras(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from lstmkit import LSTM, Dense, Sequential\n"
        "from lstmkit.interop.keras import to_keras\n"
        "m = Sequential([LSTM(3, input_shape=(4, 2)), Dense(1)])\n"
        "try:\n    to_keras(m)\nexcept ImportError as e:\n    print(e)\n"
    )
    res = _python(code, KERAS_BACKEND="torch")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(
        "to_keras needs a Keras backend: pip install 'lstmkit[keras,torch]'"
    )


def test_a_broken_extra_keeps_its_own_error(tmp_path, monkeypatch):
    # onnx importable but failing inside: not reported as "not installed"
    fake = tmp_path / "onnx"
    fake.mkdir()
    (fake / "__init__.py").write_text("import lstmkit_test_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for key in [k for k in sys.modules if k == "onnx" or k.startswith("onnx.")]:
        monkeypatch.delitem(sys.modules, key)
    from lstmkit.interop.onnx import to_onnx

    with pytest.raises(ModuleNotFoundError) as info:
        to_onnx(_tiny_model())
    assert not isinstance(info.value, MissingExtraError)
    assert info.value.name == "lstmkit_test_no_such_dependency"


# --- README -------------------------------------------------------------------------------------
def _readme_commands():
    """Every `lstmkit ...` command in the README's code blocks, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            for prefix in ("lstmkit ", ".venv/bin/lstmkit ", "python -m lstmkit "):
                if line.startswith(prefix):
                    commands.append(shlex.split(line[len(prefix) :], comments=True))
    return commands


def test_readme_command_lines_parse():
    commands = _readme_commands()
    groups = {c[0] for c in commands}
    assert {"forecast", "text", "classify", "info", "export"} <= groups, groups
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as e:  # argparse reports the error on stderr and exits 2
            raise AssertionError(
                f"README command does not parse: lstmkit {shlex.join(argv)}"
            ) from e
