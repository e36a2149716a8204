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

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.records import RecordError
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


def short_key(key: str) -> str:
    """`model.char_encoder` -> `char_encoder`: the section adds nothing a reader needs."""
    return key.rsplit(".", 1)[-1]


def base_settings(study: Study, scale: str) -> str:
    """The base of a one-at-a-time study as its axes' values: `char_encoder = conv2d, optimizer = adam, ...`."""
    base = next(run.config for run in study.runs(scale, seeds=study.seeds[:1]) if run.variant == "base")
    return ", ".join(f"{short_key(key)} = {value_text(get_value(base, key))}" for key in study.axes)


def variant_labels(study: Study, scale: str = "full") -> dict[str, str]:
    """Variant name -> what it is, for tables and legends: `char_encoder = depthwise1d`; the base of a
    one-at-a-time study with one axis as its value with "(base)", with several as "base configuration"
    (report.md spells it out: `base_settings`)."""
    labels = {}
    for name, settings in study.variants().items():
        if name in study.named:
            labels[name] = name
        elif name == "base" and study.design == "one-at-a-time":
            labels[name] = f"{base_settings(study, scale)} (base)" if len(study.axes) == 1 else "base configuration"
        else:
            labels[name] = ", ".join(f"{short_key(key)} = {value_text(value)}" for key, value in settings.items())
    return labels


def default_baseline(study: Study) -> str:
    return "base" if study.design == "one-at-a-time" else next(iter(study.variants()))


def summarise(frame: pd.DataFrame, study: Study, baseline: str) -> pd.DataFrame:
    """One row per variant (in the study's order) with numbers only: outcome counts, EM/F1 mean, sd and
    95% CI, the difference to `baseline` with its CI and method, and the costs of the ok runs."""
    labels = variant_labels(study)
    repeated = frame[frame.duplicated(["variant", "seed"], keep=False)]
    if not repeated.empty:  # two records of one (variant, seed): the study's settings changed between runs
        first = repeated.iloc[0]
        raise RecordError(f"{study.name}: {len(repeated)} records for {first['variant']} seed {first['seed']} "
                          f"(ids {', '.join(repeated[repeated['variant'] == first['variant']]['id'])}): the study "
                          f"changed between runs; move the old records out of its folder")
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
    "exact_diff": ("ΔEM [95% CI]", r"$\Delta$EM [95\% CI]", None),
    "f1_diff": ("ΔF1 [95% CI]", r"$\Delta$F1 [95\% CI]", None),
    "train_examples_per_s": ("train ex/s", "train ex/s", "max"),
    "wall_minutes": ("wall min", "wall min", "min"),
    "peak_memory_mb": ("peak MB", "peak MB", "min"),
    "parameters": ("parameters", "parameters", None),
    "steps": ("steps", "steps", None),
}


def table(summary: pd.DataFrame, latex: bool = False) -> pd.DataFrame:
    """The summary as text cells for a paper: `mean ± sd`, `[low, high]`, the baseline marked; with `latex`
    every cell is escaped and the best value of EM, F1, throughput, time and memory is bold (none where the
    best shown value is shared)."""
    pm = r" $\pm$ " if latex else " ± "

    def number(value, digits: int = 2) -> str:
        return "–" if value != value else _minus(f"{value:,.{digits}f}", latex)

    def interval(low, high, signed: bool = False) -> str:
        form = "+.2f" if signed else ".2f"
        return "" if low != low else _minus(f"[{low:{form}}, {high:{form}}]", latex)

    def score(metric: str) -> list[str]:
        return [number(row[f"{metric}_mean"]) + ("" if row[f"{metric}_sd"] != row[f"{metric}_sd"]
                                                 else pm + number(row[f"{metric}_sd"])) for _, row in rows]

    def difference(metric: str) -> list[str]:
        texts = []
        for _, row in rows:
            mean = row.get(f"{metric}_diff", math.nan)
            if row["baseline"] or mean != mean:
                texts.append("baseline" if row["baseline"] else "–")
            else:
                texts.append(_minus(f"{mean:+.2f}", latex) + " "
                             + interval(row[f"{metric}_diff_low"], row[f"{metric}_diff_high"], signed=True))
        return texts

    rows = list(summary.iterrows())
    cells = pd.DataFrame({
        "label": [_latex_escape(label) if latex else label for label in summary["label"]],
        "runs": [_runs_text(row) for _, row in rows],
        "exact": score("exact"),
        "exact_ci": [interval(row["exact_low"], row["exact_high"]) or "–" for _, row in rows],
        "f1": score("f1"),
        "f1_ci": [interval(row["f1_low"], row["f1_high"]) or "–" for _, row in rows],
        "exact_diff": difference("exact"),
        "f1_diff": difference("f1"),
        "train_examples_per_s": [number(v, 1) for v in summary["train_examples_per_s"]],
        "wall_minutes": [number(v, 1) for v in summary["wall_minutes"]],
        "peak_memory_mb": [number(v, 0) for v in summary["peak_memory_mb"]],
        "parameters": [number(v, 0) for v in summary["parameters"]],
        "steps": [number(v, 0) for v in summary["steps"]],
    }).map(str.strip)
    if latex:
        _bold_the_best(cells, summary)
    headers = {column: names[1] if latex else names[0] for column, names in _COLUMNS.items()}
    return cells.rename(columns=headers)


def _bold_the_best(cells: pd.DataFrame, summary: pd.DataFrame) -> None:
    for column, (_, _, best) in _COLUMNS.items():
        if best is None:
            continue
        values = summary[{"exact": "exact_mean", "f1": "f1_mean"}.get(column, column)]
        shown = cells[column].str.split(" ").str[0]  # the value as printed: a tie when printed alike
        if values.notna().sum() < 2:
            continue
        winner = values.idxmax() if best == "max" else values.idxmin()
        if (shown == shown[winner]).sum() == 1:
            cells.loc[winner, column] = rf"\textbf{{{cells.loc[winner, column]}}}"


def _runs_text(row) -> str:
    return ", ".join(f"{row[status]} {status}" for status in OUTCOMES if row[status]) or "0"


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


def to_latex(summary: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table across the page (`table*`), scaled to the text width: it needs the booktabs and
    graphicx packages."""
    cells = table(summary, latex=True)
    columns = "ll" + "r" * (len(cells.columns) - 2)
    tabular = cells.style.hide(axis="index").to_latex(hrules=True, column_format=columns)
    return (f"\\begin{{table*}}[t]\n\\centering\n\\caption{{{_latex_escape(caption)}}}\n\\label{{{label}}}\n"
            f"\\resizebox{{\\textwidth}}{{!}}{{%\n{tabular}}}\n\\end{{table*}}\n")


def to_csv(summary: pd.DataFrame) -> str:
    """Every number, unrounded, for anyone who wants to compute on: one row per variant."""
    return summary.to_csv(index=False, float_format="%.6g", lineterminator="\n")
