"""`python -m bench report STUDY ...`: a study's records as a table, plots and report.md for a paper; an Optuna
search's trials as its report. The reports themselves are bench.reporting's, imported when the command runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bench.records import RUNS
from bench.reporting.contents import COMPACT, FORMATS, METHOD, TABLE_COLUMNS
from bench.study_files import SCALES, StudyError, available, is_search

if TYPE_CHECKING:  # for annotations only: bench.reporting loads pandas, the command imports it when it runs
    from bench.reporting.document import Report

REPORTS = Path("results") / "reports"


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
    report.add_argument("--storage", help="for an Optuna search: its storage URL (default: as bench search's)")
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
        _report_search(name, args)
    reports = [_report_study(name, args) for name in names if name not in searches]
    if len(reports) > 1:
        _report_combined(reports, args)


def _report_search(name: str, args: argparse.Namespace) -> None:
    """The report of an Optuna search: read from its storage and its trials' records."""
    from bench.reporting.search import report_search
    from bench.search import load_search, storage_url

    search = load_search(name)
    folder = args.out / search.name
    written = report_search(search, storage_url(search, args.storage), args.scale, args.records, folder)
    print((folder / "best.md").read_text(encoding="utf-8"))
    print(f"wrote {folder}/: {', '.join(path.name for path in written)}")


def _report_study(name: str, args: argparse.Namespace) -> Report:
    """Write one study's report and say what it found; returns it."""
    from bench.reporting.document import write_report
    from bench.reporting.tables import to_markdown
    from bench.study import load_study

    report = write_report(load_study(name), args.records, args.out, scale=args.scale, baseline=args.baseline,
                          formats=args.format, columns=args.columns, compare_mixed_hardware=args.mixed_hardware)
    print(f"{report.study.name} ({report.scale}), baseline {report.baseline_label}:")
    print(to_markdown(report.summary))
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(f"wrote {report.folder}/: report.md, {', '.join(path.name for path in report.written)}")
    return report


def _report_combined(reports: list[Report], args: argparse.Namespace) -> None:
    """One table of the studies whose baselines are one configuration; the others are said to be left out."""
    from bench.reporting.document import shared_baseline, study_names, write_combined
    from bench.reporting.tables import to_markdown

    shared = shared_baseline(reports)
    for report in reports:
        if report not in shared:
            print(f"{report.study.name}: its baseline is another configuration; left out of the combined table")
    if len(shared) < 2:
        return
    combined, written = write_combined(shared, args.out, args.format, args.columns)
    print(f"combined ({study_names(shared)}):")
    print(to_markdown(combined))
    print(f"wrote {', '.join(str(path) for path in written)}")
