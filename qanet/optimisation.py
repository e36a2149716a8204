"""How the weights move: the optimiser with its warm-up schedule, one clipped optimisation step, and the
exponential moving average of the weights that evaluation uses."""

from __future__ import annotations

import math

import torch

from qanet.config import RunConfig
from qanet.optimisers import OPTIMISERS


def make_optimizer(model: torch.nn.Module, config: RunConfig):
    """The optimiser `train.optimizer` names (weight decay on matrices only) and its learning-rate schedule."""
    train = config.train
    weights = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    others = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": weights, "weight_decay": train.weight_decay}, {"params": others, "weight_decay": 0.0}]
    optimizer = OPTIMISERS[train.optimizer].build(groups, train.learning_rate, next(model.parameters()).is_cuda)
    if not OPTIMISERS[train.optimizer].warms_up:
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    warmup = max(train.warmup_steps, 2)
    # the paper's inverse-exponential warm-up: lr * log(step + 1) / log(warmup), capped at lr
    return optimizer, torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, math.log(step + 1) / math.log(warmup)))


def optimisation_step(model: torch.nn.Module, optimizer, scheduler, loss: torch.Tensor, *, clip_norm: float
                      ) -> torch.Tensor:
    """Clear the old gradients, backward, clip the gradient norm, step the optimiser and the schedule. Returns
    the gradient norm before clipping, on the device (reading it waits for the device)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    scheduler.step()
    return grad_norm


class EMA:
    """Exponential moving average of the trainable weights of one model, with the warm-up
    decay_n = min(decay, (1 + n) / (10 + n)) so short runs are not dominated by the initial weights.
    Updates and swaps are a few multi-tensor (`torch._foreach`) kernels, not one per weight."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.shadow = {name: p.detach().clone() for name, p in named}
        self.averages = list(self.shadow.values())

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.averages, self.params, 1 - decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's weights with the averages (call again to swap back)."""
        weights = torch._foreach_mul(self.params, 1.0)
        torch._foreach_copy_(self.params, self.averages)
        torch._foreach_copy_(self.averages, weights)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
