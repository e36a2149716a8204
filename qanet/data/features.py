"""Featurised splits: variable-length integer arrays, padded per batch.

A split stores every paragraph once (its questions point to it) and keeps token
sequences end to end with offsets, so a 120-token paragraph costs 120 rows, not
400. `qanet.data.batching` pads a batch to its own longest member, up to a limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from qanet.data.squad import SquadFile, SquadFormatError
from qanet.data.tokenize import Tokenizer, Tokens, answer_token_span
from qanet.data.vocab import Vocabulary

NO_ANSWER = -1


@dataclass
class Sequences:
    """Sequence i is rows offsets[i]:offsets[i+1] of `words` and `chars`."""

    words: np.ndarray  # (tokens,) int32 word ids
    chars: np.ndarray  # (tokens, char_len) int16 character ids, 0-padded
    offsets: np.ndarray  # (n + 1,) int64

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class Split:
    """One featurised SQuAD file. Answers are token indices into the paragraph."""

    version: str
    contexts: Sequences  # one per paragraph
    context_spans: np.ndarray  # (context tokens, 2) int32 character offsets of each token
    questions: Sequences  # one per question
    paragraph: np.ndarray  # (questions,) int32: the paragraph each question is about
    answer_start: np.ndarray  # (questions,) int32 first token of the first answer, or -1
    answer_end: np.ndarray  # (questions,) int32 last token of the first answer, or -1
    ids: list[str]
    context_texts: list[str]
    answers: list[list[str]]  # every ground-truth text, for the official metric

    def __len__(self) -> int:
        return len(self.ids)

    def context_lengths(self) -> np.ndarray:
        """Context length in tokens of each question."""
        return self.contexts.lengths[self.paragraph]

    def answer_text(self, question: int, start: int, end: int) -> str:
        """The original context text from token `start` to token `end` (inclusive)."""
        paragraph = self.paragraph[question]
        spans = self.context_spans[self.contexts.offsets[paragraph]:self.contexts.offsets[paragraph + 1]]
        return self.context_texts[paragraph][spans[start, 0]:spans[end, 1]]

    def save(self, directory: Path, name: str) -> None:
        arrays, meta = _flatten(self)
        for key, array in arrays.items():
            np.save(directory / f"{name}.{key}.npy", array)
        with open(directory / f"{name}.json", "w", encoding="utf-8") as handle:
            json.dump(meta, handle, ensure_ascii=False)

    @classmethod
    def load(cls, directory: Path, name: str) -> Split:
        with open(directory / f"{name}.json", encoding="utf-8") as handle:
            values = json.load(handle)
        for path in directory.glob(f"{name}.*.npy"):
            values[path.name[len(name) + 1:-len(".npy")]] = np.load(path)
        for key in ("contexts", "questions"):
            values[key] = Sequences(*(values.pop(f"{key}.{part.name}") for part in fields(Sequences)))
        return cls(**values)


def _flatten(split: Split) -> tuple[dict[str, np.ndarray], dict]:
    arrays, meta = {}, {}
    for field in fields(split):
        value = getattr(split, field.name)
        if isinstance(value, Sequences):
            arrays.update({f"{field.name}.{part.name}": getattr(value, part.name) for part in fields(value)})
        elif isinstance(value, np.ndarray):
            arrays[field.name] = value
        else:
            meta[field.name] = value
    return arrays, meta


def encode(token_lists: list[list[str]], words: Vocabulary, chars: Vocabulary, char_len: int) -> Sequences:
    """Look every distinct token up once, then gather: SQuAD repeats its tokens a lot."""
    distinct: dict[str, int] = {}
    positions = np.fromiter(
        (distinct.setdefault(token, len(distinct)) for tokens in token_lists for token in tokens),
        dtype=np.int64,
    )
    word_ids = np.array([words.id_of_word(token) for token in distinct], dtype=np.int32)
    char_ids = np.zeros((len(distinct), char_len), dtype=np.int16)
    for row, token in enumerate(distinct):
        ids = [chars.id_of_char(char) for char in token[:char_len]]
        char_ids[row, :len(ids)] = ids
    offsets = np.zeros(len(token_lists) + 1, dtype=np.int64)
    np.cumsum([len(tokens) for tokens in token_lists], out=offsets[1:])
    return Sequences(word_ids[positions], char_ids[positions], offsets)


@dataclass
class TokenisedFile:
    """A SQuAD file after tokenisation, before lookup in the vocabularies."""

    source: SquadFile
    contexts: list[Tokens]
    questions: list[list[str]]

    @classmethod
    def of(cls, source: SquadFile, tokenizer: Tokenizer) -> TokenisedFile:
        contexts = list(tokenizer.many(source.contexts))
        questions = [tokens.words for tokens in tokenizer.many(q.text for q in source.questions)]
        return cls(source, contexts, questions)

    def words(self):
        for tokens in self.contexts:
            yield from tokens.words
        for tokens in self.questions:
            yield from tokens

    def featurise(self, words: Vocabulary, chars: Vocabulary, char_len: int) -> Split:
        starts, ends = self._answer_tokens()
        source = self.source
        return Split(
            version=source.version,
            contexts=encode([t.words for t in self.contexts], words, chars, char_len),
            context_spans=np.concatenate([t.spans for t in self.contexts]),
            questions=encode(self.questions, words, chars, char_len),
            paragraph=np.array([q.paragraph for q in source.questions], dtype=np.int32),
            answer_start=starts,
            answer_end=ends,
            ids=[q.qid for q in source.questions],
            context_texts=source.contexts,
            answers=[list(q.answers) for q in source.questions],
        )

    def _answer_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        starts = np.full(len(self.source.questions), NO_ANSWER, dtype=np.int32)
        ends = starts.copy()
        for index, question in enumerate(self.source.questions):
            if not question.answers:
                continue
            begin = question.answer_starts[0]
            span = answer_token_span(self.contexts[question.paragraph].spans, begin, begin + len(question.answers[0]))
            if span is None:
                title = self.source.titles[question.paragraph]
                raise SquadFormatError(f"{self.source.path}: article {title!r}, question {question.qid}: "
                                       f"answer {question.answers[0]!r} covers no token")
            starts[index], ends[index] = span
        return starts, ends
