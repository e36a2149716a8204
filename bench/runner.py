"""Running RunSpecs: `plan` checks and places a study's runs and finds which are finished; `execute` trains
one and writes its RunRecord whatever happens (failures are recorded outcomes); `run_parallel` executes many.

A run's id (bench.spec) hashes its settings that differ from their defaults (the seed included) and its data's
fingerprint, so a rerun skips what is done (a record of the same id made with other settings is not done),
resumes what was interrupted from its checkpoint, and starts the rest. Where a run executes (device, threads,
the compiled path) is recorded, not hashed. One job trains its runs in this process, needing only torch and
numpy; several go through joblib: worker processes, a worker per GPU index with --gpus (each run takes
whichever is free; an index named twice holds two runs at once), or a Dask cluster with backend "dask".
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import multiprocessing
import os
import queue
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from bench.environment import device_name, environment
from bench.records import RecordError, RunRecord, ensure_writable, read_record, write_json_atomically
from bench.spec import RunSpec, in_folder, settings_that_differ
from qanet.checkpoint import CHECKPOINT, CheckpointError
from qanet.config import ConfigError, RunConfig
from qanet.data.prepare import prepare
from qanet.device import describe_path, resolve_device, why_missing
from qanet.hooks import Hooks, JsonLinesLog, TensorBoardLog
from qanet.outcome import FINISHED, TrainResult
from qanet.train import Trainer


def restart_reason(spec: RunSpec, context: dict, force: bool) -> str:
    """Why the run's progress (record, checkpoint, log, TensorBoard events) must go before it trains, or ''."""
    if force:
        return "asked to start again (--force, --fresh): trained from step 0"
    record = read_record(spec.record_path)
    if record is None and spec.record_path.exists():
        return "its record is damaged: trained again from step 0"
    made = _read_json(spec.context_path) or {}
    differ = settings_that_differ(record.spec.config if record else _config_of(made), spec.config)
    if differ:  # one id, other settings: a default changed since (the id hashes only what differs from it)
        return (f"its {'record' if record else 'checkpoint'} was made with other settings ("
                + ", ".join(f"{key} = {then!r}, here {now!r}" for key, (then, now) in sorted(differ.items()))
                + "): trained again from step 0")
    if record and record.result.status in FINISHED and record.execution != context:
        return (f"its record says {record.result.status} but was made with {record.execution}; here {context}: "
                f"trained again from step 0")
    if (spec.checkpoint_dir / CHECKPOINT).exists() and made.get("execution", context) != context:
        return f"its checkpoint was made with {made['execution']}; here {context}: trained again from step 0"
    return ""


def _config_of(made: dict) -> RunConfig | None:
    """The configuration a checkpoint was made with, as its context says (None where it does not say, or where
    it no longer reads)."""
    try:
        return RunConfig.from_dict(made["config"]) if made.get("config") else None
    except ConfigError:
        return None


def discard_progress(spec: RunSpec) -> None:
    """Start the run afresh: its record (kept as ID.json.replaced until it has a new one), checkpoint,
    context, event log and TensorBoard events go. Moving the record aside matters: an interrupted restart
    must resume, not find the old record and restart again."""
    if spec.record_path.exists():
        spec.record_path.replace(spec.record_path.with_name(f"{spec.record_path.name}.replaced"))
    (spec.checkpoint_dir / CHECKPOINT).unlink(missing_ok=True)
    spec.context_path.unlink(missing_ok=True)
    spec.log_path.unlink(missing_ok=True)
    shutil.rmtree(spec.tensorboard_dir, ignore_errors=True)


def finished_record(spec: RunSpec, context: dict) -> RunRecord | None:
    """The run's record if it finished with the same settings in the same execution context (on the CPU, results
    depend on the thread count): ok, or ended on purpose by a hook (pruned, stopped). A diverged, out-of-memory
    or failed run has none: it runs again."""
    record = read_record(spec.record_path)
    finished = record and record.result.status in FINISHED and record.execution == context
    return record if finished and not settings_that_differ(record.spec.config, spec.config) else None


@dataclass
class Plan:
    """A study's runs placed in their folder, where each would execute as far as this process can tell (each
    run checks its own where it executes), and those still to train."""

    specs: list[RunSpec]
    contexts: dict[str, dict]  # run id -> execution_context
    pending: list[RunSpec]
    force: bool

    def state(self, spec: RunSpec) -> tuple[str, str]:
        """"done", "to run" or "to resume", and why a run starts again ('' if it does not)."""
        if spec not in self.pending:
            return "done", ""
        why = restart_reason(spec, self.contexts[spec.id], self.force)
        resumes = not why and (spec.checkpoint_dir / CHECKPOINT).exists()
        return ("to resume" if resumes else "to run"), why


def plan(specs: list[RunSpec], folder: Path, *, jobs: int = 1, gpus: list[int] | None = None, backend: str = "loky",
         force: bool = False, make_folder: bool = True) -> Plan:
    """Check that the runs can execute here (a device this machine lacks is refused before any data is
    prepared; a Dask cluster's workers have their own), make the records folder (refused if it cannot take
    files), place the runs in it and find which are finished."""
    if backend != "dask":
        for device in {spec.config.train.device for spec in specs}:
            resolve_device(device)
        for gpu in sorted(set(gpus or [])):
            missing = why_missing(torch.device("cuda", gpu))
            if missing:
                raise ConfigError(f"--gpus {','.join(map(str, gpus))}: GPU {gpu}: {missing}; name GPUs it has, or "
                                  f"leave --gpus out")
    if make_folder:
        ensure_writable(folder)
    specs = in_folder(specs, folder)
    threads = run_threads(jobs, gpus, backend)
    contexts = {spec.id: execution_context(spec.config, threads, f"cuda:{gpus[0]}" if gpus else None)
                for spec in specs}
    pending = [spec for spec in specs if force or not finished_record(spec, contexts[spec.id])]
    return Plan(specs, contexts, pending, force)


def in_this_process(jobs: int, gpus: list[int] | None, backend: str) -> bool:
    """Whether runs go one at a time in this process (with the caller's hooks: a progress bar of steps)."""
    return jobs == 1 and not gpus and backend != "dask"


def run_threads(jobs: int, gpus: list[int] | None, backend: str) -> int | None:
    """CPU threads a run gets: torch's default when runs go one at a time in this process, the cores
    shared out when several run at once (None on GPUs)."""
    if gpus or (jobs == 1 and backend != "dask"):
        return None
    return max(1, (os.cpu_count() or 1) // jobs)


def execution_context(config: RunConfig, threads: int | None, device: str | None = None) -> dict:
    """What, beyond the id, changes a run's numbers: the device kind, CPU threads, the dtype, the attention
    kernels training may use and the compiled path; for a time-bounded run (train.minutes) also the hardware
    model, whose speed sets how far it gets."""
    name = device or config.train.device
    available = _available(name)
    kind = (available or torch.device(name)).type  # unavailable: where the run was meant to run
    context = {"device": kind, "threads": (config.train.threads or threads or torch.get_num_threads())
               if kind == "cpu" else None, "dtype": "bf16" if kind == "cuda" and config.train.bf16 else "fp32"}
    if kind == "cuda" or config.train.attention_kernels != "auto":  # on a CPU, "auto" is what it always was
        context["attention_kernels"] = config.train.attention_kernels
    path = describe_path(config, torch.device(kind))
    if kind == "cuda" or path != "eager":  # on a CPU, eager is what runs have always been
        context["compiled"] = path
    if config.train.minutes is not None:
        context["hardware"] = device_name(available) if available else None
    return context


# what the machine refuses a run (space, a quota, permissions, a read-only disk): the user's to fix there, so the
# record's error is the one line that says which file, not a traceback
_REFUSED_BY_THE_MACHINE = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def _outcome(error: BaseException, config: RunConfig) -> tuple[str, str]:
    if isinstance(error, torch.cuda.OutOfMemoryError | MemoryError):
        return "oom", f"out of memory at batch size {config.train.batch_size}: {error}"
    if isinstance(error, OSError) and error.errno in _REFUSED_BY_THE_MACHINE and error.filename:
        why = error.strerror or os.strerror(error.errno)
        return "failed", f"{why[:1].lower()}{why[1:]}: {error.filename}"
    return "failed", "".join(traceback.format_exception(error)).strip()


@dataclass(frozen=True)
class Locked:
    """Not an outcome: another process is training the run, and will write its record."""

    spec: RunSpec

    @property
    def reason(self) -> str:
        return f"being trained by another process ({self.spec.lock_path} is locked)"


@contextmanager
def run_lock(spec: RunSpec) -> Iterator[bool]:
    """Hold the run's lock file while this process trains it; False if another process holds it. The
    kernel drops an flock when its process dies, so a killed run never stays locked."""
    spec.lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def execute(spec: RunSpec, *, device: str | None = None, threads: int | None = None, hooks: list[Hooks] = (),
            force: bool = False, alone: bool = False) -> RunRecord | Locked:
    """Train or resume one run and write its record, whatever happens; returns the record. Its events go
    to `spec.log_path` as they happen, and to `hooks` (progress display, pruning). A run that another
    process is training is left to it (the answer is Locked, nothing is written), and one that another
    process finished meanwhile is not trained again (its record is the answer), unless `force`.
    `alone`: the caller trains no other run meanwhile (its record's `timed_alone`: its times and memory
    are not another run's load; other programs on the machine are not known); say so only where it is so."""
    with run_lock(spec) as mine:
        if not mine:
            return Locked(spec)
        spec = spec.executing_on(device, threads)
        context = execution_context(spec.config, threads)
        finished = None if force else finished_record(spec, context)
        if finished:  # finished elsewhere meanwhile: nothing restarted now
            return dataclasses.replace(finished, restarted=None, done_elsewhere=True)
        # decided here, under the lock, where the run executes: another process may be training it, and only
        # here is the context exact (a Dask worker's GPU, say)
        restarted = restart_reason(spec, context, force)
        if restarted:
            discard_progress(spec)
        else:  # resuming: a restart of an earlier attempt is still this record's story
            restarted = (_read_json(spec.context_path) or {}).get("restarted") or ""
        return _train_and_record(spec, context, hooks=hooks, restarted=restarted, alone=alone)


def _train_and_record(spec: RunSpec, context: dict, *, hooks: list[Hooks], restarted: str, alone: bool
                      ) -> RunRecord:
    started, began = time.perf_counter(), _now()
    sessions = _earlier_sessions(spec)  # before the log's begin event drops the redone steps' events
    config, trainer = spec.config, None
    hooks = [JsonLinesLog(spec.log_path), *hooks]
    if config.train.tensorboard:
        hooks.append(TensorBoardLog(spec.tensorboard_dir))
    try:
        prepared = prepare(config.data)
        try:
            trainer = Trainer(config, prepared, spec.checkpoint_dir, hooks)  # resumes from the checkpoint
        except CheckpointError as error:  # it does not read: kept aside for inspection, the run starts again
            checkpoint = spec.checkpoint_dir / CHECKPOINT
            checkpoint.replace(checkpoint.with_name(f"{CHECKPOINT}.damaged"))
            restarted = f"{error}: set aside as {CHECKPOINT}.damaged, trained again from step 0"
            trainer = Trainer(config, prepared, spec.checkpoint_dir, hooks)
        write_json_atomically(spec.context_path, {"execution": context, "restarted": restarted or None,
                                                  "sessions": [*sessions, {"started": began}],
                                                  "config": config.to_dict()})
        result = trainer.run()
    except Exception as caught:  # noqa: BLE001 - every failure becomes a recorded outcome
        status, error = _outcome(caught, config)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # hand an out-of-memory run's cached blocks to the next run
        result = TrainResult(status, trainer.step if trainer else 0, {}, error=error)
        _end_hooks(trainer, hooks, result)
    except BaseException:  # an interrupt: no record (the run resumes), but the hooks close their files
        _end_hooks(trainer, hooks, TrainResult("interrupted", trainer.step if trainer else 0, {}))
        raise
    sessions.append({"started": began, "seconds": round(time.perf_counter() - started, 2)})
    timeline = {"started": sessions[0]["started"], "ended": _now(), "sessions": sessions,
                "complete": all(session["seconds"] is not None for session in sessions)}  # else wall_seconds is short
    record = RunRecord(spec, result, wall_seconds=sum(session["seconds"] or 0.0 for session in sessions),
                       execution=context, time_bounded=_time_bound(config, result, context),
                       restarted=restarted or None, timed_alone=alone,
                       environment=environment(_available(config.train.device) or torch.device("cpu")),
                       checkpoint=str(spec.checkpoint_dir / CHECKPOINT), timeline=timeline)
    try:
        write_json_atomically(spec.record_path, record.to_json())
    except OSError as error:
        raise RecordError(f"{spec.record_path}: the run ended {result.status} but its record could not be "
                          f"written ({error.strerror or error}); its checkpoint and log are kept: run it again "
                          f"once the folder takes files") from None
    return record


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _earlier_sessions(spec: RunSpec) -> list[dict]:
    """The sessions of a resumed run before this one: when each started and how long it ran, the last of them
    until the last event it logged (a killed session writes no end; None where it logged none). A restarted
    run has none: its context and log went with its progress."""
    sessions = list((_read_json(spec.context_path) or {}).get("sessions") or [])
    if sessions and "seconds" not in sessions[-1]:
        began = datetime.fromisoformat(sessions[-1]["started"]).timestamp()
        last = _last_event_time(spec.log_path)
        sessions[-1] = {**sessions[-1], "seconds": round(last - began, 2) if last and last >= began else None}
    return sessions


def _last_event_time(log: Path) -> float | None:
    """The time (seconds since the epoch) of the event log's last readable event."""
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return float(json.loads(line)["time"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def _end_hooks(trainer: Trainer | None, hooks: list[Hooks], result: TrainResult) -> None:
    """Tell the hooks that a run ended by an exception, once: a watcher sees that it ended, files are closed.
    A run that failed before its trainer began logs no step (its next attempt drops that event)."""
    if trainer is not None and trainer.ended:
        return
    if trainer is None or not trainer.began:
        result = dataclasses.replace(result, steps=None)
    for hook in hooks:
        with contextlib.suppress(Exception):
            hook.on_end(result)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _available(name: str) -> torch.device | None:
    """The device `name` resolves to here, or None where this machine lacks it (the run then fails)."""
    try:
        return resolve_device(name)
    except ConfigError:
        return None


def _time_bound(config: RunConfig, result: TrainResult, context: dict) -> dict | None:
    """For a run with a time budget: the budget, the hardware that spent it, and whether the time (not the
    step budget) ended it. Such runs compare only on the same hardware (`bench report --mixed-hardware`)."""
    if config.train.minutes is None:
        return None
    return {"minutes": config.train.minutes, "hardware": context["hardware"],
            "ended_by_time": result.status == "ok" and result.steps < config.train.steps}


def _execute_on_a_free_gpu(spec: RunSpec, free_gpus, force: bool) -> RunRecord | Locked:
    """Take whichever GPU is free, run `spec` on it, give it back (with its cached memory)."""
    gpu = free_gpus.get()
    try:
        return execute(spec, device=f"cuda:{gpu}", force=force)
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        free_gpus.put(gpu)


def run_parallel(specs: list[RunSpec], *, jobs: int = 1, gpus: list[int] | None = None, backend: str = "loky",
                 hooks: list[Hooks] = (), force: bool = False) -> Iterator[RunRecord | Locked]:
    """Execute specs and yield each record as it completes.

    One job runs here, in order, with `hooks` (a progress display). With `gpus`, a worker process per index
    (threads with backend "threading"), and each run goes to whichever index is free when its turn comes (a
    queue, so a slow run does not hold back the runs behind it); this needs only the standard library, as on a
    GPU machine with torch and numpy alone. Several CPU jobs run in joblib workers, each with cores / jobs
    threads; with backend "dask", joblib sends runs to the Dask client that the caller has connected (a
    cluster with a single thread in all runs them here: joblib's rule).
    """
    if in_this_process(jobs, gpus, backend):
        for spec in specs:
            yield execute(spec, hooks=hooks, force=force, alone=True)
        return
    if gpus:
        yield from _run_on_gpus(specs, gpus, backend == "threading", force)
        return
    from joblib import Parallel, delayed, parallel_config  # here: runs in this process need only torch and numpy

    with parallel_config(backend=backend):  # "dask" is registered here, not by Parallel
        threads = run_threads(jobs, None, backend)
        tasks = [delayed(execute)(spec, threads=threads, force=force) for spec in specs]
        n_jobs = -1 if backend == "dask" else jobs  # dask: every worker of the cluster
        yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks)


def _run_on_gpus(specs: list[RunSpec], gpus: list[int], in_threads: bool, force: bool
                 ) -> Iterator[RunRecord | Locked]:
    """A worker per GPU index, each run taking whichever index is free. Processes are spawned, not forked: a
    forked child of a process that has touched CUDA cannot use it."""
    with ExitStack() as stack:
        if in_threads:
            free_gpus, pool = queue.Queue(), ThreadPoolExecutor(len(gpus))
        else:
            free_gpus = stack.enter_context(multiprocessing.Manager()).Queue()
            pool = ProcessPoolExecutor(len(gpus), mp_context=multiprocessing.get_context("spawn"))
        stack.enter_context(pool)
        for gpu in gpus:
            free_gpus.put(gpu)
        futures = [pool.submit(_execute_on_a_free_gpu, spec, free_gpus, force) for spec in specs]
        for future in as_completed(futures):
            yield future.result()


def train_one(config: RunConfig, out: Path, *, fresh: bool = False,
              hooks: Callable[[RunSpec], contextlib.AbstractContextManager[list[Hooks]]] | None = None,
              log: Callable[[str], None] = lambda _: None) -> RunRecord:
    """Train (or resume) one run of `config` under `out` (`bench train`) and write its record; returns the record.
    `hooks(spec)`, where given, is a context manager lasting while the run trains that gives the run's hooks (a
    progress display); `log` hears what happens while the data is prepared. `fresh`: ignore an existing
    checkpoint. A run that another process is training is refused."""
    ensure_writable(out)
    prepare(config.data, log=log)
    [spec] = in_folder([RunSpec("train", "train", "custom", config)], out)
    with (hooks or (lambda _: contextlib.nullcontext([])))(spec) as run_hooks:
        record = execute(spec, hooks=run_hooks, force=fresh, alone=True)
    if isinstance(record, Locked):
        raise RecordError(f"run {spec.id}: {record.reason}")
    return record

