"""Training and evaluation of one QANet run: optimiser and warm-up, EMA, clipping, bf16 on
CUDA, full-dev evaluation with the official metric, atomic checkpoints and exact resume,
and a divergence guard.

The data lives on the device and batches are gathered there; the host never waits for the
device inside a step (the loss is read every `loss_check_every` steps, time is taken at
evaluations and checkpoints), so a GPU is kept busy however small the step is."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from qanet.config import ConfigError, RunConfig
from qanet.data.batching import (
    BatchSource,
    epoch_batches,
    evaluation_batches,
    evaluation_sample,
    full_batch_widths,
    holdout_questions,
    trainable_questions,
)
from qanet.data.features import Split
from qanet.data.prepare import Prepared
from qanet.decode import best_spans
from qanet.files import replace_atomically
from qanet.metrics import evaluate_v1, evaluate_v2
from qanet.model import QANet, parameter_count

CHECKPOINT = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, damaged, or not one that qanet-bench wrote."""


# what every checkpoint holds (see Trainer.save_checkpoint)
_CHECKPOINT_KEYS = ("step", "config", "model", "vocabulary", "fingerprint")


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint's state, loaded with `weights_only` (tensors and plain values: a file that would run
    code when unpickled is refused), or a CheckpointError in one line naming the file."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (MemoryError, OSError):  # this machine's trouble, not the file's: never mistaken for damage
        raise
    except pickle.UnpicklingError as error:
        called = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if called:
            raise CheckpointError(f"{path}: refused: loading it would call {called.group(1)}, and a checkpoint holds "
                                  f"only tensors and plain values (torch.load weights_only)") from None
        raise CheckpointError(f"{path}: not a readable checkpoint, damaged or not a torch file") from None
    except Exception as error:  # noqa: BLE001 - arbitrary bytes make the unpickler fail in arbitrary ways
        raise CheckpointError(f"{path}: not a readable checkpoint, damaged or truncated ({_first_line(error)}); "
                              f"delete it to start its run again") from None
    missing = [key for key in _CHECKPOINT_KEYS if key not in state] if isinstance(state, dict) else _CHECKPOINT_KEYS
    if missing:
        raise CheckpointError(f"{path}: not a qanet-bench checkpoint (no {', '.join(missing)})")
    return state


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class Diverged(RuntimeError):
    """The run stopped learning: its loss stopped being a finite number, or rose above a uniform guess's.
    `steps` is how many steps the record counts: those whose loss was finite."""

    def __init__(self, steps: int, reason: str) -> None:
        super().__init__(reason)
        self.steps = steps


# How a run ended. The trainer gives the first four; the harness adds "oom" and "failed" (an exception).
STATUSES = ("ok", "diverged", "pruned", "stopped", "oom", "failed")


class StopTraining(Exception):  # noqa: N818 - a signal, not an error
    """Raised from a hook to end the run cleanly at once, with `status` "pruned" (an Optuna pruner) or
    "stopped" (early stopping): no further evaluation; the record keeps the evaluations so far."""

    def __init__(self, status: str = "stopped", reason: str = "") -> None:
        if status not in ("pruned", "stopped"):
            raise ValueError(f"StopTraining status {status!r}: expected 'pruned' or 'stopped'")
        super().__init__(reason or status)
        self.status = status


class Hooks:
    """What a run tells its observers: subclass and override what you need. `on_step` gets the mean
    training loss since the last evaluation and the examples/s since the previous read only on the steps
    where the host reads the loss (every `train.loss_check_every`), else None: reading waits for the
    device. On those steps `trainer.window` (the trainer comes with `on_begin`) holds the statistics of the
    steps since the previous read (a CheckWindow). `on_warning` names a trouble that does not stop the run
    (a rising loss). A hook may raise StopTraining from `on_begin`, `on_step` or `on_evaluation`; `on_end`
    comes after the outcome is decided. Any other exception fails the run."""

    def on_begin(self, trainer: Trainer) -> None:
        pass

    def on_step(self, step: int, loss: float | None, learning_rate: float, examples_per_s: float | None) -> None:
        pass

    def on_warning(self, step: int, message: str) -> None:
        pass

    def on_evaluation(self, step: int, entry: dict) -> None:
        pass

    def on_end(self, result: TrainResult) -> None:
        pass


def _event_step(line: str) -> float:
    """The step of one log line; a damaged line (a crash mid-write) counts as past every step."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


class JsonLinesLog(Hooks):
    """The run as it happens, one JSON object a line (begin, the loss and gradient norms as read, warnings,
    each evaluation, end), appended and flushed at once, so a long run can be watched and plotted while it
    trains."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.trainer: Trainer | None = None

    def _write(self, event: str, **values) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": event, "time": round(time.time(), 3), **values}) + "\n")

    def on_begin(self, trainer: Trainer) -> None:
        self.trainer = trainer
        dropped = self._drop_events_after(trainer.step)
        self._write("begin", step=trainer.step, steps=trainer.config.train.steps, dropped_events=dropped)

    def _drop_events_after(self, step: int) -> int:
        """A resumed (or restarted) run redoes the steps after its checkpoint: their events from before the
        crash go, so the log reads as one run with increasing steps (the new begin event says how many went)."""
        if not self.path.exists():
            return 0
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _event_step(line) <= step]
        if len(kept) < len(lines):
            replace_atomically(self.path, lambda staging: staging.write_text("".join(kept), encoding="utf-8"))
        return len(lines) - len(kept)

    def on_step(self, step: int, loss: float | None, learning_rate: float, examples_per_s: float | None) -> None:
        if loss is not None:
            window = self.trainer.window
            self._write("step", step=step, loss=loss, learning_rate=learning_rate, examples_per_s=examples_per_s,
                        window_loss=window.loss, **window.gradient_statistics())

    def on_warning(self, step: int, message: str) -> None:
        self._write("warning", step=step, message=message)

    def on_evaluation(self, step: int, entry: dict) -> None:
        self._write("evaluation", **entry)

    def on_end(self, result: TrainResult) -> None:
        self._write("end", step=result.steps, status=result.status, error=result.error, metrics=result.metrics)


class TensorBoardLog(Hooks):
    """The curve as TensorBoard scalars (train.tensorboard): the loss, learning rate, examples/s and gradient
    norms as the host reads them, and dev EM/F1 at each evaluation. Needs the tensorboard package."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.writer = None
        self.trainer: Trainer | None = None

    def on_begin(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.trainer = trainer
        # a resumed run hides the events of the steps it redoes, as the JSON-lines log drops them
        self.writer = SummaryWriter(str(self.directory), purge_step=trainer.step + 1)

    def on_step(self, step: int, loss: float | None, learning_rate: float, examples_per_s: float | None) -> None:
        if loss is not None:
            scalars = {"loss": loss, "learning_rate": learning_rate, "examples_per_s": examples_per_s,
                       **self.trainer.window.gradient_statistics()}
            for name, value in scalars.items():
                self.writer.add_scalar(f"train/{name}", value, step)

    def on_evaluation(self, step: int, entry: dict) -> None:
        for name in ("exact", "f1"):
            self.writer.add_scalar(f"dev/{name}", entry[name], step)
        self.writer.flush()

    def on_end(self, result: TrainResult) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass
class TrainResult:
    status: str  # "ok", "diverged", "pruned" or "stopped" (see STATUSES)
    steps: int
    metrics: dict  # the last evaluation
    curve: list[dict] = field(default_factory=list)  # one entry per evaluation
    holdout_metrics: dict = field(default_factory=dict)  # the last evaluation's held-out training questions, if any
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    compile_seconds: float = 0.0  # torch.compile's warm-up before the clock started
    # per shape warmed up: {"context_width", "question_width", "seconds"}; a resume warms up (and appends) again
    compile_shapes: list[dict] = field(default_factory=list)
    train_examples: int = 0
    parameters: int = 0
    peak_memory_mb: float = 0.0
    train_questions: int = 0  # trained on
    train_questions_left_out: int = 0  # neither trained on nor held out: unanswerable or answered past the truncation
    error: str | None = None
    resumed_from: list[int] = field(default_factory=list)  # the checkpoint step of each resume
    warnings: list[str] = field(default_factory=list)  # troubles that did not stop the run (LossCurveWatch)
    # the SDPA kernel that scaled_dot_product_attention selects for training's context self-attention under
    # train.attention_kernels (the profiler confirms it in benchmarks/gpu_reference.py --mode check)
    attention_kernel: str = ""

    @property
    def train_examples_per_s(self) -> float:
        return self.train_examples / self.train_seconds if self.train_seconds else 0.0


class EMA:
    """Exponential moving average of the trainable weights of one model, with the warm-up
    decay_n = min(decay, (1 + n) / (10 + n)) so short runs are not dominated by the initial weights.
    Updates and swaps are a few multi-tensor (`torch._foreach`) kernels, not one per weight."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.shadow = {name: p.detach().clone() for name, p in named}
        self.averages = list(self.shadow.values())

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.averages, self.params, 1 - decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's weights with the averages (call again to swap back)."""
        weights = torch._foreach_mul(self.params, 1.0)
        torch._foreach_copy_(self.params, self.averages)
        torch._foreach_copy_(self.averages, weights)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)


def resolve_device(name: str) -> torch.device:
    """The device `train.device` names ("auto": a GPU if there is one), or a ConfigError when this
    machine does not have it, so that a study refuses before anything runs."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cpu":
        return device
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "device_count", lambda: 1)() if backend and backend.is_available() else 0
    if (device.index or 0) >= available:
        have = f"{available} {device.type} device(s)" if available else f"no {device.type} device"
        raise ConfigError(f"train.device = {name!r}: this machine has {have} (torch {torch.__version__}); "
                          f"use cpu or auto")
    return device


def compiled(model: torch.nn.Module, mode: str):
    """`model` under torch.compile: Inductor in one of its modes, or "cudagraphs" (the eager kernels replayed
    as CUDA graphs). fullgraph: a graph break (a Python branch on a tensor) fails loudly instead of splitting
    the step."""
    if mode == "cudagraphs":
        return torch.compile(model, backend="cudagraphs", dynamic=False, fullgraph=True)
    return torch.compile(model, mode=mode, dynamic=False, fullgraph=True)


def build_model(config: RunConfig, prepared: Prepared) -> QANet:
    return QANet(config.model, torch.from_numpy(prepared.word_vectors), len(prepared.chars))


def make_optimizer(model: torch.nn.Module, config: RunConfig):
    train = config.train
    weights = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    others = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": weights, "weight_decay": train.weight_decay}, {"params": others, "weight_decay": 0.0}]
    if train.optimizer == "adam":
        on_gpu = next(model.parameters()).is_cuda  # one fused kernel for the whole update
        optimizer = torch.optim.Adam(groups, lr=train.learning_rate, betas=(0.8, 0.999), eps=1e-7,
                                     fused=True if on_gpu else None)
        warmup = max(train.warmup_steps, 2)
        # the paper's inverse-exponential warm-up: lr * log(step + 1) / log(warmup), capped at lr
        schedule = lambda step: min(1.0, math.log(step + 1) / math.log(warmup))  # noqa: E731
    else:
        optimizer = torch.optim.Adadelta(groups, lr=train.learning_rate, rho=0.95, eps=1e-6)
        schedule = lambda step: 1.0  # noqa: E731
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def optimisation_step(model: torch.nn.Module, optimizer, scheduler, loss: torch.Tensor, clip_norm: float
                      ) -> torch.Tensor:
    """Clear the old gradients, backward, clip the gradient norm, step the optimiser and the schedule. Returns
    the gradient norm before clipping, on the device (reading it waits for the device)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    scheduler.step()
    return grad_norm


def _autocast(device: torch.device, config: RunConfig):
    enabled = device.type == "cuda" and config.train.bf16
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


# scaled_dot_product_attention's kernels by the names `train.attention_kernels` uses
ATTENTION_KERNELS = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
                     "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def training_attention_kernels(setting: str, device: torch.device) -> list[SDPBackend]:
    """The SDPA kernels training may use: the one `setting` names, or for "auto" every kernel but cuDNN's on
    CUDA (see TrainConfig.attention_kernels)."""
    if setting != "auto":
        return [ATTENTION_KERNELS[setting]]
    return [kernel for name, kernel in ATTENTION_KERNELS.items() if not (device.type == "cuda" and name == "cudnn")]


def attention_kernel_in_use(config: RunConfig, device: torch.device) -> str:
    """The kernel SDPA picks for training's self-attention on `device` under `train.attention_kernels` (the
    paper-size query: the context limit, the model's heads, the training dtype, a key-padding mask), or a
    ConfigError in one line when the setting leaves it none."""
    model, train = config.model, config.train
    dtype = torch.bfloat16 if device.type == "cuda" and train.bf16 else torch.float32
    length = config.data.context_len
    query = torch.zeros(2, model.heads, length, model.hidden // model.heads, device=device, dtype=dtype,
                        requires_grad=True)
    mask = torch.ones(2, 1, 1, length, dtype=torch.bool, device=device)
    names = {int(kernel.value): name for name, kernel in ATTENTION_KERNELS.items()}
    if not hasattr(torch, "_fused_sdp_choice"):  # a private function: a torch without it cannot say
        return "unknown"
    try:
        with sdpa_kernel(training_attention_kernels(train.attention_kernels, device)):
            return names[torch._fused_sdp_choice(query, query, query, mask, model.attention_dropout, False)]
    except (RuntimeError, KeyError):
        raise ConfigError(f"train.attention_kernels = {train.attention_kernels!r}: no such attention kernel runs "
                          f"here ({device.type}, {str(dtype).removeprefix('torch.')}, head dim "
                          f"{model.hidden // model.heads}, attention dropout {model.attention_dropout}); try auto"
                          ) from None


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak, so runs that share a process each report their own."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 resets the peak RSS (VmHWM) of this process
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """CUDA allocator peak on a GPU; on the CPU the peak RSS since `reset_peak_memory`
    (VmHWM on Linux; elsewhere the process's lifetime peak)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:")) / 2**10
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


@torch.no_grad()
def predict_answers(model: QANet, source: BatchSource, config: RunConfig, questions: np.ndarray | None = None
                    ) -> dict[str, str]:
    """Answer text for each question of the source's split (or each of `questions`), cut from the original
    context by character offsets. Batches hold contexts of similar length, so little is padding."""
    model.eval()
    split = source.split
    batches = evaluation_batches(split, config.train.eval_batch_size, questions)
    questions_in_order = np.concatenate(batches)
    order = torch.from_numpy(questions_in_order).to(source.device)
    whole_context = int(split.contexts.lengths.max())  # evaluation never truncates or drops a question
    spans, begin = [], 0
    for questions in batches:
        widths = source.widths(questions, whole_context, config.data.question_len)
        batch = source.gather(order[begin:begin + len(questions)], *widths)
        begin += len(questions)
        with _autocast(source.device, config):
            start_logits, end_logits = model(batch["context_words"], batch["context_chars"],
                                             batch["question_words"], batch["question_chars"])
        spans.append(torch.stack(best_spans(start_logits, end_logits, config.train.max_answer_len), dim=1))
    starts_ends = torch.cat(spans).tolist()  # the one wait for the device
    return {split.ids[question]: split.answer_text(question, start, end)
            for question, (start, end) in zip(questions_in_order.tolist(), starts_ends, strict=True)}


def score(split: Split, predictions: dict[str, str]) -> dict:
    """Official EM/F1 over the questions predicted (all of them unless a limit was set)."""
    questions = [{"id": qid, "answers": [{"text": t} for t in answers]}
                 for qid, answers in zip(split.ids, split.answers, strict=True) if qid in predictions]
    articles = [{"paragraphs": [{"qas": questions}]}]
    if split.version.lstrip("v").startswith("2"):
        return evaluate_v2(articles, predictions)
    result = evaluate_v1(articles, predictions)
    return {"exact": result["exact_match"], "f1": result["f1"], "total": len(questions)}


class StepSums:
    """Training statistics summed on the device over the steps since the last `reset`: the loss, the
    gradient norm before clipping and whether it was clipped, with the largest gradient norm."""

    def __init__(self, device: torch.device) -> None:
        self.totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss, gradient norm, clipped steps
        self.grad_norm_max = torch.zeros((), dtype=torch.float64, device=device)
        self.steps = 0

    def add(self, values: torch.Tensor) -> None:
        """One step's loss, gradient norm and clipped (0 or 1), stacked as `totals` is."""
        self.totals += values
        torch.maximum(self.grad_norm_max, values[1], out=self.grad_norm_max)
        self.steps += 1

    def means(self) -> dict[str, float | None]:
        """The mean loss and gradient norm, the largest gradient norm and the fraction of steps clipped (all
        None before any step). Waits for the device."""
        if not self.steps:
            return dict.fromkeys(("loss", "grad_norm_mean", "grad_norm_max", "clipped_fraction"))
        loss, grad_norm, clipped, largest = torch.cat([self.totals, self.grad_norm_max[None]]).tolist()
        return {"loss": loss / self.steps, "grad_norm_mean": grad_norm / self.steps, "grad_norm_max": largest,
                "clipped_fraction": clipped / self.steps}

    def reset(self) -> None:
        self.totals.zero_()
        self.grad_norm_max.zero_()
        self.steps = 0

    def state_dict(self) -> dict:
        return {"totals": self.totals.tolist(), "grad_norm_max": float(self.grad_norm_max), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.totals.copy_(torch.tensor(state["totals"], dtype=torch.float64))
        self.grad_norm_max.fill_(state["grad_norm_max"])
        self.steps = state["steps"]


@dataclass
class CheckWindow:
    """The steps between two reads of the loss by the host (every `train.loss_check_every`)."""

    first_step: int
    last_step: int
    loss: float  # the mean of the batches' losses
    uniform_guess_loss: float  # the same mean of what a uniform guess would lose (Trainer.uniform_guess_losses)
    grad_norm_mean: float  # before clipping
    grad_norm_max: float
    clipped_fraction: float  # of the steps whose gradient norm was above train.clip_norm

    @property
    def step_range(self) -> str:
        return f"steps {self.first_step:,}-{self.last_step:,}"

    def gradient_statistics(self) -> dict[str, float]:
        return {"grad_norm_mean": self.grad_norm_mean, "grad_norm_max": self.grad_norm_max,
                "clipped_fraction": self.clipped_fraction}


class LossMonitor:
    """Training statistics kept on the device (StepSums) since the last evaluation and since the last read of
    a check window, the uniform guess's loss of the window's batches (kept on the host, from lengths it has),
    and the first step whose loss was not finite. The host reads the device only in `check`,
    `since_evaluation` and `read_window`, each of which waits for it."""

    def __init__(self, device: torch.device, clip_norm: float) -> None:
        self.clip_norm = clip_norm
        self.since_last_evaluation = StepSums(device)
        self.window = StepSums(device)
        self.window_uniform_guess_total = 0.0
        self.bad_step = torch.zeros((), dtype=torch.int64, device=device)  # 0: every loss so far was finite
        self.bad_loss = torch.zeros((), dtype=torch.float32, device=device)

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor, step: int, uniform_guess_loss: float) -> None:
        """One step: its batch's loss, the gradient norm before clipping (both on the device) and the mean
        loss a uniform guess would have on that batch."""
        loss = loss.detach().float()
        first_bad = ~torch.isfinite(loss) & (self.bad_step == 0)
        self.bad_step = torch.where(first_bad, step, self.bad_step)
        self.bad_loss = torch.where(first_bad, loss, self.bad_loss)
        values = torch.stack([loss, grad_norm, grad_norm > self.clip_norm])  # summed into float64
        self.since_last_evaluation.add(values)
        self.window.add(values)
        self.window_uniform_guess_total += uniform_guess_loss

    def check(self) -> float | None:
        """The mean loss since the last `reset` (None before any step), or Diverged."""
        return self.since_evaluation()["loss"]

    def since_evaluation(self) -> dict[str, float | None]:
        """StepSums.means since the last `reset`, or Diverged."""
        self._raise_if_not_finite()
        return self.since_last_evaluation.means()

    def read_window(self, last_step: int) -> CheckWindow:
        """The window that ends at `last_step`, which then starts anew; or Diverged."""
        self._raise_if_not_finite()
        steps = self.window.steps
        means = self.window.means()
        window = CheckWindow(last_step - steps + 1, last_step, means.pop("loss"),
                             self.window_uniform_guess_total / steps, **means)
        self.window.reset()
        self.window_uniform_guess_total = 0.0
        return window

    def _raise_if_not_finite(self) -> None:
        bad_step = int(self.bad_step)
        if bad_step:
            raise Diverged(bad_step - 1, f"loss became {float(self.bad_loss)} at step {bad_step}")

    def reset(self) -> None:
        """Start the statistics since the last evaluation anew."""
        self.since_last_evaluation.reset()

    def state_dict(self) -> dict:
        return {"since_evaluation": self.since_last_evaluation.state_dict(), "window": self.window.state_dict(),
                "window_uniform_guess_total": self.window_uniform_guess_total}

    def load_state_dict(self, state: dict) -> None:
        if "since_evaluation" not in state:  # a checkpoint from before the gradient statistics: its loss sum only
            state = {"since_evaluation": {"totals": [state["total"], 0.0, 0.0], "grad_norm_max": 0.0,
                                          "steps": state["count"]},
                     "window": StepSums(self.bad_step.device).state_dict(), "window_uniform_guess_total": 0.0}
        self.since_last_evaluation.load_state_dict(state["since_evaluation"])
        self.window.load_state_dict(state["window"])
        self.window_uniform_guess_total = state["window_uniform_guess_total"]


class LossCurveWatch:
    """Judges each check window's mean training loss once the learning rate has warmed up (before, the loss
    of a fresh model says nothing): `judge` names a loss that keeps rising, once per rise, and raises Diverged
    when it rises above a uniform guess's. Host numbers in, a verdict out: it never waits for the device.

    - A window is rising when its mean is above RISE x the best window mean so far (the warm-up's included),
      and at least RISE_FLOOR x a uniform guess's loss above it; PATIENCE rising windows in a row are named.
    - A rising window whose mean is also above the loss of a uniform guess over its batches is a divergence.
      The rise matters, not that loss alone: a fresh model starts above it (its logits are random, not flat:
      1.6-2x in training mode at the paper's size) and may stay within a few percent of it for hundreds of
      steps (adadelta, which has no warm-up, does in the smoke preset); one that fell and came back has
      stopped predicting.
    Why these numbers: a window's mean is over hundreds of examples (loss_check_every x batch_size: 1,600 by
    default), so noise moves it by a few percent, and the best window is lucky by a few percent at most. A
    quarter is several times that, and three windows in a row rule out one bad stretch of batches (a healthy
    curve falls back, ending the rise). A loss near zero (a small set memorised) is noisy relative to itself:
    hence the floor. Windows of a few batches are far noisier (their length buckets alone move the loss by a
    third) and may be named rising while healthy."""

    RISE = 1.25
    RISE_FLOOR = 0.05
    PATIENCE = 3

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self.best_loss = math.inf  # the lowest window mean so far, the warm-up's included
        self.best_steps = ""
        self.rising_windows = 0  # in a row, up to the last one
        self.rising_since = 0  # the first step of the first of them

    def judge(self, window: CheckWindow) -> str | None:
        """A warning when this window makes PATIENCE rising in a row, else None; or Diverged. Windows of the
        warm-up are not judged, but the best may be one of them: a run that degenerates during the warm-up and
        stays there is judged against what it had reached."""
        if window.loss < self.best_loss:
            self.best_loss, self.best_steps = window.loss, window.step_range
        if window.first_step <= self.warmup_steps:
            return None
        threshold = max(self.RISE * self.best_loss, self.best_loss + self.RISE_FLOOR * window.uniform_guess_loss)
        if window.loss <= threshold:
            self.rising_windows = 0
            return None
        if window.loss > window.uniform_guess_loss:
            raise Diverged(window.last_step, f"mean training loss {window.loss:.2f} over {window.step_range} is above "
                                             f"{window.uniform_guess_loss:.2f}, the loss of a uniform guess over "
                                             f"those batches' contexts (2 ln of their lengths), after "
                                             f"{self.best_loss:.2f} over {self.best_steps}: the model stopped "
                                             f"predicting")
        self.rising_windows += 1
        if self.rising_windows == 1:
            self.rising_since = window.first_step
        if self.rising_windows != self.PATIENCE:
            return None
        return (f"training loss rising since step {self.rising_since:,}: its mean stayed above {threshold:.2f} for "
                f"{self.PATIENCE} check windows in a row ({window.loss:.2f} over {window.step_range}; its best: "
                f"{self.best_loss:.2f} over {self.best_steps})")

    def state_dict(self) -> dict:
        return {"best_loss": self.best_loss, "best_steps": self.best_steps, "rising_windows": self.rising_windows,
                "rising_since": self.rising_since}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)


class Trainer:
    """One run. `run()` trains to the budget, resuming from `checkpoint_dir` when it holds a checkpoint."""

    def __init__(self, config: RunConfig, prepared: Prepared, checkpoint_dir: Path | None = None,
                 hooks: list[Hooks] = ()) -> None:
        config.model.validate()  # not config.data: its files may be absent where a prepared directory travels
        config.train.validate()
        self.config = config
        self.prepared = prepared
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.hooks = list(hooks)
        self.began = self.ended = False  # whether the hooks have heard on_begin, on_end
        train = config.train
        if train.threads:
            torch.set_num_threads(train.threads)
        self.device = resolve_device(train.device)
        reset_peak_memory(self.device)
        torch.manual_seed(train.seed)
        self.model = build_model(config, prepared).to(self.device)
        self.model.model_encoder.recompute_every = train.recompute_every
        self.forward = compiled(self.model, train.compile_mode) if train.compile else self.model
        self.attention_kernels = training_attention_kernels(train.attention_kernels, self.device)
        self.optimizer, self.scheduler = make_optimizer(self.model, config)
        self.ema = EMA(self.model, train.ema_decay) if train.ema else None
        self.train_data = BatchSource(prepared.train, self.device, train.pad_multiple)
        self.dev_data = BatchSource(prepared.dev, self.device, train.pad_multiple)
        self.holdout = holdout_questions(prepared.train.paragraph, config.data.holdout_questions)
        self.questions = np.setdiff1d(trainable_questions(prepared.train, config.data.context_len), self.holdout)
        if not len(self.questions) and len(self.holdout):  # an epoch of no batch would never end
            raise ConfigError(f"data.holdout_questions = {config.data.holdout_questions}: leaves no question of "
                              f"the {len(prepared.train)} of the training set to train on")
        self.lengths = prepared.train.context_lengths()
        # what a uniform guess loses on each question: ln n for its start and again for its end, over the n
        # tokens of its context that training keeps
        self.uniform_guess_losses = 2 * np.log(np.minimum(self.lengths, config.data.context_len))
        self.step = 0
        self.losses = LossMonitor(self.device, train.clip_norm)
        self.loss_watch = LossCurveWatch(train.warmup_steps if train.optimizer == "adam" else 0)
        self.window: CheckWindow | None = None  # the last one read (see Hooks)
        self.clock_started: float | None = None  # when the running stretch of training began
        self.warmed_up = False
        self.result = TrainResult("ok", 0, {}, attention_kernel=attention_kernel_in_use(config, self.device),
                                  parameters=parameter_count(self.model),
                                  train_questions=len(self.questions),
                                  train_questions_left_out=len(prepared.train) - len(self.holdout)
                                  - len(self.questions))
        if self.checkpoint_dir and (self.checkpoint_dir / CHECKPOINT).exists():
            self._load_checkpoint(self.checkpoint_dir / CHECKPOINT)

    def batches(self):
        """(host indices, device indices) of the training batches from the current step on, epoch after
        epoch; each epoch's order goes to the device in one copy."""
        train = self.config.train
        epoch, position = 0, self.step
        while True:
            batches = epoch_batches(self.questions, self.lengths, train.batch_size, train.seed, epoch)
            if position < len(batches):
                order = torch.from_numpy(np.concatenate(batches)).to(self.device)
                bounds = np.cumsum([0] + [len(b) for b in batches])
                for index in range(position, len(batches)):
                    yield batches[index], order[bounds[index]:bounds[index + 1]]
            position = max(0, position - len(batches))
            epoch += 1

    def train_step(self, questions: np.ndarray, on_device: torch.Tensor) -> None:
        """One optimisation step on a batch; nothing in it waits for the device."""
        data = self.config.data
        batch = self.train_data.gather(on_device, *self.train_data.widths(questions, data.context_len,
                                                                            data.question_len))
        # an epoch's last, smaller batch runs eagerly rather than costing a compilation of its own
        loss = self.batch_loss(batch, self.forward if len(questions) == self.config.train.batch_size else self.model)
        grad_norm = optimisation_step(self.model, self.optimizer, self.scheduler, loss, self.config.train.clip_norm)
        self.losses.add(loss, grad_norm, self.step + 1, float(self.uniform_guess_losses[questions].mean()))
        if self.ema:
            self.ema.update()

    def batch_loss(self, batch: dict[str, torch.Tensor], forward) -> torch.Tensor:
        """The training loss of a gathered batch through `forward` (the compiled or the eager model)."""
        self.model.train()
        self._new_compiled_step()
        # the forward's choice of attention kernel fixes the backward's too
        with _autocast(self.device, self.config), sdpa_kernel(self.attention_kernels):
            start_logits, end_logits = forward(batch["context_words"], batch["context_chars"],
                                               batch["question_words"], batch["question_chars"])
            return self.model.loss(start_logits, end_logits, batch["start"], batch["end"])

    def batch_shapes(self) -> list[tuple[int, int]]:
        """The (context, question) widths a full batch (the ones compiled) can have in any epoch, from
        the lengths of the trainable questions alone; none when there are fewer of them than a batch."""
        train, data = self.config.train, self.config.data
        split = self.prepared.train
        contexts = full_batch_widths(self.lengths[self.questions], train.batch_size, data.context_len,
                                     train.pad_multiple)
        questions = full_batch_widths(split.questions.lengths[self.questions], train.batch_size, data.question_len,
                                      train.pad_multiple)
        return [(c, q) for c in contexts for q in questions]

    def warm_up(self) -> None:
        """Compile every batch shape before the clock starts, so compilation is not counted as training time
        (it is in `compile_seconds`, and each shape's share in `compile_shapes`): three forward + backward passes
        per shape (CUDA graphs record on a later call), no update, and the random state put back. Only the first
        call does anything."""
        if self.warmed_up:
            return
        self.warmed_up = True
        started = time.perf_counter()
        shapes = self._shapes_to_compile()
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        for context_width, question_width in shapes:
            shape_started = time.perf_counter()
            self._compile_shape(context_width, question_width)
            self._synchronize()
            self.result.compile_shapes.append({"context_width": context_width, "question_width": question_width,
                                               "seconds": time.perf_counter() - shape_started})
        self.optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(cpu_rng)
        if cuda_rng:
            torch.cuda.set_rng_state_all(cuda_rng)
        self._synchronize()
        self.result.compile_seconds += time.perf_counter() - started

    def _shapes_to_compile(self) -> list[tuple[int, int]]:
        """`batch_shapes`, refused when empty (compiling nothing would move compilation into the timed steps),
        with room for one more graph per shape under dynamo's limits: it keeps the graphs of every model compiled
        in this process (a study's earlier trials), counts even those of freed ones, and refuses a compilation
        once a frame holds `limit` graphs."""
        shapes = self.batch_shapes()
        if not shapes:
            train, data = self.config.train, self.config.data
            raise ConfigError(f"train.compile: no batch shape to compile from {len(self.questions)} trainable "
                              f"questions with train.batch_size {train.batch_size}, train.pad_multiple "
                              f"{train.pad_multiple}, data.context_len {data.context_len}, data.question_len "
                              f"{data.question_len}")
        dynamo = torch._dynamo.config
        dynamo.recompile_limit += len(shapes)
        dynamo.accumulated_recompile_limit += len(shapes)
        return shapes

    def _compile_shape(self, context_width: int, question_width: int) -> None:
        """Three forward + backward passes through the compiled model on a full batch of this shape."""
        first = torch.zeros(self.config.train.batch_size, dtype=torch.long, device=self.device)
        batch = self.train_data.gather(first, context_width, question_width)
        batch["start"] = batch["end"] = first  # answers inside any width
        for _ in range(3):
            # gradients from an earlier pass are CUDA-graph outputs that the next replay overwrites
            self.optimizer.zero_grad(set_to_none=True)
            self.batch_loss(batch, self.forward).backward()

    def evaluate(self, sample: int | None = None) -> dict:
        """Official EM/F1 on the dev set, or on a fixed sample of `sample` questions, with EMA weights."""
        return self._evaluate_on(self.dev_data, evaluation_sample(len(self.prepared.dev), sample))

    def evaluate_holdout(self) -> dict:
        """Official EM/F1 on the training questions held out (data.holdout_questions), with EMA weights."""
        return self._evaluate_on(self.train_data, self.holdout)

    def _evaluate_on(self, source: BatchSource, questions: np.ndarray) -> dict:
        started = time.perf_counter()
        if self.ema:
            self.ema.swap()
        try:
            predictions = predict_answers(self.model, source, self.config, questions)
        finally:
            if self.ema:
                self.ema.swap()
        metrics = score(source.split, predictions)
        self.result.eval_seconds += time.perf_counter() - started
        return metrics

    def run(self) -> TrainResult:
        train = self.config.train
        result = self.result
        budget = train.minutes * 60 if train.minutes else math.inf
        next_timed_eval = self._next_timed_evaluation()
        batches = self.batches()
        last_read = (result.train_seconds, result.train_examples)
        try:
            self.began = True
            self._notify("on_begin", self)  # may raise StopTraining too
            if train.compile:
                self.warm_up()
            self._start_clock()
            while self.step < train.steps and self._training_seconds() < budget:
                questions, on_device = next(batches)
                self.train_step(questions, on_device)
                result.train_examples += len(questions)
                self.step += 1
                loss, speed = None, None
                if self.step % train.loss_check_every == 0:
                    loss = self._read_window()  # waits for the device: the time since the last read is exact
                    now = self._training_seconds()  # evaluations and checkpoints left out
                    speed = (result.train_examples - last_read[1]) / max(now - last_read[0], 1e-9)
                    last_read = (now, result.train_examples)
                self._notify("on_step", self.step, loss, self.scheduler.get_last_lr()[0], speed)
                timed = self._training_seconds() >= next_timed_eval
                if (self.step % train.eval_every == 0 or timed) and self.step < train.steps:
                    self._record_evaluation(train.eval_questions)
                    next_timed_eval = self._next_timed_evaluation()
                if self.checkpoint_dir and self.step % train.checkpoint_every == 0:
                    self._stop_clock()
                    self.losses.check()  # never save weights that a non-finite loss has already updated
                    self.save_checkpoint()
                    self._start_clock()
            if not self._scored_whole_dev_at_this_step():  # the run's result: always the whole dev set
                self._record_evaluation(None)
        except Diverged as error:
            self._diverged(error)
        except StopTraining as stop:
            result.status, result.error = stop.status, str(stop)
            try:
                self.losses.check()  # its checkpoint must not hold weights a non-finite loss has updated
            except Diverged as error:
                self._diverged(error)
        self._stop_clock()
        result.steps = self.step
        result.peak_memory_mb = peak_memory_mb(self.device)
        if self.checkpoint_dir and result.status != "diverged":
            self.save_checkpoint()
        self.ended = True
        self._notify("on_end", result)
        return result

    def _read_window(self) -> float:
        """Read the check window that ends at this step and judge it (a warning, or Diverged); the mean loss
        since the last evaluation, as `on_step` reports it."""
        self.window = self.losses.read_window(self.step)
        warning = self.loss_watch.judge(self.window)
        if warning:
            self.result.warnings.append(warning)
            self._notify("on_warning", self.step, warning)
        return self.losses.check()

    def _diverged(self, error: Diverged) -> None:
        """Record the divergence; the step count keeps the steps whose loss was finite, and no checkpoint
        is saved, so the last one holds the last good state."""
        self.result.status, self.result.error = "diverged", str(error)
        self.step = error.steps

    def _notify(self, event: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, event)(*args)

    def _training_seconds(self) -> float:
        """Training time so far as the host sees it (it may run ahead of the device; exact at each stop)."""
        running = time.perf_counter() - self.clock_started if self.clock_started is not None else 0.0
        return self.result.train_seconds + running

    def _next_timed_evaluation(self) -> float:
        every = self.config.train.eval_every_seconds
        return (self.result.train_seconds // every + 1) * every if every else math.inf

    def _start_clock(self) -> None:
        self.clock_started = time.perf_counter()

    def _stop_clock(self) -> None:
        """Add the stretch since `_start_clock` to the training time, once the device has finished it."""
        if self.clock_started is None:
            return
        self._synchronize()
        self.result.train_seconds += time.perf_counter() - self.clock_started
        self.clock_started = None

    def _new_compiled_step(self) -> None:
        """Tell CUDA graphs (compile mode reduce-overhead) that the last step's outputs are no longer used."""
        if self.config.train.compile:
            torch.compiler.cudagraph_mark_step_begin()

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _scored_whole_dev_at_this_step(self) -> bool:
        last = self.result.curve[-1] if self.result.curve else {}
        return last.get("step") == self.step and last.get("total") == len(self.prepared.dev)

    def _record_evaluation(self, sample: int | None) -> None:
        self._stop_clock()
        training = self.losses.since_evaluation()
        metrics = self.evaluate(sample)
        held_out = self.evaluate_holdout() if len(self.holdout) else {}
        entry = {"step": self.step, "train_loss": training.pop("loss"), **training,
                 "train_seconds": round(self.result.train_seconds, 3), **metrics,
                 **{f"holdout_{key}": value for key, value in held_out.items()}}
        self.result.curve.append(entry)
        self.result.metrics = metrics
        self.result.holdout_metrics = held_out
        self.losses.reset()
        self._notify("on_evaluation", self.step, entry)  # before the clock restarts: a hook's time is not training
        self._start_clock()

    def save_checkpoint(self) -> Path:
        """Everything needed to continue exactly, written to a temporary file and renamed."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        result = self.result
        state = {
            "step": self.step,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "loss": self.losses.state_dict(),
            "loss_watch": self.loss_watch.state_dict(),
            "progress": dataclasses.asdict(result),  # the whole result so far, whatever fields it grows
            "vocabulary": {"words": self.prepared.words, "chars": self.prepared.chars},
            "fingerprint": self.prepared.fingerprint,
        }
        path = self.checkpoint_dir / CHECKPOINT
        replace_atomically(path, lambda staging: torch.save(state, staging))  # a full disk keeps the last one
        return path

    def _load_checkpoint(self, path: Path) -> None:
        state = read_checkpoint(path, self.device)
        if state["fingerprint"] != self.prepared.fingerprint:
            raise ValueError(f"{path}: made from data {state['fingerprint']}, not {self.prepared.fingerprint}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema and state["ema"]:
            self.ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"].cpu())
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        self.step = state["step"]
        self.losses.load_state_dict(state["loss"])
        if "loss_watch" in state:  # a checkpoint from before the watch: it starts watching from here
            self.loss_watch.load_state_dict(state["loss_watch"])
        self.result = TrainResult(**{**state["progress"], "status": "ok", "error": None,  # the outcome is decided anew
                                    "attention_kernel": self.result.attention_kernel})  # and the kernel here
        self.result.resumed_from.append(self.step)
