"""Watching the training loss for divergence: the statistics of the steps summed on the device (StepSums),
read by the host every `train.loss_check_every` steps as a check window (CheckWindow, LossMonitor), and the
judge of those windows that names a rising loss or stops a diverged run (LossCurveWatch)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from qanet.outcome import Diverged


def uniform_guess_losses(context_lengths: np.ndarray, context_len: int) -> np.ndarray:
    """What a uniform guess loses on each question: ln n for its start and again for its end, over the n tokens
    of its context that training keeps (at most `context_len`). A loss that rises above it has stopped
    predicting (LossCurveWatch)."""
    return 2 * np.log(np.minimum(context_lengths, context_len))


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
    uniform_guess_loss: float  # the same mean of what a uniform guess would lose (uniform_guess_losses)
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
        self.window_sums = StepSums(device)
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
        self.window_sums.add(values)
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
        steps = self.window_sums.steps
        means = self.window_sums.means()
        window = CheckWindow(last_step - steps + 1, last_step, means.pop("loss"),
                             self.window_uniform_guess_total / steps, **means)
        self.window_sums.reset()
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
        return {"since_evaluation": self.since_last_evaluation.state_dict(), "window": self.window_sums.state_dict(),
                "window_uniform_guess_total": self.window_uniform_guess_total}

    def load_state_dict(self, state: dict) -> None:
        if "since_evaluation" not in state:  # a checkpoint from before the gradient statistics: its loss sum only
            state = {"since_evaluation": {"totals": [state["total"], 0.0, 0.0], "grad_norm_max": 0.0,
                                          "steps": state["count"]},
                     "window": StepSums(self.bad_step.device).state_dict(), "window_uniform_guess_total": 0.0}
        self.since_last_evaluation.load_state_dict(state["since_evaluation"])
        self.window_sums.load_state_dict(state["window"])
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
      steps (adadelta, which has no warm-up, does with the tiny preset on the synthetic data); one that fell
      and came back has stopped predicting.
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
