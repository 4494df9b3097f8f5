#!/usr/bin/env bash
# The fresh-install check: what a new user gets from `pip install lstmkit`.
#
# Builds the wheel from this checkout, installs it into a new virtual environment WITHOUT the test
# extras (the dependencies come from the package index), and runs there, outside the checkout:
#   0. a cold start (empty LSTMKIT_CACHE_DIR): the first train_on_batch runs the NumPy reference
#      without numba in the process while a background process compiles the kernels; once it is
#      done, the next call loads them from the cache and compiles nothing (lstmkit.ops.compiled);
#   1. the README's seed example (Sequential LSTM + Dense, compile, fit 5 epochs, predict, save,
#      load) with the compiled path, and checks that no interop extra got installed;
#   2. `lstmkit forecast demo --out DIR` (model, forecast.csv and forecast-<id>.png written);
#   3. `python -m lstmkit info`;
#   4. a missing extra: `lstmkit export onnx` must exit 2 with one line naming 'lstmkit[onnx]';
#   5. the NumPy-only runtime: with LSTMKIT_BACKEND=numpy, `lstmkit.runtime.load(...).predict(...)`
#      leaves nothing but NumPy among the third-party modules imported;
#   6. the deployment recipe of docs/deploy.md in a second venv: `pip install numpy`, then
#      `pip install --no-deps` of the wheel; the runtime predicts what the full install predicted.
# Any failure stops the script with a line naming the step. Usage: bash .ci/check-wheel.sh
# (PY=python3.X to choose the interpreter; KEEP=1 keeps the temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
START=$(date +%s)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lstmkit-wheel.XXXXXX")
STEP="setup"
# small matrices: one BLAS thread each (as `make demo`/`make test` do); an environment setting wins
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
unset PYTHONPATH LSTMKIT_BACKEND LSTMKIT_NUM_THREADS NUMBA_CACHE_DIR LSTMKIT_COMPILE NUMBA_CPU_NAME
export LSTMKIT_CACHE_DIR="$TMP/cache"  # cold, and not the user's
export PIP_DISABLE_PIP_VERSION_CHECK=1

finish() {
    local rc=$?
    [ "${KEEP:-0}" = 1 ] && echo "check-wheel: kept $TMP" || rm -rf "$TMP"
    if [ $rc -ne 0 ]; then
        echo "check-wheel: FAILED at step '$STEP' (exit $rc) after $(( $(date +%s) - START )) s" >&2
    fi
}
trap finish EXIT

pip_install() {  # pip install, minus the warnings about index folders absent on this machine
    "$@" 2>"$TMP/pip.err" || { cat "$TMP/pip.err" >&2; return 1; }
    grep -v "neither a file nor a directory" "$TMP/pip.err" >&2 || true
}

step() {
    STEP=$1
    echo "check-wheel: [$(( $(date +%s) - START ))s] $STEP"
}

step "build the wheel"
# from a copy of the sources, so the build leaves no build/ or egg-info in the checkout
mkdir -p "$TMP/src" "$TMP/dist"
cp -r pyproject.toml README.md src "$TMP/src/"
find "$TMP/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
pip_install "$PY" -m pip wheel -q --no-deps --wheel-dir "$TMP/dist" "$TMP/src"
WHEEL=$(ls "$TMP"/dist/lstmkit-*.whl)
"$PY" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["lstmkit/__main__.py", "lstmkit/cli/info.py", "lstmkit/runtime.py",
        "lstmkit/data/builtin/sunspots.csv", "lstmkit/data/builtin/nile.csv",
        "lstmkit/data/builtin/README.md"]
missing = [n for n in need if n not in names]
assert not missing, f"the wheel lacks {missing}"
print(f"  {sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files, package data included")
EOF

step "install the wheel into a fresh venv (no extras)"
"$PY" -m venv "$TMP/venv"
V=$TMP/venv/bin
pip_install "$V/python" -m pip install -q "$WHEEL"
"$V/python" - <<'EOF'
import importlib.metadata as md
installed = {d.metadata["Name"].lower() for d in md.distributions()}
missing = [n for n in ("numpy", "numba", "scipy", "tqdm", "matplotlib", "safetensors")
           if n not in installed]
assert not missing, f"a plain install lacks the dependencies {missing}"
extras = [n for n in ("torch", "onnx", "onnxruntime", "keras") if n in installed]
assert not extras, f"a plain install pulled in the optional extras {extras}"
EOF

mkdir -p "$TMP/work"
cd "$TMP/work"  # away from the checkout: only the installed package can be imported

step "cold start: no compiler in the foreground, then the kernels from the cache"
"$V/python" - <<'EOF'
import sys, time
import numpy as np
import lstmkit
from lstmkit.layers import LSTM
from lstmkit.ops import backend, compiled

def step():
    lstmkit.set_random_seed(0)
    m = lstmkit.Sequential([LSTM(16, return_sequences=True, input_shape=(10, 3))])
    m.compile("sgd", "mse", seed=0)
    x = np.random.default_rng(0).standard_normal((8, 10, 3)).astype("float32")
    return m.train_on_batch(x, np.zeros((8, 10, 16), "float32"))

t0 = time.perf_counter()
cold = step()
assert backend.get_backend() == "numpy", backend.get_backend()
assert "numba" not in sys.modules, "numba was imported in the foreground on a cold cache"
print(f"  cold: first train_on_batch on the NumPy reference in {time.perf_counter() - t0:.2f} s")
assert compiled.wait("float32", timeout=1800), compiled.status()
warm = step()
assert backend.get_backend() == "numba"
from numba.core.registry import CPUDispatcher
misses = [f"{n}.{k}" for n, mod in list(sys.modules.items()) if n.startswith("lstmkit.ops.fast")
          for k, v in vars(mod).items()
          if isinstance(v, CPUDispatcher) and sum(v.stats.cache_misses.values())]
assert not misses, f"compiled in the foreground: {misses}"
assert abs(warm - cold) <= 1e-5 * max(1.0, abs(cold)), (warm, cold)
print(f"  warm: compiled kernels from the cache, loss {warm:.6f} (reference {cold:.6f})")
EOF

step "README seed example"
"$V/python" - <<'EOF'
import os, sys
import numpy as np
import lstmkit
from lstmkit import Sequential, LSTM, Dense, load_model
from lstmkit.ops import backend

assert "site-packages" in lstmkit.__file__, f"imported lstmkit from {lstmkit.__file__}"
assert backend.get_backend() == "numba", "the compiled path is not in use after a plain install"
timesteps, features = 10, 3
rng = np.random.default_rng(0)
X = rng.standard_normal((64, timesteps, features)).astype("float32")
y = X[:, -3:, 0].sum(axis=1, keepdims=True)  # a target the network can learn
X_new = X[:4]

model = Sequential()
model.add(LSTM(50, input_shape=(timesteps, features)))
model.add(Dense(1))
model.compile(optimizer="adam", loss="mse")
history = model.fit(X, y, epochs=5, batch_size=32)
losses = history.history["loss"]
assert len(losses) == 5 and all(np.isfinite(losses)), losses
assert losses[-1] < losses[0], f"the loss did not go down: {losses}"
pred = model.predict(X_new)
model.save("model.lstmkit")
again = load_model("model.lstmkit")
assert np.array_equal(again.predict(X_new), pred), "predictions changed after save/load"
np.save("x.npy", X_new)
np.save("pred.npy", pred)
print(f"  loss {losses[0]:.4f} -> {losses[-1]:.4f}; predict {pred.shape}; save/load equal")
EOF

step "lstmkit forecast demo"
"$V/lstmkit" forecast demo --out "$TMP/work/demo" | tail -n 8
test -s "$TMP/work/demo/forecast.csv" || { echo "  demo wrote no forecast.csv" >&2; exit 1; }
ls "$TMP/work/demo" | grep -q '^forecast-.*\.png$' || { echo "  demo wrote no plot" >&2; exit 1; }
ls "$TMP/work/demo" | grep -q '\.lstmkit$' || { echo "  demo wrote no model" >&2; exit 1; }

step "python -m lstmkit info"
"$V/python" -m lstmkit info

step "a missing extra says which one to install"
set +e
"$V/lstmkit" export onnx model.lstmkit model.onnx >out.txt 2>err.txt
rc=$?
set -e
cat err.txt
test "$rc" = 2 || { echo "  exit code $rc, expected 2" >&2; exit 1; }
test "$(wc -l <err.txt)" = 1 || { echo "  expected one line on stderr" >&2; exit 1; }
grep -q "pip install 'lstmkit\[onnx\]'" err.txt
test ! -e model.onnx

# Prints the third-party modules the runtime imported besides NumPy: those imported after start-up
# (site's .pth hooks are not lstmkit's doing) from a file under site-packages.
RUNTIME_PROBE='
import json, site, sys
before = set(sys.modules)
import numpy as np
import lstmkit.runtime as runtime
y = runtime.load(sys.argv[1]).predict(np.load(sys.argv[2]))
np.save(sys.argv[3], y)
roots = tuple(site.getsitepackages())
new = {m.split(".")[0] for m in set(sys.modules) - before
       if (getattr(sys.modules[m], "__file__", None) or "").startswith(roots)}
never = {"torch", "matplotlib", "onnx", "onnxruntime", "safetensors", "numba", "llvmlite",
         "scipy", "tqdm", "keras"}
print(json.dumps(sorted((new - {"numpy", "lstmkit"}) | (never & set(sys.modules)))))
'

step "NumPy-only runtime (LSTMKIT_BACKEND=numpy) in the full install"
third=$(LSTMKIT_BACKEND=numpy "$V/python" -c "$RUNTIME_PROBE" model.lstmkit x.npy y_full.npy)
echo "  third-party modules imported besides numpy: $third"
test "$third" = "[]"

step "deployment recipe: pip install numpy + pip install --no-deps lstmkit (docs/deploy.md)"
"$PY" -m venv "$TMP/rt"
pip_install "$TMP/rt/bin/python" -m pip install -q numpy
pip_install "$TMP/rt/bin/python" -m pip install -q --no-deps "$WHEEL"
third=$(LSTMKIT_BACKEND=numpy "$TMP/rt/bin/python" -c "$RUNTIME_PROBE" model.lstmkit x.npy y_rt.npy)
test "$third" = "[]"
# without LSTMKIT_BACKEND: numba is absent, so "auto" falls back to NumPy by itself
"$TMP/rt/bin/python" -c "$RUNTIME_PROBE" model.lstmkit x.npy y_auto.npy >/dev/null
"$V/python" - <<'EOF'
import numpy as np
pred = np.load("pred.npy")
for f in ("y_full.npy", "y_rt.npy", "y_auto.npy"):
    d = float(np.abs(np.load(f) - pred).max())
    assert d <= 1e-5, f"{f}: runtime differs from Sequential.predict by {d}"
print("  runtime == Sequential.predict (max abs diff <= 1e-5) in both venvs")
EOF

STEP="done"
echo "check-wheel: OK, the wheel installs and runs without the test extras ($(( $(date +%s) - START )) s)"
