"""QANet: embedding -> embedding encoder (shared by context and question) -> context-query
attention -> one model-encoder stack applied three times -> start/end pointers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qanet.config import ModelConfig
from qanet.data.vocab import PAD
from qanet.layers import ContextQueryAttention, Dropout, Embedding, EncoderStack, Pointer


class QANet(nn.Module):
    """QANet as `config` describes it, over frozen `word_vectors` (vocabulary, word dim) and a character
    vocabulary of `chars` entries. `recompute_every` k: in training, model-encoder blocks 0, k, 2k, ... keep
    only their input and are recomputed in backward (TrainConfig.recompute_every; 0: none)."""

    def __init__(self, config: ModelConfig, word_vectors: torch.Tensor, chars: int, recompute_every: int = 0) -> None:
        super().__init__()
        self.config = config
        d = config.hidden
        self.embedding = Embedding(config, word_vectors, chars)
        self.embedding_encoder = EncoderStack(config, "embedding")
        self.attention = ContextQueryAttention(config)
        self.resize = nn.Linear(4 * d, d)
        self.model_encoder = EncoderStack(config, "model", recompute_every)
        self.pointer = Pointer(config)
        self.dropout = Dropout(config.dropout)

    def forward(self, context_words: torch.Tensor, context_chars: torch.Tensor, question_words: torch.Tensor,
                question_chars: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Word ids of the contexts (B, Lc) and questions (B, Lq), PAD for padding, and their character ids
        (B, Lc, W), (B, Lq, W) -> start and end logits (B, Lc) in fp32; padding positions hold the dtype's
        minimum."""
        c_mask, q_mask = context_words != PAD, question_words != PAD
        c = self.embedding_encoder(self.embedding(context_words, context_chars), c_mask)
        q = self.embedding_encoder(self.embedding(question_words, question_chars), q_mask)
        x = self.resize(self.attention(c, q, c_mask, q_mask))
        # M0, M1, M2: the same weights applied three times
        m0 = self.model_encoder(self.dropout(x), c_mask)
        if self.config.dropout_placement == "nlplearn":
            # inputs of passes 0 and 2 dropped; NLPLearn overwrites M1 with its dropped copy, so the
            # start pointer sees that copy too
            m1 = self.dropout(self.model_encoder(m0, c_mask))
            m2 = self.model_encoder(m1, c_mask)
        else:
            m1 = self.model_encoder(self.dropout(m0), c_mask)
            m2 = self.model_encoder(self.dropout(m1), c_mask)
        return self.pointer(m0, m1, m2, c_mask)

    def loss(self, start_logits, end_logits, start, end) -> torch.Tensor:
        """Batch mean of -log p_start(y1) - log p_end(y2), the paper's and NLPLearn's loss: logits (B, Lc) and
        the answers' start and end positions (B,) -> a scalar.

        With `output = "softmax"` the logits pass through a softmax first, as in the seed
        article: cross-entropy then applies a second softmax to probabilities in [0, 1]."""
        if self.config.output == "softmax":
            start_logits, end_logits = start_logits.softmax(dim=1), end_logits.softmax(dim=1)
        return F.cross_entropy(start_logits.float(), start) + F.cross_entropy(end_logits.float(), end)


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters (the frozen word vectors are a buffer, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
