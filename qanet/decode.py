"""The most probable answer span with start <= end < start + max_len, for a whole batch at once."""

from __future__ import annotations

import torch


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """argmax over (i, j) of log p_start(i) + log p_end(j), subject to i <= j < i + max_len."""
    length = start_logits.shape[1]
    scores = start_logits.float().log_softmax(1)[:, :, None] + end_logits.float().log_softmax(1)[:, None, :]
    offsets = torch.arange(length, device=scores.device)
    width = offsets[None, :] - offsets[:, None]  # j - i
    allowed = (width >= 0) & (width < max_len)
    flat = scores.masked_fill(~allowed, float("-inf")).flatten(1).argmax(1)
    return flat // length, flat % length
