# Every target that runs code depends on .venv/.installed, so `make test` / `make demo` set up the environment
# on a fresh clone. torch is installed first from the pinned CPU build; the constraints file keeps any later
# resolver step from swapping it for a multi-GB CUDA build.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST := $(PY) -m pytest

.PHONY: install test test-slow demo bench bench-gpu lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PYTEST) -q -m "not slow and not gpu"

test-slow: $(STAMP)
	$(PYTEST) -q -m "slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(VENV)/bin/toolprior demo --out runs/demo

bench: $(STAMP)
	$(PY) -m experiments.bench --out runs/bench/bench.json

bench-gpu: $(STAMP)
	$(PY) -m experiments.bench_gpu --out runs/bench/bench_gpu.json

clean:
	rm -rf runs/demo runs/bench
