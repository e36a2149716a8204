"""Running (variant, seed) runs: one JSON record each, resumable, failures recorded as outcomes.

Each run's id hashes its resolved configuration (seed included) and the fingerprint of its
data, so a rerun skips what is done, resumes what was interrupted from its checkpoint,
and starts the rest. Where a run executes (device, threads) is recorded but is not part
of its id. Runs go through joblib: in this process for one job, worker processes for
several, one worker per GPU with --gpus (each run takes whichever GPU is free), or a Dask
cluster with backend "dask".
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.records import NOT_IN_ID, RecordError, device_name, environment, read_record, write_json_atomically
from qanet.config import ConfigError, RunConfig
from qanet.data.prepare import fingerprint, prepare
from qanet.train import (
    CHECKPOINT,
    CheckpointError,
    Hooks,
    JsonLinesLog,
    TensorBoardLog,
    Trainer,
    TrainResult,
    resolve_device,
)


@dataclass(frozen=True)
class RunSpec:
    study: str
    variant: str
    seed: int
    scale: str
    config: dict  # RunConfig.to_dict()
    fingerprint: str
    out: str  # the study's records directory
    tags: dict | None = None  # extra record fields that are not part of the run (an Optuna trial's link)

    @property
    def id(self) -> str:
        config = json.loads(json.dumps(self.config))
        for key in NOT_IN_ID:
            config["train"].pop(key, None)
        text = json.dumps({"config": config, "data": self.fingerprint}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def record_path(self) -> Path:
        return Path(self.out) / f"{self.id}.json"

    @property
    def lock_path(self) -> Path:
        return Path(self.out) / "checkpoints" / f"{self.id}.lock"

    @property
    def log_path(self) -> Path:
        """The run's events as they happen (JSON lines), appended to across resumes."""
        return Path(self.out) / f"{self.id}.log.jsonl"

    @property
    def tensorboard_dir(self) -> Path:
        """`tensorboard --logdir OUT/tensorboard` shows every run of the study, one per id."""
        return Path(self.out) / "tensorboard" / self.id

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.out) / "checkpoints" / self.id

    @property
    def context_path(self) -> Path:
        """Where the run's checkpoint was made ({"execution": context, "restarted": why or None}): a resume
        must match it, and carries the reason of an earlier restart into the record."""
        return self.checkpoint_dir / "context.json"

    def record(self) -> dict | None:
        return read_record(self.record_path)

    def restart_reason(self, context: dict, force: bool) -> str:
        """Why the run's progress (record, checkpoint, log, TensorBoard events) must go before it trains, or ''."""
        record, made = self.record(), _read_json(self.context_path) or {}
        if force:
            return "asked to start again (--force, --fresh): trained from step 0"
        if record is None and self.record_path.exists():
            return "its record is damaged: trained again from step 0"
        if record and record.get("status") in FINISHED and record.get("execution") != context:
            return (f"its record says {record['status']} but was made with {record.get('execution')}; here "
                    f"{context}: trained again from step 0")
        if (self.checkpoint_dir / CHECKPOINT).exists() and made.get("execution", context) != context:
            return f"its checkpoint was made with {made['execution']}; here {context}: trained again from step 0"
        return ""

    def discard_progress(self) -> None:
        """Start the run afresh: its record (kept as ID.json.replaced until it has a new one), checkpoint,
        context, event log and TensorBoard events go. Moving the record aside matters: an interrupted restart
        must resume, not find the old record and restart again."""
        if self.record_path.exists():
            self.record_path.replace(self.record_path.with_name(f"{self.record_path.name}.replaced"))
        (self.checkpoint_dir / CHECKPOINT).unlink(missing_ok=True)
        self.context_path.unlink(missing_ok=True)
        self.log_path.unlink(missing_ok=True)
        shutil.rmtree(self.tensorboard_dir, ignore_errors=True)

    def done(self, context: dict) -> bool:
        """Finished in the same execution context (on the CPU, results depend on the thread count): ok, or
        ended on purpose by a hook (pruned, stopped); a diverged, out-of-memory or failed run runs again."""
        record = self.record()
        return bool(record) and record.get("status") in FINISHED and record.get("execution") == context


FINISHED = ("ok", "pruned", "stopped")


def run_threads(jobs: int, gpus: list[int] | None, backend: str) -> int | None:
    """CPU threads a run gets: torch's default when runs go one at a time in this process, the cores
    shared out when several run at once (None on GPUs)."""
    if gpus or (jobs == 1 and backend != "dask"):
        return None
    return max(1, (os.cpu_count() or 1) // jobs)


def execution_context(config: RunConfig, threads: int | None, device: str | None = None) -> dict:
    """What, beyond the id, changes a run's numbers: the device kind, CPU threads, the dtype and the attention
    kernels training may use; for a time-bounded run (train.minutes) also the hardware model, whose speed sets
    how far it gets."""
    name = device or config.train.device
    available = _available(name)
    kind = (available or torch.device(name)).type  # unavailable: where the run was meant to run
    context = {"device": kind, "threads": (config.train.threads or threads or torch.get_num_threads())
               if kind == "cpu" else None, "dtype": "bf16" if kind == "cuda" and config.train.bf16 else "fp32"}
    if kind == "cuda" or config.train.attention_kernels != "auto":  # on a CPU, "auto" is what it always was
        context["attention_kernels"] = config.train.attention_kernels
    if config.train.minutes is not None:
        context["hardware"] = device_name(available) if available else None
    return context


def plan(study: str, variant_configs: list[tuple[str, int, RunConfig]], scale: str, out: Path) -> list[RunSpec]:
    """Specs for every run, each with its data's fingerprint (computed from digests and settings: nothing
    is prepared here, the runs prepare their data)."""
    fingerprints: dict[str, str] = {}
    specs, out = [], str(Path(out).resolve())  # records name their checkpoint by an absolute path
    for variant, seed, config in variant_configs:
        data_key = json.dumps(dataclasses.asdict(config.data), sort_keys=True)
        if data_key not in fingerprints:
            fingerprints[data_key] = fingerprint(config.data)
        specs.append(RunSpec(study, variant, seed, scale, config.to_dict(), fingerprints[data_key], out))
    return specs


def _outcome(error: BaseException, config: RunConfig) -> tuple[str, str]:
    if isinstance(error, torch.cuda.OutOfMemoryError | MemoryError):
        return "oom", f"out of memory at batch size {config.train.batch_size}: {error}"
    return "failed", "".join(traceback.format_exception(error)).strip()


LOCKED = "locked"  # not an outcome: another process is training the run, and will write its record


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


def execute(spec: RunSpec, device: str | None = None, threads: int | None = None, hooks: list[Hooks] = (),
            force: bool = False, alone: bool = False) -> dict:
    """Train or resume one run and write its record, whatever happens; returns the record. Its events go
    to `spec.log_path` as they happen, and to `hooks` (progress display, pruning). A run that another
    process is training is left to it (the answer has status LOCKED, nothing is written), and one that
    another process finished meanwhile is not trained again (its record is the answer), unless `force`.
    `alone`: the caller trains no other run meanwhile (its record's `timed_alone`: its times and memory
    are not another run's load; other programs on the machine are not known); say so only where it is so."""
    with run_lock(spec) as mine:
        if not mine:
            return {"id": spec.id, "variant": spec.variant, "seed": spec.seed, "status": LOCKED,
                    "error": f"being trained by another process ({spec.lock_path} is locked)", "metrics": {},
                    "wall_seconds": 0.0}
        config = RunConfig.from_dict(spec.config)
        if device:
            config.train.device = device
        if threads and not config.train.threads:
            config.train.threads = threads
        context = execution_context(config, threads)
        if not force and spec.done(context):
            return {**spec.record(), "restarted": None}  # finished elsewhere meanwhile: nothing restarted now
        # decided here, under the lock, where the run executes: another process may be training it, and only
        # here is the context exact (a Dask worker's GPU, say)
        restarted = spec.restart_reason(context, force)
        if restarted:
            spec.discard_progress()
        else:  # resuming: a restart of an earlier attempt is still this record's story
            restarted = (_read_json(spec.context_path) or {}).get("restarted") or ""
        return _train_and_record(spec, config, context, hooks, restarted, alone)


def _train_and_record(spec: RunSpec, config: RunConfig, context: dict, hooks: list[Hooks], restarted: str,
                      alone: bool) -> dict:
    started = time.perf_counter()
    result, status, error, trainer = None, "ok", None, None
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
        write_json_atomically(spec.context_path, {"execution": context, "restarted": restarted or None})
        result = trainer.run()
        status, error = result.status, result.error
    except Exception as caught:  # noqa: BLE001 - every failure becomes a recorded outcome
        status, error = _outcome(caught, config)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # hand an out-of-memory run's cached blocks to the next run
        result = TrainResult(status, trainer.step if trainer else 0, {}, error=error)
        _end_hooks(trainer, hooks, result)
    except BaseException:  # an interrupt: no record (the run resumes), but the hooks close their files
        _end_hooks(trainer, hooks, TrainResult("interrupted", trainer.step if trainer else 0, {}))
        raise
    record = _record(spec, config, status, error, result, time.perf_counter() - started)
    record["execution"] = context
    record["time_bounded"] = _time_bound(config, result, context)
    record["restarted"] = restarted or None
    record["timed_alone"] = alone
    try:
        write_json_atomically(spec.record_path, record)
    except OSError as error:
        raise RecordError(f"{spec.record_path}: the run ended {status} but its record could not be written "
                          f"({error.strerror or error}); its checkpoint and log are kept: run it again once the "
                          f"folder takes files") from None
    return record


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


def _record(spec: RunSpec, config: RunConfig, status: str, error: str | None, result: TrainResult,
            wall: float) -> dict:
    return {
        "id": spec.id,
        "study": spec.study,
        "variant": spec.variant,
        "seed": spec.seed,
        "scale": spec.scale,
        "status": status,
        "error": error,
        "config": config.to_dict(),
        "dataset_fingerprint": spec.fingerprint,
        "steps": result.steps,
        "resumed_from": result.resumed_from,
        "warnings": result.warnings,
        "metrics": result.metrics,
        "holdout_metrics": result.holdout_metrics,  # the held-out training questions' (data.holdout_questions)
        "curve": result.curve,
        "train_questions": result.train_questions,
        "train_questions_left_out": result.train_questions_left_out,
        "parameters": result.parameters,
        "wall_seconds": round(wall, 2),
        "train_seconds": round(result.train_seconds, 2),
        "eval_seconds": round(result.eval_seconds, 2),
        "compile_seconds": round(result.compile_seconds, 2),
        "compile_shapes": [{**shape, "seconds": round(shape["seconds"], 2)} for shape in result.compile_shapes],
        "train_examples_per_s": round(result.train_examples_per_s, 2),
        "peak_memory_mb": round(result.peak_memory_mb, 1),
        "attention_kernel": result.attention_kernel,
        "environment": environment(_available(config.train.device) or torch.device("cpu")),
        "checkpoint": str(spec.checkpoint_dir / "checkpoint.pt"),
        **(spec.tags or {}),
    }


def _time_bound(config: RunConfig, result: TrainResult, context: dict) -> dict | None:
    """For a run with a time budget: the budget, the hardware that spent it, and whether the time (not the
    step budget) ended it. Such runs compare only on the same hardware (`bench report --mixed-hardware`)."""
    if config.train.minutes is None:
        return None
    return {"minutes": config.train.minutes, "hardware": context["hardware"],
            "ended_by_time": result.status == "ok" and result.steps < config.train.steps}


def _execute_one(spec: RunSpec, threads: int | None, force: bool) -> list[dict]:
    return [execute(spec, None, threads, force=force)]


def _execute_on_a_free_gpu(spec: RunSpec, free_gpus, force: bool) -> list[dict]:
    """Take whichever GPU is free, run `spec` on it, give it back (with its cached memory)."""
    gpu = free_gpus.get()
    try:
        return [execute(spec, f"cuda:{gpu}", None, force=force)]
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        free_gpus.put(gpu)


def run_parallel(specs: list[RunSpec], jobs: int = 1, gpus: list[int] | None = None, backend: str = "loky",
                 hooks: list[Hooks] = (), force: bool = False) -> Iterator[dict]:
    """Execute specs and yield each record as it completes.

    One job runs here, in order, with `hooks` (a progress display). Several jobs run in joblib workers,
    each with cores / jobs threads. With `gpus`, one worker per GPU, and each run goes to whichever GPU is
    free when its turn comes (a queue, so a slow run does not hold back the runs behind it). With backend
    "dask", joblib sends runs to the Dask client that the caller has connected (a cluster with a single
    thread in all runs them here: joblib's rule).
    """
    from joblib import Parallel, delayed, parallel_config

    if jobs == 1 and not gpus and backend != "dask":
        for spec in specs:
            yield execute(spec, hooks=hooks, force=force, alone=True)
        return
    with ExitStack() as stack:
        stack.enter_context(parallel_config(backend=backend))  # "dask" is registered here, not by Parallel
        if gpus:
            free_gpus = stack.enter_context(multiprocessing.Manager()).Queue()
            for gpu in gpus:
                free_gpus.put(gpu)
            tasks = [delayed(_execute_on_a_free_gpu)(spec, free_gpus, force) for spec in specs]
        else:
            threads = run_threads(jobs, None, backend)
            tasks = [delayed(_execute_one)(spec, threads, force) for spec in specs]
        n_jobs = len(gpus) if gpus else -1 if backend == "dask" else jobs  # dask: every worker of the cluster
        for records in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
            yield from records
