"""SQuAD v1.1 / v2.0 EM and F1 as a Hugging Face `evaluate` module, computed by qanet.metrics.

Loads offline from its directory:

    metric = evaluate.load("bench/squad_metric")                      # v1.1 rules
    metric = evaluate.load("bench/squad_metric", config_name="v2.0")  # v2.0 rules

Inputs follow the hub's `squad` metric: predictions are {"id", "prediction_text"} and
references are {"id", "answers": {"text": [...], "answer_start": [...]}}; an
unanswerable v2.0 question has empty `text`.
"""

import datasets
import evaluate

from qanet.metrics import evaluate_v1, evaluate_v2

_ANSWERS = datasets.Sequence({"text": datasets.Value("string"), "answer_start": datasets.Value("int32")})


class SquadMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Official SQuAD exact match and F1 (v1.1 by default, v2.0 with config_name='v2.0').",
            citation="Rajpurkar et al., SQuAD: 100,000+ Questions for Machine Comprehension of Text, EMNLP 2016.",
            inputs_description="predictions: [{'id', 'prediction_text'}]; references: [{'id', 'answers'}]",
            features=datasets.Features({
                "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
                "references": {"id": datasets.Value("string"), "answers": _ANSWERS},
            }),
        )

    def _compute(self, predictions, references):
        if self.config_name not in ("default", "v1.1", "v2.0"):
            raise ValueError(f"config_name {self.config_name!r}: expected 'v1.1' or 'v2.0'")
        answers = {p["id"]: p["prediction_text"] for p in predictions}
        questions = [{"id": r["id"], "answers": [{"text": text} for text in r["answers"]["text"]]}
                     for r in references]
        articles = [{"paragraphs": [{"qas": questions}]}]
        scorer = evaluate_v2 if self.config_name == "v2.0" else evaluate_v1
        return scorer(articles, answers)
