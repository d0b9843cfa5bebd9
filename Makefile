# Two entry points: `make run` renders the default jobs, `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
STAMP := $(VENV)/.installed

.PHONY: run test lint bench demo-train clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[torch,dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --profile profiles/default --cores $(CORES)
	@echo "Videos:"; ls -1 results/jobs/*/final.mp4

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint
	$(BIN)/pytest -q

clean:
	rm -rf results logs .snakemake
