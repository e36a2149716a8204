"""A study's whole report, report.md and report.html: its tables, its plots (the differences to the baseline
first: they are the study's answer), what its records could mislead about (mixed code, devices or hardware, a
shared machine's clock, too few seeds) and the environment they were made in; and the one table of several
studies that share a baseline configuration. Written from the records alone: the same records give the same
bytes."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.records import RecordError, curves_frame, records_frame
from bench.reporting import plots
from bench.reporting.comparability import memory_per_run, mixed_hardware, wall_clock_comparable
from bench.reporting.contents import COMPACT, FORMATS, METHOD
from bench.reporting.tables import (
    base_settings,
    chosen_baseline,
    conclusions,
    seed_warnings,
    summarise,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
    variant_labels,
)
from bench.study import Study, distinct_runs

MEMORY_LEFT_OUT = ("peak memory on a CPU is the process's peak RSS so far, so a run after others in one process "
                   "reports the largest of them: not compared between variants (no bold, not plotted)")
WALL_CLOCK_LEFT_OUT = ("wall clock on a shared machine: some ok runs were trained beside others and had no time "
                       "budget, so their times are not plotted and no cost column is bold")


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
    written: list[Path]  # beside report.md: the tables, report.html, then the plots


def write_report(study: Study, records: Path, out: Path, *, scale: str | None = None, baseline: str | None = None,
                 formats: Sequence[str] = FORMATS, columns: tuple[str, ...] = COMPACT,
                 compare_mixed_hardware: bool = False) -> Report:
    """Write one study's report under out/STUDY/ from its records under `records`: its tables in `formats`
    (the LaTeX table's `columns`), its plots, report.md, and report.html where html is among the formats."""
    frame, scale, mixed = _records_at_scale(study, records, scale, compare_mixed_hardware)
    labels = variant_labels(study, scale)
    baseline = chosen_baseline(study, labels, baseline)
    summary = summarise(frame, study, baseline, scale)
    folder = out / study.name
    folder.mkdir(parents=True, exist_ok=True)
    caption = f"{study.name} ({scale}): {study.description}"
    written = _write_tables(summary, caption, f"tab:{study.name}", folder, formats, columns)
    wall_clock = wall_clock_comparable(frame)
    curves = curves_frame(study.name, records)
    figures = _plots(summary, frame, curves[curves["scale"] == scale], labels, labels[baseline], wall_clock, folder)
    warnings = _same_runs(study, scale) + _warnings(frame, summary, mixed, wall_clock)
    about, pngs = _about(study, scale), [path for path in figures if path.suffix == ".png"]
    (folder / "report.md").write_text(_report_markdown(study.name, scale, about, summary, warnings, frame, pngs),
                                      encoding="utf-8")
    if "html" in formats:
        (folder / "report.html").write_text(_report_html(study.name, scale, about, summary, warnings, frame, pngs),
                                            encoding="utf-8")
        written.append(folder / "report.html")
    return Report(study, scale, baseline, labels[baseline], summary, warnings, folder, written + figures)


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


def _plots(summary: pd.DataFrame, frame: pd.DataFrame, curves: pd.DataFrame, labels: dict[str, str],
           baseline_label: str, wall_clock: bool, folder: Path) -> list[Path]:
    """The report's figures in the order report.md shows them: the differences first, they are the study's
    answer."""
    palette = plots.colours(list(summary["label"]))
    figures = []
    if "f1_diff" in summary and summary["f1_diff"].notna().any():
        figures += plots.forest(summary, baseline_label, palette, folder)
    figures += plots.scores(summary, frame, palette, folder)
    figures += plots.curves(curves, labels, palette, folder, wall_clock)
    figures += plots.cost(frame, labels, palette, folder, wall_clock, memory_per_run(frame))
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


def _write_tables(summary: pd.DataFrame, caption: str, label: str, out: Path, formats: Sequence[str],
                  columns: tuple[str, ...]) -> list[Path]:
    texts = {"md": ("table.md", lambda: to_markdown(summary)),
             "latex": ("table.tex", lambda: to_latex(summary, caption, label, columns)),
             "csv": ("table.csv", lambda: to_csv(summary))}
    written = []
    for name in formats:
        if name in texts:
            path = out / texts[name][0]
            path.write_text(texts[name][1](), encoding="utf-8")
            written.append(path)
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


def _report_markdown(name: str, scale: str, about: str, summary, warnings: list[str], frame,
                     pngs: list[Path]) -> str:
    lines = [f"# {name} ({scale})", "", about, ""]
    for warning in warnings:  # a blank line apart: consecutive quoted lines would run into one paragraph
        lines += [f"> **Warning:** {warning}", ""]
    lines += [to_markdown(summary), METHOD, ""]
    lines += [f"* {line}" for line in _differences(summary)] + [""]
    lines += [f"![{path.stem}]({path.name})" for path in pngs] + [""]
    lines += ["## Environment", "", *_environment_lines(frame), ""]
    return "\n".join(lines)


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


def _report_html(name: str, scale: str, about: str, summary, warnings: list[str], frame, pngs: list[Path]) -> str:
    """One self-contained page: styles inline, plots embedded, no script, font or style from elsewhere."""
    cells = '<div class="wide">' + to_html(summary) + "</div>"
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(name)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(name)} ({scale})</h1>",
             f"<p>{html.escape(about)}</p>"]
    parts += [f'<p class="warning">{html.escape(warning)}</p>' for warning in warnings]
    parts += [cells, f"<p>{html.escape(METHOD)}</p>", "<ul>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in _differences(summary)] + ["</ul>"]
    parts += [f'<img alt="{path.stem}" src="{png_data_uri(path)}">' for path in pngs]
    parts += ["<h2>Environment</h2><ul>"]
    parts += [f"<li>{html.escape(line[2:])}</li>" for line in _environment_lines(frame)]
    parts += ["</ul></body></html>"]
    return "\n".join(parts) + "\n"


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def shared_baseline(reports: list[Report]) -> list[Report]:
    """The reports whose baseline is the same configuration as the first's: those one table can hold."""
    def baseline_config(report: Report) -> str:
        [run] = [r for r in report.study.runs(report.scale, seeds=[0]) if r.variant == report.baseline]
        return json.dumps(run.config.to_dict(), sort_keys=True)

    first = baseline_config(reports[0])
    return [report for report in reports if baseline_config(report) == first]


def study_names(reports: list[Report]) -> str:
    return ", ".join(report.study.name for report in reports)


def write_combined(shared: list[Report], out: Path, formats: Sequence[str] = FORMATS,
                   columns: tuple[str, ...] = COMPACT) -> tuple[pd.DataFrame, list[Path]]:
    """One table (under out/combined/) of studies whose baselines are one configuration (`shared_baseline`: the
    paper's ablation table): their baseline once, then every other variant of each, with its difference to its
    own study's baseline. Returns the table's summary and the files written."""
    rows = [shared[0].summary[shared[0].summary["baseline"]]]
    rows += [report.summary[~report.summary["baseline"]] for report in shared]
    combined = pd.concat(rows, ignore_index=True)
    # "clearly best" was judged within each study; across studies only the differences to the baseline compare
    combined[[column for column in combined if column.endswith("_best")]] = False
    folder = out / "combined"
    folder.mkdir(parents=True, exist_ok=True)
    caption = f"{study_names(shared)}: each change against the shared baseline"
    return combined, _write_tables(combined, caption, "tab:combined", folder, formats, columns)
