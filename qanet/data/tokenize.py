"""Word tokens with character offsets, as the public QANet ports tokenise.

spaCy's blank English tokenizer (rules only, no model download) is imported on
first use, so code that trains from prepared arrays never needs spaCy.
Whitespace tokens are dropped, and the LaTeX-style quotes `` and '' become "
in the token text; offsets always point into the original string.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from qanet.config import ConfigError

_QUOTES = {"``": '"', "''": '"'}


@dataclass(frozen=True)
class Tokens:
    words: list[str]
    spans: np.ndarray  # (len(words), 2) int32: [start, end) character offsets


class Tokenizer:
    def __init__(self) -> None:
        try:
            import spacy  # lazily: only preprocessing needs it
        except ImportError:
            raise ConfigError("tokenising SQuAD needs spaCy: pip install 'qanet-bench[data]'; a machine without "
                              "it trains from a pack made where spaCy is: --set data.pack=DIR (python -m bench data "
                              "pack)") from None

        self._spacy = spacy.blank("en").tokenizer
        self.name = f"spacy-{spacy.__version__}-blank-en"

    def __call__(self, text: str) -> Tokens:
        return next(self.many([text]))

    def many(self, texts: Iterable[str]) -> Iterator[Tokens]:
        for doc in self._spacy.pipe(texts, batch_size=512):
            words, offsets = [], []
            for token in doc:
                if not token.is_space:
                    words.append(_QUOTES.get(token.text, token.text))
                    offsets.append((token.idx, token.idx + len(token.text)))
            yield Tokens(words, np.array(offsets, dtype=np.int32).reshape(-1, 2))


def answer_token_span(spans: np.ndarray, start: int, end: int) -> tuple[int, int] | None:
    """First and last token that overlap the characters [start, end), or None."""
    first = int(np.searchsorted(spans[:, 1], start, side="right"))
    last = int(np.searchsorted(spans[:, 0], end, side="left")) - 1
    return (first, last) if first <= last else None
