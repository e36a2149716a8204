"""`python -m bench train` and `python -m bench predict`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.records import ensure_writable
from bench.runner import LOCKED, execute, plan
from bench.study import StudyError
from qanet.config import PRESETS, RunConfig, build_config
from qanet.data.prepare import prepare
from qanet.train import Hooks, resolve_device


def register(commands) -> None:
    train = commands.add_parser(
        "train", help="train one QANet run (for debugging a configuration)",
        description="Train one run from a preset plus overrides, show progress, print dev EM/F1 at each "
                    "evaluation, and write a JSON record. Rerunning the same configuration resumes from its "
                    "checkpoint.",
    )
    train.add_argument("--preset", default="smoke", choices=sorted(PRESETS),
                       help="starting configuration: 'paper' is the full model (GPU), 'smoke' a CPU-sized one "
                            "on the synthetic data (default: %(default)s)")
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


def train_one(config: RunConfig, out: Path, fresh: bool = False) -> dict:
    """Train (or resume) one run with a progress bar and write its record; returns the record."""
    from tqdm import tqdm

    from bench.run_command import StepBar

    ensure_writable(out)
    prepare(config.data, log=print)  # say what happens while the data is built the first time
    [spec] = plan("train", [("train", config.train.seed, config)], "custom", out)
    bar = tqdm(total=config.train.steps, desc=f"train {spec.id}", unit="step", disable=None)

    record = execute(spec, hooks=[StepBar(bar), EvaluationLines()], force=fresh, alone=True)
    bar.close()
    if record["status"] == LOCKED:
        raise StudyError(f"run {spec.id}: {record['error']}")
    if record.get("restarted"):
        print(f"run {spec.id}: {record['restarted']}")
    return record


class EvaluationLines(Hooks):
    """One printed line per evaluation, above the progress bar."""

    def on_evaluation(self, step: int, entry: dict) -> None:
        from tqdm import tqdm

        loss = "-" if entry["train_loss"] is None else f"{entry['train_loss']:.3f}"
        tqdm.write(f"step {step}: dev EM {entry['exact']:.2f} F1 {entry['f1']:.2f} (train loss {loss})")


def run_train(args: argparse.Namespace) -> None:
    config = build_config(args.preset, args.overrides)
    resolve_device(config.train.device)  # refused before anything is prepared
    record = train_one(config, args.out, fresh=args.fresh)
    exact, f1 = record["metrics"].get("exact", float("nan")), record["metrics"].get("f1", float("nan"))
    print(f"{record['status']}: dev EM {exact:.2f} F1 {f1:.2f} after {record['steps']} steps; "
          f"{record['train_examples_per_s']:.1f} train examples/s, peak memory "
          f"{record['peak_memory_mb']:.0f} MB, {record['parameters']:,} parameters")
    print(f"record: {args.out / (record['id'] + '.json')}")
    if record["status"] != "ok":
        sys.exit(f"{record['status']}: {record['error']}")


def run_predict(args: argparse.Namespace) -> None:
    from qanet.predict import answer_questions

    context = args.context if args.context is not None else args.context_file.read_text(encoding="utf-8")
    for question, answer in zip(args.question, answer_questions(args.checkpoint, context, args.question), strict=True):
        print(f"Q: {question}\nA: {answer}")
