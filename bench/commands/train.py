"""`python -m bench train` and `python -m bench predict`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qanet.config import PRESETS, RENAMED_PRESETS, RunConfig, build_config


def register(commands) -> None:
    train = commands.add_parser(
        "train", help="train one QANet run (for debugging a configuration)",
        description="Train one run from a preset plus overrides, show progress, print dev EM/F1 at each "
                    "evaluation, and write a JSON record. Rerunning the same configuration resumes from its "
                    "checkpoint.",
    )
    train.add_argument("--preset", default="tiny", choices=sorted({*PRESETS, *RENAMED_PRESETS}),
                       help="starting configuration: 'paper' is the full model (GPU), 'tiny' a CPU-sized one on "
                            "the synthetic data, 1,200 steps ('smoke' is its old name) (default: %(default)s)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting, e.g. --set model.hidden=100 --set train.steps=500 (repeatable)")
    train.add_argument("--out", type=Path, default=Path("results") / "train",
                       help="where the record and checkpoint go (default: results/train)")
    train.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start again")
    train.set_defaults(handler=run_train)

    predict = commands.add_parser(
        "predict", help="answer questions about a paragraph with a trained checkpoint",
        description="Answer questions about a paragraph given on the command line or in a file.",
    )
    predict.add_argument("checkpoint", type=Path, help="a checkpoint.pt written by `bench train`")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--context", help="the paragraph")
    source.add_argument("--context-file", type=Path, help="a text file holding the paragraph")
    predict.add_argument("--question", "-q", action="append", required=True, help="a question (repeatable)")
    predict.set_defaults(handler=run_predict)


def train_one(config: RunConfig, out: Path, fresh: bool = False):
    """Train (or resume) one run, showing its progress, and write its record; returns the record."""
    from bench.commands.progress import EvaluationLines, step_display
    from bench.records import ensure_writable
    from bench.runner import Locked, execute
    from bench.spec import RunSpec, in_folder
    from bench.study_files import StudyError
    from qanet.data.prepare import prepare

    ensure_writable(out)
    prepare(config.data, log=print)  # say what happens while the data is built the first time
    [spec] = in_folder([RunSpec("train", "train", "custom", config)], out)
    with step_display(f"train {spec.id}") as steps:
        record = execute(spec, hooks=[steps, EvaluationLines()], force=fresh, alone=True)
    if isinstance(record, Locked):
        raise StudyError(f"run {spec.id}: {record.reason}")
    if record.restarted:
        print(f"run {spec.id}: {record.restarted}")
    return record


def run_train(args: argparse.Namespace) -> None:
    from qanet.device import resolve_device

    config = build_config(args.preset, args.overrides)
    resolve_device(config.train.device)  # refused before anything is prepared
    record = train_one(config, args.out, fresh=args.fresh)
    result = record.result
    exact, f1 = result.metrics.get("exact", float("nan")), result.metrics.get("f1", float("nan"))
    print(f"{result.status}: dev EM {exact:.2f} F1 {f1:.2f} after {result.steps} steps; "
          f"{result.train_examples_per_s:.1f} train examples/s, peak memory {result.peak_memory_mb:.0f} MiB, "
          f"{result.parameters:,} parameters")
    print(f"record: {record.spec.record_path}")
    if result.status != "ok":
        sys.exit(f"{result.status}: {result.error}")


def run_predict(args: argparse.Namespace) -> None:
    from qanet.predict import answer_questions

    context = args.context if args.context is not None else args.context_file.read_text(encoding="utf-8")
    for question, answer in zip(args.question, answer_questions(args.checkpoint, context, args.question), strict=True):
        print(f"Q: {question}\nA: {answer}")
