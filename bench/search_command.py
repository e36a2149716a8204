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
DEFINITION = "definition_sha256"  # the Optuna study's user attribute: SearchStudy.definition_hash of its trials


def register(commands) -> None:
    study = commands.add_parser(
        "study", help="an Optuna search (a study file with kind = \"optuna\"): trials with pruning",
        description="Run the trials of an Optuna search study: each trial is a normal run with a record under "
                    "OUT/NAME/, scored and pruned on training questions held out of it (never on the dev set). "
                    "Stopping and running again continues the search; several processes or machines given one "
                    "--storage share it. A stored search whose study file or scale changed is not continued.",
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
                       help="write the best trial as a study file for bench run (at this scale, its seed 0 is the "
                            "trial's very run; the dev scores of its three seeds are the ones to report), and stop")
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
        study = _existing_study(name, url, args.heartbeat)
        refuse_a_changed_search(study, search, args.scale, url)
        export_best(study, search, args.scale, args.export_best)
        return
    ensure_writable(args.out / search.name)
    trials = args.trials or search.count_at("trials", args.scale)
    study = optuna.create_study(study_name=name, storage=_storage(url, args.heartbeat), direction="maximize",
                                load_if_exists=True)
    refuse_a_changed_search(study, search, args.scale, url)
    study.set_user_attr(DEFINITION, search.definition_hash(args.scale))
    with warnings.catch_warnings():  # "experimental" in Optuna 5; the dashboard names the objective by it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([search.metric_name])
    print(f"{search.name} ({args.scale}): {trials} trials, {search.sampling_text(args.scale, trials)}, objective "
          f"{search.objective_text(args.scale)}, {args.jobs} worker(s), storage {without_password(url)}")
    threads = run_threads(args.jobs, None, "loky")
    jobs = [(args.name, args.scale, url, trials, args.out, threads, args.heartbeat, worker)
            for worker in range(args.jobs)]
    if args.jobs == 1:
        work(*jobs[0])
    else:
        from joblib import Parallel, delayed

        Parallel(n_jobs=args.jobs)(delayed(work)(*job) for job in jobs)
    summarise_search(optuna.load_study(study_name=name, storage=_storage(url, args.heartbeat)), search, args.scale)


def refuse_a_changed_search(study, search: SearchStudy, scale: str, url: str) -> None:
    """Trials drawn, trained or scored under another definition would not compare with new ones: a stored
    search whose study file (or the scale's own settings) changed since is not continued. One stored before
    the definition was recorded is taken as it is."""
    stored = study.user_attrs.get(DEFINITION)
    if stored not in (None, search.definition_hash(scale)):
        raise StudyError(f"{search.path}: changed since the Optuna study {study.study_name!r} in "
                         f"{without_password(url)} ran its trials at scale {scale}: give another --storage, or "
                         f"delete that study (optuna delete-study --study-name {study.study_name} --storage URL)")


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
    study = optuna.load_study(study_name=name, storage=storage, pruner=search.pruner_object(scale),
                              sampler=search.sampler_object(search.seed + existing + 1000 * worker, scale))
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    if len(study.get_trials(deepcopy=False, states=finished)) >= trials:
        return
    study.optimize(objective_function(search, scale, out, url, threads), catch=(RunFailed,),
                   callbacks=[MaxTrialsCallback(trials, states=finished), _say_trial])


def _say_trial(study, trial) -> None:
    value = f", {trial.value:.2f}" if trial.value is not None else ""
    print(f"trial {trial.number}: {trial.state.name.lower()}{value} {json.dumps(trial.params)}", flush=True)


def summarise_search(study, search: SearchStudy, scale: str) -> None:
    from optuna.trial import TrialState

    counts = {state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    print(f"trials ({search.sampling_text(scale, len(study.get_trials(deepcopy=False)))}): "
          + ", ".join(f"{state} {count}" for state, count in counts.items()))
    if counts["complete"]:
        best = study.best_trial
        print(f"best: trial {best.number}, {search.objective_text(scale)} {best.value:.2f}, "
              f"{json.dumps(best.params)} (record {best.user_attrs.get('record_id')})")


def _existing_study(name: str, url: str, heartbeat: int):
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=_storage(url, heartbeat))
    except KeyError:
        raise StudyError(f"{without_password(url)}: no Optuna study {name!r} there (run bench study first)") from None


def export_best(study, search: SearchStudy, scale: str, path: Path) -> None:
    """The best trial as an ordinary study file, three seeds from the search's, the search's budget. At the
    search's scale its first seed is the trial's very run (same settings, same id, the same training
    questions held out): [scale.NAME.set] pins what the trial set over that scale's own settings. The dev
    scores of its three seeds, never used to choose, are the numbers to report."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise StudyError(f"{study.study_name}: no complete trial yet, nothing to export")
    best = study.best_trial
    about = (f"Best trial ({best.number}) of the Optuna search {search.name} at scale {scale}: "
             f"{search.objective_text(scale)} {best.value:.2f}")
    seeds = [search.seed + offset for offset in range(3)]
    lines = [f"description = {json.dumps(about)}", f"preset = {json.dumps(search.preset)}",
             f"seeds = {json.dumps(seeds)}", "", "[budget]"]
    lines += [f"{key} = {_toml(value)}" for key, value in search.budget.items()]
    lines += ["", "[set]"] + _settings({**search.fixed, **best.params})
    lines += ["", f"[scale.{scale}.set]  # seed {search.seed} at scale {scale} is the trial's run, record "
                  f"{best.user_attrs.get('record_id')}"] + _settings(search.pinned(scale, best.params))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}: python -m bench run {path} --scale {scale}")


def _settings(settings: dict) -> list[str]:
    return [f"{json.dumps(key)} = {_toml(value)}" for key, value in settings.items()]


def _toml(value) -> str:
    return json.dumps(value)  # numbers, strings, booleans and lists read back the same in TOML
