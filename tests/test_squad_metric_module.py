"""The `evaluate` module loads from its local path with every Hugging Face network switch off."""

import json

import pytest

from tests.conftest import ROOT, SHARED_DATA, run_python, shared_file

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

_SCRIPT = """
import json, sys
import evaluate
from qanet.data.squad import load_json
dataset, predictions, config = load_json(sys.argv[1]), load_json(sys.argv[2]), sys.argv[3]
refs, preds = [], []
for article in dataset["data"]:
    for paragraph in article["paragraphs"]:
        for qa in paragraph["qas"]:
            refs.append({"id": qa["id"], "answers": {"text": [a["text"] for a in qa["answers"]],
                                                     "answer_start": [a["answer_start"] for a in qa["answers"]]}})
            preds.append({"id": qa["id"], "prediction_text": predictions.get(qa["id"], "")})
metric = evaluate.load(str(sys.argv[4]), config_name=config)
print(json.dumps(metric.compute(predictions=preds, references=refs)))
"""


@pytest.mark.parametrize("version,config", [("1.1", "v1.1"), ("v2.0", "v2.0")])
def test_offline_module_matches_official_scores(version, config):
    expected = json.loads(shared_file("squad/predictions/expected_scores.json").read_text())
    name, entry = next((k, v) for k, v in expected.items() if f"/{version}/" in k)
    result = run_python("-c", _SCRIPT, str(SHARED_DATA / "squad" / entry["dataset"]),
                        str(SHARED_DATA / "squad" / name), config, str(ROOT / "bench" / "squad_metric"),
                        env=OFFLINE)
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    for key, value in entry["official_script_output"].items():
        assert scores[key] == pytest.approx(value, abs=1e-9), key


def test_offline_module_on_hand_made_inputs():
    script = """
import json, sys, evaluate
metric = evaluate.load(sys.argv[1])
print(json.dumps(metric.compute(
    predictions=[{"id": "a", "prediction_text": "the cat"}, {"id": "b", "prediction_text": "dog"}],
    references=[{"id": "a", "answers": {"text": ["cat"], "answer_start": [0]}},
                {"id": "b", "answers": {"text": ["a bird"], "answer_start": [0]}}])))
"""
    result = run_python("-c", script, str(ROOT / "bench" / "squad_metric"), env=OFFLINE)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"exact_match": 50.0, "f1": 50.0}
