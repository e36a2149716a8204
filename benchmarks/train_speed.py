"""Benchmark: CPU training-step throughput and peak memory of qanet's QANet.

One forward + backward + clipped Adam step on random batches padded to the limit, as the
reference measurement of a straightforward port (BangLiu/QANet-PyTorch: char dim 64, GloVe
300d) was taken (../shared/REFERENCE.md), at two sizes:

  small  batch 8, context 150, question 50, hidden 96, 1 head
  paper  batch 8, context 400, question 50, hidden 128, 8 heads, 7 model blocks

Rows with char dim 64 compare like with like; char dim 200 (the paper's value, qanet's
default) is shown too. `recompute` k stores only the input of every k-th model-encoder block
and recomputes its activations in backward (0: off). Each row runs in a fresh process so its
peak RSS is its own. Targets (issue 3): >= 2x the port's 11.5 examples/s at the small size,
>= 3x its 1.1 examples/s at the paper size, with peak RSS <= 1.5 GB at the paper size.

    python benchmarks/train_speed.py [--steps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = {
    "small": {"model.hidden": 96, "model.heads": 1, "context": 150},
    "paper": {"model.hidden": 128, "model.heads": 8, "context": 400},
}
ROWS = [  # (size, char dim, recompute every k-th model-encoder block; 0 = never)
    ("small", 64, 0), ("paper", 64, 0), ("paper", 64, 2), ("paper", 64, 1), ("paper", 200, 0), ("paper", 200, 2),
]
PORT = {"small": 11.5, "paper": 1.1}  # examples/s of the straightforward port on this machine (REFERENCE.md)
BATCH, QUESTION, CHAR_LEN, VOCAB, WORD_DIM, CHARS = 8, 50, 16, 90_000, 300, 1_400


def measure(size: str, char_dim: int, recompute_every: int, *, steps: int, threads: int) -> dict:
    import torch

    from qanet.config import build_config
    from qanet.memory import process_peak_rss_mb
    from qanet.model import QANet
    from qanet.optimisation import make_optimizer, optimisation_step

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = SIZES[size]
    config = build_config("paper", {"model.hidden": spec["model.hidden"], "model.heads": spec["model.heads"],
                                    "model.char_dim": char_dim, "train.recompute_every": recompute_every})
    model = QANet(config.model, torch.randn(VOCAB, WORD_DIM), CHARS, recompute_every=recompute_every).train()
    optimizer, scheduler = make_optimizer(model, config)
    length = spec["context"]
    inputs = (torch.randint(2, VOCAB, (BATCH, length)), torch.randint(1, CHARS, (BATCH, length, CHAR_LEN)),
              torch.randint(2, VOCAB, (BATCH, QUESTION)), torch.randint(1, CHARS, (BATCH, QUESTION, CHAR_LEN)))
    start, end = torch.randint(0, length, (2, BATCH))
    times = []
    for step in range(steps + 2):  # two warm-up steps
        began = time.perf_counter()
        optimisation_step(model, optimizer, scheduler, model.loss(*model(*inputs), start, end),
                          clip_norm=config.train.clip_norm)
        if step >= 2:
            times.append(time.perf_counter() - began)
    return {"step_s": statistics.median(times), "steps": len(times),
            "peak_rss_mb": process_peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per row (after 2 warm-up steps)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, char_dim, recompute_every = args.child
        print(json.dumps(measure(size, int(char_dim), int(recompute_every), steps=args.steps, threads=args.threads)))
        return
    import torch

    from bench.environment import environment

    env = environment(torch.device("cpu"))
    print(f"machine: {env['cpu']}, {env['cpu_count']} cores, torch {env['torch']}, {args.threads} threads, "
          f"Python {env['python']}")
    print(f"command: python {' '.join(sys.argv)}")
    print(f"{'size':6} {'char dim':>8} {'recompute':>9} {'s/step':>7} {'examples/s':>10} {'vs port':>7} "
          f"{'peak RSS MiB':>12}")
    for size, char_dim, recompute in ROWS:
        command = [sys.executable, __file__, "--child", size, str(char_dim), str(recompute),
                   "--steps", str(args.steps), "--threads", str(args.threads)]
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        rate = BATCH / result["step_s"]
        print(f"{size:6} {char_dim:8} {recompute:9} {result['step_s']:7.3f} {rate:10.1f} "
              f"{rate / PORT[size]:6.1f}x {result['peak_rss_mb']:12.0f}")
    print(f"(median of {args.steps} steps per row after 2 warm-up steps; port: {PORT} examples/s)")


if __name__ == "__main__":
    main()
