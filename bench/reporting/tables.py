"""A study's records -> one row of numbers per variant (`summarise`), and that summary as the tables a paper
takes: Markdown, LaTeX (booktabs), CSV and HTML (`table` makes the cells, the same in every style), with the
labels that say what each variant is (`variant_labels`), what its differences to the baseline show in words
(`conclusions`), the scores along training (`curve_tables`) and where too few seeds leave a number weak
(`seed_warnings`). Failed, out-of-memory and diverged runs are counted, never averaged.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd

from bench.records import RecordError
from bench.reporting.comparability import memory_per_run, wall_clock_comparable
from bench.reporting.contents import COMPACT, FULL, HEADERS
from bench.reporting.statistics import (
    LEVEL,
    Interval,
    adjusted,
    clearly_best,
    decimals,
    difference_interval,
    difference_parts,
    difference_text,
    interval_text,
    mean_interval,
    numeral,
    p_text,
    typeset,
)
from bench.study import Study, StudyError, value_text
from qanet.config import get_value
from qanet.outcome import RECORDED

METRICS = {"exact": "EM", "f1": "F1"}


def short_key(key: str) -> str:
    """`model.char_encoder` -> `char_encoder`: the section adds nothing a reader needs."""
    return key.rsplit(".", 1)[-1]


def base_settings(study: Study, scale: str) -> str:
    """The base of a one-at-a-time study as its axes' values: `char_encoder = conv2d, optimizer = adam, ...`."""
    base = next(run.config for run in study.runs(scale, seeds=study.seeds[:1]) if run.variant == "base")
    return ", ".join(f"{short_key(key)} = {value_text(get_value(base, key))}" for key in study.axes)


def variant_labels(study: Study, scale: str, renamed: dict[str, str] | None = None, *,
                   others_may_name: bool = False) -> dict[str, str]:
    """Variant name -> what it is at `scale`, for tables and legends: `char_encoder = depthwise1d`; the base
    of a one-at-a-time study with one axis as its value there with "(base)" (a scale may change it: the smoke
    scale's hidden is 64), with several as "base configuration" (report.md spells it out: `base_settings`).
    Then the study file's `[labels]`, then `renamed` (`--labels`), whose keys name a variant by its name, its
    default label or its study file's (`others_may_name`: a key may name a variant of another study reported
    with this one, and is then not this study's). Two variants with one label could not be told apart:
    refused. The one
    source of labels: tables, plots and README figures all take them from here."""
    labels = {}
    for name, settings in study.variants().items():
        if name in study.named:
            labels[name] = name
        elif name == "base" and study.design == "one-at-a-time":
            labels[name] = f"{base_settings(study, scale)} (base)" if len(study.axes) == 1 else "base configuration"
        else:
            labels[name] = ", ".join(f"{short_key(key)} = {value_text(value)}" for key, value in settings.items())
    named = {**labels, **study.labels}  # load_study has checked that each [labels] key names a variant
    chosen = {_variant_named(study, key, "--labels", labels, named): label for key, label in (renamed or {}).items()
              if not others_may_name or names_a_variant(key, labels, named)}
    _refuse_shared_labels(study, {**named, **chosen})
    return {**named, **chosen}


def names_a_variant(asked: str, *labelings: dict[str, str]) -> bool:
    """Whether `asked` is a variant's name or its label in one of `labelings` (variant -> label)."""
    return any(asked == variant or any(asked == labeling[variant] for labeling in labelings)
               for variant in labelings[0])


def _variant_named(study: Study, asked: str, option: str, *labelings: dict[str, str]) -> str:
    """The variant `asked` names: its name, or its label in one of `labelings` (variant -> label, the last
    the one a reader sees); a one-line StudyError where none is."""
    for variant in labelings[0]:
        if asked == variant or any(asked == labeling[variant] for labeling in labelings):
            return variant
    raise StudyError(f"{option} {asked!r}: no such variant in {study.name} (variants: "
                     f"{'; '.join(labelings[-1].values())})")


def _refuse_shared_labels(study: Study, labels: dict[str, str]) -> None:
    by_label: dict[str, list[str]] = {}
    for variant, label in labels.items():
        by_label.setdefault(label, []).append(variant)
    for label, variants in by_label.items():
        if len(variants) > 1:
            raise StudyError(f"{study.name}: variants {', '.join(map(repr, variants))} would both be labelled "
                             f"{label!r}; give one another label ([labels] in the study file, or --labels)")


def default_baseline(study: Study) -> str:
    return "base" if study.design == "one-at-a-time" else next(iter(study.variants()))


def chosen_baseline(study: Study, labels: dict[str, str], asked: str | None) -> str:
    """The variant named `asked` (by its name or its label in `labels`), or the default baseline if none is."""
    return default_baseline(study) if asked is None else _variant_named(study, asked, "--baseline", labels)


# What a column's best is (the larger or the smaller value), for the columns a row can be clearly best in.
SCORES = {"exact": "max", "f1": "max"}
TIMES = {"train_examples_per_s": "max", "wall_minutes": "min"}
MEMORY = {"peak_memory_mb": "min"}
FEW_SEEDS = 3  # below this many seeds (or pairs) a report warns: the t interval is wide and its normality untested


def summarise(frame: pd.DataFrame, study: Study, baseline: str, scale: str, *, labels: dict[str, str] | None = None,
              correction: str = "holm") -> pd.DataFrame:
    """One row per variant (in the study's order) with numbers only: outcome counts, EM/F1 mean, sd and
    95% CI, the difference to `baseline` with its CI, t test (`METRIC_diff_t`, `_df`, `_p`), method and the
    seeds it pairs; whether it is resolved after `correction` ("holm" or "none") over the table's comparisons
    (`corrected`); the costs of the ok runs; and `COLUMN_best`: whether that column's value is clearly the best
    (`clearly_best`, under the same correction). `labels`: variant -> label, by default `variant_labels`."""
    labels = variant_labels(study, scale) if labels is None else labels
    _refuse_repeated_runs(frame, study)
    frame = frame.assign(wall_minutes=frame["wall_seconds"] / 60)
    ok = frame[frame["status"] == "ok"]
    by_variant = {variant: ok[ok["variant"] == variant].set_index("seed")
                  for variant in labels if variant in set(frame["variant"])}
    rows = []
    for variant, done in by_variant.items():
        runs = frame[frame["variant"] == variant]
        row = {"variant": variant, "label": labels[variant], "baseline": variant == baseline}
        row.update({status: int((runs["status"] == status).sum()) for status in RECORDED})
        row["seeds_ok"] = " ".join(str(seed) for seed in sorted(done.index))
        for metric in SCORES:
            interval = mean_interval(done[metric])
            row.update({f"{metric}_mean": interval.mean, f"{metric}_sd": done[metric].std(ddof=1),
                        f"{metric}_low": interval.low, f"{metric}_high": interval.high})
        if variant != baseline and baseline in by_variant and not by_variant[baseline].empty:
            row.update(_difference_columns(done, by_variant[baseline]))
        row.update(train_examples_per_s=done["train_examples_per_s"].mean(), wall_minutes=done["wall_minutes"].mean(),
                   peak_memory_mb=done["peak_memory_mb"].mean(), parameters=done["parameters"].max(),
                   steps=done["steps"].mean())
        rows.append(row)
    summary = corrected(pd.DataFrame(rows), correction)
    if "diff_n" in summary:
        summary["diff_n"] = summary["diff_n"].astype("Int64")  # a count: 3 in the CSV, not 3.0
    # costs are compared only where each run measured its own: clocks not shared, memory not the process's
    summary["times_comparable"], summary["memory_per_run"] = wall_clock_comparable(frame), memory_per_run(frame)
    compared = {**SCORES, **(TIMES if summary["times_comparable"].all() else {}),
                **(MEMORY if summary["memory_per_run"].all() else {})}
    for column, best in {**SCORES, **TIMES, **MEMORY}.items():
        winner = clearly_best({variant: done[column] for variant, done in by_variant.items()}, best, correction) \
            if column in compared else None
        summary[f"{column}_best"] = summary["variant"] == winner
    return summary


def corrected(summary: pd.DataFrame, correction: str) -> pd.DataFrame:
    """The summary with each metric's differences judged together: `METRIC_diff_p_adjusted` (Holm over every
    row's test of that metric in this table, or the p-value itself with correction "none"; NaN where there is
    no test), `METRIC_diff_comparisons` (how many tests that is), `METRIC_diff_resolved` (adjusted p < 0.05)
    and `correction`. A table of several studies is corrected again as a whole: its rows are one family."""
    summary = summary.copy()
    for metric in SCORES:
        p = summary.get(f"{metric}_diff_p", pd.Series(math.nan, index=summary.index, dtype=float))
        summary[f"{metric}_diff_p_adjusted"] = adjusted(p, correction)
        summary[f"{metric}_diff_comparisons"] = int(p.notna().sum())
        summary[f"{metric}_diff_resolved"] = summary[f"{metric}_diff_p_adjusted"] < LEVEL  # NaN: False
    summary["correction"] = correction
    return summary


def _refuse_repeated_runs(frame: pd.DataFrame, study: Study) -> None:
    repeated = frame[frame.duplicated(["variant", "seed"], keep=False)]
    if not repeated.empty:  # two records of one (variant, seed): the study's settings changed between runs
        first = repeated.iloc[0]
        raise RecordError(f"{study.name}: {len(repeated)} records for {first['variant']} seed {first['seed']} "
                          f"(ids {', '.join(repeated[repeated['variant'] == first['variant']]['id'])}): the study "
                          f"changed between runs; move the old records out of its folder")


def _difference_columns(done: pd.DataFrame, base: pd.DataFrame) -> dict:
    """The differences to the baseline, their tests and what they rest on: the seeds paired (`diff_n` of
    them; 0 for Welch's t) and the ok seeds of either side that pairing left out."""
    columns = {}
    for metric in SCORES:
        difference = difference_interval(done[metric], base[metric])
        columns.update({f"{metric}_diff": difference.mean, f"{metric}_diff_low": difference.low,
                        f"{metric}_diff_high": difference.high, f"{metric}_diff_t": difference.t,
                        f"{metric}_diff_df": difference.df, f"{metric}_diff_p": difference.p,
                        "diff_method": difference.method})
    welch = difference.method == "Welch t"
    unpaired = sorted(set(done.index) ^ set(base.index))
    columns.update(diff_n=0 if welch else difference.n, diff_runs=f"{len(done)} vs {len(base)}",
                   diff_seeds_unpaired="" if welch else " ".join(map(str, unpaired)))
    return columns


def seed_warnings(row) -> list[str]:
    """Where a summary row's numbers rest on too few seeds, and where pairing with the baseline left seeds out:
    the report's warnings and the README's."""
    if row["ok"] < 2:
        return [f"{row['label']}: {row['ok']} ok seed(s), no confidence interval"]
    warnings = []
    if row["ok"] < FEW_SEEDS:
        warnings.append(f"{row['label']}: {row['ok']} ok seeds, fewer than {FEW_SEEDS}: its interval is wide and "
                        f"rests on seed-to-seed noise being normal")
    pairs = row.get("diff_n")
    if pd.notna(pairs) and 0 < pairs < FEW_SEEDS:
        warnings.append(f"{row['label']}: its difference to the baseline rests on {int(pairs)} pairs, "
                        f"fewer than {FEW_SEEDS}")
    if row.get("diff_method") == "Welch t":
        warnings.append(f"{row['label']}: no two seeds with ok runs on both sides, so its difference is Welch's t "
                        f"over {row['diff_runs']} runs, not paired")
    elif isinstance(row.get("diff_seeds_unpaired"), str) and row["diff_seeds_unpaired"]:
        warnings.append(f"{row['label']}: pairing with the baseline left out seed(s) {row['diff_seeds_unpaired']} "
                        f"(an ok run on one side only)")
    return warnings


# How each style sets a value apart: bold for the clearly best; the mark after a difference its corrected test
# resolves (in LaTeX a superscript, inside the number's math); `\boldmath` makes the math of a bold cell bold too.
_BOLD = {"md": ("**", "**"), "latex": (r"\textbf{\boldmath ", "}"), "html": ("<strong>", "</strong>")}
_MARK = {"md": "*", "latex": "^{*}", "html": "*"}
_PLUS_MINUS = {False: "± ", True: r"\pm "}
_COSTS = {"train_examples_per_s": 1, "wall_minutes": 1, "peak_memory_mb": 0, "parameters": 0, "steps": 0}


def table(summary: pd.DataFrame, style: str = "md", columns: tuple[str, ...] = FULL) -> pd.DataFrame:
    """The summary as text cells for a paper in `style` (md, latex or html: escaped for it), the same rule in
    every style: `mean ± sd`, `[low, high]`, differences `+0.70* [−0.72, +2.11]`, where the mark says the
    corrected test resolves it; the pairs behind a difference (`(n = 2)`) only where they are fewer than the
    row's n, or `(Welch, 2 vs 2)`; a value that is clearly the best of its column (`clearly_best`) in bold.
    Each numeric column shows one number of decimals (`_column_places`). LaTeX has every measured number in
    math mode (`$-0.87$`, `$28.02 \\pm 0.32$`) and each value above its uncertainty (`_stacked`: see
    `to_latex`)."""
    latex = style == "latex"
    places = _column_places(summary)
    rows = [row for _, row in summary.iterrows()]
    escape = _latex_escape if latex else html.escape if style == "html" else str

    def cell(parts: list[str]) -> str:
        return _stacked(parts) if latex else " ".join(parts)

    def number(value: float, column: str) -> str:
        return "–" if value != value else typeset(numeral(value, places[column]), latex)

    def score(row, metric: str) -> str:  # its uncertainty is the sd it shows
        sd = row[f"{metric}_sd"]
        spread = [] if sd != sd else [typeset(_PLUS_MINUS[latex] + numeral(sd, places[metric]), latex)]
        return cell([number(row[f"{metric}_mean"], metric), *spread])

    def interval(row, metric: str) -> str:
        low, high = row[f"{metric}_low"], row[f"{metric}_high"]
        return "–" if low != low else interval_text(low, high, places[f"{metric}_ci"], latex=latex)

    def difference(row, metric: str) -> str:
        mean, low, high = (row.get(f"{metric}_diff{end}", math.nan) for end in ("", "_low", "_high"))
        if row["baseline"] or mean != mean:
            return "baseline" if row["baseline"] else "–"
        mark = _MARK[style] if row.get(f"{metric}_diff_resolved", False) else ""
        return cell(difference_parts(mean, low, high, places[f"{metric}_diff"], latex=latex, mark=mark)
                    + _pairs(row, latex))

    cells = pd.DataFrame({
        "study": [escape(row["study"]) if isinstance(row.get("study"), str) else "" for row in rows],
        "label": [escape(row["label"]) for row in rows],
        "runs": [_runs_text(row) for row in rows],
        "n": [_n_text(row) for row in rows],
        **{metric: [score(row, metric) for row in rows] for metric in SCORES},
        **{f"{metric}_ci": [interval(row, metric) for row in rows] for metric in SCORES},
        **{f"{metric}_diff": [difference(row, metric) for row in rows] for metric in SCORES},
        **{column: [number(row[column], column) for row in rows] for column in _COSTS},
    }, index=summary.index)
    opening, closing = _BOLD[style]
    for column in (*SCORES, *TIMES, *MEMORY):
        if f"{column}_best" in summary:
            best = summary[f"{column}_best"].fillna(False).astype(bool).to_numpy()
            cells.loc[best, column] = opening + cells.loc[best, column] + closing
    return cells[list(columns)].rename(columns=_headers(summary, latex))


def _column_places(summary: pd.DataFrame) -> dict[str, int]:
    """One number of decimals per numeric column, the finest any of its rows needs by `decimals` (at most 2;
    1 for a row without an uncertainty): a score's by the sd beside it, an interval's and a difference's by the
    interval's half-width; fixed for the costs. A column read down then compares like with like, and no row
    shows fewer decimals than its uncertainty needs. One exception, a difference's mean that these would show
    as 0 though it is not: it gets the decimals of its first significant digit (`mean_places`)."""
    def finest(uncertainties: pd.Series) -> int:
        return max((decimals(value) for value in uncertainties), default=1)

    def half_widths(rows: pd.DataFrame, prefix: str) -> pd.Series:
        return (rows[f"{prefix}_high"] - rows[f"{prefix}_low"]) / 2

    places = dict(_COSTS)
    for metric in SCORES:
        places[metric] = finest(summary.loc[summary[f"{metric}_mean"].notna(), f"{metric}_sd"])
        places[f"{metric}_ci"] = finest(half_widths(summary, metric).dropna())  # a row without one shows "–"
        # reindex: a summary without a baseline has no difference columns
        differences = summary.reindex(columns=[f"{metric}_diff{end}" for end in ("", "_low", "_high")])
        places[f"{metric}_diff"] = finest(half_widths(differences[differences[f"{metric}_diff"].notna()],
                                                      f"{metric}_diff"))
    return places


def _pairs(row, latex: bool) -> list[str]:
    """What a difference rests on where the row's n does not say it: `(n = 2)` where pairing left seeds out of
    the row's n, `(Welch, 2 vs 3)` where no two seeds could be paired."""
    if not row["diff_n"]:
        return [f"(Welch, {row['diff_runs']})"]
    if row["diff_n"] == row["ok"]:
        return []
    pairs = f"n = {int(row['diff_n'])}"
    return [f"(${pairs}$)" if latex else f"({pairs})"]


def _stacked(parts: list[str]) -> str:
    """LaTeX: the parts one under another, right-aligned, in a cell (`{}` keeps a line that starts with `[` from
    being read as the line break's optional argument)."""
    if len(parts) == 1:
        return parts[0]
    return r"\begin{tabular}[t]{@{}r@{}}" + r"\\{}".join(parts) + r"\end{tabular}"


def _headers(summary: pd.DataFrame, latex: bool) -> dict[str, str]:
    headers = {column: names[1] if latex else names[0] for column, names in HEADERS.items()}
    if not summary.get("times_comparable", pd.Series([True])).all():  # a shared machine's clock: said so
        headers.update({column: f"{headers[column]} (shared machine)" for column in TIMES})
    if not summary.get("memory_per_run", pd.Series([True])).all():
        headers["peak_memory_mb"] += " (process peak)"
    return headers


def conclusions(summary: pd.DataFrame, metric: str = "f1") -> list[str]:
    """What the differences to the baseline show, one line per variant, never more strongly than the tests
    allow: "higher" or "lower" only where the corrected test resolves it (`corrected`), otherwise "not
    resolved", with what the 95% interval still rules out: no effect beyond ±its farther bound. report.md and
    the README say these."""
    name = METRICS[metric]
    [baseline] = list(summary.loc[summary["baseline"], "label"])
    lines = []
    for _, row in summary[~summary["baseline"]].iterrows():
        mean, low, high = (row.get(f"{metric}_diff{end}", math.nan) for end in ("", "_low", "_high"))
        if mean != mean:
            lines.append(f"{row['label']}: no ok run to compare with {baseline}")
            continue
        basis = f"{row['diff_n']} seeds paired" if row["diff_n"] else f"Welch's t over {row['diff_runs']} runs"
        if low != low:
            verdict = "no interval (fewer than two values)"
        elif row[f"{metric}_diff_resolved"]:
            verdict = f"{'higher' if mean > 0 else 'lower'} than {baseline} ({_test_text(row, metric)})"
        else:
            verdict = (f"not resolved ({_test_text(row, metric)}): no effect beyond ±{_outward(low, high)} {name} "
                       f"at 95%")
        lines.append(f"{row['label']}: Δ{name} {difference_text(mean, low, high)}, {basis}: {verdict}")
    return lines


def _outward(low: float, high: float) -> str:
    """The interval's farther bound from 0, rounded away from 0 at the interval's decimals: a bound it states
    is never narrower than the interval ([−5.57, +6.14] -> 7 where it shows no decimals)."""
    places = decimals((high - low) / 2)
    return numeral(math.ceil(max(abs(low), abs(high)) * 10 ** places) / 10 ** places, places)


def _test_text(row, metric: str) -> str:
    """`p = 0.06 Holm-corrected over 4 comparisons`, `p = 0.015 uncorrected`, or `p = 0.08` (the one comparison
    of its table)."""
    p = p_text(row[f"{metric}_diff_p_adjusted"])
    if row["correction"] == "none":
        return f"{p} uncorrected"
    comparisons = int(row[f"{metric}_diff_comparisons"])
    return f"{p} Holm-corrected over {comparisons} comparisons" if comparisons > 1 else p  # one: nothing to correct


def curve_tables(curves: pd.DataFrame, labels: dict[str, str], baseline: str, metric: str = "f1") -> str:
    """Two Markdown tables of the ok runs' curves (`curves_frame`): the mean score at each evaluation, and each
    variant's difference to `baseline` there with its 95% interval and test (`(n = 3)`: paired over 3 seeds).
    The step whose evaluation scored the whole dev set is marked; the others scored a sample of it. Each
    interval holds for its own step: over many steps, some exclude 0 by chance."""
    name = METRICS[metric]
    ok = curves[(curves["status"] == "ok") & (curves["metric"] == metric)]
    scores = ok.pivot_table(index=["variant", "seed"], columns="step", values="value")
    steps = sorted(ok["step"].unique())
    whole = set(ok.loc[ok["total"] == ok["total"].max(), "step"])
    present = [variant for variant in labels if variant in scores.index.get_level_values(0)]
    means = [[labels[variant]] + [f"{scores.loc[variant][step].mean():.1f}" for step in steps] for variant in present]
    differences = []
    for variant in [variant for variant in present if variant != baseline]:
        intervals = [difference_interval(scores.loc[variant][step], scores.loc[baseline][step]) for step in steps]
        differences.append([labels[variant], *(f"{difference_text(d.mean, d.low, d.high)} ({_test(d)})"
                                               for d in intervals)])
    header = [f"{step:,}" + (" (whole dev)" if step in whole and len(whole) < len(steps) else "") for step in steps]
    align = ["left"] + ["right"] * len(steps)

    def markdown(rows: list[list[str]], first: str) -> str:
        return pd.DataFrame(rows, columns=[first, *header]).to_markdown(index=False, disable_numparse=True,
                                                                         colalign=align)

    return (markdown(means, f"mean dev {name} at step") + "\n\n"
            + markdown(differences, f"Δ{name} to {labels[baseline]} [95% CI] at step") + "\n")


def _test(interval: Interval) -> str:
    return f"n = {interval.n}" if interval.method == "paired t" else f"Welch, n = {interval.n}"


def _runs_text(row) -> str:
    return ", ".join(f"{row[status]} {status}" for status in RECORDED if row[status]) or "0"


def _n_text(row) -> str:
    """The ok seeds the row's numbers rest on, and the runs that ended otherwise: `2 (1 oom)`."""
    others = ", ".join(f"{row[status]} {status}" for status in RECORDED if status != "ok" and row[status])
    return f"{row['ok']} ({others})" if others else str(row["ok"])


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(character, character) for character in str(text))


def to_markdown(summary: pd.DataFrame, columns: tuple[str, ...] = FULL) -> str:
    cells = table(summary, "md", columns)
    # names and outcomes left, numbers right
    align = ["left" if column in _TEXT_COLUMNS else "right" for column in columns]
    return cells.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def to_html(summary: pd.DataFrame) -> str:
    cells = table(summary, "html")
    head = "".join(f"<th>{html.escape(name)}</th>" for name in cells.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n" for row in cells.to_numpy())
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


_TEXT_COLUMNS = ("study", "label", "runs")
# In a two-column paper's column (about 230pt) the compact columns at their natural width do not fit: a label
# like `dropout_placement = outputs` is 120pt, `18.20 ± 0.14` 58pt (twice), a difference with its interval
# 90pt. So the table is set \footnotesize with 4pt beside each column, each value stands above its uncertainty
# (`_stacked`: the mean over its ± sd, a difference over its interval), and the labels wrap, ragged, in a
# column of this share of the line: the faithfulness study's table is then 220pt. Beyond the compact
# columns the table spans the page (`table*`) and its labels keep to one line.
_LABEL_SHARE = 0.36
_COLUMN_FITS = len(COMPACT)


def to_latex(summary: pd.DataFrame, about: str, label: str, *, columns: tuple[str, ...] = COMPACT,
             comments: Sequence[str] = ()) -> str:
    """A booktabs table a paper takes as it is, in one column of a two-column paper for the compact columns (a
    `table*` across the page for more): `comments` first as `%` lines (what ran, how to make it again), then a
    caption of the study (`about`, escaped) and one sentence of what its numbers are (`_caption_statistics`).
    Needs the booktabs package only."""
    cells = table(summary, "latex", columns)
    wide = len(columns) > _COLUMN_FITS
    environment = "table*" if wide else "table"
    if not wide:  # the group keeps \raggedright's own \\ from ending the row
        position = columns.index("label")
        cells.iloc[:, position] = [f"{{\\raggedright {text}\\par}}" for text in cells.iloc[:, position]]
    alignment = "".join(_alignment(column, wide) for column in columns)
    caption = f"{_latex_escape(about.rstrip('. '))}. {_caption_statistics(summary, columns)}"
    lines = [f"% {line}" for comment in comments for line in comment.splitlines()]
    lines += [f"\\begin{{{environment}}}[t]", r"\centering", f"\\caption{{{caption}}}", f"\\label{{{label}}}",
              r"\footnotesize", r"\setlength{\tabcolsep}{4pt}", f"\\begin{{tabular}}{{@{{}}{alignment}@{{}}}}",
              r"\toprule", " & ".join(cells.columns) + r" \\", r"\midrule",
              *(" & ".join(row) + r" \\" for row in cells.to_numpy()), r"\bottomrule", r"\end{tabular}",
              f"\\end{{{environment}}}"]
    return "\n".join(lines) + "\n"


def _alignment(column: str, wide: bool) -> str:
    if column == "label" and not wide:
        return f"p{{{_LABEL_SHARE}\\linewidth}}"
    return "l" if column in _TEXT_COLUMNS else "r"


def _caption_statistics(summary: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """The caption's one sentence of method, n stated once: what ± is over how many seeds, what Δ is and its
    test, what the mark says (or that nothing is resolved), and what bold says where a cell is bold."""
    counts = sorted(set(summary["ok"]))
    seeds = f"$n = {counts[0]}$ seeds" if len(counts) == 1 else "each row's $n$ seeds"
    scored = [name for metric, name in METRICS.items() if {metric, f"{metric}_ci"} & set(columns)]
    said = []
    if scored:
        intervals = " and its 95\\% CI (Student's $t$)" if {"exact_ci", "f1_ci"} & set(columns) else ""
        said.append(f"{' and '.join(scored)}: mean $\\pm$ sd{intervals} over {seeds}")
    compared = [metric for metric in METRICS if f"{metric}_diff" in columns
                and summary.get(f"{metric}_diff_comparisons", pd.Series(dtype=float)).max() > 0]
    if compared:
        baselines = list(summary.loc[summary["baseline"], "label"])  # a table of several studies may have several
        baseline = _latex_escape(baselines[0]) if len(baselines) == 1 else "the row's baseline"
        welch = "diff_n" in summary and (summary["diff_n"] == 0).any()
        said.append(f"$\\Delta$: difference to {baseline} with its 95\\% CI, paired $t$ by seed"
                    + (" (Welch's $t$ where a cell says Welch)" if welch else ""))
        said.append(_mark_text(summary, compared))
    if any(summary[f"{column}_best"].any() for column in (*SCORES, *TIMES, *MEMORY)
           if column in columns and f"{column}_best" in summary):
        said.append(f"bold: better than every other row, each paired difference resolved ($p < {LEVEL}$)"
                    + _correction_text(summary, "them"))
    return "; ".join(said) + "."


def _mark_text(summary: pd.DataFrame, compared: list[str]) -> str:
    """`$^{*}$: resolved, p < 0.05 after Holm's correction over 4 comparisons`, or that none is. Each metric's
    differences are one family, of as many comparisons as the other's (the same runs are compared)."""
    comparisons = int(summary[f"{compared[0]}_diff_comparisons"].max())
    family = f"{comparisons} comparison{'s' if comparisons != 1 else ''}" + (" per column" if len(compared) > 1 else "")
    resolved = any(summary[f"{metric}_diff_resolved"].any() for metric in compared)
    return (f"$^{{*}}$: resolved, $p < {LEVEL}$" if resolved else f"no difference resolved ($p < {LEVEL}$)") \
        + _correction_text(summary, family)


def _correction_text(summary: pd.DataFrame, family: str) -> str:
    """` after Holm's correction over FAMILY`, or ` uncorrected`."""
    return " uncorrected" if (summary["correction"] == "none").all() else f" after Holm's correction over {family}"


def to_csv(summary: pd.DataFrame) -> str:
    """Every number, unrounded, for anyone who wants to compute on: one row per variant."""
    return summary.to_csv(index=False, lineterminator="\n")
