"""The README's figures, written from the committed records by the report's own functions.

Each block of README.md between `<!-- figures: NAME -->` and `<!-- /figures: NAME -->` is this script's output
for the records FIGURES names: the table `bench report` writes (its compact columns), what each difference to
the baseline shows with its 95% interval and pairs, the report's warnings of too few seeds, and for studies
with curves the scores at each evaluation. The README then cannot state more, or other numbers, than the
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


def rewrite(text: str) -> tuple[str, list[str]]:
    """`text` with every block written afresh, and the names of the blocks that changed; a block missing
    from the text is an error."""
    changed = []
    for name, figures in FIGURES.items():
        pattern = _pattern(name)
        found = pattern.search(text)
        if found is None:
            raise SystemExit(f"README: no block <!-- figures: {name} --> ... <!-- /figures: {name} -->")
        fresh = block(figures)
        if found.group(2) != fresh:
            changed.append(name)
        text = text[:found.start(2)] + fresh + text[found.end(2):]
    return text, changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    args = parser.parse_args()
    text, changed = rewrite(args.readme.read_text(encoding="utf-8"))
    if args.check:
        if changed:
            sys.exit(f"{args.readme}: stale figures ({', '.join(changed)}): run python benchmarks/readme_figures.py")
        print(f"{args.readme}: every figure block matches its records")
        return
    args.readme.write_text(text, encoding="utf-8")
    print(f"{args.readme}: rewrote {', '.join(changed) or 'nothing (all current)'}")


if __name__ == "__main__":
    main()
