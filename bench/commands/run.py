"""`python -m bench list` and `python -m bench run STUDY`."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from bench.commands.common import gpu_list, index_list, install_advice, positive_int
from bench.records import RUNS
from bench.scales import SCALES, scales_help
from qanet.config import ConfigError

COMMANDS = ("list", "run")  # what register() adds, for bench.cli


def register(commands) -> None:
    listing = commands.add_parser("list", help="the study and search files in ./studies and the shipped ones, with "
                                              "their axes and progress")
    listing.add_argument("--out", type=Path, default=RUNS, help="records root (default: results/runs)")
    listing.set_defaults(handler=run_list)

    run = commands.add_parser(
        "run", help="train and evaluate every variant x seed of a study (resumable)",
        description="Expand a study into (variant, seed) runs and execute them. Runs that finished where they "
                    "run now (their record says ok, pruned or stopped, made with the same device kind, threads "
                    "and dtype) are skipped, interrupted runs resume from their checkpoint, "
                    "failures (out of memory, divergence, errors) are recorded and the study goes on. Ends with a "
                    "summary table.",
    )
    run.add_argument("study", help="a name from `python -m bench list`, or the path of a .toml study file")
    run.add_argument("--scale", choices=SCALES, default="full",
                     help=f"{scales_help()} (default: full)")
    run.add_argument("--seeds", type=index_list, help="comma-separated seeds instead of the study's, e.g. 0,1")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="a setting applied to every run after the study's own (repeatable)")
    run.add_argument("--jobs", type=positive_int, default=1, help="parallel runs on this machine (default: 1)")
    run.add_argument("--gpus", type=gpu_list,
                     help="comma-separated GPU indices, e.g. 0,1,2,3: a worker per index (instead of --jobs), each "
                          "run taken by whichever is free; an index named k times holds k runs on that GPU at "
                          "once (0,0: two runs share GPU 0; their records say they were not timed alone)")
    run.add_argument("--backend", default="loky", choices=("loky", "multiprocessing", "threading", "dask"),
                     help="joblib backend (default: loky)")
    run.add_argument("--scheduler", help="with --backend dask: the scheduler address, e.g. tcp://10.0.0.5:8786")
    run.add_argument("--out", type=Path, default=RUNS,
                     help="records root, a study writes to OUT/STUDY/ (default: results/runs under the working "
                          "directory)")
    run.add_argument("--force", action="store_true", help="rerun runs that already finished")
    run.add_argument("--dry-run", action="store_true", help="list the runs and what would happen to each")
    run.set_defaults(handler=run_study)


def run_list(args: argparse.Namespace) -> None:
    from bench.records import study_records
    from bench.study import StudyError, available, is_search, load_study
    from qanet.outcome import FINISHED

    # runs done at each scale ("done": at full scale, the study's own budget)
    headers = "".join(f" {'done' if scale == 'full' else scale:>5}" for scale in SCALES)
    print(f"{'study':20} {'variants':>8} {'runs':>5}{headers}  axes")
    dashes = f" {'-':>8} {'-':>5}" + f" {'-':>5}" * len(SCALES)
    for name in available():
        if is_search(name):
            print(f"{name:20}{dashes}  a search: python -m bench search {name}")
            continue
        try:
            study = load_study(name)
        except StudyError as error:  # one file that cannot run hides no other
            print(f"{name:20}{dashes}  cannot run: {error}")
            continue
        done = Counter(record.spec.scale for record in study_records(name, args.out)
                       if record.result.status in FINISHED)
        runs = len(study.variants()) * len(study.seeds)
        counts = "".join(f" {done[scale]:5}" for scale in SCALES)
        print(f"{name:20} {len(study.variants()):8} {runs:5}{counts}  {', '.join(study.axes) or '-'}")
        described = study.description or f"(no description: add description = \"...\" to {study.path})"
        print(f"{'':20} {described}")


def run_study(args: argparse.Namespace) -> None:
    from bench.commands.progress import runs_display
    from bench.runner import in_this_process, plan, run_parallel
    from bench.study import distinct_runs, load_study
    from qanet.config import parse_overrides

    if args.gpus and args.backend == "dask":
        raise ConfigError("--gpus places runs on this machine's GPUs; with --backend dask the cluster's workers "
                          "run on their own devices (leave --gpus out)")
    if args.backend == "dask" and not args.scheduler:
        raise ConfigError("--backend dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
    study = load_study(args.study)
    specs = distinct_runs(study.name, study.runs(args.scale, args.seeds, parse_overrides(args.overrides)))
    out = args.out / study.name
    planned = plan(specs, out, jobs=args.jobs, gpus=args.gpus, backend=args.backend, force=args.force,
                   make_folder=not args.dry_run)
    specs, pending = planned.specs, planned.pending
    print(f"{study.name} ({args.scale}): {len({s.variant for s in specs})} variants x {len({s.seed for s in specs})} "
          f"seeds = {len(specs)} runs, {len(specs) - len(pending)} done, {len(pending)} to run -> {out}")
    if args.dry_run:
        for spec in specs:
            state, note = planned.state(spec)
            print(f"  {spec.id}  {spec.variant:45} seed {spec.seed}  {state}" + (f"  ({note})" if note else ""))
        return
    client = _connect(args)
    per_step = in_this_process(args.jobs, args.gpus, args.backend)
    executed = []
    try:
        with runs_display(len(specs), len(specs) - len(pending), per_step) as (hooks, ended):
            for record in run_parallel(pending, jobs=args.jobs, gpus=args.gpus, backend=args.backend, hooks=hooks,
                                       force=args.force):
                executed.append(record)
                ended(_said(record))
    finally:
        if client is not None:
            client.close()
    try:
        _print_table(study, args)
    except ModuleNotFoundError as error:  # the runs are done and recorded: the table is no reason to fail
        advice = install_advice(error, args.command)
        if advice is None:
            raise
        print(f"note: no summary table ({advice}); the records are written")
    print(outcome_line(executed))
    failed = [record for record in executed if _status(record) == "failed"]
    for record in failed:  # what ended each (a traceback's last line), where a user looks for errors
        ended_by = (record.result.error or "an error").splitlines()[-1]
        print(f"error: {record.spec.variant} seed {record.spec.seed}: {ended_by}", file=sys.stderr)
    if failed:
        sys.exit(1)


def _print_table(study, args: argparse.Namespace) -> None:
    """The summary table `bench run` ends with (pandas, scipy and tabulate: [bench]), and any note it calls for."""
    from bench.records import records_frame
    from bench.reporting.comparability import mixed_hardware
    from bench.reporting.tables import default_baseline, summarise, to_markdown

    records = records_frame(study.name, args.out)
    records = records[records["scale"] == args.scale]
    print(to_markdown(summarise(records, study, default_baseline(study), args.scale)) if not records.empty
          else "no records")
    mixed = mixed_hardware(records)
    if mixed:
        print(f"note: {mixed}")


def _connect(args: argparse.Namespace):
    if args.backend != "dask":
        return None
    from dask.distributed import Client

    return Client(args.scheduler)


def _locked(record) -> bool:
    """A run another process is training (bench.runner.Locked): this process left it alone."""
    from bench.runner import Locked

    return isinstance(record, Locked)


def _status(record) -> str | None:
    """How a run ended in this process; None for one another process is training or finished while this one
    waited to start it."""
    return None if _locked(record) or record.done_elsewhere else record.result.status


def _said(record) -> str:
    """The line `bench run` prints as a run ends (above it, why it started again, if it did)."""
    spec = record.spec
    if _locked(record):
        return f"{spec.variant} seed {spec.seed}: left alone, {record.reason}"
    metrics, restarted = record.result.metrics, f"  {spec.id}: {record.restarted}\n" if record.restarted else ""
    scores = f", EM {metrics['exact']:.2f} F1 {metrics['f1']:.2f}" if "exact" in metrics else ""
    if record.done_elsewhere:
        return f"{spec.variant} seed {spec.seed}: done by another process meanwhile ({record.result.status}{scores})"
    return f"{restarted}{spec.variant} seed {spec.seed}: {record.result.status}{scores}, {record.wall_seconds:.0f} s"


def outcome_line(records: list) -> str:
    """The last line of `bench run`: how the runs it executed ended (a failure is an exception, see its record);
    `records` are what bench.runner.run_parallel yields. Runs another process trains or finished are counted
    apart."""
    from qanet.outcome import STATUSES

    locked = sum(_locked(record) for record in records)
    done_elsewhere = sum(not _locked(record) and record.done_elsewhere for record in records)
    elsewhere = (f"; {done_elsewhere} done by another process meanwhile" if done_elsewhere else "") + (
        f"; {locked} left to another process that is training them" if locked else "")
    statuses = [_status(record) for record in records if _status(record) is not None]
    if not records:
        return "nothing was run: every run already has a record that says it finished"
    if not statuses:
        return "nothing was run here" + elsewhere
    counts = Counter(statuses)
    listed = ", ".join(f"{status} {counts[status]}" for status in STATUSES if counts[status])
    if counts["failed"]:
        return (f"{counts['failed']} of {len(statuses)} runs failed with an exception ({listed}): see the records' "
                f"error{elsewhere}")
    return f"all {len(statuses)} runs reached a recorded outcome ({listed}){elsewhere}"
