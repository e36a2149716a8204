"""LossCurveWatch on made-up loss curves: what it calls rising, what it calls diverged, and what it leaves alone."""

import numpy as np
import pytest

from qanet.divergence import CheckWindow, LossCurveWatch
from qanet.outcome import Diverged

EVERY = 50  # steps a window
WARMUP = 1000


def _windows(losses, uniform_guess=10.0, start=WARMUP):
    """One check window per loss, the first beginning after `start`; `uniform_guess` a number or one per window."""
    guesses = np.broadcast_to(uniform_guess, len(losses))
    return [CheckWindow(start + i * EVERY + 1, start + (i + 1) * EVERY, float(loss), float(guess), 1.0, 2.0, 0.0)
            for i, (loss, guess) in enumerate(zip(losses, guesses, strict=True))]


def _judged(losses, uniform_guess=10.0, watch=None, start=WARMUP) -> list[str | None]:
    watch = watch or LossCurveWatch(WARMUP)
    return [watch.judge(window) for window in _windows(losses, uniform_guess, start)]


def test_healthy_noisy_curves_are_never_flagged():
    """A run of 150,000 steps: the loss falls from above a uniform guess, then flattens, each window off by
    4% noise (a window of 1,600 examples moves by a few percent) and each window's own uniform-guess loss."""
    rng = np.random.default_rng(0)
    windows = 3000
    falling = 2.0 + 7.5 * np.exp(-np.arange(windows) / 300)
    guesses = 9.8 + 0.2 * rng.standard_normal(windows)
    assert _judged(falling * (1 + 0.04 * rng.standard_normal(windows)), guesses) == [None] * windows
    # a small set memorised: a loss near zero, noisy relative to itself
    memorised = 0.02 * (1 + 0.8 * rng.random(400))
    assert _judged(memorised) == [None] * 400
    # adadelta, no warm-up: hundreds of steps a few percent either side of a uniform guess, then learning
    slow_start = np.concatenate([10 * (1 + 0.03 * rng.standard_normal(8)), np.linspace(9.5, 4, 20)])
    assert _judged(slow_start, watch=LossCurveWatch(0), start=0) == [None] * 28


def test_an_oscillating_loss_is_not_a_rise():
    """Every other window a third above the best: never three in a row."""
    assert _judged([8, 6, 4] + [5.4, 4.2] * 20) == [None] * 43


def test_a_loss_that_keeps_rising_is_named_once_per_rise():
    """Best 4.0, so a rise is above 5.0 (1.25 x 4.0, more than 4.0 + 5% of 10.0); the third window in a row
    above it is named, the rise goes on unnamed, a window back at 4.5 ends it, and the next rise is named again."""
    judged = _judged([8, 6, 5, 4, 5.1, 5.2, 5.3, 5.4, 5.5, 4.5, 5.5, 5.6, 5.7])
    named = [i for i, warning in enumerate(judged) if warning]
    assert named == [6, 12]
    assert judged[6] == ("training loss rising since step 1,201: its mean stayed above 5.00 for 3 check windows "
                         "in a row (5.30 over steps 1,301-1,350; its best: 4.00 over steps "
                         "1,151-1,200)")
    assert judged[12].startswith("training loss rising since step 1,501:")


def test_a_rise_of_a_loss_near_zero_must_also_be_a_twentieth_of_a_uniform_guess():
    assert _judged([0.1, 0.2, 0.3, 0.4]) == [None] * 4  # 4x the best, but 0.3 above it: under 5% of 10.0
    assert _judged([0.1, 0.7, 0.8, 0.9])[3].startswith("training loss rising since step 1,051: its mean stayed "
                                                       "above 0.60")


def test_the_warm_up_is_not_judged_but_its_best_counts():
    """The loss of a fresh model and of the warm-up is not judged; its best window is what a later one is
    judged against, so a run that degenerates during the warm-up and stays flat is caught once it is over."""
    watch = LossCurveWatch(WARMUP)
    assert _judged([80.0, 50.0, 9.0], watch=watch, start=WARMUP - 3 * EVERY) == [None] * 3
    assert watch.best_loss == 9.0
    assert _judged([9.5, 11.5, 11.6, 11.7], 12.0, watch=watch)[3]  # a quarter above 9.0, three windows in a row
    flat = LossCurveWatch(WARMUP)
    assert _judged([9.0, 8.5, 40.0, 40.0], 12.0, watch=flat, start=WARMUP - 4 * EVERY) == [None] * 4
    with pytest.raises(Diverged, match="mean training loss 40.00 over steps 1,001-1,050 is above 12.00.* after "
                                       "8.50 over steps 851-900"):
        flat.judge(_windows([40.0], 12.0)[0])


def test_a_rise_above_a_uniform_guess_is_divergence():
    """The curve of the paper configuration on a GPU: down to 8.3, then up. 10.1 is above a uniform guess's
    9.7 but no rise (8.3 x 1.25 = 10.375); 23.49 is both, and ends the run, its record counting every step."""
    watch = LossCurveWatch(WARMUP)
    assert _judged([9.0, 8.3, 9.2, 10.1], 9.7, watch=watch) == [None] * 4
    with pytest.raises(Diverged) as raised:
        watch.judge(_windows([23.49], 9.7, start=2300)[0])
    assert raised.value.steps == 2350
    assert str(raised.value) == ("mean training loss 23.49 over steps 2,301-2,350 is above 9.70, the loss of a "
                                 "uniform guess over those batches' contexts (2 ln of their lengths), after 8.30 "
                                 "over steps 1,051-1,100: the model stopped predicting")


def test_a_loss_above_a_uniform_guess_that_is_no_rise_is_left_alone():
    """A fresh model starts above a uniform guess and may hover near it (adadelta, no warm-up)."""
    watch = LossCurveWatch(0)
    assert _judged([20, 16, 12, 10.3, 10.1, 9.95, 10.2, 10.4, 12.4], watch=watch, start=0) == [None] * 9
    with pytest.raises(Diverged, match="mean training loss 12.50 over steps 451-500 is above 10.00"):
        _judged([12.5], watch=watch, start=450)  # a quarter above 9.95


def test_a_restored_watch_goes_on_as_if_never_stopped():
    losses = [8, 6, 5, 4, 5.1, 5.2, 5.3, 5.4, 4.0, 5.5, 5.6, 5.7]
    whole = _judged(losses)
    first = LossCurveWatch(WARMUP)
    _judged(losses[:5], watch=first)
    second = LossCurveWatch(WARMUP)
    second.load_state_dict(first.state_dict())
    assert whole[5:] == _judged(losses[5:], watch=second, start=WARMUP + 5 * EVERY)
    assert sum(map(bool, whole)) == 2
