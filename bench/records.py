"""Run records: one JSON file per run, written atomically, with the environment that produced it."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from qanet.files import replace_atomically

ROOT = Path(__file__).resolve().parents[1]
# Real SQuAD files beside the checkout, read in place (never copied in); QANET_BENCH_SHARED points elsewhere.
SHARED_DATA = Path(os.environ.get("QANET_BENCH_SHARED", ROOT.parent / "shared")) / "data"
SHARED_SQUAD_V11 = {"train": SHARED_DATA / "squad" / "v1.1" / "train-v1.1.reconstructed.json",
                    "dev": SHARED_DATA / "squad" / "v1.1" / "dev-v1.1.json"}


def git_version() -> dict:
    """The commit the code came from. An installed copy is no checkout (git there would describe whatever
    repository surrounds site-packages, or none): it records its package version instead."""
    if not (ROOT / ".git").exists():
        try:
            version = metadata.version("qanet-bench")
        except metadata.PackageNotFoundError:
            version = None
        return {"sha": None, "dirty": None, "package": version}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()

    try:
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
        return {"sha": git("rev-parse", "HEAD") or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The hardware model behind a device: the GPU's name, or the CPU's."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model()


def environment(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "device": device_name(device),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "host": platform.node(),
        "pid": os.getpid(),
        "git": git_version(),
        "argv": sys.argv,
    }


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
# Placement and logging are recorded, not hashed: the same run on another GPU, thread count or attention
# kernel, or with a TensorBoard log, has the same id (the execution context tells them apart).
NOT_IN_ID = ("device", "threads", "tensorboard", "attention_kernels")
# Measurements, placement and resume history vary between two executions of the same run; nothing else may.
MEASURED = ("wall_seconds", "train_seconds", "eval_seconds", "compile_seconds", "train_examples_per_s",
            "peak_memory_mb", "environment", "checkpoint", "resumed_from", "execution", "time_bounded", "restarted",
            "timed_alone", "attention_kernel", "compile_shapes", "optuna")
COLUMNS = ["study", "variant", "seed", "scale", "status", "exact", "f1", "total", "steps", "wall_seconds",
           "train_seconds", "eval_seconds", "train_examples_per_s", "peak_memory_mb", "parameters", "time_bounded",
           "time_bounded_on", "timed_alone", "device_kind", "device", "threads", "torch", "cuda", "git_sha",
           "git_dirty", "id", "error"]


def comparable(record: dict) -> dict:
    """A record without its measurements: equal for two executions of the same run."""
    kept = {key: value for key, value in record.items() if key not in MEASURED}
    kept["curve"] = [{k: v for k, v in entry.items() if k != "train_seconds"} for entry in record.get("curve", [])]
    for key in NOT_IN_ID:
        kept["config"]["train"].pop(key, None)
    return kept


class RecordError(ValueError):
    """Records that cannot be written where asked, or compared as asked."""


# the keys every reader relies on, and their JSON types
_RECORD_KEYS = {"id": str, "variant": str, "seed": int, "scale": str, "status": str, "config": dict}
_said_unreadable: set[Path] = set()


def read_record(path: Path) -> dict | None:
    """The record at `path`; None where there is none, or where it is damaged (half-written, edited, not a
    record): then one line on stderr names it, once per process, and callers go on without it."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):  # no record (yet)
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return _unreadable(path, f"not valid JSON ({error})")
    if not isinstance(record, dict):
        return _unreadable(path, f"a JSON {type(record).__name__}, not an object")
    for key, kind in _RECORD_KEYS.items():
        if not isinstance(record.get(key), kind):
            return _unreadable(path, f"{key} = {record.get(key)!r}, expected a {kind.__name__}")
    return record


def _unreadable(path: Path, why: str) -> None:
    if path not in _said_unreadable:
        _said_unreadable.add(path)
        print(f"warning: {path}: not a readable run record, {why}; left out (`bench run` redoes its run)",
              file=sys.stderr)
    return None


def read_records(directory: Path) -> list[dict]:
    """Every readable record of a study's folder (damaged ones named on stderr and left out)."""
    records = (read_record(path) for path in sorted(Path(directory).glob("*.json")))
    return [record for record in records if record is not None]


def study_records(study: str, root: Path = RUNS) -> list[dict]:
    """The records of `study` under a records root (ROOT/STUDY/), or in ROOT itself where ROOT is such a
    folder by another name (`results/reference/faithfulness-cpu`); a folder of another study's records is
    refused in one line."""
    root = Path(root)
    if (root / study).is_dir() or not any(root.glob("*.json")):
        return read_records(root / study)
    records = read_records(root)
    others = sorted({str(record.get("study")) for record in records} - {study})
    if others:
        raise RecordError(f"{root}: records of {', '.join(others)}, not of {study}")
    return records


def records_frame(study: str, root: Path = RUNS):
    """One row per run record of a study, tidy columns (see COLUMNS), then one column per
    configuration field named by its dotted key (model.hidden, train.optimizer, ...)."""
    import pandas as pd

    rows = []
    for record in study_records(study, root):
        metrics = record.get("metrics") or {}
        environment_info = record.get("environment") or {}
        row = {key: record.get(key) for key in COLUMNS}
        row.update({key: metrics.get(key) for key in ("exact", "f1", "total")})
        row.update({f"{key}": value for key, value in metrics.items() if key.startswith(("HasAns", "NoAns"))})
        row.update(time_bounded=bool(record.get("time_bounded")), time_bounded_on=_time_bounded_on(record),
                   timed_alone=bool(record.get("timed_alone")),  # records from before the field: not known
                   device_kind=(record.get("execution") or {}).get("device"),
                   device=environment_info.get("device"), threads=environment_info.get("threads"),
                   torch=environment_info.get("torch"), cuda=environment_info.get("cuda"),
                   git_sha=(environment_info.get("git") or {}).get("sha"),
                   git_dirty=(environment_info.get("git") or {}).get("dirty"))
        for section, values in record["config"].items():
            for key, value in values.items():
                row[f"{section}.{key}"] = json.dumps(value) if isinstance(value, dict) else value
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame if rows else pd.DataFrame(columns=COLUMNS)


CURVE_COLUMNS = ["study", "variant", "seed", "scale", "status", "step", "train_seconds", "total", "metric",
                 "value"]


def curves_frame(study: str, root: Path = RUNS):
    """The records' learning curves in tidy long form, one row per (run, evaluation, metric), in each run's
    order: for plotting with seaborn, e.g. `sns.lineplot(curves[curves.metric == "f1"], x="step", y="value",
    hue="variant")`. `status` is the run's outcome (a pruned or diverged run's curve is no ok run's), `total`
    the questions that evaluation scored (a sample of dev, or the whole of it: a run's last evaluation)."""
    import pandas as pd

    rows = [{"study": record["study"], "variant": record["variant"], "seed": record["seed"],
             "scale": record["scale"], "status": record["status"], "step": entry["step"],
             "train_seconds": entry.get("train_seconds"), "total": entry.get("total"), "metric": metric,
             "value": entry[metric]}
            for record in study_records(study, root) for entry in record.get("curve") or []
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


def wall_clock_comparable(runs) -> bool:
    """Whether the ok runs' times measure the variants: each run timed alone (its process trained no other run
    meanwhile) or bounded by a minutes budget. Runs trained side by side share the machine's cores and memory
    bandwidth, so their clocks measure the sharing as much as the variant: reports bold no cost column and plot
    no time panel for them."""
    ok = runs[runs["status"] == "ok"]
    return bool((ok["timed_alone"].fillna(False).astype(bool) | ok["time_bounded"].fillna(False).astype(bool)).all())


def memory_per_run(runs) -> bool:
    """Whether the ok runs' peak memory is each run's own: the CUDA allocator's peak, reset for every run. On a
    CPU it is the process's peak RSS so far, so a run that follows others in one process reports the largest
    of them all: no comparison between variants."""
    return bool((runs.loc[runs["status"] == "ok", "device_kind"] == "cuda").all())


def mixed_hardware(frame) -> str:
    """Time-bounded runs (train.minutes) got as far as their hardware's speed allowed, so comparing them across
    hardware models (or CPU thread counts) compares the machines as much as the variants: what each scale's
    finished time-bounded runs were made on, where that is more than one thing; '' otherwise."""
    problems = []
    bounded = frame[frame["time_bounded_on"].notna() & frame["status"].isin(("ok", "pruned", "stopped"))]
    for scale, group in bounded.groupby("scale"):
        made_on = group["time_bounded_on"].value_counts()
        if len(made_on) > 1:
            problems.append(f"{scale}: " + ", ".join(f"{count} on {where}" for where, count in made_on.items()))
    if not problems:
        return ""
    return (f"time-bounded runs were made on different hardware ({'; '.join(problems)}): their step counts differ "
            f"with the hardware's speed")


def mean_std(values, sign: str = "") -> str:
    """'mean ± sd' over runs (sd with ddof 1), the value alone for one run, '-' for none; sign='+' signs the mean."""
    values = [float(value) for value in values if value is not None and value == value]  # NaN != NaN
    if len(values) < 2:
        return f"{values[0]:{sign}.2f}" if values else "-"
    return f"{statistics.mean(values):{sign}.2f} ± {statistics.stdev(values):.2f}"
