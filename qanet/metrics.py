"""The official SQuAD metrics, exact match and F1, for v1.1 and v2.0.

Each function reproduces evaluate-v1.1.py / evaluate-v2.0.py rule for rule,
including the order in which scores are summed, so results agree with the
official scripts to the last few bits. A question with no prediction scores 0
(v1.1 prints a warning and does the same; v2.0 would crash).

    python -m qanet.metrics DATASET.json PREDICTIONS.json
"""

from __future__ import annotations

import argparse
import json
import re
import string
import sys
from collections import Counter
from collections.abc import Iterable, Mapping

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(truth))


def _token_f1(prediction_tokens: list[str], truth_tokens: list[str]) -> float:
    common = Counter(prediction_tokens) & Counter(truth_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0
    precision = 1.0 * overlap / len(prediction_tokens)
    recall = 1.0 * overlap / len(truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def f1_v1(prediction: str, truth: str) -> float:
    return _token_f1(normalize_answer(prediction).split(), normalize_answer(truth).split())


def f1_v2(prediction: str, truth: str) -> float:
    """v2.0 adds one rule: an empty answer scores 1 against an empty answer, else 0."""
    prediction_tokens = normalize_answer(prediction).split() if prediction else []
    truth_tokens = normalize_answer(truth).split() if truth else []
    if not prediction_tokens or not truth_tokens:
        return int(prediction_tokens == truth_tokens)
    return _token_f1(prediction_tokens, truth_tokens)


def _questions(articles: Iterable[Mapping]) -> Iterable[Mapping]:
    for article in articles:
        for paragraph in article["paragraphs"]:
            yield from paragraph["qas"]


def _warn_missing(qid: str) -> None:
    print(f"Unanswered question {qid} will receive score 0.", file=sys.stderr)


def evaluate_v1(articles: Iterable[Mapping], predictions: Mapping[str, str]) -> dict:
    exact = f1 = total = 0
    for qa in _questions(articles):
        total += 1
        if qa["id"] not in predictions:
            _warn_missing(qa["id"])
            continue
        truths = [answer["text"] for answer in qa["answers"]]
        prediction = predictions[qa["id"]]
        exact += max(exact_match(prediction, truth) for truth in truths)
        f1 += max(f1_v1(prediction, truth) for truth in truths)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def _summary(exact: dict[str, float], f1: dict[str, float], qids: list[str]) -> dict:
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact[qid] for qid in qids) / total,
        "f1": 100.0 * sum(f1[qid] for qid in qids) / total,
        "total": total,
    }


def evaluate_v2(articles: Iterable[Mapping], predictions: Mapping[str, str]) -> dict:
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    answerable: list[str] = []
    unanswerable: list[str] = []
    for qa in _questions(articles):
        qid = qa["id"]
        (answerable if qa["answers"] else unanswerable).append(qid)
        truths = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])] or [""]
        if qid not in predictions:
            _warn_missing(qid)
            exact[qid] = f1[qid] = 0
            continue
        prediction = predictions[qid]
        exact[qid] = max(exact_match(prediction, truth) for truth in truths)
        f1[qid] = max(f1_v2(prediction, truth) for truth in truths)
    result = _summary(exact, f1, list(exact))
    for prefix, qids in (("HasAns", answerable), ("NoAns", unanswerable)):
        if qids:
            result.update({f"{prefix}_{key}": value for key, value in _summary(exact, f1, qids).items()})
    return result


def is_v2(dataset: Mapping) -> bool:
    """A dataset is v2.0 if it says so or if any question carries `is_impossible`."""
    if str(dataset.get("version", "")).lstrip("v").startswith("2"):
        return True
    return any("is_impossible" in qa for qa in _questions(dataset["data"]))


def evaluate(dataset: Mapping, predictions: Mapping[str, str]) -> dict:
    """Score predictions against a parsed SQuAD JSON file, detecting its version."""
    scorer = evaluate_v2 if is_v2(dataset) else evaluate_v1
    return scorer(dataset["data"], predictions)


class InputError(ValueError):
    """A dataset or predictions file that cannot be scored: scoring it would give a wrong number."""


def _read_json(path: str, what: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the {what} file ({error.__class__.__name__}: {error})") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: the {what} file is not valid JSON ({error})") from None


def read_inputs(dataset_path: str, predictions_path: str) -> tuple[dict, dict[str, str]]:
    """The dataset and the predictions, checked: a SQuAD object with a `data` list, and an object mapping
    question ids to answer strings of which at least one is a question of the dataset (extra ids are
    ignored, as the official scripts do, and counted on stderr)."""
    dataset = _read_json(dataset_path, "dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        raise InputError(f"{dataset_path}: not a SQuAD file (expected an object with a 'data' list)")
    predictions = _read_json(predictions_path, "predictions")
    if not isinstance(predictions, dict):
        raise InputError(f"{predictions_path}: expected a JSON object mapping question id to answer text, "
                         f"not a {type(predictions).__name__}")
    for qid, answer in predictions.items():
        if not isinstance(answer, str):
            raise InputError(f"{predictions_path}: question {qid!r}: the answer must be a string, not {answer!r}")
    try:
        ids = {qa["id"] for qa in _questions(dataset["data"])}
    except (KeyError, TypeError) as error:
        raise InputError(f"{dataset_path}: not a SQuAD file ({error!r} missing or malformed)") from None
    if not ids:
        raise InputError(f"{dataset_path}: the dataset has no questions")
    if not ids & predictions.keys():
        raise InputError(f"{predictions_path}: no prediction is for a question of {dataset_path} (another file's?)")
    extra = len(predictions.keys() - ids)
    if extra:
        print(f"{extra} predictions for ids not in {dataset_path} are ignored", file=sys.stderr)
    return dataset, predictions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m qanet.metrics",
        description="Official SQuAD v1.1 / v2.0 EM and F1 (version detected from the dataset).",
    )
    parser.add_argument("dataset", help="SQuAD JSON file (v1.1 or v2.0)")
    parser.add_argument("predictions", help="JSON object mapping question id to answer text")
    args = parser.parse_args(argv)
    try:
        dataset, predictions = read_inputs(args.dataset, args.predictions)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    # laid out as the official scripts print: v2.0's indented, v1.1's on one line
    print(json.dumps(evaluate(dataset, predictions), indent=2 if is_v2(dataset) else None))


if __name__ == "__main__":
    main()
