"""The numbers of a report, and how they are written.

Each variant's EM and F1 are the mean over its ok seeds with the sample standard deviation and a 95%
confidence interval from Student's t (n - 1 degrees of freedom): with 3 seeds a bootstrap has 10 distinct
resamples and no useful tails, while t is exact for normal seed-to-seed noise and honest about how wide 3
seeds leave it. The difference to the baseline is paired by seed (t on the per-seed differences, which
removes what a seed does to both runs alike) when both variants have ok runs for the same seeds, and Welch's
t otherwise. A value is "clearly best" only where every paired interval of its differences excludes 0, and
is shown with the decimals its uncertainty allows.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% confidence interval (low and high are NaN below two values)."""

    mean: float
    low: float
    high: float
    n: int
    method: str = "t"


def _t(df: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df))


def mean_interval(values) -> Interval:
    values = np.asarray([v for v in values if v == v], dtype=float)  # NaN != NaN
    if len(values) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if len(values) < 2:
        return Interval(mean, math.nan, math.nan, len(values))
    half = _t(len(values) - 1) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, len(values))


def difference_interval(variant: pd.Series, baseline: pd.Series) -> Interval:
    """variant - baseline, each a Series of one metric indexed by seed (ok runs only): paired on the seeds
    both have where there are at least two, Welch's t over all their runs otherwise."""
    variant, baseline = variant.dropna(), baseline.dropna()
    shared = sorted(set(variant.index) & set(baseline.index))
    if len(shared) >= 2:
        return dataclasses.replace(mean_interval(variant.loc[shared] - baseline.loc[shared]), method="paired t")
    mean, n = float(variant.mean() - baseline.mean()), min(len(variant), len(baseline))
    if len(variant) < 2 or len(baseline) < 2:
        return Interval(mean, math.nan, math.nan, n, "Welch t")
    a, b = variant.var(ddof=1) / len(variant), baseline.var(ddof=1) / len(baseline)
    if a + b == 0:
        return Interval(mean, mean, mean, n, "Welch t")
    df = (a + b) ** 2 / (a ** 2 / (len(variant) - 1) + b ** 2 / (len(baseline) - 1))
    half = _t(df) * math.sqrt(a + b)
    return Interval(mean, mean - half, mean + half, n, "Welch t")


def clearly_best(values: dict[str, pd.Series], best: str) -> str | None:
    """The variant whose value (a Series by seed, one per variant) beats every other variant's with a paired
    95% interval of the difference that excludes 0; None when no variant does, when a comparison cannot be
    paired by seed (two shared seeds at least), or when fewer than two variants have values."""
    present = {variant: series.dropna() for variant, series in values.items() if series.notna().any()}
    if len(present) < 2:
        return None
    means = {variant: series.mean() for variant, series in present.items()}
    leader = (max if best == "max" else min)(means, key=means.get)
    for variant, series in present.items():
        if variant == leader:
            continue
        difference = difference_interval(present[leader], series)
        beaten = difference.low > 0 if best == "max" else difference.high < 0  # False where the CI is NaN
        if difference.method != "paired t" or not beaten:
            return None
    return leader


def decimals(half_width: float) -> int:
    """Decimals that show a value with an uncertainty of this size (a 95% interval's half-width, or the sd shown
    beside it): to its first significant digit, or its first two where they start with 1 or 2 (0.15 shown as
    0.2 would be a third off); at most 2, and 1 where there is none."""
    if not (half_width > 0 and math.isfinite(half_width)):
        return 1
    exponent = math.floor(math.log10(half_width))
    significant = 2 if half_width / 10 ** exponent < 3 else 1
    return min(2, max(0, significant - 1 - exponent))


def difference_text(mean: float, low: float, high: float, latex: bool = False) -> str:
    """`+1.2 [−0.5, +2.9]`: a difference and its 95% interval with the decimals the interval allows (the
    difference alone where there is no interval). Tables, conclusions, curve tables and the forest say it so."""
    places = decimals((high - low) / 2)

    def signed(value: float) -> str:
        text = f"{value:+.{places}f}"
        return typographic_minus(text[1:] if float(text) == 0 else text, latex)  # what rounds to zero has no sign

    return signed(mean) + ("" if low != low else f" [{signed(low)}, {signed(high)}]")


def typographic_minus(text: str, latex: bool) -> str:
    """A typographic minus sign, not a hyphen."""
    return text.replace("-", "$-$" if latex else "−")
