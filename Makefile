# Every target sets up .venv from the exact pins in constraints.txt first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint tox bench-prepare bench-speed
setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: setup  ## the main job on the embedded default: synthetic data, CPU, about 7 minutes
	$(BIN)/python -m bench run ablation_char_cnn --scale smoke

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

tox: setup  ## py311, py312 and lint, with the pyenv interpreters
	PYENV_VERSION=3.11.7:3.12.1:3.13.0 $(BIN)/tox

bench-prepare: setup  ## prepare real SQuAD v1.1 from ../shared/data: cold, cached, peak RSS
	$(BIN)/python benchmarks/prepare_squad.py

bench-speed: setup  ## CPU training-step throughput and peak memory at two model sizes
	$(BIN)/python benchmarks/train_speed.py
