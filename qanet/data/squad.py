"""Reading and validating SQuAD v1.1 / v2.0 JSON files (plain or .json.gz).

Every malformed input raises `SquadFormatError` with one line that names the file,
the article title and the question id. Answers whose text is not at
`answer_start` are moved to the nearest occurrence and counted, or rejected when
`strict` is set. Nothing is dropped: every question in the file comes back.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path


class SquadFormatError(ValueError):
    """A SQuAD file that cannot be read as it is."""


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    paragraph: int  # index into SquadFile.contexts
    answers: tuple[str, ...]  # every ground truth, in file order (empty if unanswerable)
    answer_starts: tuple[int, ...]  # character offsets into the context, after repair


@dataclass
class SquadFile:
    path: str
    version: str
    titles: list[str]  # one per paragraph
    contexts: list[str]
    questions: list[Question]
    repaired: int = 0  # answers moved to the nearest occurrence of their text

    @property
    def unanswerable(self) -> int:
        return sum(not q.answers for q in self.questions)

    def counts(self) -> dict[str, int]:
        return {
            "articles": len(dict.fromkeys(self.titles)),
            "paragraphs": len(self.contexts),
            "questions": len(self.questions),
            "unanswerable": self.unanswerable,
            "answers_repaired": self.repaired,
        }


@dataclass
class _Where:
    """Where the reader is in the file, for error messages."""

    path: str
    title: str = "?"
    qid: str = "?"

    def error(self, message: str) -> SquadFormatError:
        return SquadFormatError(f"{self.path}: article {self.title!r}, question {self.qid}: {message}")


@dataclass
class _Reader:
    path: str
    strict: bool
    result: SquadFile = field(init=False)
    seen_ids: set[str] = field(default_factory=set)

    def read(self, raw: dict) -> SquadFile:
        articles = self._require(raw, "data", _Where(self.path, title="-", qid="-"), list)
        version = str(raw.get("version", ""))
        self.result = SquadFile(self.path, version, [], [], [])
        for number, article in enumerate(articles):
            where = _Where(self.path, title=f"#{number}", qid="-")
            if not isinstance(article, dict):
                raise where.error("article is not a JSON object")
            where.title = str(self._require(article, "title", where, str))
            for paragraph in self._require(article, "paragraphs", where, list):
                self._read_paragraph(paragraph, where)
        self._refuse_if_empty(len(articles))
        return self.result

    def _refuse_if_empty(self, articles: int) -> None:
        """A file with nothing to train or score on is malformed input, not a featurisation crash later."""
        where, paragraphs = _Where(self.path, title="-", qid="-"), len(self.result.contexts)
        if not articles:
            raise where.error("no articles ('data' is empty)")
        if not paragraphs:
            raise where.error(f"no paragraphs in its {articles} article(s)")
        if not self.result.questions:
            raise where.error(f"no questions in its {paragraphs} paragraph(s)")

    @staticmethod
    def _require(container, key: str, where: _Where, kind: type):
        if not isinstance(container, dict) or key not in container:
            raise where.error(f"missing key {key!r}")
        value = container[key]
        if not isinstance(value, kind):
            raise where.error(f"{key!r} should be a {kind.__name__}, got {type(value).__name__}")
        return value

    def _read_paragraph(self, paragraph, article: _Where) -> None:
        where = _Where(self.path, article.title, "-")
        context = self._require(paragraph, "context", where, str)
        if not context.strip():
            raise where.error("empty context")
        index = len(self.result.contexts)
        self.result.contexts.append(context)
        self.result.titles.append(article.title)
        for qa in self._require(paragraph, "qas", where, list):
            self.result.questions.append(self._read_question(qa, context, index, article.title))

    def _read_question(self, qa, context: str, paragraph: int, title: str) -> Question:
        where = _Where(self.path, title, "?")
        where.qid = str(self._require(qa, "id", where, str))
        if where.qid in self.seen_ids:
            raise where.error("duplicate question id")
        self.seen_ids.add(where.qid)
        text = self._require(qa, "question", where, str)
        if not text.strip():
            raise where.error("empty question")
        answers = self._require(qa, "answers", where, list)
        impossible = qa.get("is_impossible", False)
        if impossible and answers:
            raise where.error(f"is_impossible is true but it has {len(answers)} answer(s)")
        if not impossible and not answers:
            raise where.error("no answers and not marked is_impossible")
        texts, starts = [], []
        for answer in answers:
            answer_text = self._require(answer, "text", where, str)
            start = self._require(answer, "answer_start", where, int)
            texts.append(answer_text)
            starts.append(self._locate(answer_text, start, context, where))
        return Question(where.qid, text, paragraph, tuple(texts), tuple(starts))

    def _locate(self, text: str, start: int, context: str, where: _Where) -> int:
        if not text.strip():
            raise where.error("empty answer text")
        if context.startswith(text, start):
            return start
        nearest = _nearest_occurrence(context, text, start)
        if nearest is None:
            raise where.error(f"answer {text!r} does not occur in the context")
        if self.strict:
            raise where.error(f"answer {text!r} is not at answer_start {start} (it occurs at {nearest})")
        self.result.repaired += 1
        return nearest


def _nearest_occurrence(context: str, text: str, start: int) -> int | None:
    best = None
    position = context.find(text)
    while position != -1:
        if best is None or abs(position - start) < abs(best - start):
            best = position
        position = context.find(text, position + 1)
    return best


def load_json(path: str | Path):
    """Parse a JSON or .json.gz file, turning parse errors into SquadFormatError."""
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise SquadFormatError(f"{path}: not valid JSON: {error}") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as error:
        raise SquadFormatError(f"{path}: not readable as UTF-8 JSON: {error}") from None


def read_squad(path: str | Path, strict: bool = False) -> SquadFile:
    """Read and validate one SQuAD v1.1 or v2.0 file."""
    raw = load_json(path)
    if not isinstance(raw, dict):
        raise SquadFormatError(f"{path}: article '-', question -: top level is not a JSON object")
    return _Reader(str(path), strict).read(raw)
