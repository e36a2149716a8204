"""Benchmark (issue 24, item 6): torch.compile of the whole model against each encoder block (regional
compilation: qanet.device.compiled's scopes "model" and "blocks"), Inductor on this machine's CPU.

For each model size, in this one process, three ways of training it: eager, scope "model", scope "blocks":
- compile: the wall time of a fresh model's first training step (forward + backward + Adam step) from a cold
  compiler: an empty Inductor cache (on disk and in memory) of its own, so the step traces and compiles every
  graph; a throwaway compilation first pays Inductor's one-time start-up for neither arm;
- s/step: the median step time, the three taking turns (--rounds turns of --steps steps), so a change in the
  load of the shared machine reaches them alike;
  both with the model as training runs it (dropout and stochastic depth on);
- losses: --loss-steps steps of each from the same initial weights on the same batches with dropout and
  stochastic depth off: eager draws its dropout masks otherwise than compiled code does (keep_mask against
  Inductor's generator), so only the deterministic network can give the same losses. These models compile
  again from cold; their compile time is printed too (their blocks are all alike). The yardstick: eager on the
  same batches with their examples in reverse order, the same losses but for rounding (sums over the batch
  taken in another order); Adam makes such differences grow from step to step.
Batches are synthetic token ids of one shape (the context limit, QUESTION tokens), real lengths drawn at random.

    python benchmarks/regional_compile.py [--sizes cpu,paper] [--rounds 5] [--steps 3] [--loss-steps 50]
        [--batch-size N]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import torch
from torch._inductor.utils import fresh_cache

from bench.environment import cpu_model
from qanet.config import SMALL_MODEL, RunConfig, build_config
from qanet.data.vocab import PAD
from qanet.device import compiled
from qanet.model import QANet
from qanet.optimisation import make_optimizer, optimisation_step

WORDS, CHARS, QUESTION = 5_000, 1_400, 30
# "cpu": the --scale cpu model (GloVe 6B 50d vectors); "paper": the paper's (GloVe 840B 300d) at a small batch
SIZES = {"cpu": ({**SMALL_MODEL, "data.context_len": 150, "train.batch_size": 16}, 50),
         "paper": ({"train.batch_size": 4}, 300)}
DETERMINISTIC = {"model.dropout": 0.0, "model.char_dropout": 0.0, "model.survival_last": 1.0}
SCOPES = ("eager", "model", "blocks")


def synthetic_batches(config: RunConfig, count: int) -> list[tuple[torch.Tensor, ...]]:
    """`count` batches of full width: word and character ids, PAD past each example's real length, and answers
    inside it."""
    generator = torch.Generator().manual_seed(1)
    batch, context, char_len = config.train.batch_size, config.data.context_len, config.data.char_len
    batches = []
    for _ in range(count):
        parts = []
        for width in (context, QUESTION):
            real = torch.arange(width) < torch.randint(width // 2, width + 1, (batch, 1), generator=generator)
            words = torch.randint(PAD + 2, WORDS, (batch, width), generator=generator) * real
            chars = torch.randint(1, CHARS, (batch, width, char_len), generator=generator) * real[..., None]
            parts += [words, chars]
        context_lengths = (parts[0] != PAD).sum(1)
        start = (torch.rand(batch, generator=generator) * context_lengths).long()
        end = torch.minimum(start + torch.randint(0, 5, (batch,), generator=generator), context_lengths - 1)
        batches.append((*parts, start, end))
    return batches


class Training:
    """A fresh model (seed 0), its optimiser and `forward` (eager or compiled as `scope` says), stepping through
    `batches` in turn; `losses` and `seconds` of every step so far."""

    def __init__(self, config: RunConfig, word_dim: int, scope: str, batches: list) -> None:
        torch.manual_seed(0)
        self.model = QANet(config.model, torch.randn(WORDS, word_dim), CHARS).train()
        self.optimizer, self.scheduler = make_optimizer(self.model, config)
        self.forward = self.model if scope == "eager" else compiled(self.model, "default", scope)
        self.clip_norm = config.train.clip_norm
        self.batches = batches
        self.losses: list[float] = []
        self.seconds: list[float] = []

    def step(self) -> None:
        *inputs, start, end = self.batches[len(self.losses) % len(self.batches)]
        began = time.perf_counter()
        loss = self.model.loss(*self.forward(*inputs), start, end)
        optimisation_step(self.model, self.optimizer, self.scheduler, loss, clip_norm=self.clip_norm)
        self.losses.append(loss.item())
        self.seconds.append(time.perf_counter() - began)


def cold_start(config: RunConfig, word_dim: int, scope: str, batches: list) -> tuple[Training, int]:
    """A Training after its first step, taken with an empty Inductor cache, and the number of graphs compiled."""
    torch._dynamo.utils.counters.clear()
    with fresh_cache():
        training = Training(config, word_dim, scope, batches)
        training.step()
    return training, torch._dynamo.utils.counters["stats"]["unique_graphs"]


def warm_inductor() -> None:
    """One small compilation: Inductor's imports and compiler checks happen here, not in an arm's compile time."""
    with fresh_cache():
        torch.compile(lambda x: (x.sin() @ x).relu().sum(), fullgraph=True)(torch.randn(8, 8, requires_grad=True)
                                                                           ).backward()


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def report_size(name: str, *, rounds: int, steps: int, loss_steps: int, batch_size: int | None) -> None:
    settings, word_dim = SIZES[name]
    if batch_size:
        settings = {**settings, "train.batch_size": batch_size}
    config = build_config("paper", settings)
    model = config.model
    print(f"\n== size {name}: hidden {model.hidden}, heads {model.heads}, {model.model_blocks} model blocks, "
          f"{model.embedding_convs} embedding convolutions, char dim {model.char_dim} ({model.char_encoder}), "
          f"word dim {word_dim}; batch {config.train.batch_size}, context {config.data.context_len}, question "
          f"{QUESTION}", flush=True)
    torch._dynamo.reset()
    batches = synthetic_batches(config, max(1 + rounds * steps, loss_steps))
    runs = {}
    for scope in SCOPES:
        runs[scope], graphs = cold_start(config, word_dim, scope, batches)
        print(f"{scope:>6}: first step {runs[scope].seconds[0]:7.1f} s, {graphs:2d} graphs compiled ({load()})",
              flush=True)
    for _ in range(rounds):
        for training in runs.values():
            for _ in range(steps):
                training.step()
    medians = {scope: statistics.median(training.seconds[1:]) for scope, training in runs.items()}
    for scope, training in runs.items():
        timed = training.seconds[1:]
        print(f"{scope:>6}: s/step median {medians[scope]:.3f} (min {min(timed):.3f}, max {max(timed):.3f}, "
              f"{len(timed)} steps), {medians['eager'] / medians[scope]:.2f}x eager's speed")
    compile_seconds = {scope: runs[scope].seconds[0] - runs["eager"].seconds[0] for scope in ("model", "blocks")}
    print(f"compile seconds (first step - eager's): model {compile_seconds['model']:.1f}, blocks "
          f"{compile_seconds['blocks']:.1f}, blocks / model {compile_seconds['blocks'] / compile_seconds['model']:.2f}"
          f" ({load()})", flush=True)
    if loss_steps:
        report_losses(build_config("paper", {**settings, **DETERMINISTIC}), word_dim, batches, loss_steps)


def report_losses(config: RunConfig, word_dim: int, batches: list, loss_steps: int) -> None:
    reversed_batches = [tuple(tensor.flip(0) for tensor in batch) for batch in batches]
    arms = {"eager": ("eager", batches), "reversed": ("eager", reversed_batches), "model": ("model", batches),
            "blocks": ("blocks", batches)}
    losses = {}
    for arm, (scope, arm_batches) in arms.items():
        training, graphs = cold_start(config, word_dim, scope, arm_batches)
        for _ in range(loss_steps - 1):
            training.step()
        losses[arm] = training.losses
        print(f"no dropout or stochastic depth, {arm:>8}: first step {training.seconds[0]:7.1f} s, {graphs:2d} "
              f"graphs compiled; losses {training.losses[0]:.4f} -> {training.losses[-1]:.4f}", flush=True)
    print(f"losses of {loss_steps} steps, no dropout or stochastic depth, same weights and batches (reversed: eager, "
          f"each batch's examples in reverse order):")
    for a, b in (("reversed", "eager"), ("model", "eager"), ("blocks", "eager"), ("blocks", "model")):
        gaps = [abs(x - y) for x, y in zip(losses[a], losses[b], strict=True)]
        worst = max(range(len(gaps)), key=gaps.__getitem__)
        print(f"  {a:>8} vs {b}: max |difference| {gaps[worst]:.2e} (step {worst + 1}); at step 1 {gaps[0]:.2e}, "
              f"max over steps 1-10 {max(gaps[:10]):.2e}, at step {loss_steps} {gaps[-1]:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="cpu,paper", help="comma-separated: cpu, paper (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="turns each arm takes (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per turn (default: %(default)s)")
    parser.add_argument("--loss-steps", type=int, default=50, help="steps whose losses are compared; 0: none "
                        "(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, help="every size's batch (default: cpu 16, paper 4)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    if unknown := set(sizes) - set(SIZES):
        parser.error(f"--sizes: unknown {sorted(unknown)}; choose from {sorted(SIZES)}")
    torch.set_num_threads(args.threads)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, Python {platform.python_version()}, "
          f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print("Inductor (mode default, dynamic=False, fullgraph=True), fp32")
    warm_inductor()
    for name in sizes:
        report_size(name, rounds=args.rounds, steps=args.steps, loss_steps=args.loss_steps,
                    batch_size=args.batch_size)


if __name__ == "__main__":
    main()
