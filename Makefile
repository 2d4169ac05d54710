# sklearn-dml developer commands. Everything runs inside a local virtual
# environment (.venv) created on first use; the CPU build of PyTorch is
# installed first so that no CUDA build is pulled in as a dependency.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test lint bench doctest clean

$(VENV)/.base-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.base-installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.docs-installed: $(VENV)/.base-installed
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

$(VENV)/.bench-installed: $(VENV)/.base-installed
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $@

## demo: install the package and run the main demo (python -m sklearn_dml)
demo: $(VENV)/.base-installed
	$(BIN)/python -m sklearn_dml

## test: install the test extra and run the whole test suite (tests + doctests)
test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q -n 2 --durations=10

## lint: ruff over the package, tests, benchmarks and examples
lint: $(VENV)/.test-installed
	$(BIN)/ruff check sklearn_dml tests benchmarks examples

## bench: run every benchmark, regenerating every benchmarks/results/*.md
## (hours on 2 cores: transfer_suite, unseen_classes, compare_methods and
## classical are the long ones; each script also runs on its own)
bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/bench_fit_overhead.py
	$(BIN)/python benchmarks/bench_data_parallel.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_losses.py
	$(BIN)/python benchmarks/bench_retrieval.py
	$(BIN)/python benchmarks/bench_index.py
	$(BIN)/python benchmarks/bench_zoo_digits.py
	$(BIN)/python benchmarks/zoo_defaults.py
	$(BIN)/python benchmarks/unseen_classes.py
	$(BIN)/python benchmarks/transfer_suite.py --seeds 3
	$(BIN)/python benchmarks/transfer_defaults.py --seeds 3
	$(BIN)/python benchmarks/transfer_early_stopping.py --seeds 3
	$(BIN)/python benchmarks/few_shot.py
	$(BIN)/python benchmarks/label_free.py
	$(BIN)/python benchmarks/classical.py
	$(BIN)/python benchmarks/classical_weak.py
	$(BIN)/python benchmarks/compare_methods.py

## doc: install the docs extra and build the HTML site into doc/_build/html
## (runs the gallery; warnings are errors; offline, no intersphinx)
.PHONY: doc
doc: $(VENV)/.docs-installed
	$(BIN)/python -m sphinx -W --keep-going -b html doc doc/_build/html

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
