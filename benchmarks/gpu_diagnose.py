"""Why the paper configuration stopped learning on the GPU (issue 17), in one call of at most 6 minutes.

On the GPU machine, from the repository root (torch + numpy + the repository + the pack, nothing else):
    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/gpu_diagnose.py --pack .packs/squad-v1.1-glove-6b-50d \\
        --out $OUT/gpu-diagnosis.json
On a CPU, end to end in seconds (CI): add --device cpu --small --batch-size 4 --context-len 100 --steps 30 and a
small pack. The verdict of a record, by this code's rules, without a device: --judge RECORD.

It separates six causes: Inductor's gradients (its mix-order reduction, pytorch/pytorch#193061); the cuDNN
attention backward; Inductor's bf16 code; CUDA graphs; bf16 itself; the paper configuration being unstable at lr
1e-3 on any device. Stages, each written to --out as it ends (a killed call keeps what it measured):

1. compiled gradients, before the arms start, so that a call cut short answers it first: one forward + backward
   of the arms' initial weights on their first batch, dropout off, bf16 as training, through Inductor (mode
   default) with triton.mix_order_reduction on and off, against eager fp32 and judged against eager bf16's own
   noise (benchmarks/compiled_gradients.py); a setting not begun within --compiled-gradients-seconds is not run.
2. kernels: scaled-dot-product attention outputs and dq/dk/dv of every kernel that can run (cuDNN,
   memory-efficient, flash, math; bf16 and fp32) against fp32 math, on q/k/v captured from the model's blocks on
   a real batch (key lengths 400 and 50) and on random q/k/v with real padding masks at key lengths 50, 192,
   320 and 400: cosine, maximum relative error, non-finite values.
3. gradients: the whole model's gradients on fixed real batches, per parameter group, for bf16 with torch's
   own kernel choice, bf16 without cuDNN and fp32, against fp32 with the math kernel: cosine and norm ratio;
   at initialisation, and again after the arms on each training arm's weights.
4. arms: short training runs side by side on the one GPU, one process each, same seed and batch order: bf16 as
   CUDA graphs (backend "cudagraphs", no Inductor) with cuDNN attention (torch's choice in bf16) and without it,
   bf16 Inductor + CUDA graphs without cuDNN (its compilation also fills Inductor's on-disk cache for a
   reference run on that path), bf16 eager and fp32 eager; on request (--arms) also Inductor with cuDNN, the
   first GPU runs' path. Per 100 steps: mean loss,
   gradient norm (mean, max, share clipped), ms/step; EMA dev F1 on a fixed sample every 500 steps.
5. verdict: each cause implicated, cleared or not resolved, with the evidence, and the training path as bench settings.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # the call's wall clock, before torch loads: a lent machine stops a command at 10 min

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compiled_gradients import (  # noqa: E402
    INDUCTOR_SETTINGS,
    Comparison,
    compare_compiled_gradients,
    deterministic_model,
    inductor_finding,
)

from bench.commands.common import positive_int  # noqa: E402
from bench.environment import ROOT, environment  # noqa: E402
from bench.records import write_json_atomically  # noqa: E402 - torch and stdlib only
from qanet.config import SMALL_MODEL, ConfigError, apply_overrides, build_config  # noqa: E402
from qanet.data.batching import BatchSource, epoch_batches, trainable_questions  # noqa: E402
from qanet.data.pack import PackError, load_pack, read_manifest  # noqa: E402
from qanet.data.prepare import Prepared  # noqa: E402
from qanet.device import ATTENTION_KERNELS, resolve_device, training_attention_kernels  # noqa: E402
from qanet.hooks import Hooks, JsonLinesLog  # noqa: E402
from qanet.outcome import StopTraining  # noqa: E402
from qanet.train import Trainer, build_model  # noqa: E402

REFERENCE = "fp32 math"
TORCH_CHOICE = list(ATTENTION_KERNELS.values())  # every kernel enabled: SDPA's own pick
# a kernel's gradients whose cosine with fp32 math's falls below this disagree with it (bf16's own rounding
# keeps them above 0.9999 at our shapes)
AGREEING_COSINE = 0.99
LOSS_RISE = 1.05  # the last three windows' mean this far above the best before them: rising (arm_health)
WARMUP_STEPS = 1000  # the paper's learning-rate warm-up
POST_WARMUP_WINDOWS = 3  # an arm is judged once this many loss windows lie wholly after the warm-up
F1_GAP = 5.0  # points of dev F1 (on the sample) that separate two arms beyond sampling noise


@dataclass(frozen=True)
class Arm:
    name: str
    description: str
    bf16: bool
    attention_kernels: str  # train.attention_kernels
    compile_mode: str | None  # None: eager

    def cuda_only(self) -> bool:
        """bf16 autocast, cuDNN and CUDA graphs are CUDA's: on a CPU only the fp32 eager arm means what it says."""
        return self.bf16 or self.attention_kernels == "cudnn" or self.compile_mode is not None


# The issue asked for cuDNN to be judged in bf16 eager; it is judged on CUDA graphs here, the compiled kind of
# path the failing runs took, so that its arm differs from the CUDA-graph arm in the kernel alone. (Alone, an
# eager bf16 step takes ~174 ms on an H200 and a graph ~47 ms; side by side, the five arms ran at 126-374 ms.)
# The eager arms answer the CUDA-graph and bf16 questions, the fp32 eager arm the configuration's.
ARMS = (
    Arm("bf16-cudnn", "bf16, CUDA graphs, cuDNN attention (torch's own choice in bf16)", True, "cudnn",
        "cudagraphs"),
    Arm("bf16-cudagraphs", "bf16, CUDA graphs of the eager kernels (no Inductor), without cuDNN", True, "auto",
        "cudagraphs"),
    Arm("bf16-inductor", "bf16, Inductor + CUDA graphs, without cuDNN", True, "auto", "reduce-overhead"),
    Arm("bf16", "bf16 eager, without cuDNN", True, "auto", None),
    Arm("fp32", "fp32 eager", False, "auto", None),
    # the path of the first GPU runs, which did not learn (not run unless --arms names it)
    Arm("bf16-inductor-cudnn", "bf16, Inductor + CUDA graphs, cuDNN attention (the first GPU runs' path)", True,
        "cudnn", "reduce-overhead"),
)
ARMS_BY_NAME = {arm.name: arm for arm in ARMS}
DEFAULT_ARMS = ("bf16-cudnn", "bf16-cudagraphs", "bf16-inductor", "bf16", "fp32")
# what each cause is judged on: (suspect arm, the arm that differs from it in that one respect)
PAIRS = {"cuDNN attention backward": ("bf16-cudnn", "bf16-cudagraphs"),
         "Inductor's bf16 code": ("bf16-inductor", "bf16-cudagraphs"), "CUDA graphs": ("bf16-cudagraphs", "bf16"),
         "bf16 itself": ("bf16", "fp32"), "cuDNN under Inductor": ("bf16-inductor-cudnn", "bf16-inductor")}
# each training path as settings of `bench run` / `bench train`, fastest first
PATH_FLAGS = {"bf16-inductor": "--set train.compile=true --set train.compile_mode=reduce-overhead "
                               "--set train.pad_multiple=400",
              "bf16-cudagraphs": "--set train.compile=auto",
              "bf16": "--set train.compile=false", "fp32": "--set train.compile=false --set train.bf16=false"}


# ---------------------------------------------------------------------------------------------- comparisons

def agreement(value: torch.Tensor, reference: torch.Tensor) -> dict:
    """Cosine, maximum relative error (max |a - b| / max |b|) and non-finite count of `value` against
    `reference`, both flattened, in fp64."""
    a, b = value.detach().double().flatten(), reference.detach().double().flatten()
    finite = torch.isfinite(a)
    a = torch.where(finite, a, 0)
    cosine = float(F.cosine_similarity(a, b, dim=0)) if a.norm() > 0 and b.norm() > 0 else float(a.norm() == b.norm())
    relative = float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
    return {"cosine": round(cosine, 6), "max_rel_error": float(f"{relative:.3g}"), "non_finite": int((~finite).sum())}


def worst(rows: list[dict], key: str = "cosine") -> float | None:
    values = [row[key] for row in rows if key in row]
    return min(values) if values else None


# -------------------------------------------------------------------------------- stage 1: compiled gradients

def compiled_gradient_agreement(args: argparse.Namespace, prepared: Prepared, device: torch.device) -> dict:
    """Inductor's gradients with mix-order reduction on and off against eager fp32, on the arms' initial weights
    (the seed's) and first batch, with dropout off, bf16 and attention kernels as the Inductor arm trains."""
    config = arm_config(args, ARMS_BY_NAME["bf16-inductor"])
    torch.manual_seed(args.seed)
    model = deterministic_model(config.model, torch.from_numpy(prepared.word_vectors), len(prepared.chars))
    train = config.train
    comparison = Comparison(model.to(device), real_batches(prepared, device, args, 1)[0], device, train.bf16,
                            training_attention_kernels(train.attention_kernels, device), train.compile_scope)
    return compare_compiled_gradients(comparison, INDUCTOR_SETTINGS,
                                      deadline=time.perf_counter() + args.compiled_gradients_seconds,
                                      report=lambda line: print(f"  {line}", flush=True))


# ------------------------------------------------------------------------------------ stage 2: the kernels

def real_batches(prepared: Prepared, device: torch.device, args: argparse.Namespace, count: int) -> list[dict]:
    """The first `count` full training batches of epoch 0, padded to the context limit (the reference run's
    one shape)."""
    questions = trainable_questions(prepared.train, args.context_len)
    lengths = prepared.train.context_lengths()
    batches = [b for b in epoch_batches(questions, lengths, args.batch_size, args.seed, 0) if len(b) == args.batch_size]
    source = BatchSource(prepared.train, device, pad_multiple=args.context_len)
    return [source.batch(b, args.context_len, 50) for b in batches[:count]]


def captured_attention_inputs(model, batch: dict) -> list[tuple[str, tuple]]:
    """q, k, v and key mask (fp32) as the model's first embedding-encoder block (context, then question) and
    last model-encoder block (first pass) hand them to SDPA, on a real batch."""
    seen: list[tuple[str, tuple]] = []
    blocks = {"embedding encoder": model.embedding_encoder.blocks[0].attention,
              "model encoder": model.model_encoder.blocks[-1].attention}
    handles = []
    for where, attention in blocks.items():
        def capture(module, inputs, where=where):
            q, k, v, keys = (t.detach() for t in module.project(*inputs))
            seen.append((f"{where}, keys {q.shape[2]}", (q.float(), k.float(), v.float(), keys)))
        handles.append(attention.register_forward_pre_hook(capture))
    try:
        with torch.no_grad():
            model.eval()
            model(batch["context_words"], batch["context_chars"], batch["question_words"], batch["question_chars"])
    finally:
        for handle in handles:
            handle.remove()
    first = {}
    for name, tensors in seen:  # the model encoder runs three times: its first pass is enough
        first.setdefault(name, tensors)
    return list(first.items())


def random_attention_inputs(source: BatchSource, prepared: Prepared, heads: int, head_dim: int,
                            args: argparse.Namespace, device: torch.device) -> list[tuple[str, tuple]]:
    """N(0, 1) q, k, v with the padding masks of real batches at key lengths 50 (questions), 192, 320 and 400."""
    generator = torch.Generator(device=device).manual_seed(args.seed)
    questions = trainable_questions(prepared.train, args.context_len)[:args.batch_size]
    index = torch.from_numpy(questions).to(device)
    inputs = []
    for length in sorted({50, 192, 320, args.context_len}):
        words = (source.gather(index, 400, length)["question_words"] if length == 50
                 else source.gather(index, length, 50)["context_words"])
        mask = (words != 0)[:, None, None, :]
        q, k, v = (torch.randn(len(questions), heads, length, head_dim, device=device, generator=generator)
                   for _ in range(3))
        inputs.append((f"random q/k/v, real mask, keys {length}", (q, k, v, mask)))
    return inputs


def kernel_candidates(device: torch.device) -> list[tuple[str, str, torch.dtype]]:
    """(label, kernel, dtype) of every kernel worth trying on the device; ineligible ones say so when tried."""
    kernels = ("cudnn", "efficient", "flash", "math") if device.type == "cuda" else ("flash", "math")
    return [(f"{kernel} {str(dtype).removeprefix('torch.')}", kernel, dtype)
            for kernel in kernels for dtype in (torch.bfloat16, torch.float32)
            if not (kernel == "cudnn" and dtype == torch.float32) and (kernel, dtype) != ("math", torch.float32)]


def attention_with_grads(q, k, v, mask, upstream, kernels: list[SDPBackend], dtype: torch.dtype) -> list[torch.Tensor]:
    """The output and dq, dk, dv of SDPA under `kernels` in `dtype`, for the upstream gradient `upstream`."""
    leaves = [t.detach().to(dtype, copy=True).requires_grad_() for t in (q, k, v)]
    with sdpa_kernel(kernels):
        out = F.scaled_dot_product_attention(*leaves, attn_mask=mask)
    out.backward(upstream.to(dtype))
    return [out.float()] + [t.grad.float() for t in leaves]


def kernel_agreement(inputs: list[tuple[str, tuple]], device: torch.device) -> list[dict]:
    rows = []
    for name, (q, k, v, mask) in inputs:
        upstream = torch.randn(q.shape, device=device, generator=torch.Generator(device=device).manual_seed(1))
        reference = attention_with_grads(q, k, v, mask, upstream, [SDPBackend.MATH], torch.float32)
        for label, kernel, dtype in kernel_candidates(device):
            row = {"input": name, "kernel": label}
            try:
                found = attention_with_grads(q, k, v, mask, upstream, [ATTENTION_KERNELS[kernel]], dtype)
            except RuntimeError as error:  # this kernel cannot take these inputs (dtype, mask, head dim)
                rows.append({**row, "eligible": False, "why": str(error).splitlines()[0][:200]})
                continue
            for part, value, expected in zip(("out", "dq", "dk", "dv"), found, reference, strict=True):
                rows.append({**row, "eligible": True, "tensor": part, **agreement(value, expected)})
    return rows


# -------------------------------------------------------------------------------- stage 3: model gradients

def parameter_group(name: str) -> str:
    """The group a parameter is judged in: the top-level part of the model; an encoder's self-attention apart."""
    if ".attention." in name and name.split(".")[0].endswith("encoder"):
        return "self-attention (both encoders)"
    return name.split(".")[0]


GRADIENT_VARIANTS = (  # (name, bf16, kernels)
    (REFERENCE, False, [SDPBackend.MATH]),
    ("fp32, torch's kernel", False, TORCH_CHOICE),
    ("bf16, torch's kernel", True, TORCH_CHOICE),
    ("bf16 without cuDNN", True, [k for k in TORCH_CHOICE if k != SDPBackend.CUDNN_ATTENTION]),
)


def model_gradients(model, batches: list[dict], bf16: bool, kernels: list[SDPBackend]) -> tuple[float, dict]:
    """Mean loss and gradients (by parameter name) over `batches`, dropout off so every variant sees one network."""
    model.eval()
    model.zero_grad(set_to_none=True)
    total = 0.0
    device = next(model.parameters()).device
    for batch in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16), sdpa_kernel(kernels):
            start, end = model(batch["context_words"], batch["context_chars"], batch["question_words"],
                               batch["question_chars"])
            loss = model.loss(start, end, batch["start"], batch["end"]) / len(batches)
        loss.backward()
        total += float(loss.detach())
    return total, {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def gradient_agreement(model, batches: list[dict], weights: str) -> list[dict]:
    """Per variant and parameter group: cosine and norm ratio of the gradients against fp32 math."""
    reference_loss, reference = model_gradients(model, batches, False, [SDPBackend.MATH])
    rows = []
    for name, bf16, kernels in GRADIENT_VARIANTS[1:]:
        try:
            loss, grads = model_gradients(model, batches, bf16, kernels)
        except RuntimeError as error:
            rows.append({"weights": weights, "variant": name, "error": str(error).splitlines()[0][:200]})
            continue
        groups = sorted({parameter_group(p) for p in reference})
        for group in groups:
            names = [p for p in reference if parameter_group(p) == group]
            found = torch.cat([grads[p].flatten() for p in names])
            expected = torch.cat([reference[p].flatten() for p in names])
            ratio = float(found.double().norm() / expected.double().norm().clamp_min(1e-30))
            rows.append({"weights": weights, "variant": name, "group": group, "loss": round(loss, 4),
                         "reference_loss": round(reference_loss, 4), **agreement(found, expected),
                         "norm_ratio": round(ratio, 4)})
    model.zero_grad(set_to_none=True)
    return rows


# ------------------------------------------------------------------------------------------ stage 4: arms

class Deadline(Hooks):
    """Stops an arm when the diagnosis's time for training is up."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def on_step(self, step, loss, learning_rate, examples_per_s, window) -> None:
        if time.time() > self.deadline:
            raise StopTraining("stopped", f"the diagnosis's time for training ran out at step {step}")


def open_pack(args: argparse.Namespace) -> tuple[torch.device, dict, Prepared]:
    """The device and the pack's manifest and data, or exit 2 with one line naming what is wrong."""
    try:
        return resolve_device(args.device), read_manifest(args.pack), load_pack(args.pack)
    except (ConfigError, PackError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def default_out(device: torch.device, mode: str) -> Path:
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    slug = "".join(c if c.isalnum() else "-" for c in card.lower()).strip("-")
    return ROOT / "results" / "reference" / f"gpu-{mode}-{slug}.json"


def new_record(kind: str, args: argparse.Namespace, device: torch.device, manifest: dict) -> dict:
    """What every GPU record opens with: the command, code version, pack and environment."""
    return {"kind": kind, "command": " ".join(sys.argv), "code_version": args.code_version,
            "pack": {key: manifest[key] for key in ("fingerprint", "bytes")}, "environment": environment(device)}


def arm_config(args: argparse.Namespace, arm: Arm):
    """The paper's model and optimiser on the pack, on the arm's path, batches padded to the context limit."""
    config = build_config("paper", {
        "data.context_len": args.context_len, "train.device": args.device, "train.bf16": arm.bf16,
        "train.compile": arm.compile_mode is not None, "train.compile_mode": arm.compile_mode or "default",
        "train.attention_kernels": arm.attention_kernels, "train.pad_multiple": args.context_len,
        "train.batch_size": args.batch_size, "train.lr": args.lr, "train.seed": args.seed,
        "train.eval_questions": args.eval_questions, "train.eval_batch_size": 128})
    if args.small:
        apply_overrides(config, list(SMALL_MODEL.items()))
    config.train.eval_every = args.eval_every
    config.train.steps = args.steps
    config.train.loss_check_every = args.loss_every
    config.train.warmup_steps = args.warmup_steps
    config.train.threads = 1 if config.train.device == "cpu" else None  # arms share the CPU's cores
    return config


def arm_main(args: argparse.Namespace) -> None:
    """One arm, in its own process: train, then leave the result and the weights in the work folder."""
    arm, folder = ARMS_BY_NAME[args.arm], Path(args.work)
    result = {"arm": arm.name, "status": "failed"}
    try:
        prepared = load_pack(args.pack)
        config = arm_config(args, arm)
        trainer = Trainer(config, prepared, hooks=[JsonLinesLog(folder / f"{arm.name}.log.jsonl"),
                                                  Deadline(args.deadline)])
        outcome = trainer.run()
        result = {"arm": arm.name, **{k: v for k, v in asdict(outcome).items() if k != "curve"},
                  "curve": outcome.curve}
        torch.save(trainer.model.state_dict(), folder / f"{arm.name}.pt")
    except Exception as error:  # noqa: BLE001 - the parent reports it with the others' results
        result["error"] = f"{type(error).__name__}: {str(error)[:500]}"
    write_json_atomically(folder / f"{arm.name}.json", result)


def start_arms(args: argparse.Namespace, device: torch.device, folder: Path, deadline: float) -> dict:
    processes = {}
    for arm in (ARMS_BY_NAME[name] for name in args.arms):
        if device.type != "cuda" and arm.cuda_only():
            continue
        command = [sys.executable, __file__, "--arm", arm.name, "--work", str(folder), "--deadline", str(deadline),
                   *args.passed]
        log = open(folder / f"{arm.name}.out", "w")  # noqa: SIM115 - closed when the process has ended
        processes[arm.name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                env={**os.environ, "PYTHONUNBUFFERED": "1"}), log)
    return processes


def arm_progress(folder: Path, arm: Arm, batch_size: int, ended: str | None = None) -> dict:
    """What an arm has logged so far: per loss window (100 steps) the mean loss, gradient norm, ms/step;
    its evaluations and warnings; its result once it has written one. `ended` says how a process that wrote
    none ended ("killed ...", "exited with N")."""
    windows, evaluations, warnings = [], [], []
    log = folder / f"{arm.name}.log.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:  # being written
            continue
        if event["event"] == "step":
            speed = event.get("examples_per_s")
            windows.append({"step": event["step"], "loss": round(event["window_loss"], 4),
                            "grad_norm_mean": event.get("grad_norm_mean"), "grad_norm_max": event.get("grad_norm_max"),
                            "clipped_fraction": event.get("clipped_fraction"),
                            "ms_per_step": round(batch_size / speed * 1000, 1) if speed else None})
        elif event["event"] == "evaluation":
            evaluations.append({k: event.get(k) for k in ("step", "exact", "f1", "total", "train_seconds")})
        elif event["event"] == "warning":
            warnings.append(event["message"])
    result_file = folder / f"{arm.name}.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    output = folder / f"{arm.name}.out"
    tail = output.read_text(errors="replace")[-1500:] if output.exists() else ""
    status = result.get("status") or ("running" if ended is None else "failed")
    error = result.get("error") or (f"{ended}: {tail}" if ended else None)
    if status == "failed" and result.get("error"):
        error = f"{result['error']}\n{tail}"
    return {"arm": arm.name, "description": arm.description, "windows": windows, "evaluations": evaluations,
            "warnings": warnings, "status": status, "error": error,
            "attention_kernel": result.get("attention_kernel"), "compile_seconds": result.get("compile_seconds"),
            "steps": result.get("steps", windows[-1]["step"] if windows else 0)}


# ------------------------------------------------------------------------------------------ stage 5: verdict

def last_step(arm: dict) -> int:
    windows = arm.get("windows", [])
    return windows[-1]["step"] if windows else 0


def arm_health(arm: dict, warmup_steps: int) -> str:
    """learning, rising, diverged, failed, or too short to tell (fewer than POST_WARMUP_WINDOWS loss windows
    wholly after the warm-up: the first runs' rise began between steps 1,000 and 1,700). Rising: the trainer
    warned of a rising loss, or the mean of the last three windows is LOSS_RISE above the best window before
    them from half the warm-up on (the learning rate is then 90% of its peak). Why 5%: a window is 100 steps
    of 32 questions; on the H200 the arms' successive windows past step 500 fell by up to 8% and none rose,
    while the first runs' loss rose 12% within 700 steps. A rise the trainer warned of counts even if the
    loss came back down."""
    if arm.get("status") == "diverged":
        return "diverged"
    if arm.get("status") == "failed":
        return "failed"
    windows = [w for w in arm.get("windows", []) if w["loss"] is not None]
    if any(not math.isfinite(w["loss"]) for w in windows):
        return "diverged"
    if arm.get("warnings"):
        return "rising"
    span = windows[0]["step"] if windows else 0  # steps a window: the first one ends there
    judged = [w["loss"] for w in windows if w["step"] > warmup_steps / 2]
    if sum(w["step"] - span >= warmup_steps for w in windows) < POST_WARMUP_WINDOWS or len(judged) < 4:
        return "too short"
    recent = sum(judged[-3:]) / 3
    return "rising" if recent > LOSS_RISE * min(judged[:-3]) else "learning"


def evaluated(arm: dict) -> dict[tuple[int, int], float]:
    """The arm's dev F1 by (step, questions scored)."""
    return {(e["step"], e["total"]): e["f1"] for e in arm.get("evaluations", []) if e.get("f1") is not None}


def compare(suspect: dict, other: dict, warmup_steps: int) -> tuple[str, str]:
    """Whether the one thing `suspect` adds to `other` is what breaks training: implicated, cleared, not resolved."""
    health = {name: arm_health(arm, warmup_steps) for name, arm in (("suspect", suspect), ("other", other))}
    scores = evaluated(suspect), evaluated(other)
    common = sorted(scores[0].keys() & scores[1].keys())  # the same step and the same questions
    f1 = (scores[0][common[-1]], scores[1][common[-1]]) if common else (None, None)
    evidence = (f"{suspect['arm']}: {health['suspect']} through step {last_step(suspect):,}, {other['arm']}: "
                f"{health['other']} through step {last_step(other):,}"
                + (f"; dev F1 at step {common[-1][0]:,} ({common[-1][1]:,} questions): {f1[0]:.1f} vs {f1[1]:.1f}"
                   if common else ""))
    suspect_bad = health["suspect"] in ("rising", "diverged") or (None not in f1 and f1[0] < f1[1] - F1_GAP)
    if health["suspect"] == "learning" and not suspect_bad:
        return "cleared", evidence  # with the suspect in, training still learns, whatever the other arm did
    if suspect_bad and health["other"] == "learning":
        return "implicated", evidence
    return "not resolved", evidence  # the other arm failed, ran too short, or degenerates too


KERNEL_ERROR_RATIO = 3.0  # cuDNN's maximum relative error this many times the memory-efficient kernel's: wrong


def kernel_finding(rows: list[dict]) -> tuple[str, str]:
    """cuDNN's dq/dk/dv against the memory-efficient kernel's, both bf16 and both against fp32 math, on the
    same inputs: direction (cosine), scale (maximum relative error) and non-finite values."""
    def gradients(kernel: str) -> dict[tuple[str, str], dict]:
        return {(r["input"], r["tensor"]): r for r in rows
                if r.get("kernel") == kernel and r.get("eligible") and r["tensor"].startswith("d")}
    cudnn, efficient = gradients("cudnn bfloat16"), gradients("efficient bfloat16")
    shared = cudnn.keys() & efficient.keys()  # the inputs both kernels took
    if not shared:
        why = next((r.get("why", "") for r in rows if not r.get("eligible")
                    and r.get("kernel") in ("cudnn bfloat16", "efficient bfloat16")), "")
        return "not resolved", f"cuDNN and the memory-efficient kernel ran on no input together ({why[:120]})"
    cudnn = {key: cudnn[key] for key in shared}
    efficient = {key: efficient[key] for key in shared}
    worst_cudnn = min(r["cosine"] for r in cudnn.values())
    worst_efficient = min(r["cosine"] for r in efficient.values())
    error_ratio = max(cudnn[key]["max_rel_error"] / max(efficient[key]["max_rel_error"], 1e-12) for key in shared)
    non_finite = sum(r["non_finite"] for r in cudnn.values())
    inputs = len({name for name, _ in shared})
    evidence = (f"dq/dk/dv on {inputs} inputs, against fp32 math: cosine >= {worst_cudnn:.5f} for cuDNN, "
                f">= {worst_efficient:.5f} for memory-efficient; cuDNN's max relative error at most "
                f"{error_ratio:.2f}x the memory-efficient kernel's; cuDNN non-finite values {non_finite}")
    if worst_efficient < AGREEING_COSINE:
        return "not resolved", evidence + " (the memory-efficient kernel disagrees too)"
    wrong = worst_cudnn < AGREEING_COSINE or error_ratio > KERNEL_ERROR_RATIO or non_finite > 0
    return ("implicated" if wrong else "cleared"), evidence


def verdict(diagnosis: dict, warmup_steps: int = 1000) -> dict:
    """Each cause with its finding and evidence, and the training path to use: the fastest arm that learned
    and is not the suspect of a cause found implicated."""
    arms = {arm["arm"]: arm for arm in diagnosis.get("arms", [])}
    rows = []
    implicated = set()
    if diagnosis.get("compiled_gradients"):  # a stage that failed left none
        finding, evidence = inductor_finding(diagnosis["compiled_gradients"])
        rows.append({"cause": "Inductor's gradients (mix-order reduction)", "evidence": "gradients: " + evidence,
                     "finding": finding})
        implicated |= {"bf16-inductor"} if finding == "implicated" else set()
    if any(row.get("kernel") == "cudnn bfloat16" for row in diagnosis.get("kernels", [])):  # tried: on CUDA
        finding, evidence = kernel_finding(diagnosis["kernels"])
        rows.append({"cause": "cuDNN attention backward", "evidence": "kernels: " + evidence, "finding": finding})
    for cause, (suspect, other) in PAIRS.items():
        if suspect in arms and other in arms:
            finding, evidence = compare(arms[suspect], arms[other], warmup_steps)
            rows.append({"cause": cause, "evidence": "training: " + evidence, "finding": finding})
            implicated |= {suspect} if finding == "implicated" else set()
    if "fp32" in arms:
        health = arm_health(arms["fp32"], warmup_steps)
        finding = {"learning": "cleared", "rising": "implicated", "diverged": "implicated"}.get(health, "not resolved")
        rows.append({"cause": "paper configuration unstable at lr 1e-3", "finding": finding,
                     "evidence": f"training: fp32 eager {health} through step {last_step(arms['fp32']):,}"})
    healthy = [name for name in PATH_FLAGS if name in arms and name not in implicated
               and arm_health(arms[name], warmup_steps) == "learning"]
    path = healthy[0] if healthy else None
    return {"rows": rows, "training_path": path, "flags": PATH_FLAGS.get(path),
            "summary": (f"train with {path} ({ARMS_BY_NAME[path].description}): {PATH_FLAGS[path]}" if path else
                        "no arm learned past the warm-up: train on the default path (train.compile auto)")}


def verdict_table(result: dict) -> str:
    width = max([len(row["cause"]) for row in result["rows"]] + [5])
    lines = [f"{'cause':<{width}}  {'finding':<12}  evidence", f"{'-' * width}  {'-' * 12}  {'-' * 8}"]
    lines += [f"{row['cause']:<{width}}  {row['finding']:<12}  {row['evidence']}" for row in result["rows"]]
    return "\n".join(lines + ["", result["summary"]])


# ------------------------------------------------------------------------------------------------- the call

def elapsed() -> float:
    return time.perf_counter() - STARTED


def stage(record: dict, out: Path, name: str, compute) -> None:
    """Run one stage; its result (or its error) goes into the record, which is written at once."""
    began = time.perf_counter()
    try:
        record[name] = compute()
    except Exception as error:  # noqa: BLE001 - one stage failing must not cost the others' measurements
        record.setdefault(name, [])  # what it wrote as it went, if anything
        record.setdefault("errors", {})[name] = f"{type(error).__name__}: {str(error)[:500]}"
        print(f"{name}: failed: {record['errors'][name]}", flush=True)
    record.setdefault("stage_seconds", {})[name] = round(time.perf_counter() - began, 1)
    write_json_atomically(out, record)


def summarise_kernels(rows: list[dict]) -> None:
    for label in sorted({r["kernel"] for r in rows}):
        mine = [r for r in rows if r["kernel"] == label]
        if not mine[0]["eligible"]:
            print(f"  {label:18} not eligible: {mine[0]['why'][:90]}")
            continue
        grads = [r for r in mine if r.get("tensor", "").startswith("d")]
        print(f"  {label:18} out cosine >= {worst([r for r in mine if r['tensor'] == 'out']):.5f}, dq/dk/dv cosine "
              f">= {worst(grads):.5f}, max rel error {max(r['max_rel_error'] for r in grads):.3g}, "
              f"non-finite {sum(r['non_finite'] for r in grads)}", flush=True)


def summarise_gradients(rows: list[dict]) -> None:
    for weights in dict.fromkeys(r["weights"] for r in rows):
        for variant in dict.fromkeys(r["variant"] for r in rows if r["weights"] == weights):
            mine = [r for r in rows if r["weights"] == weights and r["variant"] == variant]
            if "error" in mine[0]:
                print(f"  {weights}: {variant}: {mine[0]['error']}")
                continue
            spread = ", ".join(f"{r['group']} {r['cosine']:.4f}/{r['norm_ratio']:.3f}" for r in mine)
            print(f"  {weights}: {variant} (loss {mine[0]['loss']} vs {mine[0]['reference_loss']}): cosine/norm "
                  f"ratio {spread}", flush=True)


def watch_arms(args, record: dict, out: Path, processes: dict, folder: Path, deadline: float) -> list[dict]:
    """Collect the arms' progress into the record every few seconds until they end (or the time is up)."""
    try:
        return _watch(args, record, out, processes, folder, deadline)
    except BaseException:
        stop_arms(processes)  # at once: they must not train on through the stages after this one
        raise


def _watch(args, record: dict, out: Path, processes: dict, folder: Path, deadline: float) -> list[dict]:
    arms = [ARMS_BY_NAME[name] for name in processes]
    record["arms"] = []
    printed: dict[str, int] = {}
    while True:
        running = [name for name, (process, _) in processes.items() if process.poll() is None]
        record["arms"] = [arm_progress(folder, arm, args.batch_size) for arm in arms]
        write_json_atomically(out, record)
        for arm in record["arms"]:
            for window in arm["windows"][printed.get(arm["arm"], 0):]:
                number = {key: window[key] if window[key] is not None else float("nan")
                          for key in ("grad_norm_mean", "grad_norm_max", "clipped_fraction", "ms_per_step")}
                print(f"  {arm['arm']:16} step {window['step']:5d}  loss {window['loss']:7.3f}  grad norm "
                      f"{number['grad_norm_mean']:6.2f} (max {number['grad_norm_max']:6.2f}, clipped "
                      f"{number['clipped_fraction']:4.0%})  {number['ms_per_step']:6.1f} ms/step", flush=True)
            printed[arm["arm"]] = len(arm["windows"])
        if not running:
            break
        if time.time() > deadline + args.grace_seconds:
            for name in running:
                processes[name][0].kill()
                print(f"  {name}: still running {args.grace_seconds:.0f} s past the deadline: killed", flush=True)
            break
        time.sleep(args.poll_seconds)
    return [arm_progress(folder, arm, args.batch_size, how_it_ended(*processes[arm.name])) for arm in arms]


def how_it_ended(process: subprocess.Popen, log) -> str:
    """Wait for an arm's process; its end in words, for an arm that left no result."""
    code = process.wait()
    log.close()
    return "killed past the deadline" if code == -9 else f"exited with {code}"


def stop_arms(processes: dict) -> None:
    """Kill the arms still running (the diagnosis failed, or was interrupted): nothing of it may share the GPU
    with what runs next."""
    for process, log in processes.values():
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.arm:
        arm_main(args)
        return
    if args.judge:
        record = read_diagnosis(args.judge)
        warmup = args.warmup_steps or record.get("settings", {}).get("warmup_steps") or WARMUP_STEPS
        print(verdict_table(verdict(record, warmup)))
        return
    device, manifest, prepared = open_pack(args)
    if len(trainable_questions(prepared.train, args.context_len)) < args.batch_size * args.gradient_batches:
        sys.exit(f"error: {args.pack}: fewer trainable questions than --gradient-batches x --batch-size "
                 f"({args.gradient_batches} x {args.batch_size})")
    out = args.out or default_out(device, "diagnosis")
    record = new_record("gpu-diagnosis", args, device, manifest)
    record["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "passed"}
    print(f"pack {manifest['fingerprint']}: {len(prepared.train):,} train, {len(prepared.dev):,} dev questions; "
          f"device {record['environment']['device']}, torch {torch.__version__}", flush=True)
    print("compiled gradients against eager, before the arms start:", flush=True)
    stage(record, out, "compiled_gradients", lambda: compiled_gradient_agreement(args, prepared, device))
    folder = Path(tempfile.mkdtemp(prefix="qanet-diagnose-"))
    deadline = time.time() + args.wall_seconds - elapsed() - args.reserve_seconds
    processes = start_arms(args, device, folder, deadline)  # first: they train while the kernels are compared
    print(f"arms started: {', '.join(processes)}; training until {args.steps} steps or "
          f"{deadline - time.time():.0f} s from now", flush=True)
    try:
        diagnose(args, prepared, device, record, out, processes, folder, deadline)
    finally:
        stop_arms(processes)


def diagnose(args: argparse.Namespace, prepared: Prepared, device: torch.device, record: dict, out: Path,
             processes: dict, folder: Path, deadline: float) -> None:
    """The stages after the arms' start: kernels and gradients while they train, their progress, the
    gradients on their weights, the verdict."""
    torch.manual_seed(args.seed)  # the arms' initial weights
    config = arm_config(args, ARMS_BY_NAME["fp32"])
    model = build_model(config, prepared).to(device)
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    batches = real_batches(prepared, device, args, args.gradient_batches)
    source = BatchSource(prepared.train, device)
    heads = config.model.heads
    stage(record, out, "kernels", lambda: kernel_agreement(
        captured_attention_inputs(model, batches[0])
        + random_attention_inputs(source, prepared, heads, config.model.hidden // heads, args, device), device))
    print(f"kernels ({record['stage_seconds']['kernels']} s), against fp32 math:", flush=True)
    summarise_kernels(record["kernels"])
    stage(record, out, "gradients", lambda: gradient_agreement(model, batches, "initialisation"))
    print(f"gradients at initialisation ({record['stage_seconds']['gradients']} s), per group against fp32 math:")
    summarise_gradients(record["gradients"])

    stage(record, out, "arms", lambda: watch_arms(args, record, out, processes, folder, deadline))

    def trained_gradients() -> list[dict]:
        rows = []
        for arm in record["arms"]:
            weights = folder / f"{arm['arm']}.pt"
            if weights.exists():
                model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
                rows += gradient_agreement(model, batches, f"{arm['arm']} after {arm['steps']} steps")
        model.load_state_dict(initial)
        return rows

    stage(record, out, "trained_gradients", trained_gradients)
    print(f"gradients on the arms' trained weights ({record['stage_seconds']['trained_gradients']} s):")
    summarise_gradients(record["trained_gradients"])
    record["verdict"] = verdict(record, config.train.warmup_steps)
    record["wall_seconds"] = round(elapsed(), 1)
    write_json_atomically(out, record)
    print("\n" + verdict_table(record["verdict"]) + f"\n\n{elapsed():.0f} s -> {out}", flush=True)


def read_diagnosis(path: Path) -> dict:
    """A diagnosis record, or exit 2 with one line naming the file."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        sys.exit(f"error: {path}: not a readable diagnosis record ({error})")
    if not isinstance(record, dict) or record.get("kind") != "gpu-diagnosis":
        sys.exit(f"error: {path}: not a diagnosis record (no kind gpu-diagnosis)")
    return record


def arm_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in ARMS_BY_NAME]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected arms among {', '.join(ARMS_BY_NAME)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", type=Path, help="a pack from `python -m bench data pack` (required unless --judge)")
    parser.add_argument("--judge", type=Path, metavar="RECORD",
                        help="print the verdict of a diagnosis record by this code's rules (no device, no pack)")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--steps", type=positive_int, default=1500,
                        help="training steps per arm (default: %(default)s)")
    parser.add_argument("--eval-every", type=positive_int, default=500, help="arms: steps between sampled evaluations")
    parser.add_argument("--eval-questions", type=positive_int, default=1000,
                        help="arms: dev questions per evaluation")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--context-len", type=positive_int, default=400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss-every", type=positive_int, default=100, help="arms: steps per loss window")
    parser.add_argument("--warmup-steps", type=positive_int, default=None,
                        help=f"arms: the learning rate's warm-up (default {WARMUP_STEPS}, the paper's); windows "
                             f"after it are judged (--judge: the record's own)")
    parser.add_argument("--small", action="store_true", help="the CPU-sized model (CI), not the paper's")
    parser.add_argument("--gradient-batches", type=positive_int, default=2, help="real batches behind each gradient")
    parser.add_argument("--wall-seconds", type=float, default=330.0,
                        help="the whole call's budget: arms stop in time for the last stage (default: %(default)s)")
    parser.add_argument("--reserve-seconds", type=float, default=30.0,
                        help="kept from the budget for the trained-weights gradients and the verdict")
    parser.add_argument("--grace-seconds", type=float, default=20.0,
                        help="an arm still running this long past the deadline (compiling, say) is killed")
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    parser.add_argument("--compiled-gradients-seconds", type=float, default=150.0,
                        help="stage 1: an Inductor setting not begun this long after the stage began is not run "
                             "(each compiles the model anew; default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the record (default: results/reference/gpu-diagnosis-CARD.json); on a lent machine, "
                             "under $OUT")
    parser.add_argument("--code-version", default=None, help="the git sha, where the copy has no .git")
    parser.add_argument("--arms", type=arm_names, default=DEFAULT_ARMS,
                        help=f"the training arms, comma-separated (default: {','.join(DEFAULT_ARMS)}; also "
                             f"{', '.join(sorted(set(ARMS_BY_NAME) - set(DEFAULT_ARMS)))})")
    parser.add_argument("--arm", choices=list(ARMS_BY_NAME), help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.pack and not args.judge:
        parser.error("--pack is required (or --judge RECORD)")
    if not args.judge:
        args.warmup_steps = args.warmup_steps or WARMUP_STEPS
    # what the arms need to build the same configuration as the parent
    args.passed = ["--pack", str(args.pack), "--device", args.device, "--steps", str(args.steps), "--eval-every",
                   str(args.eval_every), "--eval-questions", str(args.eval_questions), "--batch-size",
                   str(args.batch_size), "--context-len", str(args.context_len), "--lr", str(args.lr), "--seed",
                   str(args.seed), "--loss-every", str(args.loss_every),
                   "--warmup-steps", str(args.warmup_steps), *(["--small"] if args.small else [])]
    return args


if __name__ == "__main__":
    main()
