"""What a command shows while runs train: tqdm bars of the runs and of one run's steps, or, where tqdm is not
installed (a GPU machine with torch and numpy only), a line at each tenth of a run's steps; a printed line per
evaluation and per finished run either way."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from qanet.hooks import Hooks, StepReport

STEP_LINES = 10  # a run without tqdm prints this many step lines: enough to see it move, few enough for a log


def _tqdm():
    """tqdm's bar, or None where tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def say(line: str) -> None:
    """Print a line: above the bars where there are bars, else flushed, so that a log shows it as it happens."""
    tqdm = _tqdm()
    if tqdm is None:
        print(line, flush=True)
    else:
        tqdm.write(line)


class StepBar(Hooks):
    """A tqdm bar of one run's training steps (restarted by each run), with the loss when the host reads it."""

    def __init__(self, bar) -> None:
        self.bar = bar

    def on_begin(self, trainer) -> None:
        self.bar.reset(total=trainer.config.train.steps)
        self.bar.update(trainer.step)

    def on_step(self, report: StepReport) -> None:
        self.bar.update(report.step - self.bar.n)
        if report.loss is not None:  # read every train.loss_check_every steps
            self.bar.set_postfix(loss=f"{report.loss:.3f}", ex_s=f"{report.examples_per_s:.0f}")


class StepLines(Hooks):
    """A line on stderr at each tenth of a run's steps, with the loss last read: the steps shown without tqdm."""

    def on_begin(self, trainer) -> None:
        self.steps = trainer.config.train.steps
        self.every = max(1, self.steps // STEP_LINES)
        self.last_read = ""
        begins = "resumes" if trainer.step else "begins"
        print(f"step {trainer.step}/{self.steps}: training {begins}", file=sys.stderr, flush=True)

    def on_step(self, report: StepReport) -> None:
        if report.loss is not None:  # read every train.loss_check_every steps
            self.last_read = f": loss {report.loss:.3f}, {report.examples_per_s:.0f} examples/s"
        if report.step % self.every == 0 or report.step == self.steps:
            print(f"step {report.step}/{self.steps}{self.last_read}", file=sys.stderr, flush=True)


class EvaluationLines(Hooks):
    """One printed line per evaluation, above the progress bar."""

    def on_evaluation(self, step: int, entry: dict) -> None:
        loss = "-" if entry["train_loss"] is None else f"{entry['train_loss']:.3f}"
        say(f"step {step}: dev EM {entry['exact']:.2f} F1 {entry['f1']:.2f} (train loss {loss})")


@contextmanager
def step_display(description: str, **bar_options) -> Iterator[Hooks]:
    """The hook that shows the steps of the run in training while the block lasts: a tqdm bar (`bar_options` are
    tqdm's; by default shown on a terminal only) or, without tqdm, StepLines."""
    tqdm = _tqdm()
    if tqdm is None:
        yield StepLines()
        return
    bar = tqdm(desc=description, unit="step", **{"disable": None, **bar_options})
    try:
        yield StepBar(bar)
    finally:
        bar.close()


@contextmanager
def runs_display(total: int, done: int, steps_shown: bool) -> Iterator[tuple[list[Hooks], Callable[[str], None]]]:
    """What `bench run` shows while the block lasts: yields the hooks to train with and `ended(line)`, which says
    that a run ended. With tqdm, a bar of the runs (`done` of `total` at first) and, where `steps_shown` (runs
    train in this process), one of the steps, on a terminal only; without it, step lines."""
    tqdm = _tqdm()
    if tqdm is None:
        yield [StepLines()], say
        return
    runs = tqdm(total=total, initial=done, desc="runs", unit="run", position=0, disable=None)

    def ended(line: str) -> None:
        tqdm.write(line)
        runs.update(1)

    try:
        with step_display("steps", position=1, leave=False, disable=None if steps_shown else True) as steps:
            yield [steps], ended
    finally:
        runs.close()
