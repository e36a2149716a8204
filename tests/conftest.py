import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.environment import ROOT, SHARED_DATA


def shared_file(relative: str) -> Path:
    """A file under ../shared/data, or a skip that says what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing (set QANET_BENCH_SHARED to the shared/ folder)")
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's cache."""
    monkeypatch.setenv("QANET_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def run_python(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python ARGS` as a user would, from the repository root."""
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _allowed_distributions() -> set[str]:
    """torch, numpy and everything torch needs to import: what the GPU machine is promised to have."""
    import re
    from importlib import metadata

    allowed, todo = set(), ["torch", "numpy"]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in allowed:
            continue
        allowed.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        todo += [re.match(r"[A-Za-z0-9_.-]+", r).group() for r in requires if "extra ==" not in r]
    return allowed


@pytest.fixture(scope="session")
def only_torch_and_numpy(tmp_path_factory) -> Path:
    """A folder of links to torch, numpy and what torch needs, and to nothing else that is installed."""
    from importlib import metadata

    folder = tmp_path_factory.mktemp("only-torch-and-numpy")
    for name in _allowed_distributions():
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for top in {file.parts[0] for file in distribution.files or () if file.parts[0] != ".."}:
            source, link = Path(distribution.locate_file(top)), folder / top
            if source.exists() and not link.exists() and top != "__pycache__":
                link.symlink_to(source)
    return folder


def run_with_only(packages: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python ARGS` without site-packages: only the standard library, `packages` and the repository
    can be imported, as on the GPU reference machine (no spaCy, pandas, optuna, evaluate, tqdm...)."""
    return run_python("-S", *args, env={"PYTHONPATH": f"{packages}{os.pathsep}{ROOT}"}, check=check)


# A tiny smoke study, for the tests of study files, the runner, records and `bench run`.
TINY = ["--set", "train.steps=6", "--set", "train.eval_every=3", "--set", "train.checkpoint_every=2",
        "--set", "data.synthetic.train_paragraphs=20", "--set", "data.synthetic.dev_paragraphs=5",
        "--set", "train.threads=1"]


def _study(tmp_path, text: str, name: str = "tiny") -> str:
    """A study file with `text`, written under tmp_path; its path."""
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


TWO_BY_TWO = """
description = "two variants, two seeds"
preset = "paper"
seeds = [0, 1]
[axes]
"model.char_encoder" = ["conv2d", "depthwise1d"]
"""


def _run(study: str, out, *extra: str) -> None:
    """`bench run STUDY` at the smoke scale, cut to TINY, in this process."""
    from bench.cli import main as bench_main  # here, not above: every test module imports this file

    bench_main(["run", study, "--scale", "smoke", "--out", str(out), *TINY, *extra])


@pytest.fixture(scope="session")
def pack(tmp_path_factory) -> Path:
    """A pack of small synthetic data (40 training paragraphs, 10 dev), as the GPU scripts' tests train from."""
    from qanet.config import DataConfig, SyntheticConfig
    from qanet.data.pack import write_pack
    from qanet.data.prepare import prepare

    config = DataConfig(synthetic=SyntheticConfig(train_paragraphs=40, dev_paragraphs=10))
    directory = tmp_path_factory.mktemp("pack") / "synthetic"
    write_pack(prepare(config, tmp_path_factory.mktemp("cache")), directory, config)
    return directory


def load_script(path: Path):
    """A script of benchmarks/ as a module, with its folder on sys.path as when it runs."""
    import importlib.util

    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def records_in(folder: Path) -> list[dict]:
    """The readable records of a folder, as their files hold them (read the one way bench reads them)."""
    from bench.records import read_records

    return [record.to_json() for record in read_records(folder)]
