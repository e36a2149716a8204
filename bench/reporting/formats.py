"""The report formats, one entry each in `FORMATS`: the name `--format` takes, the files the format writes, a
line for `--help`, and its writers. Whatever knows a format reads it here: the command line's parsing,
refusal and help (bench.commands.report), which files a study's report and the combined table write
(`document`). Adding a format touches this module alone. Nothing here imports anything heavy: a writer
imports what it needs when it runs, so that `python -m bench report --help` answers at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for annotations only
    import pandas as pd

    from bench.reporting.document import Report


@dataclass(frozen=True)
class Table:
    """One table as the formats write it: a study's, or the combined one of several studies (it has a study
    column)."""

    summary: pd.DataFrame
    caption: str
    label: str  # LaTeX's \label
    columns: tuple[str, ...]  # the LaTeX table's
    comments: Sequence[str]  # what ran and how to make it again: the LaTeX table's % lines


@dataclass(frozen=True)
class Format:
    """One report format: the file its table is written to, in a study's report and in the combined table, and
    the files it adds beside report.md in a study's report only, each with its writer."""

    name: str  # what --format takes
    description: str  # one line for --help: what its files hold
    table_file: str | None = None
    write_table: Callable[[Table], str] | None = None  # table_file's text
    study_files: tuple[str, ...] = ()
    # study_files' texts, in their order, from the report and its PNG plots
    write_study: Callable[[Report, Sequence[Path]], tuple[str, ...]] | None = None

    @property
    def files(self) -> tuple[str, ...]:
        return (*((self.table_file,) if self.table_file else ()), *self.study_files)

    def help(self) -> str:
        """`csv: table.csv, runs.csv (...)`: the format as --help names it."""
        return f"{self.name}: {', '.join(self.files)} ({self.description})"


def _markdown(table: Table) -> str:
    from bench.reporting.contents import FULL
    from bench.reporting.tables import to_markdown

    full = ("study", *FULL) if "study" in table.summary else FULL  # a table of several studies names each row's
    return to_markdown(table.summary, full)


def _latex(table: Table) -> str:
    from bench.reporting.tables import to_latex

    return to_latex(table.summary, table.caption, table.label, columns=table.columns, comments=table.comments)


def _csv(table: Table) -> str:
    from bench.reporting.tables import to_csv

    return to_csv(table.summary)


def _runs_csv(report: Report, pngs: Sequence[Path]) -> tuple[str, ...]:
    from bench.reporting.what_ran import runs_csv

    return (runs_csv(report.frame, report.labels, report.found),)


def _html(report: Report, pngs: Sequence[Path]) -> tuple[str, ...]:
    from bench.reporting.document import report_html

    return (report_html(report, pngs),)


FORMATS: dict[str, Format] = {format_.name: format_ for format_ in (
    Format("md", "the table in Markdown", table_file="table.md", write_table=_markdown),
    Format("latex", "the table in LaTeX with booktabs, what ran and how to make it again as % comments",
           table_file="table.tex", write_table=_latex),
    Format("csv", "the table with every number unrounded; a study's runs, one row each", table_file="table.csv",
           write_table=_csv, study_files=("runs.csv",), write_study=_runs_csv),
    Format("html", "a study's report as one self-contained page, plots embedded", study_files=("report.html",),
           write_study=_html),
)}
