"""Benchmark: how long building a run's configuration takes (`build_config` with two overrides, and
`RunConfig.from_dict`, which every record read does), in fresh processes of `--calls` calls each.

`--baseline DIR` times another checkout (a `git worktree` of an older commit) in the same run, alternating with
this one, so that both see the same machine at the same time. Prints the command, the machine and the medians.

    python benchmarks/config_speed.py [--repeats 5] [--calls 200] [--baseline /tmp/old]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.environment import ROOT, cpu_model

_TIMED = """
import time
from qanet.config import RunConfig, build_config
values = build_config("tiny").to_dict()
began = time.perf_counter()
for _ in range({calls}):
    build_config("tiny", {{"model.hidden": 32, "train.steps": 5}})
built = time.perf_counter()
for _ in range({calls}):
    RunConfig.from_dict(values)
print((built - began) / {calls} * 1000, (time.perf_counter() - built) / {calls} * 1000)
"""


def milliseconds(checkout: Path, calls: int) -> tuple[float, float]:
    """One process's mean milliseconds per build_config and per from_dict, with `checkout`'s code."""
    done = subprocess.run([sys.executable, "-c", _TIMED.format(calls=calls)], cwd=checkout, check=True,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(checkout)})
    built, read = map(float, done.stdout.split())
    return built, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="processes per checkout")
    parser.add_argument("--calls", type=int, default=200, help="calls per process")
    parser.add_argument("--baseline", type=Path, help="another checkout, timed alternately with this one")
    args = parser.parse_args()
    checkouts = {"this checkout": ROOT, **({f"baseline {args.baseline}": args.baseline} if args.baseline else {})}
    print(f"command: python benchmarks/config_speed.py {' '.join(sys.argv[1:])}; machine: {cpu_model()}, "
          f"{os.cpu_count()} cores")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
    for _ in range(args.repeats):
        for name, checkout in checkouts.items():
            times[name].append(milliseconds(checkout, args.calls))
    for name, rows in times.items():
        print(f"{name}: build_config {statistics.median(row[0] for row in rows):.2f} ms, from_dict "
              f"{statistics.median(row[1] for row in rows):.2f} ms (medians of {args.repeats} processes x "
              f"{args.calls} calls)")


if __name__ == "__main__":
    main()
