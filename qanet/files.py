"""Writing files so that a crash or a full disk never leaves a half-written one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def naming(path: Path, *, instead_of: Path | None = None) -> Iterator[None]:
    """An OSError raised while writing `path` names it: a write or a close that fails (a full disk, a quota) does
    not say which file, and the user needs to know where the space ran out. `instead_of`: the temporary file
    the write went to, gone by the time anyone reads the error."""
    try:
        yield
    except OSError as error:
        if error.errno is not None and error.filename in (None, str(instead_of) if instead_of else None):
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(staging)` fills a temporary sibling of `path`, which is then renamed over it: readers see the
    old file or the new one. On any failure (a full disk, an interrupt) the temporary file is removed and
    `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own per call: two threads of one process may write the same file (a shared cache)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with naming(path, instead_of=staging):
            write(staging)
            with open(staging, "rb") as written:  # on disk before the rename, so a power cut cannot keep a
                os.fsync(written.fileno())        # rename that points at data still in the page cache
        staging.replace(path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
