"""Running a search's trials: the Optuna objective (one trial = one run), a worker's loop, and `run_trials`, which
creates or continues the Optuna study and starts the workers.

Each trial is executed like a study's run (bench.runner.execute): a record under OUT/NAME/ with variant
"trial N" and an `optuna` field (`study`: the search's name; trial number, storage), and the trial's user attribute
`record_id` names the record. A pruned trial is a record with status "pruned".

The objective is scored on training questions held out of every trial (whole paragraphs, the same for every
trial: qanet.data.batching.holdout_questions), never on the dev set: a dev score of the best of many trials is
biased upwards by the choosing, so the dev set is left for the final study that --export-best writes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna  # at import: `bench search` without Optuna is refused before it does or says anything
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from bench.search.definition import Search, load_search
from bench.search.storage import (
    DEFINITION,
    experimental_on_purpose,
    open_storage,
    optuna_name,
    refuse_a_changed_search,
    storage_url,
    without_password,
)
from bench.spec import RunSpec, in_folder
from qanet.hooks import Hooks
from qanet.outcome import StopTraining

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)  # the trials a search counts


class ReportToTrial(Hooks):
    """Hands each evaluation's held-out score (the curve entry's `key`, e.g. holdout_f1) to the Optuna
    trial, and ends the run as "pruned" when the pruner says so."""

    def __init__(self, trial, key: str) -> None:
        self.trial, self.key = trial, key

    def on_evaluation(self, step: int, entry: dict) -> None:
        self.trial.report(entry[self.key], step)
        if self.trial.should_prune():
            raise StopTraining("pruned", f"pruned at step {step} ({self.key} {entry[self.key]:.2f})")


class RunFailed(RuntimeError):
    """A trial whose run ended failed, oom or diverged: Optuna records the trial as failed."""


def objective_function(search: Search, scale: str, *, out: Path, storage: str, threads: int | None):
    """Optuna's objective: one trial = one run (resumed from its checkpoint if a trial with the same
    settings was cut off), its record linked both ways. A trial that draws settings already run, or being
    run by another worker, waits for that run and takes its result (the same settings are the same run)."""

    def objective(trial) -> float:
        from bench.runner import Locked, execute

        sampled = {param.key: param.suggest(trial) for param in search.params_at(scale)}
        link = {"optuna": {"study": search.name, "trial": trial.number, "storage": without_password(storage),
                           "params": sampled}}
        [spec] = in_folder([RunSpec(search.name, f"trial {trial.number}", scale, search.config(sampled, scale),
                                 tags=link)], out / search.name)
        trial.set_user_attr("record_id", spec.id)
        reporter = ReportToTrial(trial, search.curve_key)
        record = execute(spec, threads=threads, hooks=[reporter], alone=threads is None)
        while isinstance(record, Locked):  # another worker is training these very settings
            time.sleep(5)
            record = execute(spec, threads=threads, hooks=[reporter], alone=threads is None)
        result = record.result
        if record.spec.tags["optuna"]["trial"] != trial.number:  # another trial's run: its curve is ours
            for entry in result.curve:
                trial.report(entry[search.curve_key], entry["step"])
        if result.status == "pruned":
            raise optuna.TrialPruned(result.error)
        if result.status != "ok":
            last_line = ((result.error or "").strip().splitlines() or [""])[-1]
            raise RunFailed(f"trial {trial.number}: {result.status}: {last_line}")
        return result.holdout_metrics[search.objective]

    return objective


@dataclass(frozen=True)
class WorkerJob:
    """What one worker is given (in another process where there are several: joblib pickles it)."""

    search_file: str  # the search file's name or path, as the command line gave it
    overrides: tuple[tuple[str, Any], ...]  # bench search --set, parsed
    scale: str
    storage: str  # the storage's URL
    trials: int  # finished trials (complete, pruned or failed) the Optuna study is to hold, across workers
    out: Path  # the records' root
    threads: int | None  # CPU threads a run gets (None: torch's default)
    heartbeat: int  # seconds
    worker: int = 0  # this worker's number, 0 to workers - 1
    workers: int = 1  # workers on this machine


@dataclass(frozen=True)
class SearchSummary:
    """The Optuna study of a search at a scale once its workers have ended."""

    search: Search
    scale: str
    trials: int  # every trial the Optuna study holds
    counts: dict[str, int]  # finished trials by state: complete, pruned, fail
    best: FrozenTrial | None  # the best complete trial, None before one


def work(job: WorkerJob, say_trial: Callable[[optuna.Study, FrozenTrial], None]) -> None:
    """One worker: trials until the Optuna study holds `job.trials` finished ones (complete, pruned or failed);
    `say_trial` is called as each trial of this worker ends."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = load_search(job.search_file, job.overrides)
    storage = open_storage(job.storage, job.heartbeat)
    name = optuna_name(search, job.scale)
    with experimental_on_purpose():  # dead workers' trials
        optuna.storages.fail_stale_trials(optuna.load_study(study_name=name, storage=storage))
    # the sampler's seed: the search's for a fresh single-worker search (reproducible), moved on by the trials
    # already there and by the worker's number, so that no two workers, and no resumed search, draw the same
    # first settings (the same settings are the same run id: one would wait on the other's lock)
    existing = len(optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False))
    optuna_study = optuna.load_study(study_name=name, storage=storage, pruner=search.pruner_object(job.scale),
                                     sampler=search.sampler_object(search.seed + existing + 1000 * job.worker,
                                                                   job.scale))
    if len(optuna_study.get_trials(deepcopy=False, states=FINISHED_STATES)) >= job.trials:
        return
    objective = objective_function(search, job.scale, out=job.out, storage=job.storage, threads=job.threads)
    optuna_study.optimize(objective, catch=(RunFailed,),
                          callbacks=[MaxTrialsCallback(job.trials, states=FINISHED_STATES), say_trial])


def run_trials(search_file: str, overrides: list[tuple[str, Any]], *, scale: str, storage: str | None,
               trials: int | None, out: Path, jobs: int, heartbeat: int,
               on_start: Callable[[Search, WorkerJob], None],
               on_trial: Callable[[optuna.Study, FrozenTrial], None]) -> SearchSummary:
    """`bench search`: create the search's Optuna study at `scale` in `storage` (the default where None), or
    continue it (refused where its definition changed), then run `jobs` workers on this machine until it holds
    `trials` finished trials (the search file's count at that scale where None). `on_start` is called once the
    study is ready, before the first trial; `on_trial` as each trial ends (in the worker's process)."""
    from bench.records import ensure_writable
    from bench.runner import run_threads

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is the caller's (on_trial)
    search = load_search(search_file, overrides)
    url = storage_url(search, storage)
    name = optuna_name(search, scale)
    ensure_writable(out / search.name)
    trials = trials or search.count_at("trials", scale)
    optuna_study = optuna.create_study(study_name=name, storage=open_storage(url, heartbeat),
                                       direction="maximize", load_if_exists=True)
    refuse_a_changed_search(optuna_study, search, scale, url)
    optuna_study.set_user_attr(DEFINITION, search.definition_hash(scale))
    with experimental_on_purpose():  # the dashboard names the objective by it
        optuna_study.set_metric_names([search.metric_name])
    job = WorkerJob(search_file=search_file, overrides=tuple(search.overrides), scale=scale, storage=url,
                    trials=trials, out=out, threads=run_threads(jobs, None, "loky"), heartbeat=heartbeat,
                    workers=jobs)
    on_start(search, job)
    if jobs == 1:
        work(job, on_trial)
    else:
        from joblib import Parallel, delayed

        Parallel(n_jobs=jobs)(delayed(work)(dataclasses.replace(job, worker=worker), on_trial)
                              for worker in range(jobs))
    return summarise(optuna.load_study(study_name=name, storage=open_storage(url, heartbeat)), search, scale)


def summarise(optuna_study, search: Search, scale: str) -> SearchSummary:
    """The trials of the search's Optuna study at `scale` counted by state, and the best one."""
    counts = {state.name.lower(): len(optuna_study.get_trials(deepcopy=False, states=(state,)))
              for state in FINISHED_STATES}
    return SearchSummary(search=search, scale=scale, trials=len(optuna_study.get_trials(deepcopy=False)),
                         counts=counts, best=optuna_study.best_trial if counts["complete"] else None)
