"""The README's figures, written from the committed records by the report's own functions.

Each block of README.md or docs/model.md between `<!-- figures: NAME -->` and `<!-- /figures: NAME -->` is this
script's output for the records FIGURES names: the table `bench report` writes (its compact columns), what each
difference to the baseline shows with its 95% interval and pairs, the report's warnings of too few seeds, and for
studies with curves the scores at each evaluation. The README then cannot state more, or other numbers, than the
report of those records does.

    python benchmarks/readme_figures.py            # rewrite the blocks
    python benchmarks/readme_figures.py --check    # exit 1 naming each block that differs (a test runs this)
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.records import curves_frame, records_frame  # noqa: E402 - after the path, as a script
from bench.reporting.tables import (  # noqa: E402
    COMPACT,
    conclusions,
    curve_tables,
    default_baseline,
    seed_warnings,
    summarise,
    to_markdown,
    variant_labels,
)
from bench.study import load_study  # noqa: E402


@dataclass(frozen=True)
class Figures:
    study: str
    scale: str
    records: str  # a folder of the study's records, relative to the repository
    curves: bool = False  # also the scores at each evaluation


FIGURES = {
    "demo": Figures("ablation_char_cnn", "smoke", "results/reference/ablation_char_cnn-smoke"),
    "faithfulness": Figures("faithfulness", "cpu", "results/reference/faithfulness-cpu", curves=True),
    "faithfulness_relu": Figures("faithfulness_relu", "cpu", "results/reference/faithfulness-relu-cpu-6000",
                                 curves=True),
}
README_COLUMNS = tuple("runs" if column == "n" else column for column in COMPACT)  # how each seed ended


def block(figures: Figures) -> str:
    """The Markdown of one block: the table, the differences in words, the curves."""
    study = load_study(figures.study)
    folder = ROOT / figures.records
    frame = records_frame(study.name, folder)
    frame = frame[frame["scale"] == figures.scale]
    baseline = default_baseline(study)
    summary = summarise(frame, study, baseline, figures.scale)
    parts = [f"Records: `{figures.records}/` ({len(frame)} runs, scale {figures.scale}); "
             f"`python -m bench report {study.name} --scale {figures.scale} --records {figures.records}` writes "
             "their whole report.", "", to_markdown(summary, README_COLUMNS)]
    parts += [f"* {line}" for line in conclusions(summary)] + [""]
    warnings = [warning for _, row in summary.iterrows() for warning in seed_warnings(row)]
    for warning in warnings:  # a blank line apart: consecutive quoted lines would run into one paragraph
        parts += [f"> **Warning:** {warning}", ""]
    if figures.curves:
        curves = curves_frame(study.name, folder)
        parts.append(curve_tables(curves[curves["scale"] == figures.scale], variant_labels(study, figures.scale),
                                  baseline))
    return "\n".join(parts).rstrip("\n") + "\n"


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- figures: {re.escape(name)} -->\n)(.*?)(<!-- /figures: {re.escape(name)} -->)", re.S)


def rewrite(text: str) -> tuple[str, list[str], list[str]]:
    """`text` with every block it holds written afresh, the names of the blocks it holds and of those that
    changed."""
    found, changed = [], []
    for name, figures in FIGURES.items():
        match = _pattern(name).search(text)
        if match is None:
            continue
        found.append(name)
        fresh = block(figures)
        if match.group(2) != fresh:
            changed.append(name)
        text = text[:match.start(2)] + fresh + text[match.end(2):]
    return text, found, changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, action="append", dest="files",
                        help="a page holding figure blocks (repeatable; default: README.md and docs/model.md)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    args = parser.parse_args()
    files = args.files or [ROOT / "README.md", ROOT / "docs" / "model.md"]
    pages = {path: rewrite(path.read_text(encoding="utf-8")) for path in files}
    missing = set(FIGURES) - {name for _, found, _ in pages.values() for name in found}
    if missing:
        raise SystemExit(f"no block <!-- figures: NAME --> ... <!-- /figures: NAME --> for "
                         f"{', '.join(sorted(missing))} in {', '.join(map(str, files))}")
    stale = [f"{path} ({', '.join(changed)})" for path, (_, _, changed) in pages.items() if changed]
    if args.check:
        if stale:
            sys.exit(f"stale figures: {'; '.join(stale)}: run python benchmarks/readme_figures.py")
        print(f"{', '.join(map(str, files))}: every figure block matches its records")
        return
    for path, (text, _, _) in pages.items():
        path.write_text(text, encoding="utf-8")
    print(f"rewrote {'; '.join(stale) or 'nothing (all current)'}")


if __name__ == "__main__":
    main()
