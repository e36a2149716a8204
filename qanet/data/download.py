"""Resumable downloads of the public SQuAD and GloVe files, verified by checksum.

Standard library only. A download goes to `NAME.part` and is resumed with an HTTP
Range request; only a file whose checksum matches is renamed to its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from qanet.files import replace_atomically

Progress = Callable[[int, int | None], None]  # bytes so far, total if known


class DownloadError(RuntimeError):
    """A download that failed or did not match its checksum."""


@dataclass(frozen=True)
class RemoteFile:
    url: str
    algorithm: str | None = None  # "sha256" or "md5"; None where no checksum is published
    digest: str | None = None

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


_SQUAD = "https://rajpurkar.github.io/SQuAD-explorer/dataset"
SOURCES: dict[str, tuple[RemoteFile, ...]] = {
    "squad-v1.1": (
        RemoteFile(f"{_SQUAD}/train-v1.1.json", "sha256",
                   "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955"),
        RemoteFile(f"{_SQUAD}/dev-v1.1.json", "sha256",
                   "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9"),
    ),
    "squad-v2.0": (
        RemoteFile(f"{_SQUAD}/train-v2.0.json", "md5", "62108c273c268d70893182d5cf8df740"),
        RemoteFile(f"{_SQUAD}/dev-v2.0.json", "md5", "246adae8b7002f8679c027697b0b7cf8"),
    ),
    "glove.840B.300d": (RemoteFile("https://nlp.stanford.edu/data/glove.840B.300d.zip"),),
}


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


DIGESTS = "digests.json"


def content_digest(path: Path, cache_dir: Path) -> str:
    """The sha256 of a file's bytes, remembered in `cache_dir` by path, inode, size and modification time, so
    that a 5 GB vectors file is read once, and the same file on two machines has the same identity."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}\t{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
    store = Path(cache_dir) / DIGESTS
    try:
        known = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = None
    if not isinstance(known, dict):  # missing or damaged: the digests are computed again
        known = {}
    if key not in known:
        known = {old: digest for old, digest in known.items() if not old.startswith(f"{path}\t")}  # one per path
        known[key] = file_digest(path, "sha256")
        text = json.dumps(known, indent=1)
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs reading the file again
            replace_atomically(store, lambda staging: staging.write_text(text, encoding="utf-8"))
    return known[key]


def _verify(path: Path, remote: RemoteFile, url: str) -> None:
    if remote.algorithm is None:
        return
    actual = file_digest(path, remote.algorithm)
    if actual != remote.digest:
        path.unlink()
        raise DownloadError(f"{url}: {remote.algorithm} {actual} does not match the published "
                            f"{remote.digest}; the download was deleted")


def download(remote: RemoteFile, destination: Path, url: str | None = None,
             progress: Progress = lambda done, total: None) -> Path:
    """Fetch `remote` (from `url` if given, e.g. a mirror) to `destination`, resuming a partial file."""
    url = url or remote.url
    if destination.exists():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urlopen(request, timeout=60) as response:
            if have and response.status != 206:  # the server ignored the range: start again
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(partial, "ab" if have else "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    have += len(chunk)
                    progress(have, total)
    except HTTPError as error:
        if error.code != 416:  # 416: the partial file is already complete
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except OSError as error:
        raise DownloadError(f"{url}: {error} (run the same command again to resume)") from None
    _verify(partial, remote, url)
    shutil.move(partial, destination)
    return destination
