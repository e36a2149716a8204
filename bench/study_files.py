"""Study files and search files (studies/NAME.toml): where they are found, how they are read and checked.

A *study* file (bench.study) names variants and seeds; a *search* file (`kind = "optuna"`, bench.search)
names ranges that Optuna samples. Both live in studies/ and build their runs the same way
(bench.scales.run_config).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from bench.spec import NOT_IN_ID


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

