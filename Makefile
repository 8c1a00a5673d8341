# glacierkit — the two set-up commands of the README:
#   make demo   creates .venv, installs glacierkit (with the dl extra), runs the demo on the real example data
#   make test   creates .venv, installs glacierkit with the dl, dev and docs extras, runs the test suite
#   make docs   builds the documentation site into site/ (MkDocs, warnings are errors)
#   make test-threads  reruns the tests that compare floats across code paths with 1 and with 2
#               BLAS/OpenMP/torch threads forced (results must not depend on the thread count)
# The dl extra pins torch==2.13.0 (a CPU build is served from the local wheel index).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_OUT ?= demo-output
PYTEST_ARGS ?= -n 2 -m "not slow"

.PHONY: demo test test-threads test-slow install lint docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dl,dev,docs]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/glacierkit demo --out $(DEMO_OUT) --overwrite

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Kernel, tiling and inference tests: their float comparisons across code paths must hold for
# any thread count (batched matmuls, FFTs and convolutions sum in a thread-dependent order).
# torch takes its intra-op thread count from OMP_NUM_THREADS / MKL_NUM_THREADS. The 2-thread
# run also uses OpenBLAS's Haswell kernels where the CPU has AVX2 (those OpenBLAS picks on AMD
# Zen; they split matmuls differently from the AVX-512 kernels of recent Intel CPUs).
THREAD_TESTS ?= tests/test_velocity tests/test_tiling tests/test_dl/test_predict.py \
	tests/test_dl/test_bundle.py tests/test_dl/test_train.py tests/test_facies/test_facies_cnn.py \
	tests/test_facies/test_models_cv.py
threads = OMP_NUM_THREADS=$(1) OPENBLAS_NUM_THREADS=$(1) MKL_NUM_THREADS=$(1)
HASWELL_BLAS := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo OPENBLAS_CORETYPE=Haswell)

test-threads: install
	$(call threads,1) $(BIN)/python -m pytest -n 2 -m "not slow" $(THREAD_TESTS)
	$(call threads,2) $(HASWELL_BLAS) $(BIN)/python -m pytest -p no:xdist -m "not slow" \
		$(THREAD_TESTS)

test-slow: install
	$(BIN)/python -m pytest -n 2 -m slow

lint: install
	$(BIN)/ruff check src tests $(wildcard benchmarks)

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d site

bench: install
	$(BIN)/python benchmarks/tiling_memory.py
	$(BIN)/python benchmarks/velocity_speed.py
	$(BIN)/python benchmarks/inference_speed.py
	$(BIN)/python benchmarks/velocity_memory.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) site .pytest_cache .ruff_cache .hypothesis
