"""RunSpec: one run as the harness knows it, from a study or search file to its record.

A run is its configuration (a `RunConfig`, the seed included: `config.train.seed` is the seed's one home),
its data, and where it belongs (study, variant, scale). Its id hashes the settings that differ from their
defaults and the data's fingerprint, under a scheme number (ID_SCHEME), so a rerun finds its record and
checkpoint, and a new setting with a default leaves every id as it was. Where the run executes (device,
threads, how it is compiled) and what it logs are not part of it (the record's `execution` says where and how
it ran), and neither is where its data is read from: the fingerprint names the data by content, so the same
run from a pack and from the SQuAD files it was made of, or from copies in another folder, has one id."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from qanet.config import FINGERPRINTED, RunConfig, nested

# Placement, compilation and logging are recorded, not hashed: the same run on another GPU, thread count,
# attention kernel or compiled path, or with a TensorBoard log, has the same id (the execution context tells
# them apart, and a record counts as finished only where it matches).
NOT_IN_ID = ("device", "threads", "tensorboard", "attention_kernels", "compile", "compile_mode", "compile_scope")

# The id's scheme, hashed with it. Scheme 3 hashes only the settings that differ from their defaults, so a new
# setting with a default changes no id. Scheme 2 hashed every setting (a new one gave every run a new id);
# scheme 1 also the data's file paths and the compile settings. A run whose record or checkpoint is in its
# folder under an earlier scheme's id keeps that id (in_folder), so no finished run trains again.
ID_SCHEME = 3


def _leaves(section, prefix: str):
    """(dotted key, value, default) of every plain field of a config section and the sections inside it."""
    for item in dataclasses.fields(section):
        value = getattr(section, item.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{item.name}.")
        else:
            default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
            yield f"{prefix}{item.name}", value, default


def _hashed(key: str) -> bool:
    """Whether a setting is part of what a run is (not where it executes, not where its data is read from)."""
    return not any(key == left_out or key.startswith(f"{left_out}.") for left_out in _LEFT_OUT)


_LEFT_OUT = {f"train.{key}" for key in NOT_IN_ID} | {f"data.{key}" for key in FINGERPRINTED}


def _hashed_leaves(config: RunConfig):
    """(dotted key, value, default) of every setting a run's id stands for."""
    for section in ("data", "model", "train"):
        yield from ((key, value, default) for key, value, default in _leaves(getattr(config, section), f"{section}.")
                    if _hashed(key))


def settings(config: RunConfig) -> dict:
    """Every setting a run's id stands for, dotted key -> value, defaults included."""
    return {key: value for key, value, _ in _hashed_leaves(config)}


def identity(config: RunConfig) -> dict:
    """The settings the id hashes (dotted key -> value): those of `settings` that differ from their defaults."""
    return {key: value for key, value, default in _hashed_leaves(config) if value != default}


def settings_that_differ(config: RunConfig | None, other: RunConfig) -> dict[str, tuple]:
    """The settings a run's id stands for whose values differ between two configurations: key -> (one's, the
    other's); none where the first is not known. Where a record of the same id says otherwise, a default has
    changed since it was made."""
    if config is None:
        return {}
    mine, theirs = settings(config), settings(other)
    return {key: (mine.get(key), theirs.get(key)) for key in mine.keys() | theirs.keys()
            if mine.get(key) != theirs.get(key)}


# The settings that schemes 1 and 2 knew (every one there was when scheme 3 replaced them). Their ids are
# computed over these alone, so that a setting added since does not move an old run's id; a run that sets such
# a setting away from its default has no id under them (no old run can have been it).
_EARLIER_SCHEMES_KNEW = frozenset((
    "data.train", "data.dev", "data.vectors", "data.pack", "data.vocabulary", "data.random_vector_dim",
    "data.char_len", "data.context_len", "data.question_len", "data.strict", "data.holdout_questions",
    "data.synthetic.train_paragraphs", "data.synthetic.dev_paragraphs", "data.synthetic.seed",
    "model.char_encoder", "model.char_dim", "model.char_kernel", "model.hidden", "model.heads",
    "model.embedding_convs", "model.embedding_kernel", "model.model_blocks", "model.model_convs",
    "model.model_kernel", "model.dropout", "model.char_dropout", "model.attention_dropout", "model.survival_last",
    "model.conv_activation", "model.dropout_placement", "model.output", "model.pos_scale",
    "train.optimizer", "train.lr", "train.warmup_steps", "train.weight_decay", "train.clip_norm", "train.ema",
    "train.ema_decay", "train.batch_size", "train.steps", "train.minutes", "train.eval_every",
    "train.eval_every_seconds", "train.eval_batch_size", "train.eval_questions", "train.checkpoint_every",
    "train.loss_check_every", "train.max_answer_len", "train.seed", "train.threads", "train.device",
    "train.compile", "train.compile_mode", "train.compile_scope", "train.pad_multiple", "train.recompute_every",
    "train.bf16", "train.attention_kernels", "train.tensorboard"))


def _as_earlier_schemes_knew(config: RunConfig) -> dict | None:
    """The configuration as a nested dict of the settings the earlier schemes knew; None where a later setting is
    set away from its default."""
    known = []
    for section in ("data", "model", "train"):
        for key, value, default in _leaves(getattr(config, section), f"{section}."):
            if key in _EARLIER_SCHEMES_KNEW:
                known.append((key, value))
            elif value != default:
                return None
    return nested(known)


def _scheme_2_identity(values: dict) -> dict:
    """The configuration as scheme 2 hashed it: every setting, defaults included."""
    for key in NOT_IN_ID:
        values["train"].pop(key)
    for key in FINGERPRINTED:
        values["data"].pop(key)
    return values


def _scheme_1_identity(values: dict) -> dict:
    """The configuration as scheme 1 hashed it: every setting that existed then, "auto" compilation as the
    eager default it replaced."""
    for key in ("device", "threads", "tensorboard", "attention_kernels", "compile_scope"):
        values["train"].pop(key)
    values["data"].pop("pack")
    if values["train"]["compile"] == "auto":
        values["train"]["compile"] = False
    return values


def _digest(hashed: dict) -> str:
    return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:12]


def _scheme_3_id(config: RunConfig, fingerprint: str) -> str:
    return _digest({"scheme": 3, "settings": identity(config), "data": fingerprint})


def _earlier_scheme_id(identity_of: Callable[[dict], dict]) -> Callable[[RunConfig, str], str | None]:
    def scheme_id(config: RunConfig, fingerprint: str) -> str | None:
        values = _as_earlier_schemes_knew(config)
        return None if values is None else _digest({"config": identity_of(values), "data": fingerprint})
    return scheme_id


# scheme -> the id it gives a configuration and a data fingerprint (None: the scheme cannot have made this run)
ID_SCHEMES: dict[int, Callable[[RunConfig, str], str | None]] = {
    3: _scheme_3_id, 2: _earlier_scheme_id(_scheme_2_identity), 1: _earlier_scheme_id(_scheme_1_identity)}


@dataclass(frozen=True)
class RunSpec:
    study: str
    variant: str
    scale: str
    config: RunConfig  # frozen, like the spec: the id is computed once, from it
    _: dataclasses.KW_ONLY  # what follows is where the run stands, given by name
    folder: Path | None = None  # the study's records folder (absolute); None while the run is only planned
    tags: dict | None = None  # record fields that are not part of the run (an Optuna trial's link)
    fingerprint: str | None = None  # its prepared data's (in_folder, or a record's); None while only planned
    # a record's own id: one written under an earlier id scheme keeps the id it was written under
    recorded_id: str | None = None
    id_scheme: int | None = ID_SCHEME  # the scheme of its id (None: a record from before schemes were recorded)

    @property
    def seed(self) -> int:
        return self.config.train.seed

    @cached_property
    def id(self) -> str:
        if self.recorded_id:
            return self.recorded_id
        return self.id_under(ID_SCHEME)

    def id_under(self, scheme: int) -> str | None:
        """The id a scheme gives this run (None where that scheme cannot have made it: it sets a setting added
        since)."""
        return ID_SCHEMES[scheme](self.config, self._fingerprint())

    def executing_on(self, device: str | None, threads: int | None) -> RunSpec:
        """The run as it executes here: on `device` if given, with `threads` unless it sets its own. The id is
        the same (neither is part of it); the record keeps the settings the run executed with."""
        train = replace(self.config.train, device=device or self.config.train.device,
                        threads=self.config.train.threads or threads)
        return replace(self, config=replace(self.config, train=train))

    def _fingerprint(self) -> str:
        if self.fingerprint is None:
            raise ValueError(f"run {self.variant} seed {self.seed} of {self.study} has no data fingerprint yet "
                             f"(bench.spec.in_folder gives it one)")
        return self.fingerprint

    def _file(self, *parts: str) -> Path:
        if self.folder is None:
            raise ValueError(f"run {self.variant} seed {self.seed} of {self.study} has no records folder")
        return self.folder.joinpath(*parts)

    @property
    def record_path(self) -> Path:
        return self._file(f"{self.id}.json")

    @property
    def log_path(self) -> Path:
        """The run's events as they happen (JSON lines), appended to across resumes."""
        return self._file(f"{self.id}.log.jsonl")

    @property
    def tensorboard_dir(self) -> Path:
        """`tensorboard --logdir OUT/tensorboard` shows every run of the study, one per id."""
        return self._file("tensorboard", self.id)

    @property
    def checkpoint_dir(self) -> Path:
        return self._file("checkpoints", self.id)

    @property
    def lock_path(self) -> Path:
        return self._file("checkpoints", f"{self.id}.lock")

    @property
    def context_path(self) -> Path:
        """Where the run's checkpoint was made ({"execution": context, "restarted": why or None}): a resume
        must match it, and carries the reason of an earlier restart into the record."""
        return self.checkpoint_dir / "context.json"


def in_folder(specs: list[RunSpec], folder: Path) -> list[RunSpec]:
    """The specs with their records folder (absolute: records name their checkpoint by it) and their data's
    fingerprint, computed once for each distinct data configuration among them; a run whose record or
    checkpoint is there under an earlier scheme's id keeps that id."""
    from qanet.data.prepare import fingerprint

    folder = Path(folder).resolve()
    fingerprints: dict[str, str] = {}
    placed_specs = []
    for spec in specs:
        key = json.dumps(spec.config.to_dict()["data"], sort_keys=True)
        if key not in fingerprints:
            fingerprints[key] = spec.fingerprint or fingerprint(spec.config.data)
        placed_specs.append(_found_under_an_earlier_scheme(replace(spec, folder=folder,
                                                                   fingerprint=fingerprints[key])))
    return placed_specs


def _found_under_an_earlier_scheme(spec: RunSpec) -> RunSpec:
    if spec.recorded_id or spec.record_path.exists() or spec.checkpoint_dir.exists():
        return spec
    for scheme in sorted(ID_SCHEMES, reverse=True)[1:]:
        old_id = spec.id_under(scheme)
        earlier = replace(spec, recorded_id=old_id, id_scheme=scheme)
        if old_id and (earlier.record_path.exists() or earlier.checkpoint_dir.exists()):
            return earlier
    return spec
