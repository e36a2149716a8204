"""What a command shows while runs train: a tqdm bar of one run's steps, a line per evaluation."""

from __future__ import annotations

from qanet.hooks import Hooks


class StepBar(Hooks):
    """A tqdm bar of one run's training steps (restarted by each run), with the loss when the host reads it."""

    def __init__(self, bar) -> None:
        self.bar = bar

    def on_begin(self, trainer) -> None:
        self.bar.reset(total=trainer.config.train.steps)
        self.bar.update(trainer.step)

    def on_step(self, step: int, loss: float | None, learning_rate: float, examples_per_s: float | None,
                window) -> None:
        self.bar.update(step - self.bar.n)
        if loss is not None:  # read every train.loss_check_every steps
            self.bar.set_postfix(loss=f"{loss:.3f}", ex_s=f"{examples_per_s:.0f}")


class EvaluationLines(Hooks):
    """One printed line per evaluation, above the progress bar."""

    def on_evaluation(self, step: int, entry: dict) -> None:
        from tqdm import tqdm

        loss = "-" if entry["train_loss"] is None else f"{entry['train_loss']:.3f}"
        tqdm.write(f"step {step}: dev EM {entry['exact']:.2f} F1 {entry['f1']:.2f} (train loss {loss})")
