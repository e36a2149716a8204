"""How a run ends: every status a run can have and what it means, the statuses a rerun keeps, the result a
run hands back, and the two exceptions that end a run early (a hook's StopTraining, the loss's Diverged).

Plain Python only (no torch, no numpy): the harness's commands import it and must start fast."""

from __future__ import annotations

from dataclasses import dataclass, field

# Every status a run can have, with its meaning. The trainer ends a run ok, diverged, pruned or stopped
# (TrainResult.status); the harness gives failed, oom or interrupted to a run that an exception ended.
MEANINGS = {
    "ok": "trained to its budget (steps or minutes), then scored on the whole dev set",
    "failed": "an exception ended it: the record holds the traceback",
    "oom": "the device or the host ran out of memory",
    "diverged": "its loss stopped being finite, or rose above a uniform guess's (Diverged)",
    "pruned": "a hook ended it early: an Optuna pruner (StopTraining)",
    "stopped": "a hook ended it early: early stopping, a deadline (StopTraining)",
    "interrupted": "the process was interrupted (Ctrl-C): the hooks hear it, no record is written, it resumes",
}
STATUSES = tuple(MEANINGS)
# What a record can say: an interrupted run writes none.
RECORDED = tuple(status for status in STATUSES if status != "interrupted")

# The statuses a rerun does not train again (a diverged, oom or failed run is retried).
FINISHED = ("ok", "pruned", "stopped")


@dataclass
class TrainResult:
    status: str  # one of STATUSES: the trainer's own four, or the harness's for a run the trainer did not end
    steps: int
    metrics: dict[str, float]  # the last evaluation
    curve: list[dict[str, float | None]] = field(default_factory=list)  # one entry per evaluation
    # the last evaluation's held-out training questions, if any
    holdout_metrics: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    compile_seconds: float = 0.0  # torch.compile's warm-up before the clock started
    # per shape warmed up: {"context_width", "question_width", "seconds"}; a resume warms up (and appends) again
    compile_shapes: list[dict[str, float]] = field(default_factory=list)
    train_examples: int = 0
    parameters: int = 0
    peak_memory_mb: float = 0.0
    train_questions: int = 0  # trained on
    train_questions_left_out: int = 0  # neither trained on nor held out: unanswerable or answered past the truncation
    error: str | None = None
    resumed_from: list[int] = field(default_factory=list)  # the checkpoint step of each resume
    warnings: list[str] = field(default_factory=list)  # troubles that did not stop the run (LossCurveWatch)
    # the SDPA kernel that scaled_dot_product_attention selects for training's context self-attention under
    # train.attention_kernels, as SDPA answers for a paper-size query (qanet.device.attention_kernel_in_use)
    attention_kernel: str = ""

    @property
    def train_examples_per_s(self) -> float:
        return self.train_examples / self.train_seconds if self.train_seconds else 0.0


class StopTraining(Exception):  # noqa: N818 - a signal, not an error
    """Raised from a hook to end the run cleanly at once, with `status` "pruned" (an Optuna pruner) or
    "stopped" (early stopping): no further evaluation; the record keeps the evaluations so far."""

    def __init__(self, status: str = "stopped", reason: str = "") -> None:
        if status not in ("pruned", "stopped"):
            raise ValueError(f"StopTraining status {status!r}: expected 'pruned' or 'stopped'")
        super().__init__(reason or status)
        self.status = status


class Diverged(RuntimeError):
    """The run stopped learning: its loss stopped being a finite number, or rose above a uniform guess's.
    `steps` is how many steps the record counts: those whose loss was finite."""

    def __init__(self, steps: int, reason: str) -> None:
        super().__init__(reason)
        self.steps = steps
