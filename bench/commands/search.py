"""`python -m bench search NAME`: a search file's Optuna trials, resumable, with several workers through one
storage (`bench study NAME`, its old name, still works)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from bench.commands.common import positive_int
from bench.records import RUNS
from bench.study_files import SCALES


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
    search.add_argument("--scale", choices=SCALES, default="full", help="as for bench run (default: full)")
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
    import optuna

    from bench.records import ensure_writable
    from bench.runner import run_threads
    from bench.search import (
        DEFINITION,
        existing_optuna_study,
        export_best,
        load_search,
        open_storage,
        optuna_name,
        refuse_a_changed_search,
        storage_url,
        without_password,
        work,
    )
    from qanet.config import parse_overrides

    if args.command == "study":
        print("note: `bench study` is now `bench search`", file=sys.stderr)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is ours (_say_trial)
    search = load_search(args.name, parse_overrides(args.overrides))
    url = storage_url(search, args.storage)
    name = optuna_name(search, args.scale)
    if args.export_best:
        optuna_study = existing_optuna_study(name, url, args.heartbeat)
        refuse_a_changed_search(optuna_study, search, args.scale, url)
        export_best(optuna_study, search, args.scale, args.export_best)
        return
    ensure_writable(args.out / search.name)
    trials = args.trials or search.count_at("trials", args.scale)
    optuna_study = optuna.create_study(study_name=name, storage=open_storage(url, args.heartbeat),
                                       direction="maximize", load_if_exists=True)
    refuse_a_changed_search(optuna_study, search, args.scale, url)
    optuna_study.set_user_attr(DEFINITION, search.definition_hash(args.scale))
    with warnings.catch_warnings():  # "experimental" in Optuna 5; the dashboard names the objective by it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna_study.set_metric_names([search.metric_name])
    print(f"{search.name} ({args.scale}): {trials} trials, {search.sampling_text(args.scale, trials)}, objective "
          f"{search.objective_text(args.scale)}, {args.jobs} worker(s), storage {without_password(url)}")
    threads = run_threads(args.jobs, None, "loky")
    jobs = [(args.name, search.overrides, args.scale, url, trials, args.out, threads, args.heartbeat, worker,
             _say_trial) for worker in range(args.jobs)]
    if args.jobs == 1:
        work(*jobs[0])
    else:
        from joblib import Parallel, delayed

        Parallel(n_jobs=args.jobs)(delayed(work)(*job) for job in jobs)
    summarise_search(optuna.load_study(study_name=name, storage=open_storage(url, args.heartbeat)), search,
                     args.scale)


def _say_trial(optuna_study, trial) -> None:
    value = f", {trial.value:.2f}" if trial.value is not None else ""
    print(f"trial {trial.number}: {trial.state.name.lower()}{value} {json.dumps(trial.params)}", flush=True)


def summarise_search(optuna_study, search, scale: str) -> None:
    from optuna.trial import TrialState

    counts = {state.name.lower(): len(optuna_study.get_trials(deepcopy=False, states=(state,)))
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    print(f"trials ({search.sampling_text(scale, len(optuna_study.get_trials(deepcopy=False)))}): "
          + ", ".join(f"{state} {count}" for state, count in counts.items()))
    if counts["complete"]:
        best = optuna_study.best_trial
        print(f"best: trial {best.number}, {search.objective_text(scale)} {best.value:.2f}, "
              f"{json.dumps(best.params)} (record {best.user_attrs.get('record_id')})")
