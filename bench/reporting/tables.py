"""A study's records -> one row of numbers per variant (`summarise`), and that summary as the tables a paper
takes: Markdown, LaTeX (booktabs), CSV and HTML (`table` makes the cells, the same in every style), with the
labels that say what each variant is (`variant_labels`), what its differences to the baseline show in words
(`conclusions`), the scores along training (`curve_tables`) and where too few seeds leave a number weak
(`seed_warnings`). Failed, out-of-memory and diverged runs are counted, never averaged.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from bench.records import RecordError
from bench.reporting.comparability import memory_per_run, wall_clock_comparable
from bench.reporting.contents import COMPACT, FULL, HEADERS
from bench.reporting.statistics import (
    Interval,
    clearly_best,
    decimals,
    difference_interval,
    difference_text,
    mean_interval,
    typographic_minus,
)
from bench.study import Study
from bench.study_files import StudyError, value_text
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


def variant_labels(study: Study, scale: str) -> dict[str, str]:
    """Variant name -> what it is at `scale`, for tables and legends: `char_encoder = depthwise1d`; the base
    of a one-at-a-time study with one axis as its value there with "(base)" (a scale may change it: the smoke
    scale's hidden is 64), with several as "base configuration" (report.md spells it out: `base_settings`).
    The one source of labels: tables, plots and README figures all take them from here."""
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


def chosen_baseline(study: Study, labels: dict[str, str], asked: str | None) -> str:
    """The variant named `asked` (by its name or its label in `labels`), or the default baseline if none is."""
    if asked is None:
        return default_baseline(study)
    for variant, label in labels.items():
        if asked in (variant, label):
            return variant
    raise StudyError(f"--baseline {asked!r}: no such variant in {study.name} (variants: "
                     f"{'; '.join(labels.values())})")


# What a column's best is (the larger or the smaller value), for the columns a row can be clearly best in.
SCORES = {"exact": "max", "f1": "max"}
TIMES = {"train_examples_per_s": "max", "wall_minutes": "min"}
MEMORY = {"peak_memory_mb": "min"}
FEW_SEEDS = 3  # below this many seeds (or pairs) a report warns: the t interval is wide and its normality untested


def summarise(frame: pd.DataFrame, study: Study, baseline: str, scale: str) -> pd.DataFrame:
    """One row per variant (in the study's order) with numbers only: outcome counts, EM/F1 mean, sd and
    95% CI, the difference to `baseline` with its CI, method and the seeds it pairs, the costs of the ok
    runs, and `COLUMN_best`: whether that column's value is clearly the best (`clearly_best`)."""
    labels = variant_labels(study, scale)
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
    summary = pd.DataFrame(rows)
    if "diff_n" in summary:
        summary["diff_n"] = summary["diff_n"].astype("Int64")  # a count: 3 in the CSV, not 3.0
    # costs are compared only where each run measured its own: clocks not shared, memory not the process's
    summary["times_comparable"], summary["memory_per_run"] = wall_clock_comparable(frame), memory_per_run(frame)
    compared = {**SCORES, **(TIMES if summary["times_comparable"].all() else {}),
                **(MEMORY if summary["memory_per_run"].all() else {})}
    for column, best in {**SCORES, **TIMES, **MEMORY}.items():
        winner = clearly_best({variant: done[column] for variant, done in by_variant.items()}, best) \
            if column in compared else None
        summary[f"{column}_best"] = summary["variant"] == winner
    return summary


def _refuse_repeated_runs(frame: pd.DataFrame, study: Study) -> None:
    repeated = frame[frame.duplicated(["variant", "seed"], keep=False)]
    if not repeated.empty:  # two records of one (variant, seed): the study's settings changed between runs
        first = repeated.iloc[0]
        raise RecordError(f"{study.name}: {len(repeated)} records for {first['variant']} seed {first['seed']} "
                          f"(ids {', '.join(repeated[repeated['variant'] == first['variant']]['id'])}): the study "
                          f"changed between runs; move the old records out of its folder")


def _difference_columns(done: pd.DataFrame, base: pd.DataFrame) -> dict:
    """The differences to the baseline and what they rest on: the seeds paired (`diff_n` of them; 0 for
    Welch's t) and the ok seeds of either side that pairing left out."""
    columns = {}
    for metric in SCORES:
        difference = difference_interval(done[metric], base[metric])
        columns.update({f"{metric}_diff": difference.mean, f"{metric}_diff_low": difference.low,
                        f"{metric}_diff_high": difference.high, "diff_method": difference.method})
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


_WRAP = {"md": ("**", "**"), "latex": (r"\textbf{", "}"), "html": ("<strong>", "</strong>")}


def table(summary: pd.DataFrame, style: str = "md", columns: tuple[str, ...] = FULL) -> pd.DataFrame:
    """The summary as text cells for a paper in `style` (md, latex or html: escaped for it): `mean ± sd`,
    `[low, high]`, differences with their pairs (`n = 3`), each with the decimals its interval allows; a
    value that is clearly the best of its column (`clearly_best`) in bold, the same rule in every style."""
    latex = style == "latex"
    pm = r" $\pm$ " if latex else " ± "
    rows = list(summary.iterrows())

    def plain(value: float, places: int) -> str:
        return "–" if value != value else typographic_minus(f"{value:,.{places}f}", latex)

    def half(low: float, high: float) -> float:
        return (high - low) / 2

    def score(row, metric: str) -> str:  # its uncertainty is the sd it shows
        sd = row[f"{metric}_sd"]
        places = decimals(sd)
        return plain(row[f"{metric}_mean"], places) + ("" if sd != sd else pm + plain(sd, places))

    def interval(row, metric: str) -> str:
        low, high = row[f"{metric}_low"], row[f"{metric}_high"]
        places = decimals(half(low, high))
        return "–" if low != low else f"[{plain(low, places)}, {plain(high, places)}]"

    def difference(row, metric: str) -> str:
        mean = row.get(f"{metric}_diff", math.nan)
        if row["baseline"] or mean != mean:
            return "baseline" if row["baseline"] else "–"
        pairs = f"n = {int(row['diff_n'])}"
        pairs = (f"${pairs}$" if latex else pairs) if row["diff_n"] else f"Welch, {row['diff_runs']}"
        return f"{difference_text(mean, row[f'{metric}_diff_low'], row[f'{metric}_diff_high'], latex)} ({pairs})"

    label = summary["label"].map(_latex_escape if latex else html.escape if style == "html" else str)
    cells = pd.DataFrame({
        "label": label,
        "runs": [_runs_text(row) for _, row in rows],
        "n": [_n_text(row) for _, row in rows],
        "exact": [score(row, "exact") for _, row in rows],
        "exact_ci": [interval(row, "exact") for _, row in rows],
        "f1": [score(row, "f1") for _, row in rows],
        "f1_ci": [interval(row, "f1") for _, row in rows],
        "exact_diff": [difference(row, "exact") for _, row in rows],
        "f1_diff": [difference(row, "f1") for _, row in rows],
        "train_examples_per_s": [plain(v, 1) for v in summary["train_examples_per_s"]],
        "wall_minutes": [plain(v, 1) for v in summary["wall_minutes"]],
        "peak_memory_mb": [plain(v, 0) for v in summary["peak_memory_mb"]],
        "parameters": [plain(v, 0) for v in summary["parameters"]],
        "steps": [plain(v, 0) for v in summary["steps"]],
    }).map(str.strip)
    opening, closing = _WRAP[style]
    for column in (*SCORES, *TIMES, *MEMORY):
        if f"{column}_best" in summary:
            best = summary[f"{column}_best"].fillna(False).astype(bool).to_numpy()
            cells.loc[best, column] = opening + cells.loc[best, column] + closing
    headers = {column: names[1] if latex else names[0] for column, names in HEADERS.items()}
    if not summary.get("times_comparable", pd.Series([True])).all():  # a shared machine's clock: said so
        headers.update({column: f"{headers[column]} (shared machine)" for column in TIMES})
    if not summary.get("memory_per_run", pd.Series([True])).all():
        headers["peak_memory_mb"] += " (process peak)"
    return cells[list(columns)].rename(columns=headers)


def conclusions(summary: pd.DataFrame, metric: str = "f1") -> list[str]:
    """What the differences to the baseline show, one line per variant, never more strongly than the interval
    allows: a difference whose 95% interval includes 0 is "not resolved". report.md and the README say these."""
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
        elif low > 0 or high < 0:
            verdict = f"{'higher' if low > 0 else 'lower'} than {baseline}"
        else:
            verdict = "not resolved (the interval includes 0)"
        lines.append(f"{row['label']}: Δ{name} {difference_text(mean, low, high)}, {basis}: {verdict}")
    return lines


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
    align = ["left" if column in ("label", "runs") else "right" for column in columns]
    return cells.to_markdown(index=False, disable_numparse=True, colalign=align) + "\n"


def to_html(summary: pd.DataFrame) -> str:
    cells = table(summary, "html")
    head = "".join(f"<th>{html.escape(name)}</th>" for name in cells.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n" for row in cells.to_numpy())
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def to_latex(summary: pd.DataFrame, about: str, label: str, columns: tuple[str, ...] = COMPACT) -> str:
    """A booktabs table (`table`, or `table*` across the page beyond five columns) at its natural size, whose
    caption says what its numbers are: the study (`about`, escaped), then what ± and the intervals are, the
    tests and the n behind them. Needs the booktabs package."""
    cells = table(summary, "latex", columns)
    alignment = "".join("l" if column in ("label", "runs") else "r" for column in columns)
    tabular = cells.style.hide(axis="index").to_latex(hrules=True, column_format=alignment)
    environment = "table" if len(columns) <= 5 else "table*"
    caption = f"{_latex_escape(about.rstrip('. '))}. {_method_latex(summary, columns)}"
    return (f"\\begin{{{environment}}}[t]\n\\centering\n\\caption{{{caption}}}\n\\label{{{label}}}\n{tabular}"
            f"\\end{{{environment}}}\n")


def _method_latex(summary: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """The caption's statement of method: what the table's ± and intervals are, over how many seeds."""
    counts = sorted(set(summary["ok"]))
    seeds = f"$n = {counts[0]}$ seeds" if len(counts) == 1 else "the $n$ seeds of each row"
    text = (f"EM and F1: mean $\\pm$ sample standard deviation over {seeds} (ok runs; others counted, never "
            "averaged)")
    if {"exact_ci", "f1_ci"} & set(columns):
        text += "; their 95\\% confidence intervals from Student's $t$"
    if {"exact_diff", "f1_diff"} & set(columns):
        [baseline] = list(summary.loc[summary["baseline"], "label"]) or ["the baseline"]
        text += (f". $\\Delta$: the difference to {_latex_escape(baseline)} with its 95\\% confidence interval, "
                 "Student's $t$ on the per-seed differences over the $n$ pairs given")
        if "Welch t" in set(summary.get("diff_method", pd.Series(dtype=str)).dropna()):
            text += " (Welch's $t$ where the seeds could not be paired)"
    if min(counts) < FEW_SEEDS:
        text += (f". Rows with fewer than {FEW_SEEDS} seeds have wide intervals that rest on seed-to-seed noise "
                 "being normal")
    return text + (". Bold: better than every other row, every paired 95\\% interval excluding 0. Decimals "
                   "follow the uncertainty: the sd beside a mean, the half-width of an interval.")


def to_csv(summary: pd.DataFrame) -> str:
    """Every number, unrounded, for anyone who wants to compute on: one row per variant."""
    return summary.to_csv(index=False, lineterminator="\n")
