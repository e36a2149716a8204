"""The numbers of a report, and how they are written.

Each variant's EM and F1 are the mean over its ok seeds with the sample standard deviation and a 95%
confidence interval from Student's t (n - 1 degrees of freedom): with 3 seeds a bootstrap has 10 distinct
resamples and no useful tails, while t is exact for normal seed-to-seed noise and honest about how wide 3
seeds leave it. The difference to the baseline is paired by seed (t on the per-seed differences, which
removes what a seed does to both runs alike) when both variants have ok runs for the same seeds, and Welch's
t otherwise; each interval comes with its t test of "no difference". A table makes several such comparisons,
and at 5% each, one in twenty differences that are not there would pass: a difference is called resolved only
where its p-value, Holm-corrected over the table's comparisons (`holm`), is below 0.05. A value is "clearly
best" only where its corrected tests against every other row resolve it, and is shown with the decimals its
uncertainty allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.reporting.contents import CORRECTIONS

LEVEL = 0.05  # a test resolves a difference below this (corrected) p-value; the intervals are 1 - LEVEL


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% confidence interval and the two-sided t test of mean = 0: its statistic `t`, degrees
    of freedom `df` and p-value `p` (all NaN below two values; df NaN also where Welch's has none: see `_t_test`)."""

    mean: float
    low: float
    high: float
    n: int
    method: str = "t"
    t: float = math.nan
    df: float = math.nan
    p: float = math.nan


def _t_test(mean: float, standard_error: float, df: float, n: int, *, method: str) -> Interval:
    """The interval mean ± t(0.975, df) · standard error and the test of mean = 0. Where every value is alike
    (standard error 0) there is no noise to test against: the interval is the mean alone, and the test reads
    the mean as it is: t = ±inf and p = 0 for a nonzero mean, t = 0 and p = 1 for a zero one (scipy gives NaN)."""
    from scipy import stats

    if standard_error == 0:
        t = math.copysign(math.inf, mean) if mean else 0.0
        return Interval(mean, mean, mean, n, method, t, df, 0.0 if mean else 1.0)
    half = float(stats.t.ppf(1 - LEVEL / 2, df)) * standard_error
    t = mean / standard_error
    return Interval(mean, mean - half, mean + half, n, method, t, df, float(2 * stats.t.sf(abs(t), df)))


def mean_interval(values, method: str = "t") -> Interval:
    """The mean of the values (NaN left out) with its one-sample t interval and test."""
    values = np.asarray([v for v in values if v == v], dtype=float)  # NaN != NaN
    if len(values) < 2:
        return Interval(float(values.mean()) if len(values) else math.nan, math.nan, math.nan, len(values), method)
    return _t_test(float(values.mean()), float(values.std(ddof=1)) / math.sqrt(len(values)), len(values) - 1,
                   len(values), method=method)


def difference_interval(variant: pd.Series, baseline: pd.Series) -> Interval:
    """variant - baseline, each a Series of one metric indexed by seed (ok runs only): paired on the seeds
    both have where there are at least two, Welch's t over all their runs otherwise."""
    variant, baseline = variant.dropna(), baseline.dropna()
    shared = sorted(set(variant.index) & set(baseline.index))
    if len(shared) >= 2:
        return mean_interval(variant.loc[shared] - baseline.loc[shared], method="paired t")
    mean, n = float(variant.mean() - baseline.mean()), min(len(variant), len(baseline))
    if len(variant) < 2 or len(baseline) < 2:
        return Interval(mean, math.nan, math.nan, n, "Welch t")
    a, b = variant.var(ddof=1) / len(variant), baseline.var(ddof=1) / len(baseline)
    # Welch-Satterthwaite degrees of freedom: undefined (0/0) where neither side varies
    df = (a + b) ** 2 / (a ** 2 / (len(variant) - 1) + b ** 2 / (len(baseline) - 1)) if a + b else math.nan
    return _t_test(mean, math.sqrt(a + b), df, n, method="Welch t")


def holm(p_values) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the order given: the i-th smallest of m (i from 0) is
    multiplied by m - i, each kept at least its predecessor's (so the order of the p-values stays) and at most
    1. Below 0.05 they hold the chance of any false "resolved" among the m at 5%. NaN entries (no test) stay
    NaN and are not counted in m."""
    p_values = [float(p) for p in p_values]
    tested = sorted((p, index) for index, p in enumerate(p_values) if p == p)
    holm_p, highest = [math.nan] * len(p_values), 0.0
    for rank, (p, index) in enumerate(tested):
        highest = holm_p[index] = max(highest, min(1.0, (len(tested) - rank) * p))
    return holm_p


def adjusted(p_values, correction: str) -> list[float]:
    """The p-values adjusted for their number by `correction`: "holm" (`holm`) or "none" (as they are)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r}: expected one of {', '.join(CORRECTIONS)}")
    return holm(p_values) if correction == "holm" else [float(p) for p in p_values]


def clearly_best(values: dict[str, pd.Series], best: str, correction: str = "holm") -> str | None:
    """The variant whose value (a Series by seed, one per variant) beats every other variant's, each paired
    difference resolved by its t test after `correction` over those comparisons; None when no variant does,
    when a comparison cannot be paired by seed (two shared seeds at least), or when fewer than two variants have
    values."""
    present = {variant: series.dropna() for variant, series in values.items() if series.notna().any()}
    if len(present) < 2:
        return None
    means = {variant: series.mean() for variant, series in present.items()}
    leader = (max if best == "max" else min)(means, key=means.get)
    differences = [difference_interval(present[leader], series)
                   for variant, series in present.items() if variant != leader]
    ahead = all(d.method == "paired t" and (d.mean > 0 if best == "max" else d.mean < 0) for d in differences)
    # NaN (no test) compares False: unresolved
    return leader if ahead and all(p < LEVEL for p in adjusted([d.p for d in differences], correction)) else None


def decimals(half_width: float) -> int:
    """Decimals that show a value with an uncertainty of this size (a 95% interval's half-width, or the sd shown
    beside it): to its first significant digit, or its first two where they start with 1 or 2 (0.15 shown as
    0.2 would be a third off); at most 2, and 1 where there is none."""
    if not (half_width > 0 and math.isfinite(half_width)):
        return 1
    exponent = math.floor(math.log10(half_width))
    significant = 2 if half_width / 10 ** exponent < 3 else 1
    return min(2, max(0, significant - 1 - exponent))


def mean_places(mean: float, places: int) -> int:
    """The decimals a difference's mean is shown with beside an interval shown with `places`: the same, except
    where they would show a nonzero mean as 0; then enough for its first significant digit (at most 2):
    `+0.3 [−6, +6]`, not `0 [−6, +6]` beside a plot point at +0.29."""
    if math.isfinite(mean) and mean != 0 and round(mean, places) == 0:
        return min(2, -math.floor(math.log10(abs(mean))))
    return places


def numeral(value: float, places: int, signed: bool = False) -> str:
    """`28.02`, `2,046`; `signed`: `+0.70`, `-0.87`. What rounds to zero has no sign (`0.0`, never `-0.0`)."""
    text = f"{value:{'+' if signed else ''},.{places}f}"
    return text.lstrip("+-") if float(text.replace(",", "")) == 0 else text


def typeset(text: str, latex: bool) -> str:
    """A numeral as a document shows it: in LaTeX in math mode (`$-0.87$`: a true minus and a plus of the same
    width; `{,}` so that a thousands comma adds no space), elsewhere with a typographic minus (U+2212)."""
    return "$" + text.replace(",", "{,}") + "$" if latex else text.replace("-", "−")


def interval_text(low: float, high: float, places: int, *, latex: bool = False, signed: bool = False) -> str:
    """`[27.22, 28.81]`, or with `signed` (a difference's) `[−1.33, +0.41]`."""
    return f"[{typeset(numeral(low, places, signed), latex)}, {typeset(numeral(high, places, signed), latex)}]"


def difference_text(mean: float, low: float, high: float, latex: bool = False) -> str:
    """`+1.2 [−0.5, +2.9]`: a difference and its 95% interval with the decimals the interval allows (`decimals`
    of its half-width; the mean more where it needs them: `mean_places`); the difference alone where there is
    no interval. Conclusions, curve tables and the forest say it so; tables by `difference_parts`."""
    return " ".join(difference_parts(mean, low, high, decimals((high - low) / 2), latex=latex))


def difference_parts(mean: float, low: float, high: float, places: int, *, latex: bool = False,
                     mark: str = "") -> list[str]:
    """`["+1.20", "[−0.50, +2.90]"]`: a difference (with `mark` after it) and its interval, with `places`
    decimals (the mean more where it needs them: `mean_places`); the difference alone where there is no
    interval."""
    parts = [typeset(numeral(mean, mean_places(mean, places), signed=True) + mark, latex)]
    return parts if low != low else [*parts, interval_text(low, high, places, latex=latex, signed=True)]


def p_text(p: float) -> str:
    """`p = 0.015`, `p = 0.06`: two significant digits, or as many more as keep it on its side of 0.05 (0.0496
    is `p = 0.0496`, not `p = 0.05`); `p < 0.001` below that."""
    if p < 0.001:
        return "p < 0.001"
    for digits in (2, 3, 4):
        text = f"{p:.{digits}g}"
        if (float(text) < LEVEL) == (p < LEVEL):
            break
    return f"p = {text}"
