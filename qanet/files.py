"""Writing files so that a crash or a full disk never leaves a half-written one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(staging)` fills a temporary sibling of `path`, which is then renamed over it: readers see the
    old file or the new one. On any failure (a full disk, an interrupt) the temporary file is removed and
    `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own per call: two threads of one process may write the same file (a shared cache)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(staging)
        with open(staging, "rb") as written:  # on disk before the rename, so a power cut cannot keep a rename
            os.fsync(written.fileno())        # that points at data still in the page cache
        staging.replace(path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
