"""Benchmark: training-step time of a study's variants at one scale, measured side by side.

Every variant's model is built from the study (the same seed, so the same weights where the
variants share them) and trained on the same random batch, padded to the scale's limits. The
variants take turns, a few steps each, round after round, so a drift in the machine's speed
reaches all of them alike; the table gives each variant's median step time, its examples/s,
and its ratio to the first variant (the study's base). Data-only settings (the vocabulary)
leave the model as it is and time the same.

    python benchmarks/variant_speed.py faithfulness --scale cpu [--rounds 7] [--steps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from bench.environment import environment
from bench.study import load_study
from qanet.model import QANet
from qanet.optimisation import make_optimizer, optimisation_step

VOCABULARY, CHARS, QUESTION = 86_000, 1_400, 30  # about the prepared SQuAD v1.1 sizes; a long question


def trainer_step(config):
    """A closure doing one forward + backward + clipped optimiser step of a fresh model on one fixed batch."""
    torch.manual_seed(0)
    model = QANet(config.model, torch.randn(VOCABULARY, 50), CHARS).train()
    optimizer, scheduler = make_optimizer(model, config)
    batch, context, char_len = config.train.batch_size, config.data.context_len, config.data.char_len
    generator = torch.Generator().manual_seed(1)
    inputs = (torch.randint(2, VOCABULARY, (batch, context), generator=generator),
              torch.randint(1, CHARS, (batch, context, char_len), generator=generator),
              torch.randint(2, VOCABULARY, (batch, QUESTION), generator=generator),
              torch.randint(1, CHARS, (batch, QUESTION, char_len), generator=generator))
    start, end = torch.randint(0, context, (2, batch), generator=generator)

    def step() -> None:
        optimisation_step(model, optimizer, scheduler, model.loss(*model(*inputs), start, end),
                          clip_norm=config.train.clip_norm)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", help="a study name or .toml path")
    parser.add_argument("--scale", default="cpu", choices=["full", "smoke", "cpu"])
    parser.add_argument("--rounds", type=int, default=7, help="turns each variant takes (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per turn (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = load_study(args.study).runs(args.scale, seeds=[0])
    steps = {run.variant: trainer_step(run.config) for run in runs}
    times: dict[str, list[float]] = {variant: [] for variant in steps}
    for step in steps.values():  # warm-up: allocator, kernels
        step()
        step()
    for _ in range(args.rounds):
        for variant, step in steps.items():
            for _ in range(args.steps):
                began = time.perf_counter()
                step()
                times[variant].append(time.perf_counter() - began)
    env = environment(torch.device("cpu"))
    first = runs[0].config.train
    print(f"machine: {env['cpu']}, {env['cpu_count']} cores, torch {env['torch']}, {args.threads} threads")
    print(f"command: python {' '.join(sys.argv)}")
    print(f"batch {first.batch_size}, context {runs[0].config.data.context_len}, question {QUESTION}; median of "
          f"{args.rounds} x {args.steps} steps per variant, variants alternating")
    base = statistics.median(times[runs[0].variant])
    print(f"{'variant':40} {'s/step':>7} {'examples/s':>10} {'vs base':>7}")
    for run in runs:
        median = statistics.median(times[run.variant])
        print(f"{run.variant[:40]:40} {median:7.3f} {run.config.train.batch_size / median:10.1f} {base / median:6.2f}x")


if __name__ == "__main__":
    main()
