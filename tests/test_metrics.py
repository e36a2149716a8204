import json

import pytest

from qanet.metrics import evaluate, evaluate_v1, evaluate_v2, exact_match, f1_v1, f1_v2, is_v2, normalize_answer
from tests.conftest import SHARED_DATA, run_python, shared_file


def _expected_scores() -> dict:
    path = SHARED_DATA / "squad/predictions/expected_scores.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.mark.parametrize("prediction_file", sorted(_expected_scores()) or ["<missing expected_scores.json>"])
def test_matches_official_scripts_on_real_predictions(prediction_file):
    expected = json.loads(shared_file("squad/predictions/expected_scores.json").read_text())[prediction_file]
    dataset = json.loads(shared_file(f"squad/{expected['dataset']}").read_text())
    predictions = json.loads(shared_file(f"squad/{prediction_file}").read_text())
    result = evaluate(dataset, predictions)
    official = expected["official_script_output"]
    assert list(result) == list(official)
    for key, value in official.items():
        assert result[key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("version", ["1.1", "v2.0"])
def test_command_line_prints_the_official_json(version):
    expected = json.loads(shared_file("squad/predictions/expected_scores.json").read_text())
    name, entry = next((k, v) for k, v in expected.items() if f"/{version}/" in k)
    squad = SHARED_DATA / "squad"
    result = run_python("-m", "qanet.metrics", str(squad / entry["dataset"]), str(squad / name))
    printed = json.loads(result.stdout)
    assert printed.keys() == entry["official_script_output"].keys()
    assert all(printed[k] == pytest.approx(v, abs=1e-9) for k, v in entry["official_script_output"].items())


def test_normalisation_drops_case_punctuation_articles_and_extra_space():
    assert normalize_answer("  The  Denver, Broncos!  ") == "denver broncos"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"


def test_exact_and_f1_per_answer():
    assert exact_match("the Broncos", "Broncos.") == 1
    assert f1_v1("Denver Broncos", "Broncos") == pytest.approx(2 / 3)
    assert f1_v1("", "Broncos") == 0
    assert f1_v1("cat cat", "cat") == pytest.approx(2 / 3)


def test_v2_empty_answer_rule():
    assert f1_v2("", "") == 1
    assert f1_v2("something", "") == 0
    assert f1_v2("", "something") == 0
    assert f1_v2("a", "the") == 1  # both normalise to nothing


def _articles(*questions):
    return [{"title": "t", "paragraphs": [{"context": "c", "qas": list(questions)}]}]


def test_v1_takes_the_best_ground_truth_and_scores_missing_predictions_zero(capsys):
    articles = _articles({"id": "a", "answers": [{"text": "red car"}, {"text": "car"}]},
                         {"id": "b", "answers": [{"text": "blue"}]})
    result = evaluate_v1(articles, {"a": "car"})
    assert result == {"exact_match": 50.0, "f1": 50.0}
    assert "Unanswered question b will receive score 0." in capsys.readouterr().err


def test_v2_breaks_down_answerable_and_unanswerable():
    articles = _articles({"id": "a", "answers": [{"text": "blue"}]},
                         {"id": "b", "answers": [], "is_impossible": True},
                         {"id": "c", "answers": [], "is_impossible": True})
    result = evaluate_v2(articles, {"a": "blue", "b": "", "c": "green"})
    assert result["exact"] == pytest.approx(200 / 3)
    assert (result["HasAns_exact"], result["HasAns_total"]) == (100.0, 1)
    assert (result["NoAns_exact"], result["NoAns_total"]) == (50.0, 2)


def test_version_detection():
    assert is_v2({"version": "v2.0", "data": []})
    assert is_v2({"version": "1.1", "data": _articles({"id": "a", "answers": [], "is_impossible": True})})
    assert not is_v2({"version": "1.1", "data": _articles({"id": "a", "answers": [{"text": "x"}]})})


def _tiny_dataset(tmp_path):
    dataset = tmp_path / "dev.json"
    dataset.write_text(json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": "Paris is in France.", "qas": [{"id": "q1", "question": "Where?",
                                                    "answers": [{"text": "France", "answer_start": 12}]}]}]}]}))
    return dataset


@pytest.mark.parametrize("predictions,message", [
    ('["a", "b"]', "expected a JSON object mapping question id to answer text, not a list"),
    ('"text"', "expected a JSON object mapping question id to answer text, not a str"),
    ('{"q1": 3}', "question 'q1': the answer must be a string, not 3"),
    ('{"other": "x"}', "no prediction is for a question of"),
    ("", "the predictions file is not valid JSON"),
    ("{", "the predictions file is not valid JSON"),
    ("{}", "no prediction is for a question of"),
])
def test_predictions_that_would_give_a_wrong_number_are_refused_in_one_line(tmp_path, predictions, message):
    path = tmp_path / "predictions.json"
    path.write_text(predictions)
    result = run_python("-m", "qanet.metrics", str(_tiny_dataset(tmp_path)), str(path), check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().startswith(f"error: {path}: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_paths_are_refused_and_extra_ids_counted(tmp_path):
    dataset = _tiny_dataset(tmp_path)
    for missing in (tmp_path / "absent.json", tmp_path):  # a missing path, a directory
        result = run_python("-m", "qanet.metrics", str(dataset), str(missing), check=False)
        assert result.returncode == 2 and "cannot read the predictions file" in result.stderr
    path = tmp_path / "predictions.json"
    path.write_text('{"q1": "France", "elsewhere": "x"}')
    result = run_python("-m", "qanet.metrics", str(dataset), str(path))
    assert json.loads(result.stdout)["exact_match"] == 100.0 and "1 predictions for ids not in" in result.stderr
