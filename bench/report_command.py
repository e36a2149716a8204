"""`python -m bench report STUDY ...`: a study's records as a table, plots and report.md for a paper."""

from __future__ import annotations

import argparse
import base64
import html
import json
from pathlib import Path

import pandas as pd

from bench import plots
from bench.records import (
    RUNS,
    RecordError,
    curves_frame,
    memory_per_run,
    mixed_hardware,
    records_frame,
    wall_clock_comparable,
)
from bench.report import (
    COMPACT,
    TABLE_COLUMNS,
    base_settings,
    conclusions,
    default_baseline,
    seed_warnings,
    summarise,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
    variant_labels,
)
from bench.study import SCALES, Study, StudyError, available, distinct_runs, is_search, load_study

REPORTS = Path("results") / "reports"
MEMORY_LEFT_OUT = ("peak memory on a CPU is the process's peak RSS so far, so a run after others in one process "
                   "reports the largest of them: not compared between variants (no bold, not plotted)")
WALL_CLOCK_LEFT_OUT = ("wall clock on a shared machine: some ok runs were trained beside others and had no time "
                       "budget, so their times are not plotted and no cost column is bold")
FORMATS = ("md", "latex", "csv", "html")
METHOD = ("EM and F1: mean ± sd over the ok seeds, 95% CI from Student's t. ΔEM, ΔF1: the difference to the "
          "baseline with its 95% CI, paired by seed (t on the per-seed differences) over the n seeds both have ok "
          "runs for, where there are at least two, Welch's t otherwise. Bold: better than every other row, with "
          "every paired 95% interval excluding 0 (cost columns only for runs timed alone or time-bounded). "
          "Decimals follow the uncertainty: the sd beside a mean, the half-width of an interval. Failed, "
          "out-of-memory and diverged runs are counted in the seeds column, never averaged.")


def register(commands) -> None:
    report = commands.add_parser(
        "report", help="a study's records as a table, plots and report.md for a paper",
        description="Read a study's records and write, under OUT/STUDY/: the table (Markdown, LaTeX with booktabs, "
                    "CSV, HTML), plots (PNG and PDF: a forest plot of each variant's difference to the baseline, "
                    "scores, curves, cost; time panels only for runs timed alone or time-bounded) and report.md. "
                    + METHOD,
    )
    report.add_argument("studies", nargs="*", metavar="STUDY",
                        help="study names or .toml paths; several make one combined table of those that share "
                             "a baseline configuration")
    report.add_argument("--all", action="store_true", help="every study that has records")
    report.add_argument("--scale", choices=SCALES, help="the records of this scale (needed where a study has "
                                                        "records at several)")
    report.add_argument("--baseline", help="the variant differences are taken to (default: the base of a "
                                           "one-at-a-time study, else the first variant)")
    report.add_argument("--format", type=_formats, default=list(FORMATS),
                        help=f"comma-separated, from {','.join(FORMATS)} (default: all)")
    report.add_argument("--columns", type=_columns, default=COMPACT,
                        help=f"the LaTeX table's columns, comma-separated, from {','.join(TABLE_COLUMNS)} (default: "
                             f"{','.join(COMPACT)}; Markdown and HTML hold all but n, CSV every number)")
    report.add_argument("--records", type=Path, default=RUNS,
                        help="records root (default: results/runs), or one study's folder of records by another "
                             "name (results/reference/faithfulness-cpu)")
    report.add_argument("--out", type=Path, default=REPORTS, help="reports root (default: results/reports)")
    report.add_argument("--storage", help="for an Optuna search: its storage URL (default: as bench study's)")
    report.add_argument("--mixed-hardware", action="store_true",
                        help="compare time-bounded runs (train.minutes) made on different hardware models")
    report.set_defaults(handler=run_report)


def _formats(text: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",")]
    unknown = [item for item in chosen if item not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(FORMATS)}")
    return chosen


def _columns(text: str) -> tuple[str, ...]:
    chosen = tuple(item.strip() for item in text.split(","))
    unknown = [item for item in chosen if item not in TABLE_COLUMNS]
    if unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: {unknown[0]!r} is no column (choose from "
                                         f"{','.join(TABLE_COLUMNS)})")
    if "label" not in chosen or len(set(chosen)) < len(chosen):
        raise argparse.ArgumentTypeError(f"{text!r}: name each column once, label included")
    return chosen


def run_report(args: argparse.Namespace) -> None:
    names = args.studies or []
    if args.all:
        names = [name for name in available() if (args.records / name).is_dir()]
    if not names:
        raise StudyError("name a study (or several, or --all)")
    searches = [name for name in names if is_search(name)]
    for name in searches:
        write_search(name, args)
    reports = [write_report(load_study(name), args) for name in names if name not in searches]
    if len(reports) > 1:
        write_combined(reports, args)


def write_search(name: str, args: argparse.Namespace) -> None:
    """The report of an Optuna search: read from its storage and its trials' records."""
    import optuna

    from bench.search import load_search, optuna_name
    from bench.search_command import storage_url
    from bench.search_report import write_search_report

    search = load_search(name)
    url = storage_url(search, args.storage)
    scales = [scale for scale in SCALES if optuna_name(search, scale) in optuna.get_all_study_names(url)]
    if args.scale not in (None, *scales) or not scales or (args.scale is None and len(scales) > 1):
        raise RecordError(f"{url}: the search {search.name} has trials at scale(s) {', '.join(scales) or 'none'}"
                          + ("; choose one with --scale" if len(scales) > 1 else ""))
    scale = args.scale or scales[0]
    study = optuna.load_study(study_name=optuna_name(search, scale), storage=url)
    written = write_search_report(search, scale, study, args.records, args.out / search.name)
    print((args.out / search.name / "best.md").read_text(encoding="utf-8"))
    print(f"wrote {args.out / search.name}/: {', '.join(path.name for path in written)}")


def _scale(study: Study, frame, asked: str | None, records: Path) -> str:
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


def write_report(study: Study, args: argparse.Namespace) -> dict:
    """Write one study's report; returns what the combined table needs."""
    frame = records_frame(study.name, args.records)
    scale = _scale(study, frame, args.scale, args.records)
    frame = frame[frame["scale"] == scale]
    mixed = mixed_hardware(frame)
    if mixed and not args.mixed_hardware:
        raise RecordError(f"{args.records / study.name}: {mixed}; compare them anyway with --mixed-hardware")
    labels = variant_labels(study, scale)
    baseline = _baseline(study, labels, args.baseline)
    summary = summarise(frame, study, baseline, scale)
    out = args.out / study.name
    out.mkdir(parents=True, exist_ok=True)
    caption = f"{study.name} ({scale}): {study.description}"
    written = _write_tables(summary, caption, f"tab:{study.name}", out, args.format, args.columns)
    palette = plots.colours(list(summary["label"]))
    figures = []  # report.md shows them in this order: the differences first, they are the study's answer
    if "f1_diff" in summary and summary["f1_diff"].notna().any():
        figures += plots.forest(summary, labels[baseline], palette, out)
    figures += plots.scores(summary, frame, palette, out)
    wall_clock = wall_clock_comparable(frame)
    curve = curves_frame(study.name, args.records)
    figures += plots.curves(curve[curve["scale"] == scale], labels, palette, out, wall_clock)
    figures += plots.cost(frame, labels, palette, out, wall_clock, memory_per_run(frame))
    same_runs: list[str] = []  # variants this scale makes the same run as another: they have no records
    distinct_runs(study.name, study.runs(scale, seeds=study.seeds[:1]), log=same_runs.append)
    warnings = same_runs + _warnings(frame, summary, mixed, wall_clock)
    pngs = [path for path in figures if path.suffix == ".png"]
    about = study.description
    if study.design == "one-at-a-time" and len(study.axes) > 1:
        about = f"{about.rstrip('.')}. Base configuration: {base_settings(study, scale)}."
    (out / "report.md").write_text(_report_markdown(study.name, scale, about, summary, warnings, frame, pngs),
                                   encoding="utf-8")
    if "html" in args.format:
        (out / "report.html").write_text(_report_html(study.name, scale, about, summary, warnings, frame, pngs),
                                         encoding="utf-8")
        written.append(out / "report.html")
    print(f"{study.name} ({scale}), baseline {labels[baseline]}:")
    print(to_markdown(summary))
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"wrote {out}/: report.md, {', '.join(p.name for p in written + figures)}")
    return {"study": study, "summary": summary, "scale": scale, "baseline": baseline}


def _baseline(study: Study, labels: dict[str, str], asked: str | None) -> str:
    if asked is None:
        return default_baseline(study)
    for variant, label in labels.items():
        if asked in (variant, label):
            return variant
    raise StudyError(f"--baseline {asked!r}: no such variant in {study.name} (variants: "
                     f"{'; '.join(labels.values())})")


def _write_tables(summary, caption: str, label: str, out: Path, formats: list[str],
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


def write_combined(reports: list[dict], args: argparse.Namespace) -> None:
    """One table for the studies whose baselines are the same configuration (the paper's ablation table):
    their baseline once, then every other variant of each, with its difference to its own study's baseline."""
    def baseline_config(report: dict) -> str:
        study, baseline = report["study"], report["baseline"]
        [run] = [r for r in study.runs(report["scale"], seeds=[0]) if r.variant == baseline]
        return json.dumps(run.config.to_dict(), sort_keys=True)

    first = baseline_config(reports[0])
    shared = [report for report in reports if baseline_config(report) == first]
    for report in reports:
        if report not in shared:
            print(f"{report['study'].name}: its baseline is another configuration; left out of the combined table")
    if len(shared) < 2:
        return
    rows = [shared[0]["summary"][shared[0]["summary"]["baseline"]]]
    rows += [report["summary"][~report["summary"]["baseline"]] for report in shared]
    combined = pd.concat(rows, ignore_index=True)
    # "clearly best" was judged within each study; across studies only the differences to the baseline compare
    combined[[column for column in combined if column.endswith("_best")]] = False
    out = args.out / "combined"
    out.mkdir(parents=True, exist_ok=True)
    names = ", ".join(report["study"].name for report in shared)
    written = _write_tables(combined, f"{names}: each change against the shared baseline", "tab:combined", out,
                            args.format, args.columns)
    print(f"combined ({names}):")
    print(to_markdown(combined))
    print(f"wrote {', '.join(str(path) for path in written)}")
