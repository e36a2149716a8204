"""`python -m bench search NAME`: a search file's Optuna trials, resumable, with several workers through one
storage (`bench study NAME`, its old name, still works)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.commands.common import positive_int
from bench.records import RUNS
from bench.scales import SCALES, scales_help

if TYPE_CHECKING:
    from bench.search.definition import Search
    from bench.search.trials import SearchSummary, WorkerJob


COMMANDS = ("search", "study")  # what register() adds (an alias too), for bench.cli


def register(commands) -> None:
    search = commands.add_parser(
        "search", aliases=["study"], help="an Optuna search (a file with kind = \"optuna\"): trials with pruning",
        description="Run the trials of a search file with Optuna: each trial is a normal run with a record under "
                    "OUT/NAME/, scored and pruned on training questions held out of it (never on the dev set). "
                    "Stopping and running again continues the search; several processes or machines given one "
                    "--storage share it. A stored search whose file or scale changed is not continued. "
                    "(`bench study` is its old name.)",
    )
    search.add_argument("name", help="a search file, kind = \"optuna\" (name or path), e.g. lr_adam")
    search.add_argument("--scale", choices=SCALES, default="full", help=f"{scales_help()} (default: full)")
    search.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting applied to every trial after the search file's own (repeatable), e.g. "
                             "data.pack=DIR to read the data from a pack; where the data lies is not part of the "
                             "search, any other setting is")
    search.add_argument("--trials", type=positive_int,
                        help="trials in all, across workers (default: the search file's, for this scale)")
    search.add_argument("--storage", help="an SQLAlchemy URL shared by every worker, e.g. "
                                          "postgresql+psycopg://user:password@host/optuna (default: SQLite under "
                                          "results/optuna/)")
    search.add_argument("--jobs", type=positive_int, default=1, help="worker processes on this machine")
    search.add_argument("--out", type=Path, default=RUNS, help="records root (default: results/runs)")
    search.add_argument("--heartbeat", type=positive_int, default=20, metavar="SECONDS",
                        help="a worker's heartbeat; one silent for 3 heartbeats is taken for dead, and its trial "
                             "failed and retried once (default: 20)")
    search.add_argument("--export-best", type=Path, metavar="PATH",
                        help="write the best trial as a study file for bench run (at this scale, its seed 0 is the "
                             "trial's very run; the dev scores of its three seeds are the ones to report), and stop")
    search.set_defaults(handler=run_search)


def run_search(args: argparse.Namespace) -> None:
    from bench.search.export import export_best_trial
    from bench.search.trials import run_trials  # Optuna's: refused here, before any line, where it is missing
    from qanet.config import parse_overrides

    if args.command == "study":
        print("note: `bench study` is now `bench search`", file=sys.stderr)
    overrides = parse_overrides(args.overrides)
    if args.export_best:
        path = export_best_trial(args.name, overrides, scale=args.scale, storage=args.storage,
                                 heartbeat=args.heartbeat, path=args.export_best)
        print(f"wrote {path}: python -m bench run {path} --scale {args.scale}")
        return
    summary = run_trials(args.name, overrides, scale=args.scale, storage=args.storage, trials=args.trials,
                         out=args.out, jobs=args.jobs, heartbeat=args.heartbeat, on_start=_say_start,
                         on_trial=_say_trial)
    _say_summary(summary)


def _say_start(search: Search, job: WorkerJob) -> None:
    from bench.search.storage import without_password

    print(f"{search.name} ({job.scale}): {job.trials} trials, {search.sampling_text(job.scale, job.trials)}, "
          f"objective {search.objective_text(job.scale)}, {job.workers} worker(s), storage "
          f"{without_password(job.storage)}")


def _say_trial(optuna_study, trial) -> None:
    value = f", {trial.value:.2f}" if trial.value is not None else ""
    print(f"trial {trial.number}: {trial.state.name.lower()}{value} {json.dumps(trial.params)}", flush=True)


def _say_summary(summary: SearchSummary) -> None:
    search, scale, best = summary.search, summary.scale, summary.best
    print(f"trials ({search.sampling_text(scale, summary.trials)}): "
          + ", ".join(f"{state} {count}" for state, count in summary.counts.items()))
    if best is not None:
        print(f"best: trial {best.number}, {search.objective_text(scale)} {best.value:.2f}, "
              f"{json.dumps(best.params)} (record {best.user_attrs.get('record_id')})")
