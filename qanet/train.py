"""The trainer: one QANet run from a prepared dataset to its result, and the model it trains (`build_model`).

It ties the other modules together: the model built from the config (qanet.model), the optimiser, warm-up
and EMA (qanet.optimisation), the device, compilation and bf16 (qanet.device), its peak memory
(qanet.memory), the loss statistics and the divergence guard (qanet.divergence), evaluation with the
official metric (qanet.evaluation), exact resume (its `state_dict`, written and read by qanet.checkpoint),
its observers (qanet.hooks), and how it ends (qanet.outcome).

The data lives on the device and batches are gathered there; the host never waits for the device inside a
step (the loss is read every `loss_check_every` steps, time is taken at evaluations and checkpoints), so a
GPU is kept busy however small the step is."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.attention import sdpa_kernel

from qanet.checkpoint import CHECKPOINT, CheckpointError, read_checkpoint, write_checkpoint
from qanet.config import ConfigError, RunConfig
from qanet.data.batching import (
    BatchSource,
    epoch_batches,
    evaluation_sample,
    full_batch_widths,
    holdout_questions,
    trainable_questions,
)
from qanet.data.prepare import Prepared
from qanet.device import (
    attention_kernel_in_use,
    autocast,
    compiled,
    resolve_device,
    training_attention_kernels,
    training_path,
)
from qanet.divergence import CheckWindow, LossCurveWatch, LossMonitor, uniform_guess_losses
from qanet.evaluation import predict_answers, score
from qanet.hooks import Hooks, StepReport
from qanet.layers import EncoderBlock
from qanet.memory import peak_memory_mb, reset_peak_memory
from qanet.model import QANet, parameter_count
from qanet.optimisation import EMA, make_optimizer, optimisation_step
from qanet.outcome import Diverged, StopTraining, TrainResult


def build_model(config: RunConfig, prepared: Prepared) -> QANet:
    """The model `config.model` describes over the prepared data's word vectors and characters, recomputing
    blocks in backward as `train.recompute_every` says."""
    return QANet(config.model, torch.from_numpy(prepared.word_vectors), len(prepared.chars),
                 recompute_every=config.train.recompute_every)


class Trainer:
    """One run. `run()` trains to the budget, resuming from `checkpoint_dir` when it holds a checkpoint, and
    ends ok, diverged, pruned or stopped (qanet.outcome)."""

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
        self.compile_mode, self.pad_multiple = training_path(config, self.device)
        self.forward = compiled(self.model, self.compile_mode, train.compile_scope) if self.compile_mode else self.model
        self.attention_kernels = training_attention_kernels(train.attention_kernels, self.device)
        self.optimizer, self.scheduler = make_optimizer(self.model, config)
        self.ema = EMA(self.model, train.ema_decay) if train.ema else None
        self.train_data = BatchSource(prepared.train, self.device, self.pad_multiple)
        self.dev_data = BatchSource(prepared.dev, self.device, self.pad_multiple)
        self.holdout = holdout_questions(prepared.train.paragraph, config.data.holdout_questions)
        self.questions = np.setdiff1d(trainable_questions(prepared.train, config.data.context_len), self.holdout)
        if not len(self.questions) and len(self.holdout):  # an epoch of no batch would never end
            raise ConfigError(f"data.holdout_questions = {config.data.holdout_questions}: leaves no question of "
                              f"the {len(prepared.train)} of the training set to train on")
        self.lengths = prepared.train.context_lengths()
        self.uniform_guess_losses = uniform_guess_losses(self.lengths, config.data.context_len)
        self.step = 0
        self.losses = LossMonitor(self.device, train.clip_norm)
        self.loss_watch = LossCurveWatch(train.warmup)
        self.clock_started: float | None = None  # when the running stretch of training began
        self.warmed_up = False
        self.result = TrainResult("ok", 0, {}, attention_kernel=attention_kernel_in_use(config, self.device),
                                  parameters=parameter_count(self.model),
                                  train_questions=len(self.questions),
                                  train_questions_left_out=len(prepared.train) - len(self.holdout)
                                  - len(self.questions))
        if self.checkpoint_dir and (self.checkpoint_dir / CHECKPOINT).exists():
            path = self.checkpoint_dir / CHECKPOINT
            self.load_state_dict(read_checkpoint(path, self.device), path)

    def batches(self):
        """(host indices, device indices) of the training batches from the current step on, epoch after
        epoch; each epoch's order goes to the device in one copy."""
        train = self.config.train
        epoch, position = 0, self.step
        while True:
            batches = epoch_batches(self.questions, self.lengths, train.batch_size, seed=train.seed, epoch=epoch)
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
        full = len(questions) == self.config.train.batch_size
        with contextlib.nullcontext() if full else self.eagerly():
            loss = self.batch_loss(batch, self.forward if full else self.model)
            grad_norm = optimisation_step(self.model, self.optimizer, self.scheduler, loss,
                                          clip_norm=self.config.train.clip_norm)
        self.losses.add(loss, grad_norm, self.step + 1, float(self.uniform_guess_losses[questions].mean()))
        if self.ema:
            self.ema.update()

    def eagerly(self):
        """Where the model runs uncompiled (evaluation, a smaller last batch): blocks compiled in place
        (train.compile_scope "blocks") are told to run their eager code, forward and backward alike."""
        if self.compile_mode and self.config.train.compile_scope == "blocks":
            return torch.compiler.set_stance("force_eager")
        return contextlib.nullcontext()

    def batch_loss(self, batch: dict[str, torch.Tensor], forward) -> torch.Tensor:
        """The training loss of a gathered batch through `forward` (the compiled or the eager model)."""
        self.model.train()
        self._new_compiled_step()
        # the forward's choice of attention kernel fixes the backward's too
        with autocast(self.device, self.config.train.bf16), sdpa_kernel(self.attention_kernels):
            start_logits, end_logits = forward(batch["context_words"], batch["context_chars"],
                                               batch["question_words"], batch["question_chars"])
            return self.model.loss(start_logits, end_logits, batch["start"], batch["end"])

    def batch_shapes(self) -> list[tuple[int, int]]:
        """The (context, question) widths a full batch (the ones compiled) can have in any epoch, from
        the lengths of the trainable questions alone; none when there are fewer of them than a batch."""
        train, data = self.config.train, self.config.data
        split = self.prepared.train
        contexts = full_batch_widths(self.lengths[self.questions], train.batch_size, data.context_len,
                                     self.pad_multiple)
        questions = full_batch_widths(split.questions.lengths[self.questions], train.batch_size, data.question_len,
                                      self.pad_multiple)
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
                              f"questions with train.batch_size {train.batch_size}, batches padded to multiples of "
                              f"{self.pad_multiple}, data.context_len {data.context_len}, data.question_len "
                              f"{data.question_len}")
        dynamo = torch._dynamo.config
        dynamo.recompile_limit += len(shapes)
        # blocks compiled in place count their graphs one by one against the process's accumulated limit
        graphs_per_shape = sum(isinstance(module, EncoderBlock) for module in self.model.modules()) \
            if self.config.train.compile_scope == "blocks" else 1
        dynamo.accumulated_recompile_limit += len(shapes) * graphs_per_shape
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
            with self.eagerly():
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
            if self.compile_mode:
                self.warm_up()
            self._start_clock()
            while self.step < train.steps and self._training_seconds() < budget:
                questions, on_device = next(batches)
                self.train_step(questions, on_device)
                result.train_examples += len(questions)
                self.step += 1
                loss, speed, window = None, None, None
                if self.step % train.loss_check_every == 0:
                    loss, window = self._read_window()  # waits for the device: the time since the last read is exact
                    now = self._training_seconds()  # evaluations and checkpoints left out
                    speed = (result.train_examples - last_read[1]) / max(now - last_read[0], 1e-9)
                    last_read = (now, result.train_examples)
                self._notify("on_step", StepReport(step=self.step, loss=loss, examples_per_s=speed, window=window,
                                                   learning_rate=self.scheduler.get_last_lr()[0]))
                timed = self._training_seconds() >= next_timed_eval
                if (self.step % train.eval_every == 0 or timed) and self.step < train.steps:
                    self._record_evaluation(train.eval_questions)
                    next_timed_eval = self._next_timed_evaluation()
                if self.checkpoint_dir and self.step % train.checkpoint_every == 0:
                    self._stop_clock()
                    self.losses.check()  # never save weights that a non-finite loss has already updated
                    write_checkpoint(self.checkpoint_dir, self.state_dict())
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
            write_checkpoint(self.checkpoint_dir, self.state_dict())
        self.ended = True
        self._notify("on_end", result)
        return result

    def _read_window(self) -> tuple[float, CheckWindow]:
        """Read the check window that ends at this step and judge it (a warning, or Diverged); the mean loss
        since the last evaluation and the window, as `on_step` reports them."""
        window = self.losses.read_window(self.step)
        warning = self.loss_watch.judge(window)
        if warning:
            self.result.warnings.append(warning)
            self._notify("on_warning", self.step, warning)
        return self.losses.check(), window

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
        if self.compile_mode:
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

    def state_dict(self) -> dict:
        """Everything needed to continue the run exactly: what a checkpoint holds (qanet.checkpoint)."""
        return {
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
            "progress": dataclasses.asdict(self.result),  # the whole result so far, whatever fields it grows
            "vocabulary": {"words": self.prepared.words, "chars": self.prepared.chars},
            "fingerprint": self.prepared.fingerprint,
        }

    def load_state_dict(self, state: dict, path: Path) -> None:
        """Continue where the checkpoint at `path` left the run: weights, optimiser, schedule, EMA, random
        state, step, loss statistics and the result so far (its outcome to be decided anew); a CheckpointError
        when the checkpoint was made from other data."""
        if state["fingerprint"] != self.prepared.fingerprint:
            raise CheckpointError(f"{path}: made from data {state['fingerprint']}, not {self.prepared.fingerprint}")
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
        self.result = TrainResult(**{**state["progress"], "status": "ok", "error": None,  # the outcome anew
                                    "attention_kernel": self.result.attention_kernel})  # and the kernel here
        self.result.resumed_from.append(self.step)
