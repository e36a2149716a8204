"""Study files: studies/NAME.toml -> the (variant, seed) runs they stand for; where such files are found, how
they are read and checked, and `run_config`, the one way a run's configuration is built from a file (a search
file, `kind = "optuna"`, builds its trials' runs with it too: bench.search).

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
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.scales import SCALES
from bench.spec import NOT_IN_ID, RunSpec
from qanet.config import PRESETS, RENAMED_PRESETS, ConfigError, RunConfig, apply_overrides, build_config, get_value


class StudyError(ValueError):
    """A study or search file that cannot be run as written."""


# Keys a file may not vary: the seed comes from the file's seeds; the settings the run id leaves out (where a
# run executes, what it logs) would make runs that differ only there share an id and a record.
NOT_A_SETTING = {"train.seed": "a study's seeds come from its 'seeds' list (or --seeds)",
                 **{f"train.{key}": "where a run executes or what it logs, not what it is (the id leaves it out; "
                                    "the record's execution context says where it ran)" for key in NOT_IN_ID}}


# Where a run's data is read from: it differs between machines holding the same data (the fingerprint, not the
# location, says which data it is).
DATA_LOCATIONS = ("data.train", "data.dev", "data.pack")


_TOML_TYPES = {str: "a string", list: "a list", dict: "a table", int: "an integer", float: "a number"}


def check_keys(path: Path, raw: dict, keys: dict[str, type]) -> None:
    """A file's top-level keys are among `keys` (key -> TOML type: a float key takes an integer too, a number
    key never a boolean), or one line naming the file, the key and the value."""
    for key, value in raw.items():
        if key not in keys:
            raise StudyError(f"{path}: {key} = {value!r}: unknown key (expected one of {sorted(keys)})")
        kind = keys[key]
        if not isinstance(value, (int, float) if kind is float else kind) or (
                kind in (int, float) and isinstance(value, bool)):
            raise StudyError(f"{path}: {key} = {value!r}: expected {_TOML_TYPES[kind]}")


def value_text(value: Any) -> str:
    """A setting's value as a variant name or a label shows it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


# The shipped files: studies/ in a checkout; in an installed package, its bundled copy (bench.studies).
BUNDLED_STUDIES = next((path for path in (Path(__file__).resolve().parent / "studies",
                                          Path(__file__).resolve().parents[1] / "studies") if path.is_dir()), None)


def study_folders() -> list[Path]:
    """Where a name is looked up: ./studies (the user's own, first), then the shipped files."""
    return [folder for folder in (Path.cwd() / "studies", BUNDLED_STUDIES) if folder and folder.is_dir()]


def study_path(name: str) -> Path:
    """A .toml path as given; a name from the first study folder that has it (the working directory's
    studies/ before the shipped ones)."""
    path = Path(name)
    if path.suffix == ".toml":
        return path
    found = [folder / f"{name}.toml" for folder in study_folders() if (folder / f"{name}.toml").is_file()]
    return found[0] if found else Path("studies") / f"{name}.toml"


def available() -> list[str]:
    """The names of every study and search file."""
    return sorted({path.stem for folder in study_folders() for path in folder.glob("*.toml")})


def read_study_file(name: str) -> tuple[Path, dict]:
    """A file's path and its TOML, or one line saying why there is none."""
    path = study_path(name)
    if not path.exists():
        raise StudyError(f"{path}: no such study (available: {', '.join(available())})")
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise StudyError(f"{path}: not valid TOML: {error}") from None


def is_search(name: str) -> bool:
    """Whether a file is a search (kind = "optuna") rather than a study of variants x seeds."""
    try:
        return tomllib.loads(study_path(name).read_text(encoding="utf-8")).get("kind") == "optuna"
    except (OSError, tomllib.TOMLDecodeError):
        return False


def run_config(path: Path, preset: str, *, fixed: dict[str, Any], budget: dict[str, Any], scale: str,
               pinned: dict[str, Any], own: dict[str, Any]) -> RunConfig:
    """The validated configuration of one run of the file at `path`: the preset, then each layer over the
    last: the file's fixed settings, its budget, the scale's settings, what the file pins at that scale, the
    run's own settings. Studies and searches both build their runs here, so an exported trial is the same
    run. A problem is a StudyError naming the file."""
    budget_settings = {f"train.{key}": value for key, value in budget.items()}
    layers = {**fixed, **budget_settings, **SCALES[scale].settings(), **pinned, **own}
    try:
        return build_config(preset, layers)
    except ConfigError as error:
        if preset not in PRESETS | RENAMED_PRESETS:
            raise StudyError(f"{path}: preset = {preset!r}: unknown preset (choose one of {sorted(PRESETS)})") from None
        raise StudyError(f"{path}: {error}") from None


# the top-level keys of a study file and the TOML type of each
_KEYS = {"description": str, "preset": str, "design": str, "seeds": list, "budget": dict, "set": dict,
         "axes": dict, "with": dict, "variants": dict, "scale": dict, "labels": dict}
# what makes a study's runs its own: a file with none of them is the preset's base configuration again
_OF_ITS_OWN = ("preset", "budget", "set", "axes", "variants", "scale")


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
    if not any(raw.get(key) for key in _OF_ITS_OWN):  # an empty or unfinished file: it would train the preset's base
        raise StudyError(f"{path}: nothing of its own (no axes, variants, preset or settings): add [axes] or "
                         f"[variants], or the settings its runs share ([set], preset)")
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
