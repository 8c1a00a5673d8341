# glacierkit — the two set-up commands of the README:
#   make demo   creates .venv, installs glacierkit (with the dl extra), runs the demo on the real example data
#   make test   creates .venv, installs glacierkit with the dl and dev extras, runs the test suite
# The dl extra pins torch==2.13.0 (a CPU build is served from the local wheel index).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_OUT ?= demo-output
PYTEST_ARGS ?= -n 2 -m "not slow"

.PHONY: demo test test-slow install lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dl,dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/glacierkit demo --out $(DEMO_OUT) --overwrite

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -n 2 -m slow

lint: install
	$(BIN)/ruff check src tests $(wildcard benchmarks)

bench: install
	$(BIN)/python benchmarks/tiling_memory.py
	$(BIN)/python benchmarks/velocity_speed.py
	$(BIN)/python benchmarks/inference_speed.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache .hypothesis
