"""Answer questions about a new paragraph with a trained checkpoint (the seed article's demo)."""

from __future__ import annotations

from pathlib import Path

import torch

from qanet.checkpoint import read_checkpoint
from qanet.config import RunConfig
from qanet.data.batching import SequenceTensors, padded_width
from qanet.data.features import encode
from qanet.data.tokenize import Tokenizer
from qanet.data.vocab import Vocabulary
from qanet.evaluation import best_spans
from qanet.model import QANet
from qanet.optimisation import EMA


def load_model(checkpoint: Path) -> tuple[QANet, RunConfig, Vocabulary, Vocabulary]:
    state = read_checkpoint(checkpoint)
    config = RunConfig.from_dict(state["config"])
    words, chars = Vocabulary(state["vocabulary"]["words"]), Vocabulary(state["vocabulary"]["chars"])
    model = QANet(config.model, state["model"]["embedding.word_vectors"], len(chars.items))
    model.load_state_dict(state["model"])
    if state["ema"]:  # answer with the averaged weights, as evaluation does
        averages = EMA(model, config.train.ema_decay)
        averages.load_state_dict(state["ema"])
        averages.swap()
    return model.eval(), config, words, chars


@torch.no_grad()
def answer_questions(checkpoint: Path, context: str, questions: list[str]) -> list[str]:
    model, config, words, chars = load_model(checkpoint)
    tokenizer = Tokenizer()
    paragraph = tokenizer(context)
    question_tokens = [tokenizer(q).words[:config.data.question_len] for q in questions]
    contexts = encode([paragraph.words] * len(questions), words, chars, config.data.char_len)
    asked = encode(question_tokens, words, chars, config.data.char_len)
    rows = torch.arange(len(questions))
    cpu = torch.device("cpu")
    context_words, context_chars = SequenceTensors(contexts, cpu).gather(rows, len(paragraph.words))
    question_width = padded_width(int(asked.lengths.max(initial=1)), config.data.question_len)
    question_words, question_chars = SequenceTensors(asked, cpu).gather(rows, question_width)
    start_logits, end_logits = model(context_words, context_chars, question_words, question_chars)
    starts, ends = best_spans(start_logits, end_logits, config.train.max_answer_len)
    spans = paragraph.spans
    return [context[spans[s, 0]:spans[e, 1]] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
