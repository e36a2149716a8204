import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.records import ROOT, SHARED_DATA


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
