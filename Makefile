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

.PHONY: setup demo test lint slow check-wheel bench bench-text clean

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

# What `pip install lstmkit` gives a new user: builds the wheel, installs it without the test
# extras into a fresh venv and runs the README example, the demo and `lstmkit info` there (a few
# minutes; needs no .venv). Also run by CI (.ci/run).
check-wheel:
	PY=$(PY) bash .ci/check-wheel.sh

# Speed and memory side by side with PyTorch and onnxruntime (~10 minutes; README, docs/speed.md)
bench: setup
	$(BIN)/python benchmarks/bench_speed.py --threads 1 --memory --first-call --json out/bench/speed_t1.json
	$(BIN)/python benchmarks/bench_speed.py --threads 2 --json out/bench/speed_t2.json
	$(BIN)/python benchmarks/bench_step_gemm.py
	$(BIN)/python benchmarks/tbptt_memory.py --json out/bench/tbptt_memory.json

# The text results of docs/text.md (about 1.5 hours on 2 cores)
bench-text: setup
	$(BIN)/python benchmarks/text_charlm.py --threads 1
	$(BIN)/python benchmarks/text_charlm_torch.py --init out/bench/charlm_init.lstmkit --threads 1 \
		--compare out/bench/charlm_lstmkit.json
	$(BIN)/python benchmarks/text_charlm_torch.py --init out/bench/charlm_init.lstmkit --threads 1 --time-steps 300
	$(BIN)/python benchmarks/text_charlm_torch.py --init out/bench/charlm_init.lstmkit --threads 2 --time-steps 300
	$(BIN)/python benchmarks/text_classify.py --seeds 0,1,2

clean:
	rm -rf $(VENV) out build *.egg-info
