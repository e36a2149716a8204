"""`python -m bench study NAME`: an Optuna search, resumable, with several workers through one storage."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from bench.records import RUNS, ensure_writable
from bench.run_command import positive_int
from bench.runner import run_threads
from bench.search import RunFailed, SearchStudy, load_search, objective_function, optuna_name, without_password
from bench.study import SCALES, StudyError

OPTUNA = Path("results") / "optuna"


def register(commands) -> None:
    study = commands.add_parser(
        "study", help="an Optuna search (a study file with kind = \"optuna\"): trials with pruning",
        description="Run the trials of an Optuna search study: each trial is a normal run with a record under "
                    "OUT/NAME/, pruned on its dev score at each evaluation. Stopping and running again continues "
                    "the search; several processes or machines given one --storage share it.",
    )
    study.add_argument("name", help="a study file with kind = \"optuna\" (name or path), e.g. lr_adam")
    study.add_argument("--scale", choices=SCALES, default="full", help="as for bench run (default: full)")
    study.add_argument("--trials", type=positive_int,
                       help="trials in all, across workers (default: the study file's, for this scale)")
    study.add_argument("--storage", help="an SQLAlchemy URL shared by every worker, e.g. "
                                         "postgresql+psycopg://user:password@host/optuna (default: SQLite under "
                                         "results/optuna/)")
    study.add_argument("--jobs", type=positive_int, default=1, help="worker processes on this machine")
    study.add_argument("--out", type=Path, default=RUNS, help="records root (default: results/runs)")
    study.add_argument("--heartbeat", type=positive_int, default=20, metavar="SECONDS",
                       help="a worker's heartbeat; one silent for 3 heartbeats is taken for dead, and its trial "
                            "failed and retried once (default: 20)")
    study.add_argument("--export-best", type=Path, metavar="PATH",
                       help="write the best trial's settings as a study file for bench run, and stop")
    study.set_defaults(handler=run_search)


def storage_url(search: SearchStudy, asked: str | None) -> str:
    if asked:
        return asked
    folder = (Path.cwd() / OPTUNA).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / search.name}.db"


def _storage(url: str, heartbeat: int):
    """The study's storage; a trial whose worker fell silent is failed and run again once, with the same
    settings (so its run resumes from its checkpoint)."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    # SQLite with several workers: wait for a busy database rather than fail after 5 s
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5, and used here on purpose
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                  max_retry=1, inherit_intermediate_values=True))
        except Exception as error:  # noqa: BLE001 - a bad URL, a missing driver, a server that is down
            raise StudyError(f"--storage {without_password(url)}: {type(error).__name__}: "
                             f"{str(error).strip().splitlines()[0]}") from None


def run_search(args: argparse.Namespace) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is ours (_say_trial)
    search = load_search(args.name)
    url = storage_url(search, args.storage)
    name = optuna_name(search, args.scale)
    if args.export_best:
        export_best(_existing_study(name, url, args.heartbeat), search, args.scale, args.export_best)
        return
    ensure_writable(args.out / search.name)
    trials = args.trials or search.trials_at(args.scale)
    optuna.create_study(study_name=name, storage=_storage(url, args.heartbeat), direction="maximize",
                        load_if_exists=True)
    print(f"{search.name} ({args.scale}): {trials} trials, {args.jobs} worker(s), storage {without_password(url)}")
    threads = run_threads(args.jobs, None, "loky")
    jobs = [(args.name, args.scale, url, trials, args.out, threads, args.heartbeat, worker)
            for worker in range(args.jobs)]
    if args.jobs == 1:
        work(*jobs[0])
    else:
        from joblib import Parallel, delayed

        Parallel(n_jobs=args.jobs)(delayed(work)(*job) for job in jobs)
    summarise_search(optuna.load_study(study_name=name, storage=_storage(url, args.heartbeat)), search)


def work(study_file: str, scale: str, url: str, trials: int, out: Path, threads: int | None, heartbeat: int,
         worker: int) -> None:
    """One worker: trials until the study holds `trials` finished ones (complete, pruned or failed)."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = load_search(study_file)
    storage = _storage(url, heartbeat)
    name = optuna_name(search, scale)
    optuna.storages.fail_stale_trials(optuna.load_study(study_name=name, storage=storage))  # dead workers' trials
    # the sampler's seed: the study's for a fresh single-worker search (reproducible), moved on by the trials
    # already there and by the worker's number, so that no two workers, and no resumed search, draw the same
    # first settings (the same settings are the same run id: one would wait on the other's lock)
    existing = len(optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False))
    study = optuna.load_study(study_name=name, storage=storage, pruner=search.pruner_object(),
                              sampler=search.sampler_object(search.seed + existing + 1000 * worker))
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    if len(study.get_trials(deepcopy=False, states=finished)) >= trials:
        return
    study.optimize(objective_function(search, scale, out, url, threads), catch=(RunFailed,),
                   callbacks=[MaxTrialsCallback(trials, states=finished), _say_trial])


def _say_trial(study, trial) -> None:
    value = f", {trial.value:.2f}" if trial.value is not None else ""
    print(f"trial {trial.number}: {trial.state.name.lower()}{value} {json.dumps(trial.params)}", flush=True)


def summarise_search(study, search: SearchStudy) -> None:
    from optuna.trial import TrialState

    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    print("trials: " + ", ".join(f"{state} {count}" for state, count in counts.items()))
    if counts["complete"]:
        best = study.best_trial
        print(f"best: trial {best.number}, dev {search.objective} {best.value:.2f}, {json.dumps(best.params)} "
              f"(record {best.user_attrs.get('record_id')})")


def _existing_study(name: str, url: str, heartbeat: int):
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=_storage(url, heartbeat))
    except KeyError:
        raise StudyError(f"{without_password(url)}: no Optuna study {name!r} there (run bench study first)") from None


def export_best(study, search: SearchStudy, scale: str, path: Path) -> None:
    """The best trial as an ordinary study file: its settings fixed, three seeds, the search's budget."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise StudyError(f"{study.study_name}: no complete trial yet, nothing to export")
    best = study.best_trial
    about = (f"Best trial ({best.number}) of the Optuna search {search.name} at scale {scale}: dev "
             f"{search.objective} {best.value:.2f}")
    lines = [f"description = {json.dumps(about)}", f"preset = {json.dumps(search.preset)}", "seeds = [0, 1, 2]",
             "", "[budget]"]
    lines += [f"{key} = {_toml(value)}" for key, value in search.budget.items()]
    lines += ["", "[set]"] + [f"{json.dumps(key)} = {_toml(value)}"
                              for key, value in {**search.fixed, **best.params}.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}: python -m bench run {path}")


def _toml(value) -> str:
    return json.dumps(value)  # numbers, strings, booleans and lists read back the same in TOML
