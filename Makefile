# Every target that runs code depends on .venv/.installed, so `make test` / `make demo` set up the environment
# on a fresh clone. torch is installed first from the pinned CPU build; everything else comes from the lock
# (requirements/lock.txt: exact versions with hashes, --no-deps so nothing outside it is resolved), then the
# project itself. `make lock` refreshes the lock; `make test-latest` runs the suite on the newest releases instead.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST := $(PY) -m pytest
LOCK   := requirements/lock.txt

LATEST_VENV := .venv-latest
LATEST_PY   := $(LATEST_VENV)/bin/python

.PHONY: install lock test test-latest test-slow demo organism bench bench-gpu lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# The lock: every dependency but torch (installed first, above) at the newest release, with hashes.
# requirements/overrides.txt says what is left out and why.
lock: $(STAMP)
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml requirements/organism.in --extra dev --extra peers \
	  --override requirements/overrides.txt --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --no-header -q -o $(LOCK)

# The suite on the newest releases (no lock), in a venv of its own, so a break is seen the day it ships.
test-latest:
	rm -rf $(LATEST_VENV)
	python3 -m venv $(LATEST_VENV)
	$(LATEST_PY) -m pip install -q --upgrade pip
	$(LATEST_PY) -m pip install -q torch==2.13.0
	$(LATEST_PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(LATEST_PY) -m pip install -q --no-deps -r requirements/organism.in
	$(LATEST_PY) -m pip install -q --no-deps steering-vectors repeng  # the peers: their caps (transformers<5, numpy<2) are lifted
	$(LATEST_PY) -m pip list 2>/dev/null | grep -iE '^(transformers|peft|trl|bitsandbytes|nnsight|transformer-lens) '
	$(LATEST_PY) -m pytest -q -m "not slow and not gpu"

test: $(STAMP)
	$(PYTEST) -q -m "not slow and not gpu"

test-slow: $(STAMP)
	$(PYTEST) -q -m "slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(VENV)/bin/toolprior demo --out runs/demo

# Retrain the shipped organism adapter (experiments/organism/smollm2) from scratch: the seed-7 benchmark, SFT with
# experiments/configs/sft_smollm2.yaml, export with its sidecar. About 35 minutes on 2 CPU cores; resumes.
organism: $(STAMP)
	$(PY) -m toolprior.experiments.organism_adapter build --work runs/organism

# The benchmarks on the random bench model and on the SmolLM2 organism, with the peers, the SFT steps against plain
# TRL and the scaling table: runs/bench/bench.json and scaling.png, about 30 minutes on 2 cores (keep the machine quiet).
bench: $(STAMP)
	$(PY) -m toolprior.experiments.bench --out runs/bench/bench.json

bench-gpu: $(STAMP)
	$(PY) -m toolprior.experiments.bench_gpu --out runs/bench/bench_gpu.json

clean:
	rm -rf runs/demo runs/bench
