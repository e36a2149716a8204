"""An installed copy (not the checkout) finds its studies and writes results where the user works."""

import json
import os
import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import ROOT


def _tracked_files(folder):
    """A copy of the checkout's tracked files in `folder` (a build leaves build/ and egg-info behind)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The package built as a wheel and installed into a folder of its own (its dependencies are this
    interpreter's)."""
    wheels, target = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("installed")
    source = _tracked_files(tmp_path_factory.mktemp("source") / "qanet-bench")

    def pip(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "pip", *args], check=True, capture_output=True, timeout=600)

    pip("wheel", "--no-deps", "-q", "-w", str(wheels), str(source))
    [wheel] = wheels.glob("*.whl")
    pip("install", "--no-deps", "-q", "--target", str(target), str(wheel))
    return target


def _bench(installed, cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(installed)}, timeout=600)


def test_an_installed_copy_finds_the_shipped_and_the_users_studies_and_writes_under_the_working_directory(
        installed, tmp_path):
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "mine.toml").write_text('seeds = [0]\n[axes]\n"train.ema" = [true, false]\n')
    listing = _bench(installed, tmp_path, "list")
    assert listing.returncode == 0 and "ablation_char_cnn" in listing.stdout and "mine" in listing.stdout
    run = _bench(installed, tmp_path, "run", "mine", "--scale", "smoke", "--set", "train.steps=2",
                 "--set", "train.eval_every=1", "--set", "data.synthetic.train_paragraphs=10",
                 "--set", "data.synthetic.dev_paragraphs=3")
    assert run.returncode == 0, run.stderr
    assert len(list((tmp_path / "results" / "runs" / "mine").glob("*.json"))) == 2
    assert not (installed / "results").exists()
    where = subprocess.run([sys.executable, "-c", "import bench; print(bench.__file__)"], cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True)
    assert where.stdout.startswith(str(installed))  # the installed copy ran, not the checkout
    record = json.loads(next((tmp_path / "results" / "runs" / "mine").glob("*.json")).read_text())
    assert record["environment"]["git"]["sha"] is None  # no checkout: not the sha of whatever surrounds it
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert record["environment"]["git"]["package"] == version


def test_the_model_library_installs_with_torch_and_numpy_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(requirement.split(">")[0] for requirement in project["dependencies"]) == ["numpy", "torch"]
    extras = project["optional-dependencies"]
    assert set(extras["all"][0].split("[")[1].rstrip("]").split(",")) == set(extras) - {"all", "dev"}
    assert "joblib>=1.4" in extras["bench"]  # Parallel(return_as="generator_unordered")


def test_the_editable_install_of_make_setup_prints_no_warning(tmp_path):
    """`make setup`'s editable install, with the setting the Makefile gives pip, says nothing; without that
    setting setuptools prints its box on editable installs (so this test can fail). The build backend's editable
    build is what prints it: pip passes the backend's output on."""
    import re

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    [warnings_setting] = re.findall(r'PYTHONWARNINGS="([^"]+)" \$\(BIN\)/pip install --quiet', makefile)
    source = _tracked_files(tmp_path / "qanet-bench")
    build = f"from setuptools import build_meta; build_meta.build_editable({str(tmp_path / 'wheel')!r})"

    def editable_build(environment: dict) -> str:
        done = subprocess.run([sys.executable, "-c", build], cwd=source, capture_output=True, text=True,
                              env={**os.environ, **environment}, timeout=600, check=True)
        return done.stderr

    assert "Editable installation" in editable_build({})
    assert "Warning" not in editable_build({"PYTHONWARNINGS": warnings_setting})
