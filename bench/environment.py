"""Where a run was made: the checkout, the machine, the software. A record keeps this beside its numbers.

torch is imported by the functions that describe a device, not here: the commands that never train
start without it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Real SQuAD files beside the checkout, read in place (never copied in); QANET_BENCH_SHARED points elsewhere.
SHARED_DATA = Path(os.environ.get("QANET_BENCH_SHARED", ROOT.parent / "shared")) / "data"
SHARED_SQUAD_V11 = {"train": SHARED_DATA / "squad" / "v1.1" / "train-v1.1.reconstructed.json",
                    "dev": SHARED_DATA / "squad" / "v1.1" / "dev-v1.1.json"}


def git_version() -> dict:
    """The commit the code came from. An installed copy is no checkout (git there would describe whatever
    repository surrounds site-packages, or none): it records its package version instead."""
    if not (ROOT / ".git").exists():
        try:
            version = metadata.version("qanet-bench")
        except metadata.PackageNotFoundError:
            version = None
        return {"sha": None, "dirty": None, "package": version}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()

    try:
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"sha": git("rev-parse", "HEAD") or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device) -> str:
    """The hardware model behind a torch device: the GPU's name, or the CPU's."""
    if device.type != "cuda":
        return cpu_model()
    import torch

    return torch.cuda.get_device_name(device)


def environment(device) -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "device": device_name(device),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "host": platform.node(),
        "pid": os.getpid(),
        "git": git_version(),
        "argv": sys.argv,
    }
