"""Report: the faithfulness study's tables (the README's) from a folder of its run records.

Final full-dev EM/F1 per variant (mean ± sd over seeds), each variant's F1 difference from the base
paired by seed, and the learning curve: mean dev F1 at each evaluation (the 2,000-question sample during
training, the whole dev set at the last step). Runs whose status is not ok are listed and left out.

    python benchmarks/faithfulness_table.py results/reference/faithfulness-cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from bench.records import mean_std

REQUIRED = ("variant", "seed", "status", "metrics", "curve")


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def read_ok_runs(folder: Path) -> dict[str, dict[int, dict]]:
    """variant -> seed -> record, for the ok runs; stops with one line naming the file on a bad record."""
    paths = sorted(folder.glob("*.json"))
    if not paths:
        sys.exit(f"{folder}: no run records (*.json) there")
    by_variant: dict[str, dict[int, dict]] = defaultdict(dict)
    for path in paths:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            sys.exit(f"{path}: not a readable JSON record ({error})")
        missing = [key for key in REQUIRED if key not in record]
        if missing:
            sys.exit(f"{path}: not a run record, no {', '.join(missing)}")
        variant, seed = record["variant"], record["seed"]
        if record["status"] != "ok":
            print(f"left out: {variant} seed {seed} ({record['status']}, {path.name})", file=sys.stderr)
        elif seed in by_variant[variant]:
            sys.exit(f"{path}: a second ok record of {variant} seed {seed}")
        else:
            by_variant[variant][seed] = record
    return by_variant


def final_table(by_variant: dict[str, dict[int, dict]], base: str) -> str:
    rows = []
    for variant, runs in by_variant.items():
        seeds = sorted(runs)
        paired = {s: runs[s]["metrics"]["f1"] - by_variant[base][s]["metrics"]["f1"]
                  for s in seeds if s in by_variant[base]}
        difference = "-" if variant == base else (
            f"{mean_std(list(paired.values()), '+')} ({', '.join(f'{d:+.2f}' for d in paired.values())})"
            if paired else "no seed in common")
        rows.append([variant, ", ".join(map(str, seeds)),
                     mean_std([runs[s]["metrics"]["exact"] for s in seeds]),
                     mean_std([runs[s]["metrics"]["f1"] for s in seeds]), difference])
    return markdown(["variant", "seeds", "dev EM", "dev F1", "F1 - base, paired by seed"], rows)


def mean_cell(values: list[float], runs: int) -> str:
    if not values:
        return ""
    return f"{statistics.mean(values):.2f}" + ("" if len(values) == runs else f" (n={len(values)})")


def curve_table(by_variant: dict[str, dict[int, dict]]) -> str:
    """Mean F1 at each evaluated step; a cell averaged over fewer runs than the variant has says how many."""
    steps = sorted({entry["step"] for runs in by_variant.values() for run in runs.values() for entry in run["curve"]})
    rows = []
    for variant, runs in by_variant.items():
        f1_at = defaultdict(list)
        for run in runs.values():
            for entry in run["curve"]:
                f1_at[entry["step"]].append(entry["f1"])
        rows.append([variant] + [mean_cell(f1_at[step], len(runs)) for step in steps])
    return markdown(["mean dev F1 at step"] + [f"{step:,}" for step in steps], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("records", type=Path, help="a folder of the study's run records (*.json)")
    parser.add_argument("--base", default="base", help="the variant the others are compared with")
    args = parser.parse_args()
    by_variant = read_ok_runs(args.records)
    if args.base not in by_variant:
        sys.exit(f"{args.records}: no ok run of the variant {args.base!r}")
    by_variant = {args.base: by_variant.pop(args.base), **dict(sorted(by_variant.items()))}
    print(f"{args.records}: {sum(map(len, by_variant.values()))} ok runs; seeds paired: F1 - base per seed, "
          "in seed order\n")
    print(final_table(by_variant, args.base) + "\n")
    print(curve_table(by_variant))


if __name__ == "__main__":
    main()
