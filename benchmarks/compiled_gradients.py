"""Compiled gradients against eager (issue 24, item 7): does torch.compile compute QANet's gradients?

On an H200 both runs trained with Inductor (mode default + CUDA graphs) went wrong early, the one on CUDA graphs
without Inductor did not. A public candidate: pytorch/pytorch#193061, Inductor's mix-order reduction (on by
default since torch 2.10) leaving gradient buffers of chained LayerNorms that share parameters unwritten
(uninitialised or last step's values), in fp32 as in bf16; #190796, the same pass corrupting bf16 conv-bias
gradients. QANet's model encoder applies the same 7 blocks, LayerNorms included, three times a step.

On the GPU machine, from the repository root (torch + numpy + the repository + the pack):
    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/compiled_gradients.py --pack .packs/squad-v1.1-glove-6b-50d \\
        --out $OUT/compiled-gradients.json
Here, on a synthetic batch of token ids (no pack needed): add --device cpu --batch-size 4.

One forward + backward each, in training mode with dropout and stochastic depth off (a deterministic network), on
the same weights, batch and seed, with the attention kernels training may use:
- reference: eager fp32;
- eager noise: eager at the compiled settings' dtype, one example at a time (each example's loss over the batch
  size, backpropagated in turn): mathematically the same gradient, computed by kernels of other shapes and rounded
  as eager rounds (bf16 autocast on CUDA, as training; fp32 on a CPU);
- each compiled setting, --passes times (CUDA graphs record on a later call), at that dtype: Inductor (mode
  "default") with triton.mix_order_reduction on and off, and backend "cudagraphs" (CUDA only).
Per parameter group: cosine, relative error ||g - g_ref|| / ||g_ref|| and non-finite values against the reference;
the loss too. A setting disagrees where a group's relative error (or the loss's) exceeds NOISE_FACTOR times the
eager noise's, and at least FLOOR, or where it has non-finite values. An agreement clears a setting
only at the shapes, dtype, device and torch version tested, which the record states. The verdict's `inductor`
is Inductor's finding, judged on the setting training compiles with (torch's default mix-order reduction).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.environment import environment  # noqa: E402 - torch and stdlib only
from bench.records import write_json_atomically  # noqa: E402
from qanet.config import SMALL_MODEL, ConfigError, ModelConfig, RunConfig, build_config  # noqa: E402
from qanet.data.batching import BatchSource, epoch_batches, trainable_questions  # noqa: E402
from qanet.data.pack import PackError, load_pack, read_manifest  # noqa: E402
from qanet.data.vocab import OOV, PAD  # noqa: E402
from qanet.device import autocast, compiled, resolve_device, training_attention_kernels  # noqa: E402
from qanet.model import QANet  # noqa: E402


@dataclass(frozen=True)
class Setting:
    key: str  # its name on the command line (--settings)
    name: str
    compile_mode: str  # qanet.device.compiled's mode: an Inductor mode, or "cudagraphs"
    mix_order_reduction: bool | None  # Inductor's triton.mix_order_reduction for this setting; None: not Inductor

    def not_applicable(self, device: torch.device) -> str | None:
        """Why this setting means nothing on `device` with this torch, or None."""
        if self.compile_mode == "cudagraphs" and device.type != "cuda":
            return "CUDA graphs need CUDA"
        if self.mix_order_reduction is not None and not hasattr(torch._inductor.config.triton, "mix_order_reduction"):
            return f"torch {torch.__version__} has no torch._inductor.config.triton.mix_order_reduction"
        return None


INDUCTOR_SETTINGS = (Setting("inductor-mix-order", "inductor, mix_order_reduction=True", "default", True),
                     Setting("inductor-no-mix-order", "inductor, mix_order_reduction=False", "default", False))
COMPILED_SETTINGS = (*INDUCTOR_SETTINGS, Setting("cudagraphs", "cudagraphs", "cudagraphs", None))
SETTINGS_BY_KEY = {setting.key: setting for setting in COMPILED_SETTINGS}
CPU_NOTE = ("on a CPU Inductor generates C++ code: triton.mix_order_reduction is a setting of its Triton (GPU) code "
            "and has no effect here, so both Inductor rows test the same C++ code")

# A compiled setting may round differently from eager (fused kernels, other summation orders), never by much more
# than eager differs from itself computing one example at a time; a buffer left unwritten (#193061) or corrupted
# (#190796) is off by its whole size, a relative error near 1.
NOISE_FACTOR = 10.0
# the least relative error that counts as a disagreement, whatever the eager noise (which can be about 0 where the
# rounding happens not to move, as a loss may): about 100 fp32 rounding units (2^-23 each); bf16's noise lies far
# above it
FLOOR = 1e-5

# the model's top-level parts, by the group they are judged in
PART_GROUPS = {"embedding": "embedding", "embedding_encoder": "embedding encoder",
               "attention": "context-query attention", "resize": "context-query attention",
               "model_encoder": "model encoder", "pointer": "pointer"}
WHOLE_MODEL = "whole model"


# ------------------------------------------------------------------------------------------- model and batch

def deterministic_model(config: ModelConfig, word_vectors: torch.Tensor, chars: int) -> QANet:
    """QANet as `config` describes it but with dropout and stochastic depth off, so that training mode computes
    the same function every call, eagerly or compiled (its random weights come from torch's global generator)."""
    quiet = dataclasses.replace(config, dropout=0.0, char_dropout=0.0, attention_dropout=0.0, survival_last=1.0)
    return QANet(quiet, word_vectors, chars)


def first_batch(prepared, config: RunConfig, device: torch.device) -> dict[str, torch.Tensor]:
    """The first full training batch of epoch 0 (the seed's order), padded to the context and question limits: the
    one shape the reference run compiles."""
    data, train = config.data, config.train
    questions = trainable_questions(prepared.train, data.context_len)
    batches = epoch_batches(questions, prepared.train.context_lengths(), train.batch_size, seed=train.seed,
                            epoch=0)
    full = [batch for batch in batches if len(batch) == train.batch_size]
    if not full:
        raise ConfigError(f"train.batch_size = {train.batch_size}: more than the {len(questions)} trainable "
                          f"questions of the pack")
    source = BatchSource(prepared.train, device, pad_multiple=max(data.context_len, data.question_len))
    return source.batch(full[0], data.context_len, data.question_len)


def synthetic_tokens(generator: torch.Generator, batch: int, width: int, *, char_len: int, words: int, chars: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Word ids (batch, width) with PAD past each row's length (the first row is full), one in twenty OOV;
    character ids (batch, width, char_len) with PAD past each word's length; the row lengths."""
    lengths = torch.randint(max(1, width // 2), width + 1, (batch,), generator=generator)
    lengths[0] = width
    inside = torch.arange(width)[None, :] < lengths[:, None]
    ids = torch.randint(OOV + 1, words, (batch, width), generator=generator)
    ids = torch.where(torch.rand(batch, width, generator=generator) < 0.05, OOV, ids).masked_fill(~inside, PAD)
    spelled = torch.arange(char_len)[None, None, :] < torch.randint(1, char_len + 1, (batch, width, 1),
                                                                     generator=generator)
    letters = torch.randint(PAD + 1, chars, (batch, width, char_len), generator=generator)
    return ids, letters.masked_fill(~(spelled & inside[..., None]), PAD), lengths


def synthetic_batch(config: RunConfig, words: int, chars: int, seed: int) -> dict[str, torch.Tensor]:
    """A batch of random token ids at the context and question limits, rows of different lengths, answers of up to
    10 tokens inside each context (on the CPU)."""
    generator = torch.Generator().manual_seed(seed)
    size, data = config.train.batch_size, config.data
    vocabulary = {"char_len": data.char_len, "words": words, "chars": chars}
    context_words, context_chars, lengths = synthetic_tokens(generator, size, data.context_len, **vocabulary)
    question_words, question_chars, _ = synthetic_tokens(generator, size, data.question_len, **vocabulary)
    start = (torch.rand(size, generator=generator) * lengths).long()
    end = torch.minimum(start + torch.randint(0, 10, (size,), generator=generator), lengths - 1)
    return {"context_words": context_words, "context_chars": context_chars, "question_words": question_words,
            "question_chars": question_chars, "start": start, "end": end}


# ---------------------------------------------------------------------------------------------- one pass

@dataclass
class Pass:
    loss: float
    gradients: dict[str, torch.Tensor]  # by parameter name


@dataclass(frozen=True)
class Execution:
    """How a pass runs: on `device`, under bf16 autocast or not (CUDA only, as training), with `kernels`."""

    device: torch.device
    bf16: bool
    kernels: list  # the SDPA kernels training may use


def backward_loss(model: QANet, forward, batch: dict, execution: Execution, *, scale: float = 1.0) -> float:
    """The training loss of `batch` through `forward` (the model, or a compiled one), times `scale`, backpropagated
    into the model's gradients (added to what they hold)."""
    with autocast(execution.device, execution.bf16), sdpa_kernel(execution.kernels):
        start, end = forward(batch["context_words"], batch["context_chars"], batch["question_words"],
                             batch["question_chars"])
        loss = model.loss(start, end, batch["start"], batch["end"]) * scale
    loss.backward()
    return float(loss.detach())


def taken_gradients(model: QANet) -> dict[str, torch.Tensor]:
    """The model's gradients by parameter name, copied (a CUDA graph's replay overwrites them) and then cleared; a
    parameter left without a gradient counts as a zero one."""
    gradients = {name: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone()
                 for name, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return gradients


def forward_backward(model: QANet, forward, batch: dict, execution: Execution, *, compiled_step: bool) -> Pass:
    """One training pass of `batch` through `forward`: its loss and gradients."""
    model.train()
    model.zero_grad(set_to_none=True)
    if compiled_step:
        torch.compiler.cudagraph_mark_step_begin()  # the last pass's outputs are no longer used
    loss = backward_loss(model, forward, batch, execution)
    return Pass(loss, taken_gradients(model))


def one_example_at_a_time(model: QANet, batch: dict, execution: Execution) -> Pass:
    """Eagerly, each example's loss divided by the batch size, backpropagated in turn: the batch's loss (their mean)
    and gradient, mathematically, computed by kernels of other shapes and summed in another order."""
    model.train()
    model.zero_grad(set_to_none=True)
    size = len(batch["start"])
    loss = sum(backward_loss(model, model, {key: value[index:index + 1] for key, value in batch.items()}, execution,
                             scale=1 / size) for index in range(size))
    return Pass(loss, taken_gradients(model))


# -------------------------------------------------------------------------------------------- comparison

def parameter_groups(model: nn.Module) -> dict[str, list[str]]:
    """Parameter names by group: the model's parts (PART_GROUPS; an unknown part is a group of its own), each
    encoder's LayerNorms apart (#193061 hits chained LayerNorms that share parameters), and the whole model."""
    norms = {f"{path}.{name}" for path, module in model.named_modules() if isinstance(module, nn.LayerNorm)
             for name, _ in module.named_parameters()}
    names = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    groups: dict[str, list[str]] = {}
    for name in names:
        group = PART_GROUPS.get(name.split(".")[0], name.split(".")[0])
        if name in norms and group.endswith("encoder"):
            group += " LayerNorm"
        groups.setdefault(group, []).append(name)
    return {**groups, WHOLE_MODEL: names}


def finite_or_zero(values: torch.Tensor) -> torch.Tensor:
    """`values` in fp64 with its non-finite values as 0 (they are counted apart)."""
    values = values.double()
    return torch.where(torch.isfinite(values), values, 0)


def agreement(found: list[torch.Tensor], expected: list[torch.Tensor]) -> dict:
    """Cosine, relative error ||a - b|| / ||b|| and the count of non-finite values of the gradients `found` (a)
    against `expected` (b), in fp64; the parameter that contributes the most to the error, by its index and its
    share of the relative error (a mathematically zero gradient, as a bias before a softmax has, is rounding noise
    around 0: its own relative error means nothing)."""
    a = torch.cat([finite_or_zero(t).flatten() for t in found])
    b = torch.cat([t.double().flatten() for t in expected])
    scale = b.norm().clamp_min(torch.finfo(torch.float64).tiny)
    shares = [float((finite_or_zero(f) - e.double()).norm() / scale) for f, e in zip(found, expected, strict=True)]
    worst = max(range(len(shares)), key=shares.__getitem__)
    both = a.norm() > 0 and b.norm() > 0
    return {"cosine": float(F.cosine_similarity(a, b, dim=0)) if both else float(torch.equal(a, b)),
            "relative_error": float((a - b).norm() / scale),
            "non_finite": sum(int((~torch.isfinite(t)).sum()) for t in found),
            "worst": worst, "worst_share": shares[worst]}


def compare_pass(found: Pass, reference: Pass, groups: dict[str, list[str]]) -> dict:
    """The loss's relative difference and each group's agreement with the reference, naming its worst parameter."""
    rows = []
    for group, names in groups.items():
        row = agreement([found.gradients[n] for n in names], [reference.gradients[n] for n in names])
        rows.append({"group": group, **row, "worst": names[row["worst"]]})
    if not math.isfinite(found.loss):
        return {"loss": None, "loss_relative_error": None, "groups": rows}
    loss_error = abs(found.loss - reference.loss) / max(abs(reference.loss), 1e-30)
    return {"loss": found.loss, "loss_relative_error": loss_error, "groups": rows}


def tolerances(noise: dict) -> dict[str, float]:
    """The largest relative error that still agrees, per group and for the loss ("loss"): NOISE_FACTOR times the
    eager noise's, at least FLOOR."""
    limits = {row["group"]: max(NOISE_FACTOR * row["relative_error"], FLOOR) for row in noise["groups"]}
    limits["loss"] = max(NOISE_FACTOR * (noise["loss_relative_error"] or 0.0), FLOOR)
    return limits


def judge_pass(name: str, index: int, compared: dict, limits: dict[str, float]) -> list[str]:
    """The disagreements of one pass of setting `name`, each naming the setting, the pass and the group; each group
    row of `compared` is marked with its tolerance and whether it agrees."""
    where = f"{name} (pass {index})"
    found = []
    if compared["loss_relative_error"] is None or compared["loss_relative_error"] > limits["loss"]:
        found.append(f"{where}: loss {compared['loss']} (relative error {_number(compared['loss_relative_error'])}, "
                     f"tolerance {limits['loss']:.3g})")
    for row in compared["groups"]:
        row["tolerance"] = limits[row["group"]]
        row["agrees"] = row["non_finite"] == 0 and row["relative_error"] <= row["tolerance"]
        if not row["agrees"]:
            found.append(f"{where}: {row['group']} cosine {row['cosine']:.4f}, relative error "
                         f"{row['relative_error']:.3g} (tolerance {row['tolerance']:.3g}), non-finite "
                         f"{row['non_finite']}; worst {row['worst']} ({row['worst_share']:.3g} of it)")
    return found


def _number(value: float | None) -> str:
    return "non-finite" if value is None else f"{value:.3g}"


# ------------------------------------------------------------------------------------------------ the run

@dataclass
class Comparison:
    """What one comparison runs: the model (dropout off) and batch on `device`, the compiled settings' dtype."""

    model: QANet
    batch: dict[str, torch.Tensor]
    device: torch.device
    bf16: bool  # the compiled settings and the eager noise under bf16 autocast (CUDA only, as training)
    kernels: list  # the SDPA kernels training may use
    compile_scope: str  # train.compile_scope: the whole model compiled, or each encoder block
    passes: int = 3

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.bf16 and self.device.type == "cuda" else torch.float32

    def execution(self, bf16: bool | None = None) -> Execution:
        """How its passes run: at the compiled settings' dtype, or with `bf16` as given."""
        return Execution(self.device, self.bf16 if bf16 is None else bf16, self.kernels)

    def eager(self, bf16: bool) -> Pass:
        return forward_backward(self.model, self.model, self.batch, self.execution(bf16), compiled_step=False)

    def eager_noise(self) -> Pass:
        """Eagerly at the compiled settings' dtype, one example at a time: how far eager's own rounding moves the
        gradient, through every layer (a batch in another order would only move its sums over examples)."""
        return one_example_at_a_time(self.model, self.batch, self.execution())

    def compiled_passes(self, setting: Setting) -> list[Pass]:
        """`passes` passes through a copy of the model compiled as `setting` says (a compilation may change the
        model in place: each setting starts from the same uncompiled one), under its Inductor setting."""
        torch._dynamo.reset()  # no graph of an earlier setting may serve this one
        model = copy.deepcopy(self.model)
        forward = compiled(model, setting.compile_mode, self.compile_scope)
        patch = ({"triton.mix_order_reduction": setting.mix_order_reduction}
                 if setting.mix_order_reduction is not None else {})
        with torch._inductor.config.patch(patch):  # forward and backward are compiled inside it
            return [forward_backward(model, forward, self.batch, self.execution(), compiled_step=True)
                    for _ in range(self.passes)]


def scope(comparison: Comparison) -> dict:
    """Exactly what an agreement is about: shapes, dtype, device, torch version, model size."""
    batch, config = comparison.batch, comparison.model.config
    device = comparison.device
    return {"batch_size": int(batch["context_words"].shape[0]),
            "context_width": int(batch["context_words"].shape[1]),
            "question_width": int(batch["question_words"].shape[1]),
            "word_width": int(batch["context_chars"].shape[2]),
            "dtype": result_dtype(comparison), "compile_scope": comparison.compile_scope,
            "device": environment(device)["device"], "device_type": device.type, "torch": torch.__version__,
            "model": {key: getattr(config, key) for key in ("hidden", "heads", "model_blocks", "model_convs",
                                                            "embedding_convs", "char_dim", "char_encoder")},
            "tf32": ({"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
                     if device.type == "cuda" else None)}


def scope_text(scope: dict) -> str:
    return (f"batch {scope['batch_size']}, context width {scope['context_width']}, question width "
            f"{scope['question_width']}, {scope['dtype']}, {scope['device']} ({scope['device_type']}), torch "
            f"{scope['torch']}, hidden {scope['model']['hidden']}, {scope['model']['model_blocks']} model blocks, "
            f"compiled {'whole' if scope['compile_scope'] == 'model' else 'by encoder block'}")


@dataclass(frozen=True)
class Baseline:
    """What each compiled setting is judged against: eager fp32's pass, the parameter groups, the tolerances."""

    reference: Pass
    groups: dict[str, list[str]]
    limits: dict[str, float]  # by group, and "loss" (tolerances)


def run_setting(comparison: Comparison, setting: Setting, baseline: Baseline) -> dict:
    """`setting`'s passes, each compared with the reference and judged."""
    passes, disagreements = [], []
    for index, found in enumerate(comparison.compiled_passes(setting), start=1):
        compared = compare_pass(found, baseline.reference, baseline.groups)
        disagreements += judge_pass(setting.name, index, compared, baseline.limits)
        passes.append(compared)
    return {"status": "disagrees" if disagreements else "agrees", "passes": passes, "disagreements": disagreements}


def compare_compiled_gradients(comparison: Comparison, settings=COMPILED_SETTINGS, *, deadline: float = math.inf,
                               report=print, on_progress=lambda result: None) -> dict:
    """The reference, the eager noise and each setting's agreement with the reference, with the verdict. Lines go
    to `report`, and the result so far to `on_progress`, after the noise and after each setting. A setting not
    begun by `deadline` (time.perf_counter) is not run."""
    started = time.perf_counter()
    groups = parameter_groups(comparison.model)
    reference = comparison.eager(bf16=False)
    noise = compare_pass(comparison.eager_noise(), reference, groups)
    result = opening(comparison, reference, noise)
    for line in reference_lines(result):
        report(line)
    on_progress(result)
    baseline = Baseline(reference, groups, result["noise"]["tolerances"])
    for setting in settings:
        row = setting_row(comparison, setting, baseline, deadline=deadline)
        result["settings"].append(row)
        result["verdict"] = verdict(result)
        for line in setting_lines(row):
            report(line)
        on_progress(result)
    torch._dynamo.reset()  # the compiled graphs (and CUDA-graph memory) go with the comparison
    result["seconds"] = round(time.perf_counter() - started, 1)
    report(result["verdict"]["summary"])
    return result


def opening(comparison: Comparison, reference: Pass, noise: dict) -> dict:
    """The result before any setting: scope, reference, eager noise and the tolerances drawn from it."""
    result = {"scope": scope(comparison), "noise_factor": NOISE_FACTOR, "floor": FLOOR,
              "mix_order_reduction_default": getattr(torch._inductor.config.triton, "mix_order_reduction", None),
              "note": CPU_NOTE if comparison.device.type == "cpu" else None,
              "reference": {"run": "eager fp32", "loss": reference.loss,
                            "non_finite": sum(int((~torch.isfinite(g)).sum()) for g in reference.gradients.values())},
              "noise": {"run": f"eager {result_dtype(comparison)}, one example at a time", **noise,
                        "tolerances": tolerances(noise)},
              "settings": []}
    return {**result, "verdict": verdict(result)}


def setting_row(comparison: Comparison, setting: Setting, baseline: Baseline, *, deadline: float) -> dict:
    """One setting's outcome: agrees or disagrees (with its passes), not applicable, not run or failed (why)."""
    row = {"setting": setting.name, "compile_mode": setting.compile_mode,
           "mix_order_reduction": setting.mix_order_reduction}
    began = time.perf_counter()
    why_not = setting.not_applicable(comparison.device)
    if why_not:
        row.update(status="not applicable", why=why_not)
    elif began > deadline:
        row.update(status="not run", why="the stage's time ran out before it began")
    else:
        try:
            row.update(run_setting(comparison, setting, baseline))
        except Exception as error:  # noqa: BLE001 - one failing setting must not cost the others' answers
            row.update(status="failed", why=f"{type(error).__name__}: {str(error)[:500]}")
    row["seconds"] = round(time.perf_counter() - began, 1)
    return row


def result_dtype(comparison: Comparison) -> str:
    return "bf16 autocast" if comparison.dtype == torch.bfloat16 else "fp32"


def status_text(row: dict) -> str:
    return f"{row['setting']}: {row['status']}" + (f" ({row['why']})" if "why" in row else "")


def verdict(result: dict) -> dict:
    """Each setting's status; the disagreements, each naming setting, pass and group; what an agreement covers;
    Inductor's finding (inductor_finding)."""
    where = scope_text(result["scope"])
    agreeing = [row["setting"] for row in result["settings"] if row["status"] == "agrees"]
    summary = "verdict: " + "; ".join(status_text(row) for row in result["settings"])
    if agreeing:
        summary += f"\n  an agreement clears {' and '.join(agreeing)} only at: {where}"
    finding, evidence = inductor_finding(result)
    summary += f"\n  Inductor as training compiles it (torch's default mix-order reduction): {finding}"
    return {"statuses": {row["setting"]: row["status"] for row in result["settings"]},
            "disagreements": [line for row in result["settings"] for line in row.get("disagreements", [])],
            "agreement_scope": where, "inductor": {"finding": finding, "evidence": evidence}, "summary": summary}


def inductor_finding(result: dict) -> tuple[str, str]:
    """Whether Inductor computes QANet's gradients, judged on the setting training compiles with (torch's default
    mix-order reduction): implicated where it disagrees, cleared where it agrees (at the scope tested only), not
    resolved where it did not run; with every Inductor setting's status as evidence."""
    default = result["mix_order_reduction_default"]
    rows = [row for row in result["settings"] if row["mix_order_reduction"] is not None]
    trained = next((row for row in rows if row["mix_order_reduction"] == default), None)
    evidence = "; ".join(status_text(row) for row in rows) or "no Inductor setting compared"
    if trained and trained["status"] == "disagrees":
        return "implicated", f"{evidence}; {trained['disagreements'][0]}"
    if trained and trained["status"] == "agrees":
        return "cleared", f"{evidence}; at {scope_text(result['scope'])}"
    return "not resolved", f"{evidence} (torch's default triton.mix_order_reduction: {default})"


# ------------------------------------------------------------------------------------------------ printout

def reference_lines(result: dict) -> list[str]:
    reference, noise = result["reference"], result["noise"]
    lines = [f"compiled gradients against eager fp32: {scope_text(result['scope'])}",
             f"reference: {reference['run']}, loss {reference['loss']:.6f}, non-finite gradients "
             f"{reference['non_finite']}",
             f"eager noise ({noise['run']}): loss relative error {_number(noise['loss_relative_error'])}; "
             f"tolerance per group: {NOISE_FACTOR:g} x the noise, at least {result['floor']:.3g}"]
    if result["note"]:
        lines.append(f"note: {result['note']}")
    lines.append(f"torch's default triton.mix_order_reduction: {result['mix_order_reduction_default']}")
    lines += group_table(noise["groups"], with_tolerance=False)
    return lines


def group_table(rows: list[dict], with_tolerance: bool = True) -> list[str]:
    width = max(len(row["group"]) for row in rows)
    head = f"  {'group':<{width}}  {'cosine':>9}  {'rel error':>9}  " + ("tolerance  " if with_tolerance else "")
    lines = [head + "non-finite  worst parameter (its share of the rel error)"]
    for row in rows:
        tolerance = f"{row['tolerance']:9.3g}  " if with_tolerance else ""
        flag = "" if row.get("agrees", True) else "  DISAGREES"
        lines.append(f"  {row['group']:<{width}}  {row['cosine']:9.6f}  {row['relative_error']:9.3g}  {tolerance}"
                     f"{row['non_finite']:10d}  {row['worst']} ({row['worst_share']:.3g}){flag}")
    return lines


def setting_lines(row: dict) -> list[str]:
    head = f"{row['setting']}: {row['status']} ({row['seconds']} s)"
    if "passes" not in row:
        return [f"{head}: {row['why']}"]
    worst = max(row["passes"], key=lambda found: (sum(not g["agrees"] for g in found["groups"]),
                                                  max(g["relative_error"] / g["tolerance"] for g in found["groups"])))
    index = row["passes"].index(worst) + 1
    loss = "non-finite" if worst["loss"] is None else f"{worst['loss']:.6f}"
    lines = [f"{head}; its worst of {len(row['passes'])} passes, pass {index}: loss {loss}, relative error "
             f"{_number(worst['loss_relative_error'])}"]
    return lines + group_table(worst["groups"]) + [f"  {line}" for line in row["disagreements"]]


# ------------------------------------------------------------------------------------------------ the call

def run_config(args: argparse.Namespace) -> RunConfig:
    """The paper configuration with --small, the flags and --set applied, later ones winning."""
    flags = {"train.device": args.device, "train.batch_size": args.batch_size, "data.context_len": args.context_len,
             "train.seed": args.seed}
    overrides = [f"{key}={value}" for key, value in SMALL_MODEL.items()] if args.small else []
    overrides += args.set + [f"{key}={value}" for key, value in flags.items() if value is not None]
    return build_config("paper", overrides)


def comparison_inputs(args: argparse.Namespace, config: RunConfig, device: torch.device
                      ) -> tuple[torch.Tensor, int, dict, dict]:
    """Word vectors, the character vocabulary's size, the batch on `device` and where they came from."""
    if args.pack:
        manifest, prepared = read_manifest(args.pack), load_pack(args.pack)
        vectors = torch.from_numpy(prepared.word_vectors)
        batch = first_batch(prepared, config, device)
        return vectors, len(prepared.chars), batch, {"pack": str(args.pack), "fingerprint": manifest["fingerprint"]}
    words, chars = args.synthetic_words, args.synthetic_chars
    generator = torch.Generator().manual_seed(config.train.seed)
    vectors = torch.randn(words, config.data.random_vector_dim, generator=generator)
    batch = {key: value.to(device) for key, value in synthetic_batch(config, words, chars, config.train.seed).items()}
    return vectors, chars, batch, {"synthetic": {"words": words, "chars": chars,
                                                 "word_dim": config.data.random_vector_dim}}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        config = run_config(args)
        device = resolve_device(config.train.device)
        vectors, chars, batch, source = comparison_inputs(args, config, device)
    except (ConfigError, PackError) as error:
        sys.exit(f"error: {error}")
    torch.manual_seed(config.train.seed)
    model = deterministic_model(config.model, vectors, chars).to(device)
    comparison = Comparison(model, batch, device, config.train.bf16,
                            training_attention_kernels(config.train.attention_kernels, device),
                            config.train.compile_scope, args.passes)
    print(f"{' '.join(sys.argv)}\ninputs: {source}; dropout and stochastic depth off", flush=True)
    record = {"kind": "compiled-gradients", "command": " ".join(sys.argv), "code_version": args.code_version,
              "inputs": source, "config": config.to_dict(), "passes": args.passes, "environment": environment(device)}

    def save(result: dict) -> None:  # after each setting: a call cut short keeps what it measured
        record.update(result)
        write_json_atomically(args.out, record)

    signal.signal(signal.SIGINT, lambda signum, frame: stop_interrupted(record, args.out))
    save(compare_compiled_gradients(comparison, args.settings, report=lambda line: print(line, flush=True),
                                    on_progress=save))
    print(f"-> {args.out}")


def stop_interrupted(record: dict, out: Path) -> None:
    """On SIGINT (a session's stage budget): the record as the last setting left it, marked, and an exit at once.
    Not a KeyboardInterrupt: a compilation in progress may swallow one and carry on to the end."""
    record["interrupted"] = "interrupted before the comparison ended: settings not recorded did not finish"
    write_json_atomically(out, record)
    print(f"interrupted: what finished is in {out}", flush=True)
    os._exit(130)  # now, whatever the compiler's threads and workers are doing


def setting_keys(text: str) -> tuple[Setting, ...]:
    """An argparse type: comma-separated setting keys, or one line naming the ones to choose from."""
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if not keys or any(key not in SETTINGS_BY_KEY for key in keys):
        raise argparse.ArgumentTypeError(f"{text!r}: expected settings among {', '.join(SETTINGS_BY_KEY)}")
    return tuple(SETTINGS_BY_KEY[key] for key in keys)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", type=Path, help="a pack from `python -m bench data pack` (default: a synthetic "
                                                  "batch of token ids)")
    parser.add_argument("--device", help="auto (default), cuda, cuda:N or cpu")
    parser.add_argument("--batch-size", type=int, help="default: the paper's 32")
    parser.add_argument("--context-len", type=int, help="the context width; default: the paper's 400")
    parser.add_argument("--seed", type=int, help="weights, batch order and synthetic batch (default 0)")
    parser.add_argument("--small", action="store_true", help="the CPU-sized model (qanet.config.SMALL_MODEL)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a configuration override, e.g. model.hidden=64 or train.bf16=false (repeatable)")
    parser.add_argument("--settings", type=setting_keys, default=COMPILED_SETTINGS,
                        help=f"the compiled settings, comma-separated (default: all: {','.join(SETTINGS_BY_KEY)})")
    parser.add_argument("--passes", type=int, default=3, help="forward + backward passes per compiled setting "
                                                               "(default: %(default)s, as training's warm-up)")
    parser.add_argument("--synthetic-words", type=int, default=5000, help="synthetic vocabulary (default: %(default)s)")
    parser.add_argument("--synthetic-chars", type=int, default=200, help="synthetic characters (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("compiled-gradients.json"),
                        help="the JSON record (default: %(default)s); on a lent machine, under $OUT")
    parser.add_argument("--code-version", default=None, help="the git sha, where the copy has no .git")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
