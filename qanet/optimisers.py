"""The optimisers a run may name in `train.optimizer`: one table that the configuration (which names exist,
the default learning rate), the trainer (the optimiser, its warm-up) and searches (which runs warm up) all
consult. A new optimiser is one entry here. torch is imported when an optimiser is built, not before, so that
reading a configuration stays quick."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Optimiser:
    # (parameter groups, learning rate, whether the weights are on a GPU) -> a torch.optim.Optimizer
    build: Callable
    default_lr: float  # where train.lr is None
    warms_up: bool  # the paper's inverse-exponential warm-up over train.warmup_steps


def _adam(groups: list[dict], lr: float, on_gpu: bool):
    import torch

    # the paper's betas and epsilon; on a GPU one fused kernel does the whole update
    return torch.optim.Adam(groups, lr=lr, betas=(0.8, 0.999), eps=1e-7, fused=True if on_gpu else None)


def _adadelta(groups: list[dict], lr: float, on_gpu: bool):
    import torch

    return torch.optim.Adadelta(groups, lr=lr, rho=0.95, eps=1e-6)  # BiDAF's


OPTIMISERS: dict[str, Optimiser] = {
    "adam": Optimiser(_adam, default_lr=1e-3, warms_up=True),  # the paper's
    "adadelta": Optimiser(_adadelta, default_lr=0.5, warms_up=False),  # BiDAF's, without warm-up
}
