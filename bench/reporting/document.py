"""A study's whole report, report.md and report.html: what ran, its tables, its plots (the differences to the
baseline first: they are the study's answer), what its records could mislead about (mixed code, devices or
hardware, a shared machine's clock, run order, resumed runs, too few seeds), the environment they were made in,
how to make them again and what to cite; runs.csv, one row per run; and the one table of several studies, each
row under the baseline its study trained. Written from the records alone: the same records give the same
bytes."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.records import RecordError, curves_frame, records_frame
from bench.reporting import plots
from bench.reporting.comparability import memory_per_run, mixed_hardware, wall_clock_comparable
from bench.reporting.contents import COMPACT, FULL, METHOD
from bench.reporting.formats import FORMATS, Table
from bench.reporting.plots import FigureSize
from bench.reporting.tables import (
    base_settings,
    chosen_baseline,
    conclusions,
    corrected,
    seed_warnings,
    summarise,
    to_html,
    to_markdown,
    variant_labels,
)
from bench.reporting.what_ran import (
    citations,
    code_line,
    cost_warnings,
    model_text,
    overrides,
    report_line,
    run_line,
    scores_on,
    trained_as,
    unreliable_wall_times,
    what_ran,
)
from bench.study import Study, distinct_runs

MEMORY_LEFT_OUT = ("peak memory on a CPU is the process's peak RSS so far, so a run after others in one process "
                   "reports the largest of them: not compared between variants (no bold, not plotted)")
WALL_CLOCK_LEFT_OUT = ("wall clock on a shared machine: some ok runs were trained beside others and had no time "
                       "budget, so their times are not plotted and no cost column is bold")


@dataclass(frozen=True)
class ReportOptions:
    """How `bench report` was asked to report: one object from its options to every file it writes."""

    scale: str | None = None
    baseline: str | None = None  # a variant's name or label; None: the study's default baseline
    formats: Sequence[str] = field(default_factory=lambda: tuple(FORMATS))  # names in formats.FORMATS
    columns: tuple[str, ...] = COMPACT  # the LaTeX table's
    compare_mixed_hardware: bool = False
    correction: str = "holm"  # over each table's comparisons of a metric, or "none"
    labels: dict[str, str] = field(default_factory=dict)  # --labels: a variant's name or label -> display name
    others_may_name: bool = False  # several studies: a --labels key may name another study's variant
    size: FigureSize = FigureSize()
    command: str = ""  # the report's own command, for its reproduce lines


@dataclass(eq=False)  # told apart by identity: a summary (a DataFrame) has no truth value to compare by
class Report:
    """One study's written report: what the combined table takes and the command says."""

    study: Study
    scale: str
    baseline: str  # the variant the differences are taken to
    baseline_label: str
    summary: pd.DataFrame
    warnings: list[str]
    folder: Path
    written: list[Path]  # beside report.md: the tables, the formats' other files (runs.csv, report.html), the plots
    frame: pd.DataFrame  # the records at `scale`
    ran: list[str]  # what ran (`what_ran`)
    runs_again: str  # the `bench run` line that makes its runs again (`run_line`)
    again: list[str]  # how to make the records and the report again: code, runs, report
    labels: dict[str, str]  # variant -> its label
    found: dict[str, dict[str, Any]]  # record id -> the settings beyond the study file (`overrides`)


def write_report(study: Study, records: Path, out: Path, options: ReportOptions = ReportOptions()) -> Report:
    """Write one study's report under out/STUDY/ from its records under `records`: its table and the other
    files of each format asked for (formats.FORMATS), its plots and report.md."""
    frame, scale, mixed = _records_at_scale(study, records, options.scale, options.compare_mixed_hardware)
    labels = variant_labels(study, scale, options.labels, others_may_name=options.others_may_name)
    baseline = chosen_baseline(study, labels, options.baseline)
    timed = frame.assign(wall_seconds=frame["wall_seconds"].mask(unreliable_wall_times(frame)))
    summary = summarise(timed, study, baseline, scale, labels=labels, correction=options.correction)
    found = overrides(study, scale, records)
    ran = what_ran(frame, study, found, baseline, labels=labels, default_labels=variant_labels(study, scale))
    runs_again = run_line(study.name, frame, scale, found)
    again = [code_line(frame), runs_again, report_line(options.command or f"python -m bench report {study.name}")]
    folder = out / study.name
    folder.mkdir(parents=True, exist_ok=True)
    caption = f"{_about(study, scale).rstrip('. ')}. {scores_on(frame)}"
    table = Table(summary=summary, caption=caption, label=f"tab:{study.name}", columns=options.columns,
                  comments=ran + again)
    written = _write_tables(table, folder, options.formats)
    wall_clock = wall_clock_comparable(timed)
    curves = curves_frame(study.name, records)
    figures = _plots(summary, timed, curves[curves["scale"] == scale], labels=labels, baseline=baseline,
                     wall_clock=wall_clock, folder=folder, size=options.size)
    warnings = (_same_runs(study, scale) + _warnings(frame, summary, mixed, wall_clock)
                + cost_warnings(frame, labels))
    report = Report(study=study, scale=scale, baseline=baseline, baseline_label=labels[baseline], summary=summary,
                    warnings=warnings, folder=folder, written=written + figures, frame=frame, ran=ran,
                    runs_again=runs_again, again=again, labels=labels, found=found)
    pngs = [path for path in figures if path.suffix == ".png"]
    (folder / "report.md").write_text(_report_markdown(report, pngs), encoding="utf-8")
    report.written[len(written):len(written)] = _write_study_files(report, pngs, options.formats)
    return report


def _records_at_scale(study: Study, records: Path, asked: str | None,
                      compare_mixed_hardware: bool) -> tuple[pd.DataFrame, str, str]:
    """The study's records at the `asked` scale (or at the one scale it has), that scale, and how they mix
    hardware ("" where they do not): refused unless `compare_mixed_hardware`."""
    frame = records_frame(study.name, records)
    scale = _scale(study, frame, asked, records)
    frame = frame[frame["scale"] == scale]
    mixed = mixed_hardware(frame)
    if mixed and not compare_mixed_hardware:
        raise RecordError(f"{records / study.name}: {mixed}; compare them anyway with --mixed-hardware")
    return frame, scale, mixed


def _scale(study: Study, frame: pd.DataFrame, asked: str | None, records: Path) -> str:
    scales = sorted(set(frame["scale"]))
    if asked:
        if asked not in scales:
            raise RecordError(f"{records / study.name}: no records at scale {asked!r} (there are: "
                              f"{', '.join(scales) or 'none'})")
        return asked
    if len(scales) != 1:
        raise RecordError(f"{records / study.name}: " + (f"records at several scales ({', '.join(scales)}): "
                          "choose one with --scale" if scales else "no records"))
    return scales[0]


def _plots(summary: pd.DataFrame, frame: pd.DataFrame, curves: pd.DataFrame, *, labels: dict[str, str],
           baseline: str, wall_clock: bool, folder: Path, size: FigureSize) -> list[Path]:
    """The report's figures in the order report.md shows them: the differences first, they are the study's
    answer."""
    palette = plots.colours(list(summary["label"]))
    figures = []
    if "f1_diff" in summary and summary["f1_diff"].notna().any():
        figures += plots.forest(summary, labels[baseline], palette, folder, size=size)
    figures += plots.scores(summary, frame, palette, folder, size=size)
    figures += plots.curves(curves, labels, palette, folder, wall_clock=wall_clock, baseline=baseline, size=size)
    figures += plots.cost(frame, labels, palette, folder, time=wall_clock, memory=memory_per_run(frame), size=size)
    return figures


def _same_runs(study: Study, scale: str) -> list[str]:
    """The variants this scale makes the same run as another: they have no records of their own."""
    said: list[str] = []
    distinct_runs(study.name, study.runs(scale, seeds=study.seeds[:1]), log=said.append)
    return said


def _about(study: Study, scale: str) -> str:
    """The study's description; with the base configuration spelled out where the tables call it only that."""
    if study.design == "one-at-a-time" and len(study.axes) > 1:
        return f"{study.description.rstrip('.')}. Base configuration: {base_settings(study, scale)}."
    return study.description


def _write_tables(table: Table, out: Path, formats: Sequence[str]) -> list[Path]:
    """The table in each format asked for that writes one (formats.FORMATS), in the order asked."""
    written = []
    for name in formats:
        chosen = FORMATS[name]
        if chosen.table_file and chosen.write_table:
            path = out / chosen.table_file
            path.write_text(chosen.write_table(table), encoding="utf-8")
            written.append(path)
    return written


def _write_study_files(report: Report, pngs: list[Path], formats: Sequence[str]) -> list[Path]:
    """The files beside report.md that the formats asked for add to a study's report (runs.csv, report.html),
    in the order of formats.FORMATS."""
    written = []
    for chosen in FORMATS.values():
        if chosen.name in formats and chosen.study_files and chosen.write_study:
            texts = chosen.write_study(report, pngs)
            for name, text in zip(chosen.study_files, texts, strict=True):
                (report.folder / name).write_text(text, encoding="utf-8")
                written.append(report.folder / name)
    return written


def _warnings(frame, summary, mixed: str, wall_clock: bool) -> list[str]:
    """One line for each way the records could mislead: mixed code, devices, hardware; a shared machine's
    clock; too few seeds."""
    warnings = ([] if wall_clock else [WALL_CLOCK_LEFT_OUT]) + ([] if memory_per_run(frame) else [MEMORY_LEFT_OUT])
    shas = sorted({sha for sha in frame["git_sha"].dropna()})
    if len(shas) > 1:
        warnings.append(f"the records come from {len(shas)} code versions: {', '.join(sha[:10] for sha in shas)}")
    if frame["git_dirty"].fillna(False).astype(bool).any():
        warnings.append("some records were made from code with uncommitted changes (git dirty)")
    devices = frame["device"].dropna().value_counts()
    if len(devices) > 1:
        warnings.append("the records were made on several devices: "
                        + ", ".join(f"{device} ({count} runs)" for device, count in devices.items()))
    if mixed:
        warnings.append(mixed + " (compared anyway: --mixed-hardware)")
    for _, row in summary.iterrows():
        warnings += seed_warnings(row)
    return warnings


def _environment_lines(frame) -> list[str]:
    def values(column: str) -> str:
        found = frame[column].dropna().astype(str).value_counts()
        return ", ".join(f"{value} ({count})" for value, count in found.items()) or "-"

    return [f"- devices: {values('device')}", f"- torch: {values('torch')}", f"- CUDA: {values('cuda')}",
            f"- git: {values('git_sha')}; uncommitted changes: {values('git_dirty')}"]


def _report_markdown(report: Report, pngs: list[Path]) -> str:
    lines = [f"# {report.study.name} ({report.scale})", "", _about(report.study, report.scale), "",
             "## What ran", "", *(f"- {line}" for line in report.ran), ""]
    for warning in report.warnings:  # a blank line apart: consecutive quoted lines would run into one paragraph
        lines += [f"> **Warning:** {warning}", ""]
    lines += [to_markdown(report.summary), METHOD, ""]
    lines += [f"* {line}" for line in _differences(report.summary)] + [""]
    lines += [f"![{path.stem}]({path.name})" for path in pngs] + [""]
    lines += ["## Environment", "", *_environment_lines(report.frame), ""]
    lines += _closing_markdown(report.again, report.frame)
    return "\n".join(lines)


def _closing_markdown(again: list[str], frame: pd.DataFrame) -> list[str]:
    """How to make the report again, and what to cite (the tool itself: CITATION.cff)."""
    return ["## Reproduce", "", *(f"- {line}" for line in again), "", "## Cite", "",
            "The tool: `CITATION.cff` in its repository. What these runs used:", "", "```bibtex",
            "\n\n".join(citations(frame)), "```", ""]


def _differences(summary) -> list[str]:
    """What each difference to the baseline shows, as the README says it (`conclusions`), EM then F1."""
    if not summary["baseline"].any():
        return []
    return [line for metric in ("exact", "f1") for line in conclusions(summary, metric)]


_STYLE = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{padding:.35em .7em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{border-bottom:2px solid #333}.warning{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em 1em}
img{max-width:100%;display:block;margin:1.5em 0}.wide{overflow-x:auto}"""


def report_html(report: Report, pngs: Sequence[Path]) -> str:
    """One self-contained page: styles inline, plots embedded, no script, font or style from elsewhere."""
    name = html.escape(report.study.name)
    cells = '<div class="wide">' + to_html(report.summary) + "</div>"
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{name}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{name} ({report.scale})</h1>",
             f"<p>{html.escape(_about(report.study, report.scale))}</p>", _html_list("What ran", report.ran)]
    parts += [f'<p class="warning">{html.escape(warning)}</p>' for warning in report.warnings]
    parts += [cells, f"<p>{html.escape(METHOD)}</p>", "<ul>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in _differences(report.summary)] + ["</ul>"]
    parts += [f'<img alt="{path.stem}" src="{png_data_uri(path)}">' for path in pngs]
    parts += [_html_list("Environment", [line[2:] for line in _environment_lines(report.frame)]),
              _html_list("Reproduce", report.again), "<h2>Cite</h2>",
              f"<pre>{html.escape(chr(10).join(citations(report.frame)))}</pre>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _html_list(title: str, lines: list[str]) -> str:
    return f"<h2>{title}</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _baseline_runs(report: Report) -> list:
    """The baseline's runs as the table shows them: each record's seed, id and scores."""
    runs = report.frame[report.frame["variant"] == report.baseline]
    return sorted(runs[["seed", "id", "exact", "f1"]].astype(str).itertuples(index=False, name=None))


def baseline_groups(reports: list[Report]) -> list[list[Report]]:
    """The reports grouped by their baselines: one group's rows can share one baseline row only where their
    baselines are the same runs (the same ids: the id hashes the configuration and the data) with the same
    scores, so that every difference in the group is to the numbers the row shows. In the order the reports
    came; a study without baseline runs is a group of its own."""
    groups: dict[str, list[Report]] = {}
    for report in reports:
        key = json.dumps(_baseline_runs(report) or report.study.name)
        groups.setdefault(key, []).append(report)
    return list(groups.values())


def how_baselines_differ(groups: list[list[Report]]) -> list[str]:
    """For each group after the first, how its baseline differs from the first's: the settings it was trained
    with, or that its runs are other runs, or that it has none."""
    def trained(group: list[Report]) -> dict:
        return trained_as(group[0].frame, group[0].baseline)

    reference = trained(groups[0])
    lines = []
    for group in groups[1:]:
        own = trained(group)
        differing = [f"{key} = {own.get(key)} (not {reference.get(key)})"
                     for key in sorted(own.keys() | reference.keys()) if not _same(own.get(key), reference.get(key))]
        if not own:
            how = "its baseline has no records at this scale: its rows have no differences"
        elif differing:
            how = f"its baseline was trained with {', '.join(differing)}; its rows are differences to its own row"
        else:
            how = ("its baseline has the same settings but is other runs, with other scores; its rows are "
                   "differences to its own row")
        lines.append(f"{study_names(group)}: {how}")
    return lines


def _same(value, other) -> bool:
    """Equal settings, a setting no record of either had (NaN in a records frame) included."""
    return value == other or (pd.isna(value) and pd.isna(other))


def study_names(reports: list[Report]) -> str:
    return ", ".join(report.study.name for report in reports)


def write_combined(reports: list[Report], out: Path, options: ReportOptions = ReportOptions()
                   ) -> tuple[pd.DataFrame, list[Path], list[str]]:
    """One table (under out/combined/) of several studies at one scale: the paper's ablation table. Each group
    of studies whose baselines are the same runs (`baseline_groups`) has its baseline row once, then every
    other variant of each, with its difference to that baseline and its study named; the correction for
    multiple comparisons runs over the whole table. Returns the table's summary, the files written and the
    notes on how the groups' baselines differ."""
    groups = baseline_groups(reports)
    rows = []
    for group in groups:
        base = group[0].summary[group[0].summary["baseline"]]
        if len(group) > 1:  # each study labels the base by its own axis: the row is all of theirs
            base = base.assign(label="base configuration")
        rows.append(base.assign(study="all" if len(group) == len(reports) else study_names(group)))
        rows += [report.summary[~report.summary["baseline"]].assign(study=report.study.name) for report in group]
    combined = corrected(pd.concat(rows, ignore_index=True), options.correction)
    # "clearly best" was judged within each study; across studies only the differences to the baseline compare
    combined[[column for column in combined if column.endswith("_best")]] = False
    folder = out / "combined"
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.concat([report.frame for report in reports], ignore_index=True)
    notes = how_baselines_differ(groups)
    ran = _combined_what_ran(reports, groups)
    again = [code_line(frame), *(report.runs_again for report in reports),
             report_line(options.command or f"python -m bench report {study_names(reports)}")]
    caption = f"Each change against its study's baseline. {scores_on(frame)}"
    table = Table(summary=combined, caption=caption, label="tab:combined", columns=("study", *options.columns),
                  comments=ran + notes + again)
    written = _write_tables(table, folder, options.formats)
    warnings = [f"{report.study.name}: {warning}" for report in reports for warning in report.warnings]
    (folder / "report.md").write_text(
        _combined_markdown(reports, combined, groups, ran=ran + notes, warnings=warnings, again=again, frame=frame),
        encoding="utf-8")
    return combined, [*written, folder / "report.md"], notes


def _combined_what_ran(reports: list[Report], groups: list[list[Report]]) -> list[str]:
    """What ran: the data once where every study read the same, each baseline once, then each study's other
    lines named by study."""
    data = list(dict.fromkeys(line for report in reports for line in report.ran if line.startswith("Data: ")))
    shared = data if len(data) == 1 else []
    baselines = [f"Baseline of {study_names(group)}: {model_text(base)}." for group in groups
                 for base in [group[0].frame[group[0].frame["variant"] == group[0].baseline]] if len(base)]
    return shared + baselines + [f"{report.study.name}: {line}" for report in reports for line in report.ran
                                 if line not in shared and not line.startswith("Baseline (")]


def _combined_markdown(reports: list[Report], combined: pd.DataFrame, groups: list[list[Report]], *,
                       ran: list[str], warnings: list[str], again: list[str], frame: pd.DataFrame) -> str:
    lines = [f"# combined ({reports[0].scale}): {study_names(reports)}", "", "## What ran", "",
             *(f"- {line}" for line in ran), ""]
    for warning in warnings:
        lines += [f"> **Warning:** {warning}", ""]
    lines += [to_markdown(combined, ("study", *FULL)), METHOD, ""]
    for group in groups:  # each group's rows against its own baseline row
        shown = "all" if len(group) == len(reports) else study_names(group)
        rows = combined[combined["study"].isin([shown, *(report.study.name for report in group)])]
        lines += [f"Against the baseline of {study_names(group)}:", ""]
        lines += [f"* {line}" for line in _differences(rows)] + [""]
    return "\n".join([*lines, "", *_closing_markdown(again, frame)])
