# `make demo` trains the seed model on MNIST and writes its pictures; `make test` runs the tests;
# `make docs` renders the API reference.
# Both create .venv on first use: torch is installed first from requirements/torch-cpu.txt
# (pinned CPU wheel), then vaekit, so pip never pulls a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
RUN_DIR ?= runs/demo

.PHONY: demo test test-slow lint docs venv clean

$(STAMP): pyproject.toml requirements/torch-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements/torch-cpu.txt
	$(PIP) -c requirements/torch-cpu.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The seed notebook's job: MLP VAE, latent 2, Adam 1e-3, batch 128, 10 epochs.
# MNIST comes from --data-dir / $$VAEKIT_DATA_DIR / ~/.cache/vaekit, else is fetched.
# A second `make demo` (or one after Ctrl-C) continues the run in $(RUN_DIR), or says it is done.
# DEMO_ARGS: extra flags for a fresh run (the tests shrink it with --limit).
DEMO_ARGS ?=
demo: $(STAMP)
	@if [ -f $(RUN_DIR)/checkpoint.safetensors ]; then \
		$(BIN)/vaekit train --resume $(RUN_DIR); \
	else \
		$(BIN)/vaekit train --out $(RUN_DIR) $(DEMO_ARGS); \
	fi
	@echo "Pictures: $(RUN_DIR)/samples.png $(RUN_DIR)/reconstructions.png; report: $(RUN_DIR)/report.html"

# pytest's exit 5 means it collected no tests: a failure, not a pass.
test: $(STAMP)
	$(BIN)/python -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# The tests marked slow (pyproject's addopts leaves them out), e.g. the 50-kill crash test.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow -s

lint: $(STAMP) docs
	$(BIN)/ruff check src tests && $(BIN)/ruff format --check src tests

# The API reference: the public modules' docstrings as HTML in docs/api/ (git-ignored),
# offline. Any warning (a module that fails to import, a bad reference) fails the build;
# `lint` builds it, so CI does. tests/test_docs.py renders the same API_MODULES.
API_MODULES := vaekit vaekit.api vaekit.config vaekit.errors vaekit.evaluation vaekit.runfolder \
	vaekit.checkpoint vaekit.pretrained vaekit.pictures vaekit.models vaekit.training \
	vaekit.tracking vaekit.export vaekit.extras
docs: $(STAMP)
	rm -rf docs/api
	$(BIN)/python -W error -m pdoc -o docs/api $(API_MODULES)
	@echo "API reference: docs/api/index.html"

clean:
	rm -rf $(VENV) runs .pytest_cache
