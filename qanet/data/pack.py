"""A portable pack of prepared data: what a GPU machine with only torch and numpy trains from.

A prepared cache stores a word id and 16 character ids for every token (200 MB for SQuAD
v1.1). SQuAD repeats its tokens, so a pack stores each distinct (word id, character ids)
form once and one form number per token, and of the texts only what scoring needs
(contexts, token offsets and answers: dev questions are scored, and held-out training
questions too). Loading rebuilds the same `Prepared` arrays, word vectors included, so a
pack is the data it was made from: it carries that data's fingerprint, and a run from the
pack is the same run (the same id) as one from the files.

Layout: `arrays.npz` (numpy's zip of arrays, deflated), `text.json.gz`, and `manifest.json`
with the format, the fingerprint, the preparation settings and every file's size and sha256,
checked on load.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from qanet.config import DataConfig
from qanet.data.download import file_digest
from qanet.data.features import Sequences, Split
from qanet.data.prepare import SPLITS, Prepared

PACK_FORMAT = 2  # 2: word vectors exact (fp32), training texts kept, the preparation settings in the manifest
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
TEXT = "text.json.gz"
PACKED_SEQUENCES = ("contexts", "questions")


class PackError(ValueError):
    """A pack that is missing, damaged or of another format."""


def token_forms(sequences: list[Sequences]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Distinct (word id, character ids) rows over all `sequences`, and each token's row number."""
    rows = np.concatenate([np.column_stack([s.words, s.chars]).astype(np.int32) for s in sequences])
    as_bytes = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.itemsize * rows.shape[1])))  # 3x faster
    forms, inverse = np.unique(as_bytes.ravel(), return_inverse=True)
    forms = forms.view(np.int32).reshape(-1, rows.shape[1])
    inverse = inverse.reshape(-1).astype(np.int32)
    bounds = np.cumsum([0] + [len(s.words) for s in sequences])
    return (forms[:, 0].astype(np.int32), forms[:, 1:].astype(np.int16),
            [inverse[begin:end] for begin, end in zip(bounds[:-1], bounds[1:], strict=True)])


def _pack_arrays(prepared: Prepared) -> dict[str, np.ndarray]:
    splits = {name: getattr(prepared, name) for name in SPLITS}
    sequences = [getattr(splits[name], part) for name in SPLITS for part in PACKED_SEQUENCES]
    form_words, form_chars, per_sequence = token_forms(sequences)
    arrays = {"form_words": form_words, "form_chars": form_chars,
              "word_vectors": prepared.word_vectors}
    forms = iter(per_sequence)
    for name, split in splits.items():
        for part in PACKED_SEQUENCES:
            arrays[f"{name}.{part}.forms"] = next(forms)
            arrays[f"{name}.{part}.offsets"] = getattr(split, part).offsets
        for key in ("paragraph", "answer_start", "answer_end"):
            arrays[f"{name}.{key}"] = getattr(split, key)
        arrays[f"{name}.context_spans"] = split.context_spans  # to cut answers out of the texts
    return arrays


def _pack_text(prepared: Prepared) -> dict:
    splits = {name: getattr(prepared, name) for name in SPLITS}
    return {
        "versions": {name: split.version for name, split in splits.items()},
        "ids": {name: split.ids for name, split in splits.items()},
        "context_texts": {name: split.context_texts for name, split in splits.items()},
        "answers": {name: split.answers for name, split in splits.items()},
        "words": prepared.words,
        "chars": prepared.chars,
        "build": prepared.build,
    }


# The settings that change the prepared arrays besides the input files: a run from a pack must have the pack's.
FEATURE_SETTINGS = ("char_len", "strict", "vocabulary")


def write_pack(prepared: Prepared, directory: Path, data: DataConfig) -> dict:
    """Write `prepared`, made as `data` says, as a pack into `directory` (an earlier pack there is replaced
    whole, atomically); returns the manifest. Any other non-empty folder is refused: it is never deleted."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not (directory / MANIFEST).is_file():
        raise PackError(f"{directory}: not empty and not a pack; choose a new folder for --out")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pack-", dir=directory.parent))
    try:
        np.savez_compressed(staging / ARRAYS, **_pack_arrays(prepared))
        text = json.dumps(_pack_text(prepared), ensure_ascii=False).encode("utf-8")
        with open(staging / TEXT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as handle:
            handle.write(text)  # no time or name in the header: the same data packs to the same bytes
        files = {name: {"bytes": (staging / name).stat().st_size, "sha256": file_digest(staging / name, "sha256")}
                 for name in (ARRAYS, TEXT)}
        manifest = {
            "format": PACK_FORMAT,
            "fingerprint": prepared.fingerprint,
            "prepared_with": {key: getattr(data, key) for key in FEATURE_SETTINGS},
            "made_from": {"train": data.train, "dev": data.dev, "vectors": data.vectors},
            "questions": {name: len(getattr(prepared, name)) for name in SPLITS},
            "files": files,
            "bytes": sum(f["bytes"] for f in files.values()),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def read_manifest(directory: Path) -> dict:
    """The manifest of a pack whose files all have their recorded size and sha256, or a PackError."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise PackError(f"{directory}: not a pack ({MANIFEST} is missing; make one with `python -m bench data pack`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise PackError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise PackError(f"{path}: a JSON {type(manifest).__name__}, not a manifest; pack again")
    if manifest.get("format") != PACK_FORMAT:
        raise PackError(f"{path}: pack format {manifest.get('format')!r}, this code reads {PACK_FORMAT}; pack again")
    listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    if set(listed) != {ARRAYS, TEXT} or not isinstance(manifest.get("fingerprint"), str) or not isinstance(
            manifest.get("prepared_with"), dict):
        raise PackError(f"{path}: expected a fingerprint, the preparation settings and the files {ARRAYS} and "
                        f"{TEXT}; pack again")
    for name, expected in manifest["files"].items():
        file = Path(directory) / name
        if not isinstance(expected, dict) or not {"bytes", "sha256"} <= set(expected):
            raise PackError(f"{path}: files.{name} = {expected!r}: expected its bytes and sha256; pack again")
        if not file.is_file():
            raise PackError(f"{file}: missing from the pack")
        if file.stat().st_size != expected["bytes"] or file_digest(file, "sha256") != expected["sha256"]:
            raise PackError(f"{file}: damaged (size or sha256 differs from {MANIFEST})")
    return manifest


def check_settings(directory: Path, manifest: dict, data: DataConfig) -> None:
    """A PackError naming the first setting of `data` that changes the features and differs from the pack's."""
    for key in FEATURE_SETTINGS:
        packed = manifest["prepared_with"].get(key)
        if getattr(data, key) != packed:
            raise PackError(f"{directory}: prepared with data.{key} = {packed!r}, this run sets "
                            f"{getattr(data, key)!r}; set data.{key}={packed} or pack the data again")


def _unpack_split(name: str, arrays, text: dict, *, form_words: np.ndarray, form_chars: np.ndarray) -> Split:
    def sequences(part: str) -> Sequences:
        forms = arrays[f"{name}.{part}.forms"]
        return Sequences(form_words[forms], form_chars[forms], arrays[f"{name}.{part}.offsets"])

    return Split(
        version=text["versions"][name],
        contexts=sequences("contexts"),
        context_spans=arrays[f"{name}.context_spans"],
        questions=sequences("questions"),
        paragraph=arrays[f"{name}.paragraph"],
        answer_start=arrays[f"{name}.answer_start"],
        answer_end=arrays[f"{name}.answer_end"],
        ids=text["ids"][name],
        context_texts=text["context_texts"][name],
        answers=text["answers"][name],
    )


def load_pack(directory: Path, data: DataConfig | None = None) -> Prepared:
    """A pack, checked against its manifest (and against `data`'s feature settings, if given), as the
    `Prepared` data a Trainer takes."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if data is not None:
        check_settings(directory, manifest, data)
    with np.load(directory / ARRAYS) as stored:
        arrays = dict(stored)
    with gzip.open(directory / TEXT, "rt", encoding="utf-8") as handle:
        text = json.load(handle)
    form_words, form_chars = arrays["form_words"], arrays["form_chars"]
    return Prepared(
        fingerprint=manifest["fingerprint"],
        train=_unpack_split("train", arrays, text, form_words=form_words, form_chars=form_chars),
        dev=_unpack_split("dev", arrays, text, form_words=form_words, form_chars=form_chars),
        word_vectors=arrays["word_vectors"],
        words=text["words"],
        chars=text["chars"],
        build=text["build"],
        directory=directory,
    )
