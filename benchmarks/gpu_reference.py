"""The GPU reference run: QANet at the paper's size on SQuAD v1.1, trained from a pack with only torch
and numpy (the GPU machine has nothing else of ours), in two calls that fit a 15-minute lease.

Here (a pack of SQuAD v1.1 + GloVe 6B 50d, 17 MiB):
    make gpu-pack
On the GPU machine, from the repository root (plain python3 there; no make or set-up needed):
    PYTHONPATH=. python3 benchmarks/gpu_reference.py --mode check --pack .packs/squad-v1.1-glove-6b-50d
    PYTHONPATH=. python3 benchmarks/gpu_reference.py --mode run --pack .packs/squad-v1.1-glove-6b-50d
On a CPU, end to end (CI adds --batch-size 4 --context-len 100 and a synthetic pack: seconds):
    python benchmarks/gpu_reference.py --pack DIR --device cpu --steps 20 --eval-questions 100 --out R.json

check: fp32 eager, bf16 eager and bf16 compiled, each `--check-steps` steps with every batch padded to the
full context (one shape: one compilation), then one evaluation on `--eval-questions` dev questions. Prints
the median step time (CUDA events, steps after the first 50), examples/s, peak memory, the attention kernel
that ran, and the compile time.
run: bf16 + compile, batches padded to multiples of `--pad-multiple` tokens, training until `--minutes` of
training time (compilation happens before the clock starts and is reported apart), the whole dev set
scored with the official metric every `--eval-every-seconds` of training. Writes a JSON record (rewritten
after every evaluation, so a killed run keeps its curve) with the card, versions, curve and the training
time at which dev F1 first reached 60, 70 and 75.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # the call's wall clock, before torch loads: a lent machine stops a command at 10 min

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import get_args, get_type_hints  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.environment import ROOT, environment  # noqa: E402 - torch and stdlib only
from bench.records import write_json_atomically  # noqa: E402
from qanet.config import ConfigError, RunConfig, TrainConfig, build_config  # noqa: E402
from qanet.data.pack import PackError, load_pack, read_manifest  # noqa: E402
from qanet.data.prepare import Prepared  # noqa: E402
from qanet.device import resolve_device  # noqa: E402
from qanet.hooks import Hooks  # noqa: E402
from qanet.memory import peak_memory_mb, reset_peak_memory  # noqa: E402
from qanet.train import Trainer  # noqa: E402

F1_MARKS = (60, 70, 75)
# (name, bf16, compiled) of the check; bf16 autocast and compilation are measured on CUDA only
CHECK_VARIANTS = (("fp32 eager", False, False), ("bf16 eager", True, False), ("bf16 compiled", True, True))
COMPILE_MODES = get_args(get_type_hints(TrainConfig)["compile_mode"])
ATTENTION_CHOICES = get_args(get_type_hints(TrainConfig)["attention_kernels"])
TIMED_AFTER = 50  # steps left out of the median: allocator warm-up, cuDNN/cuBLAS heuristics


def paper_config(args: argparse.Namespace, bf16: bool, compiled: bool, pad_multiple: int) -> RunConfig:
    """The paper's model and optimiser (hidden 128, 8 heads, 7 blocks, context 400, batch 32) on the pack."""
    return build_config("paper", {
        "data.context_len": args.context_len,
        "train.device": args.device, "train.bf16": bf16, "train.compile": compiled,
        "train.attention_kernels": args.attention_kernels,
        "train.compile_mode": args.compile_mode, "train.pad_multiple": pad_multiple,
        "train.batch_size": args.batch_size, "train.lr": args.lr, "train.seed": args.seed,
        "train.steps": args.steps or 10**9, "train.minutes": args.minutes,
        "train.eval_every": 10**9, "train.eval_every_seconds": args.eval_every_seconds,
        "train.eval_questions": args.eval_questions, "train.eval_batch_size": 128, "train.loss_check_every": 100,
    })


class StepTimer:
    """Per-step device time without waiting for the device inside the loop (CUDA events, read at the end)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def seconds(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [a.elapsed_time(b) / 1000 for a, b in zip(self.marks, self.marks[1:], strict=False)]
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]


def profile_step(trainer: Trainer) -> dict:
    """One eager forward + backward of a training batch under the profiler and a FLOP counter: the SDPA
    implementation and attention kernels that ran, how many device kernels a step launches, its GFLOPs."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    cuda = trainer.device.type == "cuda"
    questions, on_device = next(trainer.batches())
    data = trainer.config.data
    batch = trainer.train_data.gather(on_device, *trainer.train_data.widths(questions, data.context_len,
                                                                            data.question_len))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    trainer.optimizer.zero_grad(set_to_none=True)  # the last compiled step's gradients may be CUDA-graph outputs
    with FlopCounterMode(display=False) as flops, profile(activities=activities) as profiled:
        trainer.batch_loss(batch, trainer.model).backward()  # eager: the profiler sees every kernel
    trainer.optimizer.zero_grad(set_to_none=True)
    events = profiled.events()
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    return {"attention": sorted({e.name for e in events if _is_attention(e.name)}),
            "device_kernels_per_step": len(kernels) if cuda else None,
            "gflop_per_step": round(flops.get_total_flops() / 1e9, 1)}


def _is_attention(name: str) -> bool:
    """SDPA's chosen implementation (an aten op) or a device kernel of one."""
    if name.startswith("aten::"):
        return name.startswith("aten::_scaled_dot_product")
    return any(key in name.lower() for key in ("fmha", "flash", "attention", "sdpa", "cudnn_attn"))


def check(args: argparse.Namespace, prepared: Prepared) -> list[dict]:
    device = resolve_device(args.device)
    rows = []
    for name, bf16, compiled in CHECK_VARIANTS:
        if device.type != "cuda" and (bf16 or compiled):
            print(f"{name}: skipped (bf16 autocast is CUDA-only here; inductor on a CPU takes minutes)")
            continue
        try:
            rows.append(check_variant(args, prepared, device, name, bf16, compiled))
        except Exception as error:  # noqa: BLE001 - one failing variant must not cost the others' numbers
            print(f"{name}: failed: {type(error).__name__}: {error}", flush=True)
            rows.append({"variant": name, "error": f"{type(error).__name__}: {error}"})
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def check_variant(args: argparse.Namespace, prepared: Prepared, device: torch.device, name: str, bf16: bool,
                  compiled: bool) -> dict:
    """Step time, memory, attention kernel and a sample evaluation of one precision / compilation choice."""
    config = paper_config(args, bf16, compiled, pad_multiple=args.context_len)  # one shape: one compilation
    reset_peak_memory(device)
    trainer = Trainer(config, prepared)
    if compiled:
        trainer.warm_up()
    timer, batches = StepTimer(device), trainer.batches()
    timer.mark()
    for _ in range(args.check_steps):
        trainer.train_step(*next(batches))
        trainer.step += 1
        timer.mark()
    loss = trainer.losses.check()
    steps = timer.seconds()
    median = statistics.median(steps[TIMED_AFTER:] if len(steps) > 2 * TIMED_AFTER else steps)
    peak = peak_memory_mb(device)
    metrics = trainer.evaluate(args.eval_questions)
    row = {"variant": name, "step_ms": round(median * 1000, 2),
           "examples_per_s": round(config.train.batch_size / median, 1), "peak_memory_mb": round(peak, 1),
           "compile_seconds": round(trainer.result.compile_seconds, 1),
           "first_steps_seconds": round(sum(steps[:TIMED_AFTER]), 2),
           "train_loss": round(loss, 3), "eval_seconds": round(trainer.result.eval_seconds, 2),
           **profile_step(trainer), **{k: metrics[k] for k in ("exact", "f1", "total")}}
    row["tflop_per_s"] = round(row["gflop_per_step"] / median / 1000, 2)  # the eager step's FLOPs, any variant
    print(f"{name}: step {row['step_ms']} ms (median), {row['examples_per_s']} examples/s, "
          f"{row['gflop_per_step']} GFLOP a step = {row['tflop_per_s']} TFLOP/s, "
          f"{row['device_kernels_per_step']} device kernels in an eager step, peak "
          f"{peak / 1024:.2f} GiB, compile {row['compile_seconds']} s, loss {row['train_loss']} after "
          f"{args.check_steps} steps, dev ({metrics['total']:,} questions) EM {metrics['exact']:.2f} "
          f"F1 {metrics['f1']:.2f} in {row['eval_seconds']} s; attention: {', '.join(row['attention']) or '?'}",
          flush=True)
    return row


def time_to_f1(curve: list[dict]) -> dict[str, float | None]:
    """Training seconds at which dev F1 first reached each mark (None: not reached)."""
    return {str(mark): next((entry["train_seconds"] for entry in curve if entry["f1"] >= mark), None)
            for mark in F1_MARKS}


def run(args: argparse.Namespace, prepared: Prepared, record: dict, out: Path) -> dict:
    device = resolve_device(args.device)
    config = paper_config(args, bf16=not args.fp32, compiled=device.type == "cuda" and not args.eager,
                          pad_multiple=args.pad_multiple)
    trainer = Trainer(config, prepared)
    record.update(_run_fields(trainer, config, time.perf_counter() - STARTED))
    write_json_atomically(out, record)  # something to read back even if the call dies from here on
    if config.train.compile:
        try:
            trainer.warm_up()  # first, so that the training time can be cut to fit the call
        except Exception as error:  # noqa: BLE001 - a run without compilation beats no run
            record["compile_error"] = f"{type(error).__name__}: {error}"
            print(f"compilation failed ({record['compile_error'][:300]}); training eagerly", flush=True)
            config.train.compile, trainer.forward = False, trainer.model
        for shape in trainer.result.compile_shapes:
            print(f"compiled context {shape['context_width']} x question {shape['question_width']} in "
                  f"{shape['seconds']:.1f} s", flush=True)
    print(f"training's attention kernel: {trainer.result.attention_kernel}", flush=True)
    left = args.wall_minutes * 60 - (time.perf_counter() - STARTED) - args.reserve_seconds
    if left < config.train.minutes * 60:
        config.train.minutes = max(left, 30) / 60
        print(f"training time cut to {config.train.minutes:.2f} min to end inside the {args.wall_minutes} min "
              f"call (compilation took {trainer.result.compile_seconds:.0f} s)", flush=True)

    class SaveAfterEvaluations(Hooks):
        def on_evaluation(self, step: int, entry: dict) -> None:
            save(step, entry)

        def on_warning(self, step: int, message: str) -> None:
            print(f"warning at step {step}: {message}", flush=True)

    def save(step: int, entry: dict) -> None:
        result = trainer.result
        loss = "-" if entry["train_loss"] is None else f"{entry['train_loss']:.3f}"
        print(f"{entry['train_seconds']:7.1f} s  step {step:6d}  dev EM {entry['exact']:.2f} F1 {entry['f1']:.2f}"
              f"  (train loss {loss}, evaluation {result.eval_seconds:.1f} s so far)", flush=True)
        record.update(_run_fields(trainer, config, time.perf_counter() - STARTED))
        write_json_atomically(out, record)

    trainer.hooks.append(SaveAfterEvaluations())
    result = trainer.run()
    record.update(_run_fields(trainer, config, time.perf_counter() - STARTED))
    write_json_atomically(out, record)
    print(f"{result.status}: {result.steps:,} steps in {result.train_seconds:.0f} s of training "
          f"({result.train_examples_per_s:.0f} examples/s; compile {result.compile_seconds:.0f} s and evaluation "
          f"{result.eval_seconds:.0f} s apart), peak {result.peak_memory_mb / 1024:.2f} GiB; final dev EM "
          f"{result.metrics.get('exact', float('nan')):.2f} F1 {result.metrics.get('f1', float('nan')):.2f}; "
          f"F1 reached {time_to_f1(result.curve)} (seconds of training) -> {out}")
    return record


def _run_fields(trainer: Trainer, config: RunConfig, wall: float) -> dict:
    result = trainer.result
    return {
        "config": config.to_dict(), "status": result.status, "error": result.error, "steps": trainer.step,
        "metrics": result.metrics, "curve": result.curve, "time_to_f1": time_to_f1(result.curve),
        "train_seconds": round(result.train_seconds, 2), "compile_seconds": round(result.compile_seconds, 2),
        "eval_seconds": round(result.eval_seconds, 2), "wall_seconds": round(wall, 2),
        "train_examples_per_s": round(result.train_examples / result.train_seconds, 1) if result.train_seconds else 0,
        "peak_memory_mb": round(peak_memory_mb(trainer.device), 1), "parameters": result.parameters,
        "attention_kernel": result.attention_kernel, "compile_shapes": result.compile_shapes,
        "warnings": result.warnings,
    }


def default_out(device: torch.device, mode: str) -> Path:
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    slug = "".join(c if c.isalnum() else "-" for c in card.lower()).strip("-")
    return ROOT / "results" / "reference" / f"gpu-{mode}-{slug}.json"


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1, or one line naming the value."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", type=Path, required=True, help="a pack from `python -m bench data pack`")
    parser.add_argument("--mode", choices=["check", "run", "both"], default="both")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--check-steps", type=positive_int, default=300, help="training steps per check variant")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="stop the run after this many steps (default: only the time budget); also caps the check")
    parser.add_argument("--minutes", type=float, default=7.0, help="training time of the run (default: %(default)s)")
    parser.add_argument("--eval-every-seconds", type=float, default=60.0)
    parser.add_argument("--wall-minutes", type=float, default=9.5,
                        help="the whole call's limit: training is cut short so that it ends in time (default: "
                             "%(default)s, for the GPU machine's 10 minutes a command)")
    parser.add_argument("--reserve-seconds", type=float, default=90.0,
                        help="kept from the wall limit for the evaluations (default: %(default)s)")
    parser.add_argument("--eval-questions", type=positive_int, default=None,
                        help="dev questions per evaluation (check: 2,000 by default; run: all, the official number)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--context-len", type=positive_int, default=400)
    # one width, one graph: a cold Inductor compilation of one shape took 205 s on an H200 (cudagraphs: 22 s)
    parser.add_argument("--pad-multiple", type=positive_int, default=400,
                        help="run: pad batches to multiples of this many tokens; each width is one compiled graph "
                             "(default: %(default)s, the context limit: one graph)")
    # CUDA graphs of the eager kernels: the path the diagnosis saw learn; Inductor's is not settled (README, GPU)
    parser.add_argument("--compile-mode", default="cudagraphs", choices=list(COMPILE_MODES),
                        help="Inductor's mode, or cudagraphs (CUDA graphs of the eager kernels, no Inductor; the "
                             "default)")
    parser.add_argument("--attention-kernels", default="auto", choices=list(ATTENTION_CHOICES),
                        help="the SDPA kernels training may use (auto: any but cuDNN's on CUDA); evaluation any")
    parser.add_argument("--fp32", action="store_true", help="run: train in fp32 instead of bf16 autocast")
    parser.add_argument("--eager", action="store_true", help="run: train without torch.compile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="the record (default: results/reference/"
                                                               "gpu-MODE-CARD.json); on a lent machine, under $OUT")
    parser.add_argument("--code-version", default=None, help="the git sha, where the copy has no .git")
    args = parser.parse_args(argv)
    if args.steps:
        args.check_steps = min(args.check_steps, args.steps)
    return args


def open_pack(args: argparse.Namespace) -> tuple[torch.device, dict, Prepared]:
    """The device and the pack's manifest and data, or exit 2 with one line naming what is wrong."""
    try:
        return resolve_device(args.device), read_manifest(args.pack), load_pack(args.pack)
    except (ConfigError, PackError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def new_record(kind: str, args: argparse.Namespace, device: torch.device, manifest: dict) -> dict:
    """What every GPU record opens with: the command, code version, pack and environment."""
    return {"kind": kind, "command": " ".join(sys.argv), "code_version": args.code_version,
            "pack": {k: manifest[k] for k in ("fingerprint", "prepared_from", "bytes")},
            "environment": environment(device)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device, manifest, prepared = open_pack(args)
    compiler = shutil.which("cc") or shutil.which("gcc")  # Triton builds a small C launcher with it
    print(f"pack {manifest['fingerprint']} ({manifest['bytes'] / 2**20:.1f} MiB): {len(prepared.train):,} train, "
          f"{len(prepared.dev):,} dev questions; device {environment(device)['device']}, torch {torch.__version__}, "
          f"C compiler {compiler or 'none (torch.compile will fail)'}", flush=True)
    out = args.out or default_out(device, args.mode)
    record = new_record("gpu-reference", args, device, manifest)
    if args.mode in ("check", "both"):
        check_args = argparse.Namespace(**{**vars(args), "eval_questions": args.eval_questions or 2000})
        record["check"] = check(check_args, prepared)
        write_json_atomically(out, record)
        print(json.dumps(record["check"], indent=1))
    if args.mode in ("run", "both"):
        run(args, prepared, record, out)


if __name__ == "__main__":
    main()
