"""Run records: one JSON file per run, written atomically: the run (RunSpec), how it ended (TrainResult) and
where it ran. `RunRecord` is the record typed; the readers here turn a study's records into DataFrames."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import json
import os
import sys
import types
import typing
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from bench.spec import RunSpec
from qanet.config import ConfigError, RunConfig
from qanet.files import replace_atomically
from qanet.outcome import RECORDED, TrainResult


def write_json_atomically(path: Path, data: dict) -> None:
    """Readers see the old file or the new one, never half; a failed write leaves no temporary file."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    replace_atomically(path, lambda staging: staging.write_text(text, encoding="utf-8"))


def ensure_writable(folder: Path) -> None:
    """Refuse a folder that cannot take records and checkpoints, before anything is trained; the folders
    made to find out are removed again (nothing is left by a command that stops later)."""
    folder = Path(folder).absolute()
    made = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    probe = folder / f".write-test.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            probe.write_bytes(bytes(65536))
        finally:
            probe.unlink(missing_ok=True)
    except OSError as error:
        raise RecordError(f"{folder}: cannot write there ({error.strerror or error})") from None
    finally:
        for parent in made:  # innermost first
            with contextlib.suppress(OSError):
                parent.rmdir()


RUNS = Path("results") / "runs"  # under the working directory, like every output of a command
TRAINED = Path("results") / "train"  # where `bench train` puts its runs
RECORD_COLUMNS = ["study", "variant", "seed", "scale", "status", "exact", "f1", "total", "steps", "wall_seconds",
                  "train_seconds", "eval_seconds", "train_examples_per_s", "peak_memory_mb", "parameters",
                  "time_bounded", "time_bounded_on", "timed_alone", "device_kind", "device", "threads", "torch",
                  "cuda", "git_sha", "git_dirty", "id", "error", "started", "ended", "sessions", "wall_complete",
                  "dataset_fingerprint"]


class RecordError(ValueError):
    """Records that cannot be written where asked, or compared as asked."""


# a record's keys that are neither the result's nor the record's own fields: the run's, and what each holds (any
# other key is a tag, of any type)
_RUN_KEYS = {"id": str, "id_scheme": int | None, "study": str, "variant": str, "seed": int, "scale": str,
             "config": dict, "dataset_fingerprint": str | None, "train_examples_per_s": float}
# what a record must hold to be one (any other key takes its default where a record was written before it existed)
_REQUIRED = ("id", "variant", "seed", "scale", "status", "config")
_JSON_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "an object",
               list: "a list", type(None): "null"}
# how many decimals a record keeps of each measurement
_DECIMALS = {"train_seconds": 2, "eval_seconds": 2, "compile_seconds": 2, "peak_memory_mb": 1}


@dataclass
class RunRecord:
    """A run's record, typed: the run, how it ended and where it ran. `to_json` is what its file holds (the
    spec's and the result's fields side by side, as records have always been); `from_json` reads one back,
    a record written before a field existed taking that field's default."""

    spec: RunSpec
    result: TrainResult
    _: KW_ONLY
    wall_seconds: float = 0.0
    execution: dict | None = None  # bench.runner.execution_context: what beyond the id changes the numbers
    time_bounded: dict | None = None  # for a run with a minutes budget: the budget, hardware, what ended it
    restarted: str | None = None  # why the run's earlier progress was discarded, if it was
    timed_alone: bool = False  # the bench process trained no other run meanwhile
    environment: dict = field(default_factory=dict)  # bench.environment.environment
    checkpoint: str = ""
    # when the run started and ended (UTC, ISO 8601) and its sessions: a resumed run has one per process that
    # trained it, and its wall_seconds is their sum (`complete`: false where a session's length is not known)
    timeline: dict | None = None
    # not written: the run was found finished by another process as this one came to start it (runner.execute)
    done_elsewhere: bool = False

    def to_json(self) -> dict:
        spec, result = self.spec, dataclasses.asdict(self.result)
        result.pop("train_examples")  # kept as the rate
        for key, places in _DECIMALS.items():
            result[key] = round(result[key], places)
        result["compile_shapes"] = [{**shape, "seconds": round(shape["seconds"], 2)}
                                    for shape in result["compile_shapes"]]
        outcome = {"status": result.pop("status"), "error": result.pop("error")}  # first, as a reader looks
        return {"id": spec.id, "id_scheme": spec.id_scheme, "study": spec.study, "variant": spec.variant,
                "seed": spec.seed, "scale": spec.scale,
                **outcome, "config": spec.config.to_dict(), "dataset_fingerprint": spec.fingerprint, **result,
                "train_examples_per_s": round(self.result.train_examples_per_s, 2),
                "wall_seconds": round(self.wall_seconds, 2), "environment": self.environment,
                "checkpoint": self.checkpoint, **(spec.tags or {}), "execution": self.execution,
                "time_bounded": self.time_bounded, "restarted": self.restarted, "timed_alone": self.timed_alone,
                "timeline": self.timeline}

    @classmethod
    def from_json(cls, record: Any, folder: Path) -> RunRecord:
        """The record of a file in `folder` (its study's records folder); a RecordError saying why where it is
        not one: a key it needs is missing, a value is not of its field's type (`metrics.f1 = 'forty-two'`), or
        its configuration no longer reads."""
        if not isinstance(record, dict):
            raise RecordError(f"a JSON {type(record).__name__}, not an object")
        missing = [key for key in _REQUIRED if key not in record]
        if missing:
            raise RecordError(f"no {', '.join(missing)}")
        results, mine = _field_types(TrainResult), _field_types(cls)
        for key, value in record.items():
            kind = _RUN_KEYS.get(key) or results.get(key) or mine.get(key)
            mismatch = _mismatch(value, kind, key) if kind else None
            if mismatch:
                raise RecordError(mismatch)
        if record["status"] not in RECORDED:
            raise RecordError(f"status = {record['status']!r}, expected one of {', '.join(RECORDED)}")
        try:
            config = RunConfig.from_dict(record["config"])
        except ConfigError as error:
            raise RecordError(f"its configuration no longer reads: {error}") from None
        known = results.keys() | mine.keys() | _RUN_KEYS.keys()
        tags = {key: value for key, value in record.items() if key not in known}
        spec = RunSpec(record.get("study", Path(folder).name), record["variant"], record["scale"], config,
                       folder=Path(folder), tags=tags or None, fingerprint=record.get("dataset_fingerprint"),
                       recorded_id=record["id"], id_scheme=record.get("id_scheme"))
        result = TrainResult(**{"steps": 0, "metrics": {}, **{key: record[key] for key in results if key in record}})
        # the examples the rate was made of, to the rounding of the seconds (the record keeps the rate)
        result.train_examples = (record.get("train_examples_per_s") or 0.0) * result.train_seconds
        return cls(spec, result, **{key: record[key] for key in mine if key in record})


@functools.cache
def _field_types(kind: type) -> dict[str, Any]:
    """A dataclass's fields and their types as a record's file holds them: `spec` and `result` are spread out
    into their own fields, `train_examples` is kept as a rate, `done_elsewhere` is not written."""
    hints = typing.get_type_hints(kind)
    return {item.name: hints[item.name] for item in dataclasses.fields(kind)
            if item.name not in ("spec", "result", "train_examples", "done_elsewhere")}


def _mismatch(value: Any, kind: Any, where: str) -> str | None:
    """Where `value` (read from JSON) does not hold `kind` (a field's type, a union of them, or a list or dict of
    them), what and where it is, inside it where it has the right shape; None where it holds it."""
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    shaped = next((option for option in options if _has_the_shape(value, option)), None)
    if shaped is None:
        return f"{where} = {value!r}, expected " + " or ".join(_JSON_NAMES[_json_type(option)] for option in options)
    container, inner = _json_type(shaped), typing.get_args(shaped)
    items = value.items() if container is dict else enumerate(value) if container is list else ()
    for key, item in items if inner else ():
        mismatch = _mismatch(item, inner[-1], f"{where}.{key}" if container is dict else f"{where}[{key}]")
        if mismatch:
            return mismatch
    return None


def _json_type(kind: Any) -> type:
    """The JSON type a field's type is written as (list for list[int]); a field of any other type (a tuple, a
    Path) would read back as damaged in every record, so test_records checks there is none."""
    return typing.get_origin(kind) or kind


def _has_the_shape(value: Any, kind: Any) -> bool:
    """Whether a JSON value is of a field type's outer JSON type: a float field takes an integer too, a number
    field never true or false."""
    container = _json_type(kind)
    if isinstance(value, bool) and container in (int, float):
        return False
    return isinstance(value, (int, float) if container is float else container)


def read_record(path: Path) -> RunRecord | None:
    """The record at `path`, typed: the one way records are read. None where there is none, or where it is
    damaged (half-written, edited, not a record, a field not of its type): then one line on stderr names it,
    once per process, and callers go on without it (`bench run` trains its run again)."""
    try:
        return _parsed(path)
    except FileNotFoundError:  # no record (yet)
        return None
    except RecordError as error:
        return _unreadable(path, str(error))


def _parsed(path: Path) -> RunRecord:
    """The record at `path`, or a RecordError saying why it is none (FileNotFoundError: no file there)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordError(f"not valid JSON ({error})") from None
    return RunRecord.from_json(record, Path(path).parent)


_said_unreadable: set[Path] = set()


def _unreadable(path: Path, why: str) -> None:
    said_as = Path(path).resolve()  # the runner names it absolute, the readers as globbed
    if said_as not in _said_unreadable:
        _said_unreadable.add(said_as)
        print(f"warning: {path}: not a readable run record, {why}; left out (`bench run` redoes its run)",
              file=sys.stderr)
    return None


def checkpoint_of(run: str, roots: tuple[Path, ...] = (RUNS, TRAINED)) -> Path:
    """The checkpoint `run` names: a path (a checkpoint file, or its run's folder of checkpoints) as given; a
    run's record (ID.json); or a run's id, its records looked up under the records roots (ROOT/ID.json,
    ROOT/STUDY/ID.json: one run may be in several studies). A record's checkpoint is looked for beside it (its
    folder moved with it), then where the record says; a RecordError in one line where there is none."""
    from qanet.checkpoint import CHECKPOINT  # torch: not for the commands that never read a checkpoint

    path = Path(run)
    if path.suffix == ".json":
        records = [path]
    elif path.suffix or path.exists() or "/" in run:  # a path: reading the checkpoint says what is wrong with it
        return path / CHECKPOINT if path.is_dir() else path
    else:
        name = glob.escape(run)
        records = sorted(found for root in roots for pattern in (f"{name}.json", f"*/{name}.json")
                         for found in Path(root).glob(pattern))
        if not records:
            raise RecordError(f"{run}: no such checkpoint, record or run id (ids are looked up in "
                              f"{' and '.join(str(root) for root in roots)})")
    places = []
    for found in records:
        try:
            record = _parsed(found)
        except FileNotFoundError:
            raise RecordError(f"{found}: no such record") from None
        except RecordError as error:
            raise RecordError(f"{found}: not a readable run record, {error}") from None
        places += [record.spec.checkpoint_dir / CHECKPOINT, *([Path(record.checkpoint)] if record.checkpoint else [])]
        checkpoint = next((place for place in places if place.is_file()), None)
        if checkpoint is not None:
            return checkpoint
    raise RecordError(f"{run}: its run's checkpoint is not there ({' nor '.join(map(str, places))})")


def read_records(directory: Path) -> list[RunRecord]:
    """Every readable record of a study's folder (damaged ones named on stderr and left out)."""
    records = (read_record(path) for path in sorted(Path(directory).glob("*.json")))
    return [record for record in records if record is not None]


def study_records(study: str, root: Path = RUNS) -> list[RunRecord]:
    """The records of `study` under a records root (ROOT/STUDY/), or in ROOT itself where ROOT is such a
    folder by another name (`results/reference/faithfulness-cpu`); a folder of another study's records is
    refused in one line."""
    root = Path(root)
    if (root / study).is_dir() or not any(root.glob("*.json")):
        return read_records(root / study)
    records = read_records(root)
    others = sorted({record.spec.study for record in records} - {study})
    if others:
        raise RecordError(f"{root}: records of {', '.join(others)}, not of {study}")
    return records


def records_frame(study: str, root: Path = RUNS):
    """One row per run record of a study, tidy columns (see RECORD_COLUMNS), then one column per
    configuration field named by its dotted key (model.hidden, train.optimizer, ...)."""
    import pandas as pd

    rows = []
    for record in (record.to_json() for record in study_records(study, root)):
        metrics = record.get("metrics") or {}
        environment_info = record.get("environment") or {}
        row = {key: record.get(key) for key in RECORD_COLUMNS}
        row.update({key: metrics.get(key) for key in ("exact", "f1", "total")})
        row.update({key: value for key, value in metrics.items() if key.startswith(("HasAns", "NoAns"))})
        row.update(time_bounded=bool(record.get("time_bounded")), time_bounded_on=_time_bounded_on(record),
                   timed_alone=bool(record.get("timed_alone")),  # records from before the field: not known
                   device_kind=(record.get("execution") or {}).get("device"),
                   device=environment_info.get("device"), threads=environment_info.get("threads"),
                   torch=environment_info.get("torch"), cuda=environment_info.get("cuda"),
                   git_sha=(environment_info.get("git") or {}).get("sha"),
                   git_dirty=(environment_info.get("git") or {}).get("dirty"))
        timeline = record.get("timeline") or {}  # records from before it: not known
        row.update(started=timeline.get("started"), ended=timeline.get("ended"),
                   sessions=len(timeline.get("sessions") or []) or None, wall_complete=timeline.get("complete"))
        for section, values in record["config"].items():
            for key, value in values.items():
                row[f"{section}.{key}"] = json.dumps(value) if isinstance(value, dict) else value
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame if rows else pd.DataFrame(columns=RECORD_COLUMNS)


CURVE_COLUMNS = ["study", "variant", "seed", "scale", "status", "step", "train_seconds", "total", "metric",
                 "value"]


def curves_frame(study: str, root: Path = RUNS):
    """The records' learning curves in tidy long form, one row per (run, evaluation, metric), in each run's
    order: for plotting with seaborn, e.g. `sns.lineplot(curves[curves.metric == "f1"], x="step", y="value",
    hue="variant")`. `status` is the run's outcome (a pruned or diverged run's curve is no ok run's), `total`
    the questions that evaluation scored (a sample of dev, or the whole of it: a run's last evaluation)."""
    import pandas as pd

    rows = [{"study": record.spec.study, "variant": record.spec.variant, "seed": record.spec.seed,
             "scale": record.spec.scale, "status": record.result.status, "step": entry["step"],
             "train_seconds": entry.get("train_seconds"), "total": entry.get("total"), "metric": metric,
             "value": entry[metric]}
            for record in study_records(study, root) for entry in record.result.curve
            for metric in ("exact", "f1", "train_loss") if entry.get(metric) is not None]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def _time_bounded_on(record: dict) -> str | None:
    """The hardware a time-bounded run spent its minutes on (with the thread count on a CPU); None if the run
    was bounded by steps."""
    bound, execution = record.get("time_bounded"), record.get("execution") or {}
    if not bound:
        return None
    threads = f", {execution['threads']} threads" if execution.get("device") == "cpu" else ""
    return f"{bound.get('hardware')}{threads}"
