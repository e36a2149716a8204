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

`one-at-a-time` runs the base and changes one axis at a time away from it; `grid` runs every
combination. Every variant's configuration is built and validated before anything runs, and
a problem is one line naming the file, the key and the value.

Three scales: `full` (the study as written, for a GPU), `smoke` (the synthetic data, a CPU-sized
model, about a minute a run) and `cpu` (real SQuAD v1.1 with GloVe 6B 50d, a reduced model and a
step budget of minutes a run on a 2-core CPU). Smaller scales replace sizes and budget and keep
each variant's own settings; `[scale.NAME.set]` settings replace the scale's in turn, at that scale
only (a study exported from an Optuna search pins its trial's settings so).
"""

from __future__ import annotations

import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.records import SHARED_SQUAD_V11
from qanet.config import PRESETS, SMALL_MODEL, ConfigError, RunConfig, build_config, default_cache_dir, get_value
from qanet.data.prepare import downloaded_path
from qanet.data.vectors import KUMO

# The shipped studies: studies/ in a checkout; in an installed package, its bundled copy (bench.studies).
BUNDLED_STUDIES = next((path for path in (Path(__file__).resolve().parent / "studies",
                                          Path(__file__).resolve().parents[1] / "studies") if path.is_dir()), None)
# the top-level keys of a study file and the TOML type of each
_KEYS = {"description": str, "preset": str, "design": str, "seeds": list, "budget": dict, "set": dict,
         "axes": dict, "with": dict, "variants": dict, "scale": dict}
_TOML_TYPES = {str: "a string", list: "a list", dict: "a table"}
SCALES = ("full", "smoke", "cpu")

# --scale smoke: the synthetic data, a CPU-sized model and a budget of about a minute a run.
SMOKE = {**PRESETS["smoke"], "train.steps": 500, "train.eval_every": 250, "train.checkpoint_every": 250,
         "data.train": "synthetic", "data.dev": "synthetic", "data.vectors": "random", "train.minutes": None}
# --scale cpu: real data without a GPU. SQuAD v1.1 with GloVe 6B 50d, the smoke preset's small model
# (in 7 minutes on 2 cores it reached dev F1 24; the seed article's hidden 100 / 4 blocks, at 3.5x the
# step time, reached 18), context 150, 3,000 steps of batch 16 (about 9 minutes a run on 2 cores), a
# fixed sample of 2,000 dev questions during training and the whole dev set at the end.
CPU = {**SMALL_MODEL, "data.context_len": 150, "data.vectors": KUMO, "train.batch_size": 16,
       "train.steps": 3000, "train.warmup_steps": 500, "train.eval_every": 500, "train.checkpoint_every": 500,
       "train.eval_questions": 2000, "train.minutes": None}


def cpu_scale_files() -> dict[str, str]:
    """SQuAD v1.1 for --scale cpu: the official files if `bench data fetch squad-v1.1` got them,
    else the copies in ../shared/data; with neither, preparation says how to fetch them."""
    fetched = {split: downloaded_path("squad-v1.1", split, default_cache_dir()) for split in ("train", "dev")}
    if all(path.is_file() for path in fetched.values()):
        return {"data.train": "squad-v1.1", "data.dev": "squad-v1.1"}
    if all(path.is_file() for path in SHARED_SQUAD_V11.values()):
        return {f"data.{split}": str(path) for split, path in SHARED_SQUAD_V11.items()}
    return {"data.train": "squad-v1.1", "data.dev": "squad-v1.1"}


def scale_settings(scale: str) -> dict[str, Any]:
    """What a scale replaces in every run of a study (nothing at full scale)."""
    if scale == "smoke":
        return SMOKE
    if scale == "cpu":
        return {**CPU, **cpu_scale_files()}
    return {}


class StudyError(ValueError):
    """A study file that cannot be run as written."""


@dataclass(frozen=True)
class Run:
    variant: str
    seed: int
    config: RunConfig


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

    def error(self, key: str, value: Any, problem: str) -> StudyError:
        return StudyError(f"{self.path}: {key} = {value!r}: {problem}")

    def variants(self) -> dict[str, dict[str, Any]]:
        """Variant name -> the settings that define it: the design's, then the named ones."""
        if self.design == "grid":
            combos = itertools.product(*([(key, value) for value in values] for key, values in self.axes.items()))
            variants = {_name(dict(combo)): dict(combo) for combo in combos}
        else:
            variants = {"base": {}}
            base = self._build(self.fixed)
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

    def runs(self, scale: str = "full", seeds: list[int] | None = None) -> list[Run]:
        """Every (variant, seed) run with its validated configuration."""
        runs = []
        for variant, settings in self.variants().items():
            for seed in seeds if seeds is not None else self.seeds:
                runs.append(Run(variant, seed, self._config(settings, seed, scale)))
        return runs

    def _config(self, settings: dict[str, Any], seed: int, scale: str) -> RunConfig:
        # a smaller scale replaces sizes, data and budget; the study's other settings and its variants stay
        overrides = run_settings(self.fixed, self.budget, scale, self.pinned.get(scale, {}))
        for key, value in settings.items():
            overrides[key] = value
            overrides.update(self.coupled.get(f"{key}={value_text(value)}", {}))
        overrides["train.seed"] = seed
        return self._build(overrides)

    def _build(self, overrides: dict[str, Any]) -> RunConfig:
        try:
            return build_config(self.preset, overrides)
        except ConfigError as error:
            raise StudyError(f"{self.path}: {error}") from None


# Keys a study may not vary: the seed comes from `seeds`; where a run executes and what it logs are not part
# of its id.
NOT_A_SETTING = {"train.seed": "a study's seeds come from its 'seeds' list (or --seeds)",
                 "train.threads": "where a run executes, not what it is (the id leaves it out)",
                 "train.device": "where a run executes, not what it is (the id leaves it out)",
                 "train.tensorboard": "what a run logs, not what it is (the id leaves it out)",
                 "train.attention_kernels": "where a run executes, not what it is (the id leaves it out; the "
                                            "execution context records it)"}


def distinct_runs(study: str, runs: list[Run], log=print) -> list[Run]:
    """The runs, each with a configuration of its own. A repeated seed, or `--set train.seed`, would merge
    two runs into one id and one record: refused. A variant that equals an earlier one at this scale (the
    smoke scale's context of 150 is the context axis's other value) is left out, and said so."""
    seen: dict[str, Run] = {}
    dropped: dict[str, str] = {}
    kept = []
    for run in runs:
        if run.config.train.seed != run.seed:
            raise StudyError(f"{study}: train.seed = {run.config.train.seed} set by --set; a study's seeds come "
                             f"from its 'seeds' list or --seeds")
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


def run_settings(fixed: dict[str, Any], budget: dict[str, Any], scale: str, pinned: dict[str, Any]
                 ) -> dict[str, Any]:
    """A run's settings at a scale before its own (a variant's, a trial's, the seed), each layer over the last:
    the file's fixed settings, its budget, the scale's settings, what the file pins at that scale. Studies and
    Optuna searches both build their runs on it, so an exported trial is the same run."""
    budget_settings = {f"train.{key}": value for key, value in budget.items()}
    return {**fixed, **budget_settings, **scale_settings(scale), **pinned}


def value_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _name(settings: dict[str, Any]) -> str:
    return ",".join(f"{key}={value_text(value)}" for key, value in settings.items())


def study_folders() -> list[Path]:
    """Where a study name is looked up: ./studies (the user's own, first), then the shipped studies."""
    return [folder for folder in (Path.cwd() / "studies", BUNDLED_STUDIES) if folder and folder.is_dir()]


def study_path(name: str) -> Path:
    """A .toml path as given; a name from the first study folder that has it (the working directory's
    studies/ before the shipped ones)."""
    path = Path(name)
    if path.suffix == ".toml":
        return path
    found = [folder / f"{name}.toml" for folder in study_folders() if (folder / f"{name}.toml").is_file()]
    return found[0] if found else Path("studies") / f"{name}.toml"


def is_search(name: str) -> bool:
    """Whether a study file is an Optuna search (kind = "optuna") rather than variants x seeds."""
    try:
        return tomllib.loads(study_path(name).read_text(encoding="utf-8")).get("kind") == "optuna"
    except (OSError, tomllib.TOMLDecodeError):
        return False


def available() -> list[str]:
    return sorted({path.stem for folder in study_folders() for path in folder.glob("*.toml")})


def read_study_file(name: str) -> tuple[Path, dict]:
    """A study file's path and its TOML, or one line saying why there is none."""
    path = study_path(name)
    if not path.exists():
        raise StudyError(f"{path}: no such study (available: {', '.join(available())})")
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise StudyError(f"{path}: not valid TOML: {error}") from None


def load_study(name: str) -> Study:
    """Read and check a study file; every variant is built once here so errors come first."""
    path, raw = read_study_file(name)
    if raw.get("kind") == "optuna":
        raise StudyError(f"{path}: an Optuna search (kind = \"optuna\"): run it with python -m bench study {path.stem}")
    _check_shape(path, raw)
    study = Study(
        name=path.stem, path=path, description=raw.get("description", ""), preset=raw.get("preset", "paper"),
        design=raw.get("design", "one-at-a-time"), seeds=raw.get("seeds", [0, 1, 2]), budget=raw.get("budget", {}),
        fixed=raw.get("set", {}), axes=raw.get("axes", {}), coupled=raw.get("with", {}),
        named=raw.get("variants", {}),
        pinned={scale: table.get("set") for scale, table in raw.get("scale", {}).items()},
    )
    _check(study)
    for scale in SCALES:
        study.runs(scale)
    return study


def _check_shape(path: Path, raw: dict) -> None:
    """Top-level keys known and of the right TOML type; [with] and [variants] entries are tables."""
    for key, value in raw.items():
        if key not in _KEYS:
            raise StudyError(f"{path}: {key} = {value!r}: unknown key (expected one of {sorted(_KEYS)})")
        if not isinstance(value, _KEYS[key]):
            raise StudyError(f"{path}: {key} = {value!r}: expected {_TOML_TYPES[_KEYS[key]]}")
    for section in ("with", "variants"):
        for name, settings in raw.get(section, {}).items():
            if not isinstance(settings, dict) or not settings:
                raise StudyError(f"{path}: {section}.{name} = {settings!r}: expected a table of settings")
    for scale, table in raw.get("scale", {}).items():
        if scale not in SCALES or not isinstance(table, dict) or set(table) != {"set"} or not isinstance(
                table["set"], dict):
            raise StudyError(f"{path}: scale.{scale} = {table!r}: expected [scale.NAME.set], a table of settings "
                             f"for a scale ({', '.join(SCALES)})")


def _check(study: Study) -> None:
    if study.preset not in PRESETS:
        raise study.error("preset", study.preset, f"unknown preset (choose one of {sorted(PRESETS)})")
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
