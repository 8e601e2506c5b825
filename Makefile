# The two README commands: `make run` (demo pipeline) and `make test` (test suite).
# Both create .venv and install what they need; torch/torchvision are pinned to the versions
# that install from local wheels on the reference machines.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 8

.PHONY: run test install install-test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# The demo with warm job processes (README, Running): 3x faster on demo-sized jobs; Snakemake's
# benchmark: files then time the waiting job processes (read results/summary/timings.csv).
run: install
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1 --config warm_jobs=True

test: install-test
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

lint: install-test
	$(BIN)/ruff check src tests workflow benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

clean:
	rm -rf results/* .snakemake
