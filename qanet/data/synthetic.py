"""A deterministic generator of SQuAD-format reading-comprehension data.

Paragraphs describe several invented people and organisations whose names are
built from syllables, so almost none are in any word-vector vocabulary: a model
must read characters and match the question's name against the right sentence,
with the other entities of the paragraph as distractors. Questions paraphrase
the sentence that answers them, and answers include multi-token names, dates
and numbers. Same seed, same bytes.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from dataclasses import asdict, dataclass
from pathlib import Path

from qanet.config import SyntheticConfig
from qanet.files import replace_atomically

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th", "vr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ei"]
_CODAS = ["", "", "", "n", "r", "s", "l", "th", "x"]
_PLACE_PREFIXES = ["Port", "Lake", "Mount", "New", "Saint", "Upper", "Fort"]
_ORG_KINDS = ["Institute", "Guild", "Society", "Company", "Academy", "Orchestra", "Museum", "League"]
_PROFESSIONS = ["engineer", "painter", "physician", "sailor", "architect", "composer", "geologist", "teacher",
                "astronomer", "banker", "poet", "chemist", "carpenter", "lawyer", "botanist", "pilot"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]


@dataclass(frozen=True)
class _Fact:
    sentences: tuple[str, ...]  # paraphrases; fields in braces name the entity slots
    questions: tuple[tuple[str, str], ...]  # (question template, slot that answers it)


# Each fact's sentences and questions use different wording, so matching needs more than copying.
_FACTS = (
    _Fact(("{person} was born in {place} in {year}.", "In {year}, {person} was born in {place}."),
          (("Where was {person} born?", "place"), ("In what year was {person} born?", "year"),
           ("What is the birthplace of {person}?", "place"), ("When did {person} come into the world?", "year"))),
    _Fact(("In {year}, {person} founded {org}.", "{person} established {org} in {year}."),
          (("Who founded {org}?", "person"), ("What did {person} establish?", "org"),
           ("When was {org} created?", "year"))),
    _Fact(("{person} worked as a {profession} in {place}.", "For many years {person} was a {profession} in {place}."),
          (("What was the occupation of {person}?", "profession"), ("In which town did {person} work?", "place"))),
    _Fact(("On {date}, {person} moved to {place}.", "{person} settled in {place} on {date}."),
          (("When did {person} move to {place}?", "date"), ("Where did {person} relocate?", "place"))),
    _Fact(("By {year}, {org} had {number} members.", "{org} counted {number} members in {year}."),
          (("How many members did {org} have?", "number"), ("What was the membership of {org}?", "number"))),
    _Fact(("{person} married {spouse} in {year}.", "In {year}, {spouse} and {person} were married."),
          (("Whom did {person} marry?", "spouse"), ("Who became the spouse of {person}?", "spouse"))),
)


class _Names:
    """Invented names; each is used once per data set so that names identify entities."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self) -> str:
        while True:
            syllables = self.rng.randint(2, 3)
            word = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + self.rng.choice(_CODAS)
                           for _ in range(syllables)).capitalize()
            if word not in self.used:
                self.used.add(word)
                return word

    def person(self) -> str:
        return f"{self.word()} {self.word()}"

    def place(self) -> str:
        return self.word() if self.rng.random() < 0.6 else f"{self.rng.choice(_PLACE_PREFIXES)} {self.word()}"

    def org(self) -> str:
        return f"the {self.word()} {self.rng.choice(_ORG_KINDS)}"


def _slot_values(names: _Names, person: str, org: str) -> dict[str, str]:
    rng = names.rng
    return {
        "person": person,
        "org": org,
        "spouse": names.person(),
        "place": names.place(),
        "year": str(rng.randint(1600, 2020)),
        "date": f"{rng.randint(1, 28)} {rng.choice(_MONTHS)} {rng.randint(1600, 2020)}",
        "number": f"{rng.randint(2, 9)},{rng.randint(0, 999):03d}" if rng.random() < 0.5 else str(rng.randint(12, 999)),
        "profession": rng.choice(_PROFESSIONS),
    }


def _render(template: str, values: dict[str, str]) -> tuple[str, dict[str, int]]:
    """The filled template and the character offset of each slot in it."""
    text, offsets = "", {}
    for literal, slot, _, _ in string.Formatter().parse(template):
        text += literal
        if slot is not None:
            offsets[slot] = len(text)
            text += values[slot]
    return text[0].upper() + text[1:], offsets


def _paragraph(names: _Names, number: int, prefix: str) -> dict:
    rng = names.rng
    people = [names.person() for _ in range(rng.randint(2, 4))]
    orgs = [names.org() for _ in people]
    sentences, candidates = [], []
    for person, org in zip(people, orgs, strict=True):
        for fact in rng.sample(_FACTS, rng.randint(2, 3)):
            values = _slot_values(names, person, org)
            sentences.append((fact, values, rng.choice(fact.sentences)))
    rng.shuffle(sentences)
    context = ""
    for fact, values, template in sentences:
        text, offsets = _render(template, values)
        start = len(context) + (1 if context else 0)
        context = f"{context} {text}" if context else text
        for question, slot in fact.questions:
            answer_start = start + offsets[slot]
            candidates.append((_render(question, values)[0], context[answer_start:answer_start + len(values[slot])],
                               answer_start))
    qas = [{"id": f"{prefix}-{number:05d}-{index:02d}", "question": question,
            "answers": [{"text": answer, "answer_start": start}]}
           for index, (question, answer, start) in enumerate(rng.sample(candidates, min(6, len(candidates))))]
    return {"context": context, "qas": qas}


def generate(paragraphs: int, seed: int, prefix: str) -> dict:
    """One SQuAD v1.1-format data set of `paragraphs` paragraphs, 10 to an article."""
    names = _Names(random.Random(seed))
    articles = []
    for number in range(paragraphs):
        if number % 10 == 0:
            articles.append({"title": f"{prefix.capitalize()} chronicle {len(articles) + 1}", "paragraphs": []})
        articles[-1]["paragraphs"].append(_paragraph(names, number, prefix))
    return {"version": "1.1", "data": articles}


def write_synthetic(config: SyntheticConfig, cache_dir: Path) -> dict[str, Path]:
    """Generate train and dev files once per configuration; later calls reuse them."""
    key = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:12]
    directory = Path(cache_dir) / f"synthetic-{key}"
    paths = {"train": directory / "train.json", "dev": directory / "dev.json"}
    if all(path.exists() for path in paths.values()):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    sizes = {"train": config.train_paragraphs, "dev": config.dev_paragraphs}
    for offset, (name, path) in enumerate(paths.items()):
        dataset = generate(sizes[name], config.seed + offset, prefix=name)
        text = json.dumps(dataset, ensure_ascii=False)
        replace_atomically(path, lambda staging, text=text: staging.write_text(text, encoding="utf-8"))
    return paths
