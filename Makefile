# Entry points: `make run` renders the default jobs, `make test` runs the test suite
# (`make test-fast` its quick tier).
# The default engines need no PyTorch, so `make run` installs the light set only.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
PIP := $(BIN)/pip install --quiet $(PIP_OPTIONS)

.PHONY: run test test-fast lint demo-train demo-train-real clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/activate
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/activate
	$(PIP) -e ".[torch,onnx,dev,slurm,eval]"
	touch $@ $(VENV)/.installed-run

# Bytecode is compiled first (only what changed), so that each job's Python process loads the
# package instead of compiling it, also where the environment keeps Python from writing it.
run: $(VENV)/.installed-run
	$(BIN)/python -m compileall -q src
	$(BIN)/snakemake --profile profiles/default --cores $(CORES)
	@echo "Videos:"; ls -1 results/jobs/*/final.mp4

# `make test` is what CI runs (everything); `make test-fast` leaves out the tests marked `slow`
# (end-to-end snakemake runs and training runs) and takes two to three minutes on two cores.
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint
	$(BIN)/pytest -q

test-fast: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/pytest -q -m "not slow"

# Builds the eSpeak corpus, trains tiny vocoder and acoustic models on the CPU (a few minutes)
# and renders one job with the neural voice. The target must come before --configfile.
demo-train: $(VENV)/.installed-dev
	$(BIN)/snakemake --profile profiles/default --cores $(CORES) \
		results/jobs/demo_neural/final.mp4 --configfile config/demo-train.yaml
	@echo "Video: results/jobs/demo_neural/final.mp4"

# Real human speech: converts Debian's festvox-ru recordings (fetched with apt-get download, never
# installed), trains a small acoustic model and vocoder side by side, evaluates them on held-out
# recordings and renders one job with that voice (sized for an hour on a 2-core CPU).
demo-train-real: $(VENV)/.installed-dev
	$(BIN)/snakemake results/jobs/real_neural/final.mp4 results/models/vocoder/real/eval/metrics.json \
		results/models/acoustic/real/eval/metrics.json --profile profiles/default --cores 2 \
		--resources gpu=2 --configfile config/real-speech.yaml
	@echo "Video: results/jobs/real_neural/final.mp4"
	@cat results/models/acoustic/real/eval/metrics.json results/models/vocoder/real/eval/metrics.json

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

clean:
	rm -rf results logs .snakemake
