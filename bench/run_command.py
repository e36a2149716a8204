"""`python -m bench list` and `python -m bench run STUDY`."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from bench.records import RUNS, ensure_writable, mixed_hardware, records_frame
from bench.report import default_baseline, summarise, to_markdown
from bench.runner import LOCKED, execution_context, plan, run_parallel, run_threads
from bench.study import SCALES, available, distinct_runs, is_search, load_study
from qanet.config import ConfigError, RunConfig, apply_overrides, parse_overrides
from qanet.train import CHECKPOINT, STATUSES, Hooks, resolve_device


def register(commands) -> None:
    listing = commands.add_parser("list", help="the studies in ./studies and the shipped ones, with their axes and "
                                              "progress")
    listing.add_argument("--out", type=Path, default=RUNS, help="records root (default: results/runs)")
    listing.set_defaults(handler=run_list)

    run = commands.add_parser(
        "run", help="train and evaluate every variant x seed of a study (resumable)",
        description="Expand a study into (variant, seed) runs and execute them. Runs whose record says ok are "
                    "skipped, interrupted runs resume from their checkpoint, failures (out of memory, divergence, "
                    "errors) are recorded and the study goes on. Ends with a summary table.",
    )
    run.add_argument("study", help="a name from `python -m bench list`, or the path of a .toml study file")
    run.add_argument("--scale", choices=SCALES, default="full",
                     help="full: the study as written, for a GPU (default); smoke: synthetic data, a CPU-sized "
                          "model, about a minute a run; cpu: real SQuAD v1.1 + GloVe 6B 50d, a reduced model, "
                          "about 9 minutes a run on 2 cores")
    run.add_argument("--seeds", type=index_list, help="comma-separated seeds instead of the study's, e.g. 0,1")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="a setting applied to every run after the study's own (repeatable)")
    run.add_argument("--jobs", type=positive_int, default=1, help="parallel runs on this machine (default: 1)")
    run.add_argument("--gpus", type=index_list,
                     help="comma-separated GPU indices, e.g. 0,1,2,3: one worker per GPU (instead of --jobs), "
                          "each run taken by whichever GPU is free")
    run.add_argument("--backend", default="loky", choices=("loky", "multiprocessing", "threading", "dask"),
                     help="joblib backend (default: loky)")
    run.add_argument("--scheduler", help="with --backend dask: the scheduler address, e.g. tcp://10.0.0.5:8786")
    run.add_argument("--out", type=Path, default=RUNS,
                     help="records root, a study writes to OUT/STUDY/ (default: results/runs under the working "
                          "directory)")
    run.add_argument("--force", action="store_true", help="rerun runs whose record already says ok")
    run.add_argument("--dry-run", action="store_true", help="list the runs and what would happen to each")
    run.set_defaults(handler=run_study)


def index_list(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]: distinct integers >= 0 (seeds, GPU indices)."""
    try:
        values = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 0,1") from None
    if min(values) < 0 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected distinct integers >= 0")
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return value


def run_list(args: argparse.Namespace) -> None:
    print(f"{'study':20} {'variants':>8} {'runs':>5} {'done':>5} {'smoke':>5} {'cpu':>5}  axes")
    for name in available():
        if is_search(name):
            print(f"{name:20} {'-':>8} {'-':>5} {'-':>5} {'-':>5} {'-':>5}  an Optuna search: python -m bench study "
                  f"{name}")
            continue
        study = load_study(name)
        frame = records_frame(name, args.out)
        ok = frame[frame["status"] == "ok"]
        done = {scale: int((ok["scale"] == scale).sum()) for scale in SCALES}
        runs = len(study.variants()) * len(study.seeds)
        print(f"{name:20} {len(study.variants()):8} {runs:5} {done['full']:5} {done['smoke']:5} {done['cpu']:5}  "
              f"{', '.join(study.axes) or '-'}")
        print(f"{'':20} {study.description}")


def _with_overrides(runs, overrides: list[str]):
    pairs = parse_overrides(overrides)
    for run in runs:
        apply_overrides(run.config, pairs).validate()
    return runs


def run_study(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    study = load_study(args.study)
    runs = distinct_runs(study.name, _with_overrides(study.runs(args.scale, args.seeds), args.overrides))
    if args.gpus and args.backend == "dask":
        raise ConfigError("--gpus places runs on this machine's GPUs; with --backend dask the cluster's workers "
                          "run on their own devices (leave --gpus out)")
    if args.backend != "dask":  # a cluster's workers may have devices this machine lacks
        for device in {r.config.train.device for r in runs} | {f"cuda:{gpu}" for gpu in args.gpus or []}:
            resolve_device(device)  # an unavailable device is refused here, before any data is prepared
    out = args.out / study.name
    if not args.dry_run:
        ensure_writable(out)
    specs = plan(study.name, [(r.variant, r.seed, r.config) for r in runs], args.scale, out)
    # where the runs will execute, as far as this process can tell; each run checks its own where it executes
    threads = run_threads(args.jobs, args.gpus, args.backend)
    contexts = {spec.id: execution_context(RunConfig.from_dict(spec.config), threads,
                                           f"cuda:{args.gpus[0]}" if args.gpus else None) for spec in specs}
    pending = [spec for spec in specs if args.force or not spec.done(contexts[spec.id])]
    print(f"{study.name} ({args.scale}): {len({r.variant for r in runs})} variants x {len({r.seed for r in runs})} "
          f"seeds = {len(specs)} runs, {len(specs) - len(pending)} done, {len(pending)} to run -> {out}")
    if args.dry_run:
        for spec in specs:
            state = "to run" if spec in pending else "done"
            note = spec.restart_reason(contexts[spec.id], args.force) if state == "to run" else ""
            if state == "to run" and not note and (spec.checkpoint_dir / CHECKPOINT).exists():
                state = "to resume"
            print(f"  {spec.id}  {spec.variant:45} seed {spec.seed}  {state}" + (f"  ({note})" if note else ""))
        return
    client = _connect(args)
    # disable=None: bars only on a terminal; the per-run lines are printed either way
    runs_bar = tqdm(total=len(specs), initial=len(specs) - len(pending), desc="runs", unit="run", position=0,
                    disable=None)
    per_step = args.jobs == 1 and not args.gpus and args.backend != "dask"
    steps_bar = tqdm(desc="steps", unit="step", position=1, leave=False, disable=None if per_step else True)
    finished = []
    try:
        for record in run_parallel(pending, args.jobs, args.gpus, args.backend, [StepBar(steps_bar)], args.force):
            finished.append(record)
            if record.get("restarted"):
                tqdm.write(f"  {record['id']}: {record['restarted']}")
            metrics = record["metrics"] or {}
            tqdm.write(f"{record['variant']} seed {record['seed']}: {record['status']}"
                           + (f", EM {metrics['exact']:.2f} F1 {metrics['f1']:.2f}" if "exact" in metrics else "")
                           + f", {record['wall_seconds']:.0f} s")
            runs_bar.update(1)
    finally:
        steps_bar.close()
        runs_bar.close()
        if client is not None:
            client.close()
    records = records_frame(study.name, args.out)
    records = records[records["scale"] == args.scale]
    print(to_markdown(summarise(records, study, default_baseline(study), args.scale)) if not records.empty
          else "no records")
    mixed = mixed_hardware(records)
    if mixed:
        print(f"note: {mixed}")
    outcome = outcome_line(finished)
    print(outcome)
    if any(record["status"] == "failed" for record in finished):
        sys.exit(1)


def _connect(args: argparse.Namespace):
    if args.backend != "dask":
        return None
    if not args.scheduler:
        raise ConfigError("--backend dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
    from dask.distributed import Client

    return Client(args.scheduler)


class StepBar(Hooks):
    """A tqdm bar of one run's training steps (restarted by each run), with the loss when the host reads it."""

    def __init__(self, bar) -> None:
        self.bar = bar

    def on_begin(self, trainer) -> None:
        self.bar.reset(total=trainer.config.train.steps)
        self.bar.update(trainer.step)

    def on_step(self, step: int, loss: float | None, learning_rate: float, examples_per_s: float | None) -> None:
        self.bar.update(step - self.bar.n)
        if loss is not None:  # read every train.loss_check_every steps
            self.bar.set_postfix(loss=f"{loss:.3f}", ex_s=f"{examples_per_s:.0f}")


def outcome_line(records: list[dict]) -> str:
    """The last line of `bench run`: how the runs it executed ended (a failure is an exception, see its record)."""
    locked = sum(record["status"] == LOCKED for record in records)
    elsewhere = f"; {locked} left to another process that is training them" if locked else ""
    records = [record for record in records if record["status"] != LOCKED]
    if not records:
        return "nothing was run: every run already has a record that says ok" + elsewhere
    counts = Counter(record["status"] for record in records)
    listed = ", ".join(f"{status} {counts[status]}" for status in STATUSES if counts[status])
    if counts["failed"]:
        return (f"{counts['failed']} of {len(records)} runs failed with an exception ({listed}): see the records' "
                f"error{elsewhere}")
    return f"all {len(records)} runs reached a recorded outcome ({listed}){elsewhere}"
