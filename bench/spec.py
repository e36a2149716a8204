"""RunSpec: one run as the harness knows it, from a study or search file to its record.

A run is its configuration (a `RunConfig`, the seed included: `config.train.seed` is the seed's one home),
its data, and where it belongs (study, variant, scale). Its id hashes the configuration and the data's
fingerprint, so a rerun finds its record and checkpoint. Where the run executes (device, threads, how it is
compiled) and what it logs are not part of it (the record's `execution` says where and how it ran), and
neither is where its data is read from: the fingerprint names the data by content, so the same run from a
pack and from the SQuAD files it was made of has one id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from qanet.config import FINGERPRINTED, RunConfig

# Placement, compilation and logging are recorded, not hashed: the same run on another GPU, thread count,
# attention kernel or compiled path, or with a TensorBoard log, has the same id (the execution context tells
# them apart, and a record counts as finished only where it matches).
NOT_IN_ID = ("device", "threads", "tensorboard", "attention_kernels", "compile", "compile_mode", "compile_scope")
# The id's scheme 2 (this one) leaves those out; scheme 1 hashed the whole data section (file paths included)
# and the compile settings. Records written under scheme 1 by the code just before the change are still found
# (RunSpec.scheme_1_id), so that no finished run trains again.


def identity(config: RunConfig) -> dict:
    """The configuration as the id sees it: without the settings of NOT_IN_ID, and without the data settings
    the fingerprint stands for (where the data is read from, how it was featurised)."""
    values = config.to_dict()
    for key in NOT_IN_ID:
        values["train"].pop(key)
    for key in FINGERPRINTED:
        values["data"].pop(key)
    return values


def _scheme_1_identity(config: RunConfig) -> dict:
    """The configuration as scheme 1 hashed it: every setting that existed then, "auto" compilation as the
    eager default it replaced."""
    values = config.to_dict()
    for key in ("device", "threads", "tensorboard", "attention_kernels", "compile_scope"):
        values["train"].pop(key)
    values["data"].pop("pack")
    if values["train"]["compile"] == "auto":
        values["train"]["compile"] = False
    return values


def _digest(values: dict, fingerprint: str) -> str:
    text = json.dumps({"config": values, "data": fingerprint}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunSpec:
    study: str
    variant: str
    scale: str
    config: RunConfig  # not changed once the spec exists: the id is computed once, from it
    folder: Path | None = None  # the study's records folder (absolute); None while the run is only planned
    tags: dict | None = None  # record fields that are not part of the run (an Optuna trial's link)
    fingerprint: str | None = None  # its prepared data's (in_folder, or a record's); None while only planned
    # a record's own id: one written before a setting existed keeps the id it was written under
    recorded_id: str | None = None

    @property
    def seed(self) -> int:
        return self.config.train.seed

    @cached_property
    def id(self) -> str:
        if self.recorded_id:
            return self.recorded_id
        return _digest(identity(self.config), self._fingerprint())

    @property
    def scheme_1_id(self) -> str:
        """The id scheme 1 gave this run (from the files a pack was made of, for a run from a pack: the same
        fingerprint, and the data settings the scale names)."""
        return _digest(_scheme_1_identity(self.config), self._fingerprint())

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
    checkpoint is there under its scheme-1 id keeps that id."""
    from qanet.data.prepare import fingerprint

    folder = Path(folder).resolve()
    fingerprints: dict[str, str] = {}
    placed_specs = []
    for spec in specs:
        key = json.dumps(spec.config.to_dict()["data"], sort_keys=True)
        if key not in fingerprints:
            fingerprints[key] = spec.fingerprint or fingerprint(spec.config.data)
        placed_specs.append(_found_under_scheme_1(replace(spec, folder=folder, fingerprint=fingerprints[key])))
    return placed_specs


def _found_under_scheme_1(spec: RunSpec) -> RunSpec:
    if spec.recorded_id or spec.record_path.exists() or spec.checkpoint_dir.exists():
        return spec
    earlier = replace(spec, recorded_id=spec.scheme_1_id)
    return earlier if earlier.record_path.exists() or earlier.checkpoint_dir.exists() else spec
