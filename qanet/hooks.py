"""Observers of a run: the hook protocol the trainer calls (`Hooks`), and the two logs built on it, a JSON-lines
event log and TensorBoard scalars.

No torch at import (TensorBoardLog imports it when a run begins): the harness's commands import this module
and must start fast."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qanet.files import naming, replace_atomically
from qanet.outcome import TrainResult

if TYPE_CHECKING:
    from qanet.divergence import CheckWindow
    from qanet.train import Trainer


@dataclass(frozen=True)
class StepReport:
    """One training step as the trainer tells its observers. The loss, the speed and the window are read only
    on the steps where the host reads the loss (every `train.loss_check_every`), else None: reading waits for
    the device."""

    step: int
    loss: float | None  # the mean training loss since the last evaluation
    learning_rate: float
    examples_per_s: float | None  # since the previous read
    window: CheckWindow | None  # the statistics of the steps since the previous read


class Hooks:
    """What a run tells its observers: subclass and override what you need. `on_begin` gets the trainer (its
    configuration, the step it begins at), `on_step` a StepReport. `on_warning` names a trouble that does not
    stop the run (a rising loss). A hook may raise StopTraining from `on_begin`, `on_step` or `on_evaluation`;
    `on_end` comes after the outcome is decided. Any other exception fails the run."""

    def on_begin(self, trainer: Trainer) -> None:
        pass

    def on_step(self, report: StepReport) -> None:
        pass

    def on_warning(self, step: int, message: str) -> None:
        pass

    def on_evaluation(self, step: int, entry: dict) -> None:
        pass

    def on_end(self, result: TrainResult) -> None:
        pass


def _event_step(line: str) -> float:
    """The step of one log line; a damaged line (a crash mid-write) and the end of an attempt that failed before
    training began (step null) count as past every step."""
    try:
        step = json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf
    return step if isinstance(step, int | float) else math.inf


class JsonLinesLog(Hooks):
    """The run as it happens, one JSON object a line (begin, the loss and gradient norms as read, warnings,
    each evaluation, end), appended and flushed at once, so a long run can be watched and plotted while it
    trains."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _write(self, event: str, **values) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with naming(self.path), open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": event, "time": round(time.time(), 3), **values}) + "\n")

    def on_begin(self, trainer: Trainer) -> None:
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

    def on_step(self, report: StepReport) -> None:
        if report.window is not None:
            self._write("step", step=report.step, loss=report.loss, learning_rate=report.learning_rate,
                        examples_per_s=report.examples_per_s, window_loss=report.window.loss,
                        **report.window.gradient_statistics())

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

    def on_begin(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run hides the events of the steps it redoes, as the JSON-lines log drops them
        self.writer = SummaryWriter(str(self.directory), purge_step=trainer.step + 1)

    def on_step(self, report: StepReport) -> None:
        if report.window is not None:
            scalars = {"loss": report.loss, "learning_rate": report.learning_rate,
                       "examples_per_s": report.examples_per_s, **report.window.gradient_statistics()}
            for name, value in scalars.items():
                self.writer.add_scalar(f"train/{name}", value, report.step)

    def on_evaluation(self, step: int, entry: dict) -> None:
        for name in ("exact", "f1"):
            self.writer.add_scalar(f"dev/{name}", entry[name], step)
        self.writer.flush()

    def on_end(self, result: TrainResult) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
