"""Study files and search files (studies/NAME.toml), the scales they run at, and the one way a run's
configuration is built from a file.

A *study* file (bench.study) names variants and seeds; a *search* file (`kind = "optuna"`, bench.search)
names ranges that Optuna samples. Both live in studies/ and build their runs the same way: a preset, then
the file's fixed settings, its budget, the scale's settings and what the file pins at that scale, then the
run's own settings (a variant's, a trial's, the seed).

Four scales: `full` (the file as written: the paper's budget), `gpu` (the study's own model on real SQuAD v1.1
with GloVe 6B 50d and a budget that puts a 21-run study in an hour on one GPU), `smoke` (the synthetic data, the
`tiny` model, 500 steps: about two minutes a run on 2 cores) and `cpu` (real SQuAD v1.1 with GloVe 6B 50d, a
reduced model and a budget of minutes a run on a 2-core CPU). The scales replace data, sizes and budget as they
say and keep each variant's own settings.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from bench.environment import SHARED_SQUAD_V11
from bench.spec import NOT_IN_ID
from qanet.config import PRESETS, SMALL_MODEL, ConfigError, RunConfig, build_config, default_cache_dir, preset_name
from qanet.data.vectors import KUMO


class StudyError(ValueError):
    """A study or search file that cannot be run as written."""


SCALES = ("full", "gpu", "smoke", "cpu")
# --scale smoke: the synthetic data, the tiny preset (its model, batch, warm-up, EMA, context) and 500 steps.
SMOKE_SCALE = {**PRESETS["tiny"], "train.steps": 500, "train.eval_every": 250, "train.checkpoint_every": 250,
         "data.train": "synthetic", "data.dev": "synthetic", "data.vectors": "random", "train.minutes": None}
# --scale cpu: real data without a GPU. SQuAD v1.1 with GloVe 6B 50d, the small model alone (in 7 minutes
# on 2 cores it reached dev F1 24; the seed article's hidden 100 / 4 blocks, at 3.5x the step time, reached
# 18), context 150, 3,000 steps of batch 16 (about 9 minutes a run on 2 cores), a fixed sample of 2,000 dev
# questions during training and the whole dev set at the end.
CPU_SCALE = {**SMALL_MODEL, "data.context_len": 150, "data.vectors": KUMO, "train.batch_size": 16,
       "train.steps": 3000, "train.warmup_steps": 500, "train.eval_every": 500, "train.checkpoint_every": 500,
       "train.eval_questions": 2000, "train.minutes": None}
# --scale gpu: the study's model as written (its axes included) on SQuAD v1.1 with GloVe 6B 50d (the paper's
# GloVe 840B 300d cannot be had on the GPU machines), from the files or a pack (--set data.pack=DIR), and 2,500
# steps. Why 2,500: one run at the paper's size alone on an H200 trained 21.3 steps/s on the path compile "auto"
# takes (CUDA graphs, one shape), compiled in 22 s, scored the whole dev set in about 4 s and spent about 10 s
# starting (results/reference/gpu-run-nvidia-h200.json). A run is then 2,500 / 21.3 + 40 = 157 s, and 21 runs
# one after another 55 minutes at that rate. The study's smaller variants are faster; an H100's rate and the
# total rate of several runs sharing a card (--gpus 0,0) are not measured yet (docs/gpu.md).
GPU_SCALE = {"data.vectors": KUMO, "train.steps": 2500, "train.eval_every": 500, "train.checkpoint_every": 500,
             "train.eval_questions": 2000, "train.minutes": None}

# Keys a file may not vary: the seed comes from the file's seeds; the settings the run id leaves out (where a
# run executes, what it logs) would make runs that differ only there share an id and a record.
NOT_A_SETTING = {"train.seed": "a study's seeds come from its 'seeds' list (or --seeds)",
                 **{f"train.{key}": "where a run executes or what it logs, not what it is (the id leaves it out; "
                                    "the record's execution context says where it ran)" for key in NOT_IN_ID}}


# Where a run's data is read from: it differs between machines holding the same data (the fingerprint, not the
# location, says which data it is).
DATA_LOCATIONS = ("data.train", "data.dev", "data.pack")


def squad_v11_files() -> dict[str, str]:
    """SQuAD v1.1 for the gpu and cpu scales: the official files if `bench data fetch squad-v1.1` got them,
    else the copies in ../shared/data; with neither, preparation says how to fetch them (a run from a pack
    reads none of them)."""
    from qanet.data.prepare import downloaded_path

    fetched = {split: downloaded_path("squad-v1.1", split, default_cache_dir()) for split in ("train", "dev")}
    if all(path.is_file() for path in fetched.values()):
        return {"data.train": "squad-v1.1", "data.dev": "squad-v1.1"}
    if all(path.is_file() for path in SHARED_SQUAD_V11.values()):
        return {f"data.{split}": str(path) for split, path in SHARED_SQUAD_V11.items()}
    return {"data.train": "squad-v1.1", "data.dev": "squad-v1.1"}


def scale_settings(scale: str) -> dict[str, Any]:
    """What a scale replaces in every run of a file (nothing at full scale)."""
    if scale == "smoke":
        return SMOKE_SCALE
    if scale == "cpu":
        return {**CPU_SCALE, **squad_v11_files()}
    if scale == "gpu":
        return {**GPU_SCALE, **squad_v11_files()}
    return {}


def run_config(path: Path, preset: str, fixed: dict[str, Any], budget: dict[str, Any], scale: str,
               pinned: dict[str, Any], own: dict[str, Any]) -> RunConfig:
    """The validated configuration of one run of the file at `path`: the preset, then each layer over the
    last: the file's fixed settings, its budget, the scale's settings, what the file pins at that scale, the
    run's own settings. Studies and searches both build their runs here, so an exported trial is the same
    run. A problem is a StudyError naming the file."""
    try:
        preset = preset_name(preset)
    except ConfigError:
        raise StudyError(f"{path}: preset = {preset!r}: unknown preset (choose one of {sorted(PRESETS)})") from None
    budget_settings = {f"train.{key}": value for key, value in budget.items()}
    try:
        return build_config(preset, {**fixed, **budget_settings, **scale_settings(scale), **pinned, **own})
    except ConfigError as error:
        raise StudyError(f"{path}: {error}") from None


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
