"""Prediction and scoring: the most probable answer span from a batch's logits, the answers a model gives to
the questions of a prepared split, and their official EM/F1. (qanet.predict answers questions about new text
with a checkpoint, decoding spans the same way.)"""

from __future__ import annotations

import numpy as np
import torch

from qanet.config import RunConfig
from qanet.data.batching import BatchSource, evaluation_batches
from qanet.data.features import Split
from qanet.device import autocast
from qanet.metrics import evaluate_v1, evaluate_v2
from qanet.model import QANet


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The most probable span of each question of a batch at once: start and end logits (B, L) -> the start
    and end indices (B,) of the argmax over (i, j) of log p_start(i) + log p_end(j), subject to
    i <= j < i + max_len."""
    length = start_logits.shape[1]
    scores = start_logits.float().log_softmax(1)[:, :, None] + end_logits.float().log_softmax(1)[:, None, :]
    offsets = torch.arange(length, device=scores.device)
    width = offsets[None, :] - offsets[:, None]  # j - i
    allowed = (width >= 0) & (width < max_len)
    flat = scores.masked_fill(~allowed, float("-inf")).flatten(1).argmax(1)
    return flat // length, flat % length


@torch.no_grad()
def predict_answers(model: QANet, source: BatchSource, config: RunConfig, questions: np.ndarray | None = None
                    ) -> dict[str, str]:
    """Answer text for each question of the source's split (or each of `questions`), cut from the original
    context by character offsets. Batches hold contexts of similar length, so little is padding."""
    model.eval()
    split = source.split
    batches = evaluation_batches(split, config.train.eval_batch_size, questions)
    questions_in_order = np.concatenate(batches)
    order = torch.from_numpy(questions_in_order).to(source.device)
    whole_context = int(split.contexts.lengths.max())  # evaluation never truncates or drops a question
    spans, begin = [], 0
    for questions in batches:
        widths = source.widths(questions, whole_context, config.data.question_len)
        batch = source.gather(order[begin:begin + len(questions)], *widths)
        begin += len(questions)
        with autocast(source.device, config.train.bf16):
            start_logits, end_logits = model(batch["context_words"], batch["context_chars"],
                                             batch["question_words"], batch["question_chars"])
        spans.append(torch.stack(best_spans(start_logits, end_logits, config.train.max_answer_len), dim=1))
    starts_ends = torch.cat(spans).tolist()  # the one wait for the device
    return {split.ids[question]: split.answer_text(question, start, end)
            for question, (start, end) in zip(questions_in_order.tolist(), starts_ends, strict=True)}


def score(split: Split, predictions: dict[str, str]) -> dict:
    """Official EM/F1 over the questions predicted (all of them unless a limit was set)."""
    questions = [{"id": qid, "answers": [{"text": t} for t in answers]}
                 for qid, answers in zip(split.ids, split.answers, strict=True) if qid in predictions]
    articles = [{"paragraphs": [{"qas": questions}]}]
    if split.version.lstrip("v").startswith("2"):
        return evaluate_v2(articles, predictions)
    result = evaluate_v1(articles, predictions)
    return {"exact": result["exact_match"], "f1": result["f1"], "total": len(questions)}
