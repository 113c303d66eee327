# memo: `make demo` scores the bundled sample photos; `make test` runs the test suite.
# `make test-fast` skips the tests marked slow (under 2 minutes on 2 cores).
# All set up a virtual environment (.venv) from scratch when it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH   = torch==2.14.1 torchvision==0.29.1
# e.g. https://download.pytorch.org/whl/cpu for the CPU-only torch (no 3.2 GB of CUDA libraries)
TORCH_INDEX ?=

.PHONY: setup test test-fast demo clean

$(BIN)/memo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $@

setup: $(BIN)/memo

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

demo: setup
	$(BIN)/memo score samples/ --top 10 --cache demo-out/memo.db
	$(BIN)/memo export samples/ demo-out/ranks.csv --cache demo-out/memo.db
	$(BIN)/memo explain "$$($(BIN)/python -c 'import csv; print(next(csv.DictReader(open("demo-out/ranks.csv")))["path"])')" --out demo-out/
	$(BIN)/memo report samples/ --out demo-out/report.html --cache demo-out/memo.db -s
	@echo "wrote demo-out/ranks.csv, a heatmap of the top photo and demo-out/report.html"

clean:
	rm -rf $(VENV) demo-out .pytest_cache
