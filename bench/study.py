"""Study files: studies/NAME.toml -> the (variant, seed) runs they stand for.

A study names a base preset, fixed settings, axes (a list of values per dotted config
key), the seeds, a design and a budget:

    description = "..."
    preset = "paper"
    design = "one-at-a-time"        # or "grid" (full factorial)
    seeds = [0, 1, 2]
    [budget]
    steps = 30000                   # and/or minutes = 20
    [set]                           # settings every variant shares
    "train.eval_every" = 2000
    [axes]
    "model.hidden" = [128, 100]
    [with."model.hidden=100"]       # settings that go with one axis value
    "model.heads" = 4
    [variants."seed article"]       # a named variant with settings of its own, run with the others
    "model.hidden" = 100
    [scale.smoke.set]               # settings pinned at one scale, over that scale's own (see below)
    "train.steps" = 300
    [labels]                        # display names in tables and plots: variant name -> its name in a paper
    "model.hidden=100" = "hidden 100"

`one-at-a-time` runs the base and changes one axis at a time away from it; `grid` runs every
combination. Every variant's configuration is built and validated before anything runs, and
a problem is one line naming the file, the key and the value.

At each scale (bench.scales) every (variant, seed) is one RunSpec. `[scale.NAME.set]` settings
replace the scale's own, at that scale only (a study exported from a search pins its trial's settings so).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.scales import SCALES, run_config
from bench.spec import RunSpec
from bench.study_files import NOT_A_SETTING, StudyError, check_keys, read_study_file, value_text
from qanet.config import ConfigError, RunConfig, apply_overrides, get_value

# the top-level keys of a study file and the TOML type of each
_KEYS = {"description": str, "preset": str, "design": str, "seeds": list, "budget": dict, "set": dict,
         "axes": dict, "with": dict, "variants": dict, "scale": dict, "labels": dict}


@dataclass
class Study:
    name: str
    path: Path
    description: str
    preset: str
    design: str
    seeds: list[int]
    budget: dict[str, Any]
    fixed: dict[str, Any]
    axes: dict[str, list[Any]]
    coupled: dict[str, dict[str, Any]] = field(default_factory=dict)
    named: dict[str, dict[str, Any]] = field(default_factory=dict)  # [variants.NAME]
    pinned: dict[str, dict[str, Any]] = field(default_factory=dict)  # scale -> its [scale.NAME.set]
    labels: dict[str, str] = field(default_factory=dict)  # [labels]: variant name -> display name

    def error(self, key: str, value: Any, problem: str) -> StudyError:
        return StudyError(f"{self.path}: {key} = {value!r}: {problem}")

    def variants(self) -> dict[str, dict[str, Any]]:
        """Variant name -> the settings that define it: the design's, then the named ones."""
        if self.design == "grid":
            combos = itertools.product(*([(key, value) for value in values] for key, values in self.axes.items()))
            variants = {_name(dict(combo)): dict(combo) for combo in combos}
        else:
            variants = {"base": {}}
            # the file's base, as written
            base = run_config(self.path, self.preset, fixed=self.fixed, budget={}, scale="full", pinned={}, own={})
            for key, values in self.axes.items():
                try:
                    base_value = get_value(base, key)
                except ConfigError as error:
                    raise StudyError(f"{self.path}: {error}") from None
                for value in values:
                    if value != base_value:
                        variants[_name({key: value})] = {key: value}
        for name, settings in self.named.items():
            if name in variants:
                raise self.error(f"variants.{name}", settings, "a variant of the design has this name already")
            variants[name] = settings
        return variants

    def runs(self, scale: str = "full", seeds: list[int] | None = None, overrides: list[tuple[str, Any]] = ()
             ) -> list[RunSpec]:
        """Every (variant, seed) run at a scale with its validated configuration; `overrides` (bench run --set)
        go over each run's settings."""
        runs = []
        # seed-major: every variant of seed 0, then of seed 1, ...: what drifts over a study's hours (the
        # machine's speed, a process's memory) falls on every variant alike, not on the ones that run last
        for seed in seeds if seeds is not None else self.seeds:
            for variant, settings in self.variants().items():
                config = apply_overrides(self._config(settings, scale, seed), overrides).validate()
                if config.train.seed != seed:  # two seeds would become one run, one id, one record
                    raise StudyError(f"{self.name}: train.seed = {config.train.seed} set by --set; a study's seeds "
                                     f"come from its 'seeds' list or --seeds")
                runs.append(RunSpec(self.name, variant, scale, config))
        return runs

    def _config(self, settings: dict[str, Any], scale: str, seed: int) -> RunConfig:
        """A run's configuration: a smaller scale replaces sizes, data and budget; the study's other settings
        and its variant's stay."""
        own = {}
        for key, value in settings.items():
            own[key] = value
            own.update(self.coupled.get(f"{key}={value_text(value)}", {}))
        return run_config(self.path, self.preset, fixed=self.fixed, budget=self.budget, scale=scale,
                          pinned=self.pinned.get(scale, {}), own={**own, "train.seed": seed})


def distinct_runs(study: str, runs: list[RunSpec], log=print) -> list[RunSpec]:
    """The runs, each with a configuration of its own. A repeated seed would merge two runs into one id and
    one record: refused. A variant that equals an earlier one at this scale (the smoke scale's context of 150
    is the context axis's other value) is left out, and said so."""
    seen: dict[str, RunSpec] = {}
    dropped: dict[str, str] = {}
    kept = []
    for run in runs:
        key = json.dumps(run.config.to_dict(), sort_keys=True)
        first = seen.get(key)
        if first is None:
            seen[key] = run
            kept.append(run)
        elif first.variant == run.variant:
            raise StudyError(f"{study}: seed {run.seed} is repeated; every run must differ")
        else:
            dropped[run.variant] = first.variant
    for variant, same in dropped.items():
        log(f"variant {variant!r} is the same run as {same!r} at this scale: left out")
    return kept


def _name(settings: dict[str, Any]) -> str:
    return ",".join(f"{key}={value_text(value)}" for key, value in settings.items())


def load_study(name: str) -> Study:
    """Read and check a study file; every variant is built once here so errors come first."""
    path, raw = read_study_file(name)
    if raw.get("kind") == "optuna":
        raise StudyError(f"{path}: a search (kind = \"optuna\"): run it with python -m bench search {path.stem}")
    _check_shape(path, raw)
    study = Study(
        name=path.stem, path=path, description=raw.get("description", ""), preset=raw.get("preset", "paper"),
        design=raw.get("design", "one-at-a-time"), seeds=raw.get("seeds", [0, 1, 2]), budget=raw.get("budget", {}),
        fixed=raw.get("set", {}), axes=raw.get("axes", {}), coupled=raw.get("with", {}),
        named=raw.get("variants", {}),
        pinned={scale: table.get("set") for scale, table in raw.get("scale", {}).items()},
        labels=raw.get("labels", {}),
    )
    _check(study)
    for scale in SCALES:
        study.runs(scale)
    return study


def _check_shape(path: Path, raw: dict) -> None:
    """Top-level keys known and of the right TOML type; [with] and [variants] entries are tables."""
    check_keys(path, raw, _KEYS)
    for section in ("with", "variants"):
        for name, settings in raw.get(section, {}).items():
            if not isinstance(settings, dict) or not settings:
                raise StudyError(f"{path}: {section}.{name} = {settings!r}: expected a table of settings")
    for name, label in raw.get("labels", {}).items():
        if not isinstance(label, str) or not label.strip():
            raise StudyError(f"{path}: labels.{name} = {label!r}: expected the variant's display name, a string")
    for scale, table in raw.get("scale", {}).items():
        if scale not in SCALES or not isinstance(table, dict) or set(table) != {"set"} or not isinstance(
                table["set"], dict):
            raise StudyError(f"{path}: scale.{scale} = {table!r}: expected [scale.NAME.set], a table of settings "
                             f"for a scale ({', '.join(SCALES)})")


def _check(study: Study) -> None:
    if study.design not in ("one-at-a-time", "grid"):
        raise study.error("design", study.design, "expected 'one-at-a-time' or 'grid'")
    if not (isinstance(study.seeds, list) and study.seeds and all(type(s) is int for s in study.seeds)):
        raise study.error("seeds", study.seeds, "expected a non-empty list of integers")
    for key, value in study.budget.items():
        if key not in ("steps", "minutes"):
            raise study.error(f"budget.{key}", value, "unknown budget (use steps and/or minutes)")
    for key, values in study.axes.items():
        if not isinstance(values, list) or not values:
            raise study.error(f"axes.{key}", values, "expected a non-empty list of values")
        if len({value_text(v) for v in values}) != len(values):  # equal values would be one variant, merged silently
            raise study.error(f"axes.{key}", values, "a value is repeated (equal once read, e.g. 0.001 and 1e-3)")
    for label in study.coupled:
        key, _, value = label.partition("=")
        if key not in study.axes or value not in [value_text(v) for v in study.axes[key]]:
            raise study.error(f"with.{label}", study.coupled[label], "names no axis value of this study")
    settings = [("axes", study.axes), *((f"variants.{n}", s) for n, s in study.named.items()),
                *((f"with.{label}", s) for label, s in study.coupled.items())]  # what makes runs differ
    for section, keys in settings:
        for key in keys:
            if key in NOT_A_SETTING:  # the run id leaves them out: runs differing only here would share an id
                raise study.error(f"{section}.{key}", keys[key], NOT_A_SETTING[key])
    variants = study.variants()
    for name, label in study.labels.items():
        if name not in variants:
            raise study.error(f"labels.{name}", label,
                              f"names no variant of this study (variants: {', '.join(variants)})")
