"""`python -m bench train` and `python -m bench predict`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bench.records import TRAINED
from qanet.config import PRESETS, RENAMED_PRESETS, build_config

if TYPE_CHECKING:
    from bench.spec import RunSpec
    from qanet.hooks import Hooks


COMMANDS = ("train", "predict")  # what register() adds, for bench.cli


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
    train.add_argument("--out", type=Path, default=TRAINED,
                       help="where the record and checkpoint go (default: results/train)")
    train.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start again")
    train.set_defaults(handler=run_train)

    predict = commands.add_parser(
        "predict", help="answer questions about a paragraph with a trained checkpoint",
        description="Answer questions about a paragraph given on the command line or in a file.",
    )
    predict.add_argument("run", metavar="RUN",
                         help="the run to answer with: its checkpoint.pt, its record (ID.json) or its id (looked up in "
                              "results/runs and results/train), as `bench train` and `bench run` print them")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--context", help="the paragraph")
    source.add_argument("--context-file", type=Path, help="a text file holding the paragraph")
    predict.add_argument("--question", "-q", action="append", required=True, help="a question (repeatable)")
    predict.set_defaults(handler=run_predict)


@contextmanager
def _progress(spec: RunSpec) -> Iterator[list[Hooks]]:
    """What `bench train` shows while its run trains: a progress bar of its steps and a line per evaluation."""
    from bench.commands.progress import EvaluationLines, step_display

    with step_display(f"train {spec.id}") as steps:
        yield [steps, EvaluationLines()]


def run_train(args: argparse.Namespace) -> None:
    from bench.runner import train_one
    from qanet.device import resolve_device

    config = build_config(args.preset, args.overrides)
    resolve_device(config.train.device)  # refused before anything is prepared
    record = train_one(config, args.out, fresh=args.fresh, hooks=_progress,
                       log=print)  # say what happens while the data is built the first time
    if record.restarted:
        print(f"run {record.spec.id}: {record.restarted}")
    result = record.result
    exact, f1 = result.metrics.get("exact", float("nan")), result.metrics.get("f1", float("nan"))
    print(f"{result.status}: dev EM {exact:.2f} F1 {f1:.2f} after {result.steps} steps; "
          f"{result.train_examples_per_s:.1f} train examples/s, peak memory {result.peak_memory_mb:.0f} MiB, "
          f"{result.parameters:,} parameters")
    print(f"record: {record.spec.record_path}")
    if Path(record.checkpoint).is_file():
        print(f"checkpoint: {record.checkpoint} (python -m bench predict {record.spec.record_path} --context ... "
              f"-q ...)")
    if result.status != "ok":
        sys.exit(f"{result.status}: {result.error}")


def run_predict(args: argparse.Namespace) -> None:
    from bench.records import checkpoint_of
    from qanet.predict import answer_questions

    checkpoint = checkpoint_of(args.run)
    context = args.context if args.context is not None else args.context_file.read_text(encoding="utf-8")
    for question, answer in zip(args.question, answer_questions(checkpoint, context, args.question), strict=True):
        print(f"Q: {question}\nA: {answer}")
