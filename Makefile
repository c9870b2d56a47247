# Two entry points, both working on a fresh clone: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision are named first so pip takes the builds already on this machine's disk.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test lint clean

$(BIN)/mtmct-reid: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/mtmct-reid

demo: setup
	$(BIN)/mtmct-reid demo --out demo_out --force

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) demo_out lightning_logs
