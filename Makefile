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

## bench: run every benchmark that writes a file under benchmarks/results/,
## with the arguments of the committed results (each file states the commit
## and command it was measured with; hours on 2 cores: transfer_suite,
## unseen_classes, compare_methods and classical are the long ones; each
## script also runs on its own). tests/test_benchmark_scripts.py checks that
## every such script is listed here.
bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/bench_fit_overhead.py --epochs 10 --repeats 3
	$(BIN)/python benchmarks/bench_fit_throughput.py
	$(BIN)/python benchmarks/bench_data_parallel.py --repeats 3
	$(BIN)/python benchmarks/bench_inference.py --rows 1000000 --repeats 3
	$(BIN)/python benchmarks/bench_lazy_inputs.py --n 100000
	$(BIN)/python benchmarks/bench_losses.py
	$(BIN)/python benchmarks/bench_retrieval.py --n 100000 --n-ref 1000000 --n-query 10000 --write benchmarks/results/retrieval.md
	$(BIN)/python benchmarks/bench_index.py --rows 1000000 --queries 1000 --hnsw-rows 1000000 --memory-rows 250000 500000 1000000
	$(BIN)/python benchmarks/bench_zoo_digits.py
	$(BIN)/python benchmarks/zoo_defaults.py --seeds 2 --digits-seeds 3
	$(BIN)/python benchmarks/unseen_classes.py
	$(BIN)/python benchmarks/transfer_suite.py --seeds 3
	$(BIN)/python benchmarks/transfer_defaults.py --seeds 3
	$(BIN)/python benchmarks/auto_cost.py
	$(BIN)/python benchmarks/transfer_early_stopping.py --seeds 3
	$(BIN)/python benchmarks/few_shot.py
	$(BIN)/python benchmarks/label_free.py
	$(BIN)/python benchmarks/deep_inputs.py --seeds 3 --epochs-image 3 --epochs-signals 15
	$(BIN)/python benchmarks/classical.py
	$(BIN)/python benchmarks/classical_weak.py
	$(BIN)/python benchmarks/classical_floors.py
	$(BIN)/python benchmarks/compare_methods.py
	$(BIN)/python benchmarks/compare_cross_batch_memory.py --seeds 0 1 2

## doc: install the docs extra and build the HTML site into doc/_build/html
## (runs the gallery; warnings are errors; offline, no intersphinx)
.PHONY: doc
doc: $(VENV)/.docs-installed
	$(BIN)/python -m sphinx -W --keep-going -b html doc doc/_build/html

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
