# prefloop: `make demo` runs the whole loop on the embedded defaults, `make test` the tests.
# Both create .venv, install the CPU build of torch 2.13.0 first (a bare `torch` would pull a
# multi-GB CUDA build), then the project.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install test test-slow demo bench clean quickstart

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

test-slow: install
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

demo: install
	$(BIN)/prefloop demo $(if $(QUICK),--quick,)

bench: install
	$(BIN)/python bench/store_bench.py

clean:
	rm -rf $(VENV) .pytest_cache

quickstart: install
	rm -rf quickstart && mkdir -p quickstart
	cd quickstart && ../$(BIN)/prefloop init
	cd quickstart && ../$(BIN)/prefloop import ../../shared/data/hh-rlhf/harmless-base-test-dev.jsonl.gz --format hh
	cd quickstart && ../$(BIN)/prefloop import ../../shared/data/alpaca-eval/alpaca-7b_vs_text-davinci-003_gpt4-judge.json --format alpaca-eval
	cd quickstart && ../$(BIN)/prefloop import ../../shared/data/mt-bench/question.jsonl --format prompts
	cd quickstart && ../$(BIN)/prefloop export out --test-fraction 0.1
	cd quickstart && ../$(BIN)/prefloop stats
