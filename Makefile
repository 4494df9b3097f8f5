# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export MPLBACKEND := Agg
export KERAS_BACKEND := torch
# One OpenBLAS thread for the demo and the tests (an environment setting wins): their matrices are
# small, and with two threads per process on two busy cores (pytest -n 2, or other jobs) the
# forecasting demo ran 10x slower (15-20 s against 1.5-2 s) with bit-identical results.
demo test slow: export OPENBLAS_NUM_THREADS ?= 1

.PHONY: setup demo test lint slow bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned: 2.13.0 is the CPU build; anything else pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: setup
	$(BIN)/lstmkit forecast demo --out out/demo

test: setup
	$(BIN)/python -m pytest -q -n 2 -p no:cacheprovider

lint: setup
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

slow: setup
	$(BIN)/python -m pytest -q -m slow -p no:cacheprovider

bench: setup
	$(BIN)/python benchmarks/bench_core.py

clean:
	rm -rf $(VENV) out build *.egg-info
