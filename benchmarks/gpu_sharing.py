"""Total training steps/s of k runs side by side on one GPU, for k = 1, 2, 4 (issue 24): how much more one card
trains when it holds several runs at once (`bench run --gpus 0,0,...`) than when it holds one.

On the GPU machine, from the repository root (torch + numpy + the repository + the pack), a call of its own:
    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_sharing.py --pack .packs/squad-v1.1-glove-6b-50d \\
        --minutes 1 --wall-seconds 540 --out $OUT/gpu-sharing
Here, end to end on the CPU (k runs side by side as `--jobs k`), with a small configuration:
    python benchmarks/gpu_sharing.py --pack DIR --device cpu --ks 1,2 --minutes 0.05 --set train.batch_size=4 \\
        --set data.context_len=100 --out /tmp/gpu-sharing

For each k, smallest first (a call cut short keeps k = 1 and 2): `python3 -m bench run` of a temporary study of
one variant (the paper preset, seeds 0..k-1) at --scale gpu from the pack, --gpus naming the GPU k times, a
training-time budget (train.minutes), no evaluation or checkpoint before the end (either pauses one run while the
others train on, which would mix levels of sharing in one rate) and a fresh records folder. From the k records:
total steps/s (the sum over the runs of steps / train_seconds), per-run steps/s, compile seconds and each
process's peak memory (the CUDA allocator's, without the CUDA context of about 0.5 GiB a process). Each run's rate
is over its own training time, which begins after its own compilation: the k runs overlap for most of it, not all.
OUT gets sharing.json (rewritten after each k), each k's log and records (records/kK/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

STARTED = time.monotonic()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.records import write_json_atomically  # noqa: E402 - no torch: this process makes no CUDA context

# Each k needs its training time plus about this much (estimated from the H200's run alone: 10 s to start, 22 s
# to capture the CUDA graphs, 4 s to score the whole dev set; more when k processes do it at once).
OVERHEAD_SECONDS = 60
# A number of steps no run reaches: evaluations and checkpoints only at the end.
NEVER = 10**9
STUDY = "gpu_sharing"


def study_text(k: int) -> str:
    return (f'description = "The paper model at the gpu scale, {k} runs side by side on one GPU '
            f'(benchmarks/gpu_sharing.py)"\npreset = "paper"\nseeds = {list(range(k))}\n')


def bench_run(args: argparse.Namespace, study: Path, k: int, records: Path) -> list[str]:
    """The `bench run` command for k runs side by side."""
    placement = (["--jobs", str(k), "--set", "train.device=cpu"] if args.device == "cpu"
                 else ["--gpus", ",".join([str(args.gpu)] * k)])
    settings = [f"data.pack={args.pack}", f"train.minutes={args.minutes}", f"train.eval_every={NEVER}",
                f"train.checkpoint_every={NEVER}", *args.set]
    return [sys.executable, "-m", "bench", "run", str(study), "--scale", "gpu", *placement,
            *(word for setting in settings for word in ("--set", setting)), "--out", str(records)]


def run_bounded(command: list[str], log: Path, seconds: float) -> int | str:
    """Run `command` with its output in `log`; stop it and its workers (SIGINT, then SIGKILL) after `seconds`.
    Its exit status, or "cut" when it was stopped."""
    with open(log, "w", encoding="utf-8") as output:
        output.write(" ".join(command) + "\n")
        output.flush()
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            return process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGINT)  # an interrupted run closes its log
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            return "cut"


def summarise(k: int, records: list[dict]) -> dict:
    """The k runs' rates, compile seconds and peak memory from their records."""
    trained = [r for r in records if r["status"] == "ok" and r["train_seconds"]]
    rates = [r["steps"] / r["train_seconds"] for r in trained]
    return {"k": k, "statuses": sorted(r["status"] for r in records),
            "total_steps_per_s": round(sum(rates), 2) if len(trained) == k else None,
            "per_run_steps_per_s": [round(rate, 2) for rate in rates],
            "steps": [r["steps"] for r in trained], "train_seconds": [r["train_seconds"] for r in trained],
            "compile_seconds": [r["compile_seconds"] for r in trained],
            "peak_memory_mb": [r["peak_memory_mb"] for r in trained],
            "device": records[0]["environment"]["device"] if records else None,
            "torch": records[0]["environment"]["torch"] if records else None}


def measure(args: argparse.Namespace, k: int, work: Path) -> dict:
    """Run k runs side by side and read their records (copied to OUT/records/kK)."""
    left = args.wall_seconds - (time.monotonic() - STARTED)
    if left < args.minutes * 60 + OVERHEAD_SECONDS:
        return {"k": k, "status": "not run", "why": f"{left:.0f} s left in --wall-seconds, about "
                                                   f"{args.minutes * 60 + OVERHEAD_SECONDS:.0f} s needed"}
    study = work / f"{STUDY}.toml"
    study.write_text(study_text(k), encoding="utf-8")
    records = work / f"k{k}"
    command = bench_run(args, study, k, records)
    print(f"k = {k}: {' '.join(command)}", flush=True)
    began = time.monotonic()
    exit_status = run_bounded(command, args.out / f"k{k}.log", left)
    kept = args.out / "records" / f"k{k}"
    kept.mkdir(parents=True, exist_ok=True)
    for path in sorted((records / STUDY).glob("*.json")) + sorted((records / STUDY).glob("*.log.jsonl")):
        shutil.copy2(path, kept / path.name)
    row = summarise(k, [json.loads(path.read_text(encoding="utf-8")) for path in sorted(kept.glob("*.json"))])
    measured = row["total_steps_per_s"] is not None
    row.update(status="measured" if measured else "cut" if exit_status == "cut" else "failed",
               exit_status=exit_status, command=" ".join(command), wall_seconds=round(time.monotonic() - began, 1))
    return row


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def table(rows: list[dict]) -> list[str]:
    lines = [f"{'k':>2}  {'runs':<12}  {'total steps/s':>13}  {'per run (mean)':>14}  {'compile s (mean)':>16}  "
             f"{'peak MiB per run (max)':>22}"]
    for row in rows:
        if row["status"] == "not run":
            lines.append(f"{row['k']:>2}  not run: {row['why']}")
            continue
        counts = Counter(row["statuses"])
        statuses = ", ".join(f"{n} {status}" for status, n in counts.items()) or f"{row['status']}: see k{row['k']}.log"
        cells = [row["total_steps_per_s"], mean(row["per_run_steps_per_s"]), mean(row["compile_seconds"]),
                 max(row["peak_memory_mb"], default=None)]
        total, per_run, compile_seconds, peak = ("-" if value is None else f"{value:,.1f}" for value in cells)
        lines.append(f"{row['k']:>2}  {statuses:<12}  {total:>13}  {per_run:>14}  {compile_seconds:>16}  {peak:>22}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", type=Path, required=True, help="a pack from `python -m bench data pack`")
    parser.add_argument("--ks", default="1,2,4", help="runs side by side, smallest first (default: %(default)s)")
    parser.add_argument("--minutes", type=float, default=1.0, help="training time of each run (default: %(default)s)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda: --gpus naming --gpu k times (default); cpu: --jobs k, train.device=cpu")
    parser.add_argument("--gpu", type=int, default=0, help="the GPU's index (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run, after the script's own (repeatable)")
    parser.add_argument("--wall-seconds", type=float, default=540.0,
                        help="the call's limit: a k that would not end in it is not begun (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("gpu-sharing"), help="where the results go (default: "
                                                                              "%(default)s); on a lent machine, $OUT")
    args = parser.parse_args(argv)
    args.ks = sorted({int(k) for k in args.ks.split(",")})
    args.pack, args.out = args.pack.resolve(), args.out.resolve()  # the runs start in the repository's root
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"kind": "gpu-sharing", "command": " ".join(sys.argv), "minutes": args.minutes, "device": None,
              "torch": None, "rows": []}
    with tempfile.TemporaryDirectory(prefix="gpu-sharing-") as work:  # the checkpoints stay behind
        for k in args.ks:
            row = measure(args, k, Path(work))
            result["rows"].append(row)
            if row.get("device") and not result["device"]:  # from the first records: no CUDA context in this process
                result.update(device=row["device"], torch=row["torch"])
            write_json_atomically(args.out / "sharing.json", result)  # a call cut short never leaves half a file
            print("\n".join(table(result["rows"][-1:])), flush=True)
    print(f"\n{result['command']}\ndevice {result['device']}, torch {result['torch']}, {args.minutes} min of training "
          f"a run\n" + "\n".join(table(result["rows"])) + f"\n-> {args.out / 'sharing.json'}")


if __name__ == "__main__":
    main()
