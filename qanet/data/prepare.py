"""From SQuAD files to featurised arrays, cached on disk by a hash of everything that matters.

The cache key covers the bytes of the input files, the identity of the word
vectors, the settings that change the arrays, the tokenizer's version and
`FORMAT`; a second run with the same inputs only loads arrays (seconds).
Length limits are not part of the key: they apply per batch, so changing
`context_len` reuses the cache.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from qanet.config import ConfigError, DataConfig, default_cache_dir
from qanet.data.download import SOURCES, content_digest
from qanet.data.features import Split, TokenisedFile
from qanet.data.squad import read_squad
from qanet.data.synthetic import write_synthetic
from qanet.data.vectors import KUMO, load_vectors, vectors_identity
from qanet.data.vocab import OOV, Vocabulary, build_char_vocabulary, build_word_vocabulary, wanted_spellings

FORMAT = 1  # bump when the featurisation changes, so old caches are not reused
SPLITS = ("train", "dev")
Log = Callable[[str], None]


@dataclass
class Prepared:
    fingerprint: str  # the cache key: names the exact data a run saw
    train: Split
    dev: Split
    word_vectors: np.ndarray  # (words, dim) float32; rows 0 and 1 are padding and OOV
    words: list[str]
    chars: list[str]
    build: dict  # counts and timings recorded when the cache was built
    directory: Path

    def summary(self, config: DataConfig) -> dict:
        """Counts, repairs, vocabulary coverage and length-limit overruns, per split."""
        result = {"fingerprint": self.fingerprint, "vocabulary": self.build["vocabulary"]}
        for name in SPLITS:
            split: Split = getattr(self, name)
            context_lengths = split.context_lengths()
            result[name] = {
                **self.build["files"][name],
                "context_tokens_mean": round(float(context_lengths.mean()), 1),
                f"contexts_over_{config.context_len}": int((context_lengths > config.context_len).sum()),
                f"questions_over_{config.question_len}": int((split.questions.lengths > config.question_len).sum()),
                f"answers_ending_after_{config.context_len}": int((split.answer_end >= config.context_len).sum()),
                "context_tokens_with_vectors": round(float((split.contexts.words != OOV).mean()), 4),
                "answers_with_an_oov_word": round(_answers_with_oov(split), 4),
            }
        return result


def _answers_with_oov(split: Split) -> float:
    """Share of answerable questions whose first answer has a token without a word vector."""
    answerable = np.flatnonzero(split.answer_start >= 0)
    starts = split.contexts.offsets[split.paragraph[answerable]]
    with_oov = [(split.contexts.words[start + begin:start + end + 1] == OOV).any() for start, begin, end in
                zip(starts, split.answer_start[answerable], split.answer_end[answerable], strict=True)]
    return float(np.mean(with_oov)) if with_oov else 0.0


def _spacy_version() -> str | None:
    try:
        return metadata.version("spacy")
    except metadata.PackageNotFoundError:
        return None


def _cache_key(config: DataConfig, paths: dict[str, str], vectors: str, cache_dir: Path) -> str:
    parts = {
        "format": FORMAT,
        "files": {name: content_digest(Path(path), cache_dir) for name, path in paths.items()},
        "vectors": vectors_identity(vectors, config.random_vector_dim, cache_dir),
        "char_len": config.char_len,
        "strict": config.strict,
        "vocabulary": config.vocabulary,
        "spacy": _spacy_version(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def downloaded_path(name: str, split: str | None, cache_dir: Path) -> Path | None:
    """Where `bench data fetch NAME` put the file of a split, if NAME is a fetchable source."""
    remote = next((r for r in SOURCES.get(name, ()) if split is None or r.name.startswith(split)), None)
    return cache_dir / "downloads" / name / remote.name if remote else None


def _existing(key: str, value: str, cache_dir: Path, split: str | None) -> str:
    path = downloaded_path(value, split, cache_dir) or Path(value)
    if not path.is_file():
        hint = f"run `python -m bench data fetch {value}`" if value in SOURCES else "no such file"
        raise ConfigError(f"{key} = {value!r}: {hint} ({path} is missing)")
    return str(path)


def resolve_files(config: DataConfig, cache_dir: Path) -> dict[str, str]:
    """The train and dev paths: generated (synthetic), fetched (squad-v1.1, ...) or given."""
    if config.train == "synthetic":
        return {name: str(path) for name, path in write_synthetic(config.synthetic, cache_dir).items()}
    return {split: _existing(f"data.{split}", getattr(config, split), cache_dir, split) for split in SPLITS}


def resolve_vectors(config: DataConfig, cache_dir: Path) -> str:
    if config.vectors in ("random", KUMO):
        return config.vectors
    return _existing("data.vectors", config.vectors, cache_dir, None)


def _inputs(config: DataConfig, cache_dir: Path | None) -> tuple[Path, dict[str, str], str, str]:
    """The cache folder, the train/dev paths, the vectors source and the cache key of `config`'s data."""
    config.validate()
    cache_dir = Path(cache_dir or default_cache_dir())
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = resolve_files(config, cache_dir)
    vectors = resolve_vectors(config, cache_dir)
    return cache_dir, paths, vectors, _cache_key(config, paths, vectors, cache_dir)


def _pack_manifest(config: DataConfig) -> dict:
    """The manifest of `config`'s pack, checked (files, format, the settings that change the features)."""
    from qanet.data.pack import check_settings, read_manifest

    manifest = read_manifest(Path(config.pack))
    check_settings(Path(config.pack), manifest, config)
    return manifest


def fingerprint(config: DataConfig, cache_dir: Path | None = None) -> str:
    """The fingerprint `prepare` gives `config`'s data, without building or loading features: the input
    files' digests (remembered; a file is read whole the first time) and the settings, or the pack's (which
    is that of the files it was made from). The synthetic data is written if it is not there yet; a missing
    file is a ConfigError, a damaged or foreign pack a PackError. What a plan or a dry run needs."""
    if config.pack:
        return _pack_manifest(config)["fingerprint"]
    return _inputs(config, cache_dir)[3]


def prepare(config: DataConfig, cache_dir: Path | None = None, log: Log = lambda _: None) -> Prepared:
    """`config`'s data as features: from its pack, from the cache, or built from the files into the cache."""
    if config.pack:
        from qanet.data.pack import load_pack

        log(f"loading the pack {config.pack}")
        return load_pack(Path(config.pack), config)
    cache_dir, paths, vectors, key = _inputs(config, cache_dir)
    directory = cache_dir / f"prepared-{key}"
    if not (directory / "build.json").exists():
        log(f"building features into {directory}")
        _build(config, paths, vectors_source=vectors, directory=directory, log=log)
    else:
        log(f"loading cached features from {directory}")
    return load_prepared(directory)


def _build(config: DataConfig, paths: dict[str, str], *, vectors_source: str, directory: Path, log: Log) -> None:
    from qanet.data.tokenize import Tokenizer

    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal started
        timings[stage] = round(time.perf_counter() - started, 2)
        log(f"  {stage}: {timings[stage]:.1f} s")
        started = time.perf_counter()

    files = {name: read_squad(path, strict=config.strict) for name, path in paths.items()}
    lap("read")
    tokenizer = Tokenizer()
    tokenised = {name: TokenisedFile.of(squad, tokenizer) for name, squad in files.items()}
    lap("tokenise")
    counts = Counter(tokenised["train"].words())
    # the words that may keep a vector; characters are learned, so they come from train alone
    word_counts = counts + Counter(tokenised["dev"].words()) if config.vocabulary == "train+dev" else counts
    wanted = set(word_counts) if vectors_source == "random" else wanted_spellings(word_counts)
    vectors, dim = load_vectors(vectors_source, wanted, config.random_vector_dim)
    lap("vectors")
    words, matrix = build_word_vocabulary(word_counts, vectors, dim)
    chars = build_char_vocabulary(counts.elements())
    splits = {name: t.featurise(words, chars, config.char_len) for name, t in tokenised.items()}
    lap("featurise")
    build = {
        "files": {name: {"path": paths[name], **files[name].counts()} for name in SPLITS},
        "vocabulary": {
            "words": len(words), "chars": len(chars), "vector_dim": dim, "vectors": config.vectors,
            "from": config.vocabulary, "train_distinct_words": len(counts),
            "train_distinct_words_with_vectors": round(sum(words.id_of_word(w) != OOV for w in counts)
                                                       / max(len(counts), 1), 4),
        },
        "tokenizer": tokenizer.name,
        "timings_s": timings,
    }
    _write_atomically(directory, splits, words=words, chars=chars, matrix=matrix, build=build)


def _write_atomically(directory: Path, splits: dict[str, Split], *, words: Vocabulary, chars: Vocabulary,
                      matrix: np.ndarray, build: dict) -> None:
    """Write into a temporary sibling, then rename: a crash never leaves half a cache."""
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory.parent))
    try:
        for name, split in splits.items():
            split.save(staging, name)
        np.save(staging / "word_vectors.npy", matrix)
        with open(staging / "vocabulary.json", "w", encoding="utf-8") as handle:
            json.dump({"words": words.items, "chars": chars.items}, handle, ensure_ascii=False)
        with open(staging / "build.json", "w", encoding="utf-8") as handle:
            json.dump(build, handle, indent=2)
        if directory.exists():  # a concurrent build won the race; keep its result
            shutil.rmtree(staging)
            return
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_prepared(directory: Path) -> Prepared:
    """Load a prepared directory as it is, with no input files: what a machine without spaCy trains from."""
    directory = Path(directory)
    with open(directory / "vocabulary.json", encoding="utf-8") as handle:
        vocabulary = json.load(handle)
    with open(directory / "build.json", encoding="utf-8") as handle:
        build = json.load(handle)
    return Prepared(
        fingerprint=directory.name.removeprefix("prepared-"),
        train=Split.load(directory, "train"),
        dev=Split.load(directory, "dev"),
        word_vectors=np.load(directory / "word_vectors.npy"),
        words=vocabulary["words"],
        chars=vocabulary["chars"],
        build=build,
        directory=directory,
    )
