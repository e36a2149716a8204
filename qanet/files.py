"""Writing files so that a crash or a full disk never leaves a half-written one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(staging)` fills a temporary sibling of `path`, which is then renamed over it: readers see the
    old file or the new one. On any failure (a full disk, an interrupt) the temporary file is removed and
    `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(staging)
        staging.replace(path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
