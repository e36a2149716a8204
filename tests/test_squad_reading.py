import copy
import gzip
import json

import pytest

from qanet.data.squad import SquadFormatError, read_squad
from tests.conftest import shared_file

CONTEXT = "Denver Broncos won Super Bowl 50 in Santa Clara. The Broncos beat the Panthers."


def _dataset(**question_overrides) -> dict:
    question = {"id": "q1", "question": "Who won?", "answers": [{"text": "Denver Broncos", "answer_start": 0}]}
    question.update(question_overrides)
    return {"version": "1.1", "data": [{"title": "Super_Bowl", "paragraphs": [
        {"context": CONTEXT, "qas": [question]}]}]}


def _write(tmp_path, content, name="data.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def _error(tmp_path, content, strict=False) -> str:
    path = _write(tmp_path, content)
    with pytest.raises(SquadFormatError) as caught:
        read_squad(path, strict=strict)
    message = str(caught.value)
    assert "\n" not in message
    return message.replace(path, "FILE")


def test_reads_a_valid_file_and_counts(tmp_path):
    squad = read_squad(_write(tmp_path, _dataset()))
    assert squad.counts() == {"articles": 1, "paragraphs": 1, "questions": 1, "unanswerable": 0,
                              "answers_repaired": 0}
    assert squad.questions[0].answers == ("Denver Broncos",)


def test_reads_gzip(tmp_path):
    path = tmp_path / "data.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(_dataset(), handle)
    assert len(read_squad(path).questions) == 1


def test_not_json(tmp_path):
    assert _error(tmp_path, '{"data": [').startswith("FILE: not valid JSON: Expecting value: line 1 column 11")


def test_not_utf8_gzip(tmp_path):
    path = tmp_path / "data.json.gz"
    path.write_bytes(b"not gzip")
    with pytest.raises(SquadFormatError, match="not readable as UTF-8 JSON"):
        read_squad(path)


def test_top_level_not_an_object(tmp_path):
    assert _error(tmp_path, "[]") == "FILE: article '-', question -: top level is not a JSON object"


def test_missing_data(tmp_path):
    assert _error(tmp_path, {"version": "1.1"}) == "FILE: article '-', question -: missing key 'data'"


def test_missing_title(tmp_path):
    dataset = _dataset()
    del dataset["data"][0]["title"]
    assert _error(tmp_path, dataset) == "FILE: article '#0', question -: missing key 'title'"


def test_missing_context(tmp_path):
    dataset = _dataset()
    del dataset["data"][0]["paragraphs"][0]["context"]
    assert _error(tmp_path, dataset) == "FILE: article 'Super_Bowl', question -: missing key 'context'"


def test_missing_question_id(tmp_path):
    dataset = _dataset()
    del dataset["data"][0]["paragraphs"][0]["qas"][0]["id"]
    assert _error(tmp_path, dataset) == "FILE: article 'Super_Bowl', question ?: missing key 'id'"


@pytest.mark.parametrize("key", ["question", "answers"])
def test_missing_question_keys(tmp_path, key):
    dataset = _dataset()
    del dataset["data"][0]["paragraphs"][0]["qas"][0][key]
    assert _error(tmp_path, dataset) == f"FILE: article 'Super_Bowl', question q1: missing key '{key}'"


@pytest.mark.parametrize("key", ["text", "answer_start"])
def test_missing_answer_keys(tmp_path, key):
    dataset = _dataset()
    del dataset["data"][0]["paragraphs"][0]["qas"][0]["answers"][0][key]
    assert _error(tmp_path, dataset) == f"FILE: article 'Super_Bowl', question q1: missing key '{key}'"


def test_wrong_type(tmp_path):
    message = _error(tmp_path, _dataset(answers=[{"text": "Denver", "answer_start": "0"}]))
    assert message == "FILE: article 'Super_Bowl', question q1: 'answer_start' should be a int, got str"


def test_empty_context(tmp_path):
    dataset = _dataset()
    dataset["data"][0]["paragraphs"][0]["context"] = "  "
    assert _error(tmp_path, dataset) == "FILE: article 'Super_Bowl', question -: empty context"


def test_empty_question(tmp_path):
    assert _error(tmp_path, _dataset(question=" ")) == "FILE: article 'Super_Bowl', question q1: empty question"


def test_duplicate_ids(tmp_path):
    dataset = _dataset()
    qas = dataset["data"][0]["paragraphs"][0]["qas"]
    qas.append(copy.deepcopy(qas[0]))
    assert _error(tmp_path, dataset) == "FILE: article 'Super_Bowl', question q1: duplicate question id"


def test_impossible_with_answers(tmp_path):
    dataset = _dataset(is_impossible=True)
    dataset["version"] = "v2.0"
    assert _error(tmp_path, dataset) == (
        "FILE: article 'Super_Bowl', question q1: is_impossible is true but it has 1 answer(s)")


def test_unanswerable_v2_question_is_kept(tmp_path):
    dataset = _dataset(is_impossible=True, answers=[])
    squad = read_squad(_write(tmp_path, dataset))
    assert squad.unanswerable == 1 and squad.questions[0].answers == ()


def test_no_answers_without_is_impossible(tmp_path):
    message = _error(tmp_path, _dataset(answers=[]))
    assert message == "FILE: article 'Super_Bowl', question q1: no answers and not marked is_impossible"


def test_answer_not_at_start_is_moved_to_the_nearest_occurrence(tmp_path):
    # "Broncos" occurs at 7 and at 53; 50 is closest to 53.
    squad = read_squad(_write(tmp_path, _dataset(answers=[{"text": "Broncos", "answer_start": 50}])))
    assert squad.repaired == 1
    assert squad.questions[0].answer_starts == (53,)
    assert CONTEXT[53:60] == "Broncos"


def test_answer_not_at_start_fails_under_strict(tmp_path):
    message = _error(tmp_path, _dataset(answers=[{"text": "Broncos", "answer_start": 50}]), strict=True)
    assert message == (
        "FILE: article 'Super_Bowl', question q1: answer 'Broncos' is not at answer_start 50 (it occurs at 53)")


def test_answer_absent_from_context(tmp_path):
    message = _error(tmp_path, _dataset(answers=[{"text": "Seahawks", "answer_start": 0}]))
    assert message == "FILE: article 'Super_Bowl', question q1: answer 'Seahawks' does not occur in the context"


def test_real_dev_v11_reads_without_repairs():
    squad = read_squad(shared_file("squad/v1.1/dev-v1.1.json"), strict=True)
    assert squad.counts() == {"articles": 48, "paragraphs": 2067, "questions": 10570, "unanswerable": 0,
                              "answers_repaired": 0}


def test_real_dev_v20_keeps_every_question():
    squad = read_squad(shared_file("squad/v2.0/dev-v2.0.reconstructed.json"))
    assert (len(squad.questions), squad.unanswerable) == (11873, 5945)
