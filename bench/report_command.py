"""`python -m bench report STUDY`: the comparison table of a study's records."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.records import RUNS, RecordError, mixed_hardware, records_frame, summary_table
from bench.study import SCALES, load_study


def register(commands) -> None:
    report = commands.add_parser(
        "report", help="the comparison table of a study's records",
        description="One row per variant: runs, EM and F1 (mean ± sd over the ok seeds), wall time, peak memory "
                    "and the runs that did not end ok. Damaged records are named and left out.",
    )
    report.add_argument("study", help="a name from `python -m bench list`, or the path of a .toml study file")
    report.add_argument("--scale", choices=SCALES, help="only the records of this scale (default: every scale)")
    report.add_argument("--out", type=Path, default=RUNS, help="records root (default: results/runs)")
    report.add_argument("--mixed-hardware", action="store_true",
                        help="compare time-bounded runs (train.minutes) made on different hardware models")
    report.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> None:
    study = load_study(args.study)
    frame = records_frame(study.name, args.out)
    if args.scale:
        frame = frame[frame["scale"] == args.scale]
    mixed = mixed_hardware(frame)
    if mixed and not args.mixed_hardware:
        raise RecordError(f"{args.out / study.name}: {mixed}; compare them anyway with --mixed-hardware")
    for scale in sorted(set(frame["scale"])):
        print(f"{study.name} ({scale})")
        print(summary_table(frame, scale, list(study.variants())))
    if frame.empty:
        print(f"{study.name}: no records under {args.out / study.name}")
