"""Batches built from examples of similar length, gathered on the device the model runs on.

Training order is a pure function of (seed, epoch), so a resumed run sees exactly
the batches an uninterrupted one would. A batch is padded to its own longest member,
or up to a multiple of `pad_multiple` so that torch.compile sees a few shapes, not hundreds.
"""

from __future__ import annotations

import numpy as np
import torch

from qanet.data.features import Sequences, Split
from qanet.data.vocab import PAD

BUCKET_BATCHES = 50  # sort by length within windows of this many batches: similar lengths, still shuffled


def trainable_questions(split: Split, context_len: int) -> np.ndarray:
    """Answerable questions whose answer ends inside the first `context_len` tokens.

    The others cannot be learned from a truncated context; the count left out is reported.
    """
    return np.flatnonzero((split.answer_start >= 0) & (split.answer_end < context_len))


def epoch_batches(questions: np.ndarray, lengths: np.ndarray, batch_size: int, *, seed: int, epoch: int
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


HOLDOUT_SEED = 0  # one held-out slice for every run, so that the trials of a search score the same questions


def holdout_questions(paragraph: np.ndarray, count: int) -> np.ndarray:
    """The training questions held out (sorted indices): whole paragraphs in an order shuffled with
    HOLDOUT_SEED, the fewest that hold at least `count` questions (all of them if there are fewer). Whole
    paragraphs, because a question about a context that training has read is not held out."""
    if count <= 0:
        return np.array([], dtype=np.int64)
    order = np.random.default_rng(HOLDOUT_SEED).permutation(np.unique(paragraph))
    held_out = np.cumsum(np.bincount(paragraph)[order])
    taken = order[:np.searchsorted(held_out, count) + 1]
    return np.flatnonzero(np.isin(paragraph, taken))


def evaluation_batches(split: Split, batch_size: int, questions: np.ndarray | None = None) -> list[np.ndarray]:
    """Every question of the split (or those given), longest contexts first so memory peaks at once."""
    questions = np.arange(len(split)) if questions is None else np.asarray(questions, dtype=np.int64)
    order = questions[np.argsort(-split.context_lengths()[questions], kind="stable")]
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def padded_width(longest: int, limit: int, pad_multiple: int = 1) -> int:
    """The width of a batch whose longest member has `longest` tokens: rounded up to a multiple
    of `pad_multiple`, never over `limit` (the truncation), never 0."""
    return max(1, min(limit, -(-longest // pad_multiple) * pad_multiple))


def full_batch_widths(lengths: np.ndarray, batch_size: int, limit: int, pad_multiple: int) -> list[int]:
    """Every width that a batch of `batch_size` of these lengths can be padded to, in any order.

    Its longest member is at least the `batch_size`-th shortest length (a batch holds that many different
    members) and at most the longest: every padded width between covers any epoch without scanning one.
    No width when there are fewer lengths than a batch."""
    if len(lengths) < batch_size:
        return []
    shortest_longest = int(np.partition(lengths, batch_size - 1)[batch_size - 1])
    longest = int(lengths.max())
    return sorted({padded_width(n, limit, pad_multiple)
                   for n in range(min(shortest_longest, limit), min(longest, limit) + 1)})


class SequenceTensors:
    """Token ids of one `Sequences` as tensors on a device; `gather` pads rows there."""

    def __init__(self, sequences: Sequences, device: torch.device) -> None:
        self.lengths = sequences.lengths  # on the host: batch widths are known without asking the device
        self.words = torch.from_numpy(sequences.words).to(device)
        self.chars = torch.from_numpy(sequences.chars).to(device)
        self.offsets = torch.from_numpy(sequences.offsets[:-1]).to(device)
        self.device_lengths = torch.from_numpy(self.lengths).to(device)

    def gather(self, rows: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Word ids (B, width) and character ids (B, width, C) as int64, PAD past each row's end."""
        positions = torch.arange(width, device=rows.device)
        inside = positions < self.device_lengths[rows, None]
        tokens = torch.where(inside, self.offsets[rows, None] + positions, 0)
        words = self.words[tokens].long().masked_fill(~inside, PAD)
        chars = self.chars[tokens].long().masked_fill(~inside[..., None], PAD)
        return words, chars


class BatchSource:
    """A split's token ids and answers as tensors on one device, batches gathered there.

    On a GPU the whole split is uploaded once; a step then costs no host work or copy beyond
    its question indices, which the trainer uploads an epoch at a time."""

    def __init__(self, split: Split, device: torch.device, pad_multiple: int = 1) -> None:
        self.split = split
        self.device = torch.device(device)
        self.pad_multiple = pad_multiple
        self.contexts = SequenceTensors(split.contexts, self.device)
        self.questions = SequenceTensors(split.questions, self.device)
        self.paragraph = torch.from_numpy(split.paragraph).to(self.device).long()
        self.start = torch.from_numpy(split.answer_start).to(self.device).long()
        self.end = torch.from_numpy(split.answer_end).to(self.device).long()

    def widths(self, questions: np.ndarray, context_len: int, question_len: int) -> tuple[int, int]:
        """Context and question widths of the batch of `questions` (host indices)."""
        contexts = self.contexts.lengths[self.split.paragraph[questions]]
        return (padded_width(int(contexts.max(initial=1)), context_len, self.pad_multiple),
                padded_width(int(self.questions.lengths[questions].max(initial=1)), question_len, self.pad_multiple))

    def gather(self, questions: torch.Tensor, context_width: int, question_width: int) -> dict[str, torch.Tensor]:
        """The batch of `questions` (indices on the device), contexts and questions truncated to the widths."""
        context_words, context_chars = self.contexts.gather(self.paragraph[questions], context_width)
        question_words, question_chars = self.questions.gather(questions, question_width)
        return {"context_words": context_words, "context_chars": context_chars, "question_words": question_words,
                "question_chars": question_chars, "start": self.start[questions], "end": self.end[questions]}

    def batch(self, questions: np.ndarray, context_len: int, question_len: int) -> dict[str, torch.Tensor]:
        """The batch of `questions` (host indices), each part truncated to its limit."""
        indices = torch.from_numpy(np.asarray(questions, dtype=np.int64)).to(self.device)
        return self.gather(indices, *self.widths(questions, context_len, question_len))
