"""`python -m bench report STUDY ...`: a study's records as a table, plots and report.md for a paper; an Optuna
search's trials as its report. The reports themselves are bench.reporting's, imported when the command runs."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from bench.commands.common import positive_int
from bench.records import RUNS, RecordError
from bench.reporting.contents import COMPACT, CORRECTIONS, FULL, METHOD, TABLE_COLUMNS
from bench.reporting.formats import FORMATS
from bench.scales import SCALES
from bench.study import StudyError, available, is_search

if TYPE_CHECKING:  # for annotations only: bench.reporting loads pandas, the command imports it when it runs
    from bench.reporting.document import Report, ReportOptions

REPORTS = Path("results") / "reports"


COMMANDS = ("report",)  # what register() adds, for bench.cli


def register(commands) -> None:
    report = commands.add_parser(
        "report", help="a study's records as a table, plots and report.md for a paper",
        description="Read a study's records and write, under OUT/STUDY/: report.md (what ran, the table, the "
                    "differences, the environment, how to reproduce it and what to cite), plots (PNG and PDF: a "
                    "forest plot of each variant's difference to the baseline, scores, curves, cost; time panels "
                    "only for runs timed alone or time-bounded) and the files of each --format. " + METHOD,
    )
    report.add_argument("studies", nargs="*", metavar="STUDY",
                        help="study names or .toml paths; several make one combined table (OUT/combined/), each "
                             "row under the baseline its study trained")
    report.add_argument("--all", action="store_true",
                        help="every study that has records (at --scale: the others are named and skipped)")
    report.add_argument("--scale", choices=SCALES, help="the records of this scale (needed where a study has "
                                                        "records at several)")
    report.add_argument("--baseline", help="the variant differences are taken to (default: the base of a "
                                           "one-at-a-time study, else the first variant)")
    report.add_argument("--format", type=_formats, default=list(FORMATS),
                        help=f"comma-separated, from {','.join(FORMATS)} (default: all): "
                             + "; ".join(chosen.help() for chosen in FORMATS.values()).replace("%", "%%"))
    report.add_argument("--columns", type=_columns, default=COMPACT,
                        help=f"the LaTeX table's columns, comma-separated, from {','.join(CHOOSABLE)} (default: "
                             f"{','.join(COMPACT)}; Markdown and HTML hold all but n and study, CSV every number)")
    report.add_argument("--records", type=Path, default=RUNS,
                        help="records root (default: results/runs), or one study's folder of records by another "
                             "name (results/reference/faithfulness-cpu)")
    report.add_argument("--out", type=Path, default=REPORTS, help="reports root (default: results/reports)")
    report.add_argument("--storage", help="for an Optuna search: its storage URL (default: as bench search's)")
    report.add_argument("--correction", choices=CORRECTIONS, default="holm",
                        help="for multiple comparisons: holm (default: Holm over each table's comparisons of a "
                             "metric; the words, bold and marks follow it) or none")
    report.add_argument("--labels", type=_labels, default={}, metavar="VARIANT=NAME,...",
                        help="display names for tables and plots, e.g. 'model.hidden=100=hidden 100' (a variant's "
                             "name or label, '=', its name in the paper; comma-separated; over a study file's "
                             "[labels])")
    report.add_argument("--figure-width", type=_inches, default=6.9, metavar="INCHES",
                        help="figure width (default 6.9: a two-column paper's text width; 3.3 for one column)")
    report.add_argument("--dpi", type=positive_int, default=300, help="PNG resolution (default: 300)")
    report.add_argument("--mixed-hardware", action="store_true",
                        help="compare time-bounded runs (train.minutes) made on different hardware models")
    report.set_defaults(handler=run_report)


def _formats(text: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",")]
    unknown = [item for item in chosen if item not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(FORMATS)}")
    return chosen


CHOOSABLE = tuple(column for column in TABLE_COLUMNS if column != "study")  # the combined table adds study itself


def _columns(text: str) -> tuple[str, ...]:
    chosen = tuple(item.strip() for item in text.split(","))
    unknown = [item for item in chosen if item not in CHOOSABLE]
    if unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: {unknown[0]!r} is no column (choose from "
                                         f"{','.join(CHOOSABLE)})")
    if "label" not in chosen or len(set(chosen)) < len(chosen):
        raise argparse.ArgumentTypeError(f"{text!r}: name each column once, label included")
    return chosen


def _labels(text: str) -> dict[str, str]:
    """`a=b,c=d` -> {a: b, c: d}; a name may hold "=" (variant names do): the last "=" parts name from label."""
    pairs = [item.rpartition("=") for item in text.split(",")]
    if any(not key.strip() or not name.strip() for key, _, name in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: expected VARIANT=NAME pairs, comma-separated")
    return {key.strip(): name.strip() for key, _, name in pairs}


def _inches(text: str) -> float:
    try:
        width = float(text)
    except ValueError:
        width = 0.0
    if not 1.0 <= width <= 20.0:
        raise argparse.ArgumentTypeError(f"{text!r}: a width in inches, from 1 to 20 (3.3: one column, 6.9: two)")
    return width


def run_report(args: argparse.Namespace) -> None:
    names = args.studies or []
    if args.all:
        if names:
            raise StudyError("name studies or give --all, not both")
        names = [name for name in available() if (args.records / name).is_dir()]
        if not names:
            raise RecordError(f"{args.records}: no study has records there")
    if not names:
        raise StudyError("name a study (or several, or --all)")
    reports, skipped = [], []
    for name in names:
        try:
            if is_search(name):
                _report_search(name, args)
            else:
                reports.append(_report_study(name, args))
        except (RecordError, StudyError) as error:
            if not args.all:
                raise
            skipped.append(f"skipped {name}: {error}")
    _refuse_unused_labels(args.labels, reports)
    if len(reports) > 1:
        _report_combined(reports, args)
    for line in skipped:
        print(line)


def _report_search(name: str, args: argparse.Namespace) -> None:
    """The report of an Optuna search: read from its storage and its trials' records."""
    from bench.reporting.search import report_search
    from bench.search.definition import load_search
    from bench.search.storage import storage_url

    search = load_search(name)
    folder = args.out / search.name
    written = report_search(search, storage_url(search, args.storage), args.scale, records_root=args.records,
                            out=folder)
    print((folder / "best.md").read_text(encoding="utf-8"))
    print(f"wrote {folder}/: {', '.join(path.name for path in written)}")


def _report_study(name: str, args: argparse.Namespace) -> Report:
    """Write one study's report and say what it found; returns it."""
    from bench.reporting.document import write_report
    from bench.reporting.tables import to_markdown
    from bench.study import load_study

    report = write_report(load_study(name), args.records, args.out, _options(args, [name]))
    print(f"{report.study.name} ({report.scale}), baseline {report.baseline_label}:")
    print(to_markdown(report.summary))
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(f"wrote {report.folder}/: report.md, {', '.join(path.name for path in report.written)}")
    return report


def _refuse_unused_labels(labels: dict[str, str], reports: list[Report]) -> None:
    """Of several studies, each takes the --labels keys that name its variants: a key that names a variant of
    none is a typo, said in one line."""
    from bench.reporting.tables import names_a_variant, variant_labels

    defaults = [variant_labels(report.study, report.scale) for report in reports]
    for key in labels:
        if reports and not any(names_a_variant(key, default, {**default, **report.study.labels})
                               for default, report in zip(defaults, reports, strict=True)):
            raise StudyError(f"--labels {key!r}: no such variant in {', '.join(r.study.name for r in reports)}")


def _options(args: argparse.Namespace, names: list[str]) -> ReportOptions:
    """The report's options, with the command that writes it again (for its reproduce lines)."""
    from bench.reporting.document import ReportOptions
    from bench.reporting.plots import FigureSize

    return ReportOptions(scale=args.scale, baseline=args.baseline, formats=args.format, columns=args.columns,
                         compare_mixed_hardware=args.mixed_hardware, correction=args.correction,
                         labels=args.labels, others_may_name=args.all or len(args.studies or []) > 1,
                         size=FigureSize(args.figure_width, args.dpi), command=_command(args, names))


def _command(args: argparse.Namespace, names: list[str]) -> str:
    """`python -m bench report NAMES` with the options that change what is written (not --out, --format)."""
    words = ["python", "-m", "bench", "report", *names]
    for flag, value, default in (("--scale", args.scale, None), ("--records", args.records, RUNS),
                                 ("--baseline", args.baseline, None), ("--correction", args.correction, "holm"),
                                 ("--columns", ",".join(args.columns), ",".join(COMPACT)),
                                 ("--figure-width", args.figure_width, 6.9), ("--dpi", args.dpi, 300)):
        if value != default:
            words += [flag, str(value)]
    if args.labels:
        words += ["--labels", ",".join(f"{key}={name}" for key, name in args.labels.items())]
    if args.mixed_hardware:
        words.append("--mixed-hardware")
    return shlex.join(words)


def _report_combined(reports: list[Report], args: argparse.Namespace) -> None:
    """One table of the studies, each row under the baseline its study trained."""
    from bench.reporting.document import study_names, write_combined
    from bench.reporting.tables import to_markdown

    scales = {report.scale for report in reports}
    if len(scales) > 1:  # other data, models and budgets: no one table compares them
        print("no combined table: the studies' records are at different scales ("
              + ", ".join(f"{report.study.name}: {report.scale}" for report in reports) + "); choose one with --scale")
        return
    combined, written, notes = write_combined(reports, args.out,
                                              _options(args, [report.study.name for report in reports]))
    print(f"combined ({study_names(reports)}):")
    print(to_markdown(combined, ("study", *FULL)))
    for line in notes:
        print(f"note: {line}")
    print(f"wrote {', '.join(str(path) for path in written)}")
