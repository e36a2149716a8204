"""Reports for papers: a study's records -> one table (Markdown, LaTeX, CSV, HTML), plots (PNG and PDF) and
report.md. A pure function of the records: the same records give the same bytes.

Statistics. Each variant's EM and F1 are the mean over its ok seeds with the sample standard deviation and
a 95% confidence interval from Student's t (n - 1 degrees of freedom): with 3 seeds a bootstrap has 10
distinct resamples and no useful tails, while t is exact for normal seed-to-seed noise and honest about
how wide 3 seeds leave it. The difference to the baseline is paired by seed (t on the per-seed
differences, which removes what a seed does to both runs alike) when both variants have ok runs for the
same seeds, and Welch's t otherwise. Failed, out-of-memory and diverged runs are counted, never averaged.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.study import Study, value_text
from qanet.config import get_value

OUTCOMES = ("ok", "failed", "oom", "diverged", "pruned", "stopped")
METRICS = {"exact": "EM", "f1": "F1"}


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% confidence interval (low and high are NaN below two values)."""

    mean: float
    low: float
    high: float
    n: int
    method: str = "t"

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


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
    """variant - baseline, each a Series of one metric indexed by seed (ok runs only)."""
    if len(variant) >= 2 and set(variant.index) == set(baseline.index):
        differences = variant - baseline.loc[variant.index]
        return _with_method(mean_interval(differences), "paired t")
    mean = float(variant.mean() - baseline.mean())
    if len(variant) < 2 or len(baseline) < 2:
        return Interval(mean, math.nan, math.nan, min(len(variant), len(baseline)), "Welch t")
    a, b = variant.var(ddof=1) / len(variant), baseline.var(ddof=1) / len(baseline)
    if a + b == 0:
        return Interval(mean, mean, mean, min(len(variant), len(baseline)), "Welch t")
    df = (a + b) ** 2 / (a ** 2 / (len(variant) - 1) + b ** 2 / (len(baseline) - 1))
    half = _t(df) * math.sqrt(a + b)
    return Interval(mean, mean - half, mean + half, min(len(variant), len(baseline)), "Welch t")


def _with_method(interval: Interval, method: str) -> Interval:
    return Interval(interval.mean, interval.low, interval.high, interval.n, method)


def short_key(key: str) -> str:
    """`model.char_encoder` -> `char_encoder`: the section adds nothing a reader needs."""
    return key.rsplit(".", 1)[-1]


def variant_labels(study: Study) -> dict[str, str]:
    """Variant name -> what it is, for tables and legends: `char_encoder = depthwise1d`, and the base of a
    one-at-a-time study as its own axis values with "(base)"."""
    labels = {}
    for name, settings in study.variants().items():
        if name in study.named:
            labels[name] = name
        elif name == "base" and study.design == "one-at-a-time":
            base = study.runs("full", seeds=[0])[0].config if len(study.axes) == 1 else None
            key = next(iter(study.axes), None)
            labels[name] = (f"{short_key(key)} = {value_text(get_value(base, key))} (base)" if base is not None
                            else "base configuration")
        else:
            labels[name] = ", ".join(f"{short_key(key)} = {value_text(value)}" for key, value in settings.items())
    return labels


def default_baseline(study: Study) -> str:
    return "base" if study.design == "one-at-a-time" else next(iter(study.variants()))


def summarise(frame: pd.DataFrame, study: Study, baseline: str) -> pd.DataFrame:
    """One row per variant (in the study's order) with numbers only: outcome counts, EM/F1 mean, sd and
    95% CI, the difference to `baseline` with its CI and method, and the costs of the ok runs."""
    labels = variant_labels(study)
    ok = frame[frame["status"] == "ok"]
    base_scores = ok[ok["variant"] == baseline].set_index("seed")
    rows = []
    for variant in [v for v in labels if v in set(frame["variant"])]:
        runs, done = frame[frame["variant"] == variant], ok[ok["variant"] == variant].set_index("seed")
        row = {"variant": variant, "label": labels[variant], "baseline": variant == baseline}
        row.update({status: int((runs["status"] == status).sum()) for status in OUTCOMES})
        for metric in METRICS:
            interval = mean_interval(done[metric])
            row.update({f"{metric}_mean": interval.mean, f"{metric}_sd": done[metric].std(ddof=1),
                        f"{metric}_low": interval.low, f"{metric}_high": interval.high})
            if variant != baseline and not base_scores.empty:
                difference = difference_interval(done[metric], base_scores[metric])
                row.update({f"{metric}_diff": difference.mean, f"{metric}_diff_low": difference.low,
                            f"{metric}_diff_high": difference.high, "diff_method": difference.method})
        row.update(train_examples_per_s=done["train_examples_per_s"].mean(),
                   wall_minutes=done["wall_seconds"].mean() / 60, peak_memory_mb=done["peak_memory_mb"].mean(),
                   parameters=done["parameters"].max(), steps=done["steps"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


# column -> (header, header in LaTeX, best: max or min, or None where "best" means nothing)
_COLUMNS = {
    "label": ("variant", "variant", None),
    "runs": ("seeds", "seeds", None),
    "exact": ("EM", "EM", "max"),
    "exact_ci": ("EM 95% CI", r"EM 95\% CI", None),
    "f1": ("F1", "F1", "max"),
    "f1_ci": ("F1 95% CI", r"F1 95\% CI", None),
    "f1_diff": ("ΔF1 [95% CI]", r"$\Delta$F1 [95\% CI]", None),
    "train_examples_per_s": ("train ex/s", "train ex/s", "max"),
    "wall_minutes": ("wall min", "wall min", "min"),
    "peak_memory_mb": ("peak MB", "peak MB", "min"),
    "parameters": ("parameters", "parameters", None),
    "steps": ("steps", "steps", None),
}


def table(summary: pd.DataFrame, latex: bool = False) -> pd.DataFrame:
    """The summary as text cells for a paper: `mean ± sd`, `[low, high]`, the baseline marked; with `latex`
    every cell is escaped and the best value of EM, F1, throughput, time and memory is bold."""
    pm, escape = (r" $\pm$ ", _latex_escape) if latex else (" ± ", str)

    def number(value, digits: int = 2) -> str:
        return "–" if value != value else _minus(f"{value:,.{digits}f}", latex)

    def interval(low, high) -> str:
        return "–" if low != low else _minus(f"[{low:.2f}, {high:.2f}]", latex)

    cells = pd.DataFrame({
        "label": [escape(label) for label in summary["label"]],
        "runs": [_runs_text(row) for _, row in summary.iterrows()],
        "exact": [number(m) + ("" if s != s else pm + number(s)) for m, s in zip(summary["exact_mean"],
                                                                                  summary["exact_sd"], strict=True)],
        "exact_ci": [interval(lo, hi) for lo, hi in zip(summary["exact_low"], summary["exact_high"], strict=True)],
        "f1": [number(m) + ("" if s != s else pm + number(s)) for m, s in zip(summary["f1_mean"], summary["f1_sd"],
                                                                               strict=True)],
        "f1_ci": [interval(lo, hi) for lo, hi in zip(summary["f1_low"], summary["f1_high"], strict=True)],
        "f1_diff": [_difference_text(row, latex) for _, row in summary.iterrows()],
        "train_examples_per_s": [number(v, 1) for v in summary["train_examples_per_s"]],
        "wall_minutes": [number(v, 1) for v in summary["wall_minutes"]],
        "peak_memory_mb": [number(v, 0) for v in summary["peak_memory_mb"]],
        "parameters": [number(v, 0) for v in summary["parameters"]],
        "steps": [number(v, 0) for v in summary["steps"]],
    })
    if latex:
        for column, (_, _, best) in _COLUMNS.items():
            values = summary[{"exact": "exact_mean", "f1": "f1_mean"}.get(column, column)] if best else None
            if best and values.notna().sum() > 1 and values.nunique() > 1:
                winner = values.idxmax() if best == "max" else values.idxmin()
                cells.loc[winner, column] = rf"\textbf{{{cells.loc[winner, column]}}}"
    headers = {column: names[1] if latex else names[0] for column, names in _COLUMNS.items()}
    return cells.rename(columns=headers)


def _runs_text(row) -> str:
    return ", ".join(f"{row[status]} {status}" for status in OUTCOMES if row[status]) or "0"


def _difference_text(row, latex: bool) -> str:
    if row["baseline"]:
        return "baseline"
    mean, low, high = row.get("f1_diff", math.nan), row.get("f1_diff_low", math.nan), row.get("f1_diff_high",
                                                                                              math.nan)
    if mean != mean:
        return "–"
    return _minus(f"{mean:+.2f}" + ("" if low != low else f" [{low:+.2f}, {high:+.2f}]"), latex)


def _minus(text: str, latex: bool) -> str:
    """A typographic minus sign, not a hyphen."""
    return text.replace("-", "$-$" if latex else "−")


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(character, character) for character in str(text))


def to_markdown(summary: pd.DataFrame) -> str:
    cells = table(summary)
    align = ("left", "left") + ("right",) * (len(cells.columns) - 2)  # names and outcomes left, numbers right
    return cells.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def to_latex(summary: pd.DataFrame, caption: str) -> str:
    cells = table(summary, latex=True)
    styler = cells.style.hide(axis="index")
    return styler.to_latex(hrules=True, column_format="l" + "r" * (len(cells.columns) - 1),
                           caption=_latex_escape(caption), position="t")


def to_csv(summary: pd.DataFrame) -> str:
    """Every number, unrounded, for anyone who wants to compute on: one row per variant."""
    return summary.to_csv(index=False, float_format="%.6g", lineterminator="\n")


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
