"""Word and character vocabularies built from the training set.

Index 0 is padding and index 1 stands for every out-of-vocabulary item. A word
is looked up as written, then lower-case, capitalised and upper-case, as the
public QANet ports do, so "The" finds the vector of "the".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

PAD, OOV = 0, 1
_RESERVED = ["<pad>", "<oov>"]
_MAX_CHARS = np.iinfo(np.int16).max  # character ids are stored as int16


def spellings(word: str) -> tuple[str, ...]:
    return (word, word.lower(), word.capitalize(), word.upper())


@dataclass
class Vocabulary:
    items: list[str]  # items[i] has id i; the first two are reserved

    def __post_init__(self) -> None:
        self._ids = {item: index for index, item in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    def id_of_char(self, char: str) -> int:
        return self._ids.get(char, OOV)

    def id_of_word(self, word: str) -> int:
        for spelling in spellings(word):
            index = self._ids.get(spelling)
            if index is not None:
                return index
        return OOV


def build_word_vocabulary(counts: Counter, vectors: dict[str, np.ndarray], dim: int) -> tuple[Vocabulary, np.ndarray]:
    """Keep the training words that have a vector (under any spelling), most frequent first.

    Returns the vocabulary and its embedding matrix; the padding and OOV rows are zero
    (the model decides whether the OOV row is trained).
    """
    words, rows = [], []
    for word, _ in counts.most_common():
        vector = next((vectors[s] for s in spellings(word) if s in vectors), None)
        if vector is not None:
            words.append(word)
            rows.append(vector)
    matrix = np.zeros((len(words) + len(_RESERVED), dim), dtype=np.float32)
    if rows:
        matrix[len(_RESERVED):] = np.stack(rows)
    return Vocabulary(_RESERVED + words), matrix


def build_char_vocabulary(words: Iterable[str]) -> Vocabulary:
    counts: Counter = Counter()
    for word in words:
        counts.update(word)
    chars = [char for char, _ in counts.most_common(_MAX_CHARS - len(_RESERVED))]
    return Vocabulary(_RESERVED + chars)


def wanted_spellings(words: Iterable[str]) -> set[str]:
    """Every spelling a vector file may hold for these words."""
    return {spelling for word in words for spelling in spellings(word)}
