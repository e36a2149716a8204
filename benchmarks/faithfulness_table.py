"""Report: the faithfulness study's tables (the README's) from a folder of its run records.

Final full-dev EM/F1 per variant (mean ± sd over seeds), each variant's F1 difference from the base
paired by seed, and the learning curve: mean dev F1 at each evaluation (the 2,000-question sample during
training, the whole dev set at the last step).

    python benchmarks/faithfulness_table.py results/reference/faithfulness-cpu
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from bench.records import read_records


def spread(values: list[float], sign: str = "") -> str:
    if len(values) < 2:
        return f"{values[0]:{sign}.2f}"
    return f"{statistics.mean(values):{sign}.2f} ± {statistics.stdev(values):.2f}"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def final_table(by_variant: dict[str, dict[int, dict]], base: str) -> str:
    rows = []
    for variant, runs in by_variant.items():
        seeds = sorted(runs)
        paired = [runs[s]["metrics"]["f1"] - by_variant[base][s]["metrics"]["f1"]
                  for s in seeds if s in by_variant[base]]
        difference = "-" if variant == base else (
            f"{spread(paired, '+')} ({', '.join(f'{d:+.2f}' for d in paired)})" if paired else "no common seed")
        rows.append([variant, ", ".join(map(str, seeds)),
                     spread([runs[s]["metrics"]["exact"] for s in seeds]),
                     spread([runs[s]["metrics"]["f1"] for s in seeds]), difference])
    return markdown(["variant", "seeds", "dev EM", "dev F1", "F1 - base, paired by seed"], rows)


def curve_table(by_variant: dict[str, dict[int, dict]]) -> str:
    steps = sorted({entry["step"] for runs in by_variant.values() for run in runs.values() for entry in run["curve"]})
    rows = []
    for variant, runs in by_variant.items():
        f1_at = defaultdict(list)
        for run in runs.values():
            for entry in run["curve"]:
                f1_at[entry["step"]].append(entry["f1"])
        rows.append([variant] + [f"{statistics.mean(f1_at[step]):.2f}" if f1_at[step] else "" for step in steps])
    return markdown(["mean dev F1 at step"] + [f"{step:,}" for step in steps], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("records", type=Path, help="a folder of the study's run records (*.json)")
    parser.add_argument("--base", default="base", help="the variant the others are compared with")
    args = parser.parse_args()
    by_variant: dict[str, dict[int, dict]] = defaultdict(dict)
    for record in read_records(args.records):
        if record["status"] == "ok":
            by_variant[record["variant"]][record["seed"]] = record
    if args.base not in by_variant:
        sys.exit(f"{args.records}: no ok run of the variant {args.base!r}")
    by_variant = {args.base: by_variant.pop(args.base), **dict(sorted(by_variant.items()))}
    print(f"{args.records}: {sum(map(len, by_variant.values()))} ok runs\n")
    print(final_table(by_variant, args.base) + "\n")
    print(curve_table(by_variant))


if __name__ == "__main__":
    main()
