"""Batches padded to their own longest member, built from examples of similar length.

Training order is a pure function of (seed, epoch), so a resumed run sees exactly
the batches an uninterrupted one would.
"""

from __future__ import annotations

import numpy as np

from qanet.data.features import Split

BUCKET_BATCHES = 50  # sort by length within windows of this many batches: similar lengths, still shuffled


def trainable_questions(split: Split, context_len: int) -> np.ndarray:
    """Answerable questions whose answer ends inside the first `context_len` tokens.

    The others cannot be learned from a truncated context; the count left out is reported.
    """
    return np.flatnonzero((split.answer_start >= 0) & (split.answer_end < context_len))


def epoch_batches(questions: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int, epoch: int
                  ) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(questions)
    window = batch_size * BUCKET_BATCHES
    batches = []
    for begin in range(0, len(order), window):
        chunk = order[begin:begin + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


EVALUATION_SAMPLE_SEED = 0  # one sample for every run, so runs are compared on the same questions


def evaluation_sample(questions: int, size: int | None) -> np.ndarray:
    """All question indices, or `size` of them drawn with a fixed seed (SQuAD's dev file is ordered
    by article: its first 2,000 questions cover 6 of 48 articles)."""
    if size is None or size >= questions:
        return np.arange(questions)
    return np.sort(np.random.default_rng(EVALUATION_SAMPLE_SEED).choice(questions, size, replace=False))


def evaluation_batches(split: Split, batch_size: int, sample: int | None = None) -> list[np.ndarray]:
    """Every question (or a fixed sample of them), longest contexts first so memory peaks at once."""
    questions = evaluation_sample(len(split), sample)
    order = questions[np.argsort(-split.context_lengths()[questions], kind="stable")]
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def make_batch(split: Split, questions: np.ndarray, context_len: int, question_len: int) -> dict[str, np.ndarray]:
    context_words, context_chars = split.contexts.padded(split.paragraph[questions], context_len)
    question_words, question_chars = split.questions.padded(questions, question_len)
    return {
        "context_words": context_words,
        "context_chars": context_chars,
        "question_words": question_words,
        "question_chars": question_chars,
        "start": split.answer_start[questions].astype(np.int64),
        "end": split.answer_end[questions].astype(np.int64),
    }
