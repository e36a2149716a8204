"""The LaTeX table a paper takes as it is, from the committed faithfulness records: numbers in math mode with
true signs, one number of decimals per column, n said once, a caption of one sentence of statistics that
explains the mark and says nothing of the tool, and a table that fits one column of a two-column article
without \\resizebox (compiled where pdflatex is installed)."""

import re
import shutil
import subprocess

import pandas as pd
import pytest

from bench.environment import ROOT
from bench.records import records_frame
from bench.reporting.contents import COMPACT
from bench.reporting.tables import summarise, table, to_latex
from bench.study import load_study

ABOUT = ("faithfulness (cpu): The fixes of the model-faithfulness review, each undone on its own, then all undone "
         "together. Base configuration: conv_activation = relu, dropout_placement = nlplearn, vocabulary = train+dev.")
MATH = re.compile(r"\$[^$]*\$")


@pytest.fixture(scope="module")
def summaries() -> dict[str, pd.DataFrame]:
    """The faithfulness summary under each correction: Holm resolves nothing, uncorrected one F1 difference."""
    frame = records_frame("faithfulness", ROOT / "results" / "reference" / "faithfulness-cpu")
    study = load_study("faithfulness")
    return {correction: summarise(frame[frame["scale"] == "cpu"], study, "base", "cpu", correction=correction)
            for correction in ("holm", "none")}


def _caption(latex: str) -> str:
    return latex.split(r"\caption{", 1)[1].split("}\n", 1)[0]


def test_every_number_is_in_math_mode_with_true_signs(summaries):
    cells = table(summaries["none"], "latex", COMPACT)
    for header in ("EM", "F1", r"$\Delta$F1 [95\% CI]"):
        for cell in cells[header]:
            outside = MATH.sub("", cell)
            assert not re.search(r"[\d+\-]", outside.replace(r"@{}r@{}", "")), cell
    row = cells[r"$\Delta$F1 [95\% CI]"].iloc[2]  # dropout_placement = outputs, resolved uncorrected
    assert "$-0.87^{*}$" in row and r"[$-1.33$, $-0.41$]" in row
    assert r"[$-0.72$, $+2.11$]" in cells[r"$\Delta$F1 [95\% CI]"].iloc[1]
    assert r"$\pm 0.32$" in cells["F1"].iloc[0] and "−" not in "".join(cells.to_numpy().ravel())


def test_each_numeric_column_shows_one_number_of_decimals(summaries):
    """The faithfulness F1 column mixes sds of 0.14 (two decimals) and 0.6 (one): all show two."""
    cells = table(summaries["holm"], "latex", ("label", "exact", "f1", "f1_ci", "f1_diff"))
    for header in cells.columns[1:]:
        numbers = [re.search(r"\d[\d{},]*(\.\d+)?", math) for cell in cells[header] for math in MATH.findall(cell)]
        places = {len(number.group(1) or ".") - 1 for number in numbers}
        assert len(places) == 1, (header, places)
    assert set(cells["F1"].str.extract(r"\$(\d+\.\d+)\$", expand=False).str.len()) == {5}  # 28.02, 27.15, ...


def test_n_is_said_once_and_the_caption_is_one_sentence_of_statistics_without_tool_notes(summaries):
    latex = to_latex(summaries["holm"], ABOUT, "tab:faithfulness")
    caption = _caption(latex)
    assert caption.startswith(r"faithfulness (cpu): The fixes") and r"conv\_activation = relu" in caption
    statistics = caption.split("train+dev. ", 1)[1]
    assert statistics.count(". ") == 0 and statistics.endswith(".")  # one sentence
    assert r"mean $\pm$ sd over $n = 3$ seeds" in statistics and latex.count("n = 3") == 1
    assert r"95\% CI" in statistics and "paired $t$" in statistics
    assert "no difference resolved ($p < 0.05$) after Holm's correction over 4 comparisons" in statistics
    for note in ("Bold", "bold", "Decimals", r"\textbf"):
        assert note not in latex, note  # nothing is bold here, and how decimals are chosen is the tool's business


def test_the_mark_is_explained_where_a_difference_carries_it(summaries):
    caption = _caption(to_latex(summaries["none"], ABOUT, "tab:f"))
    assert r"$^{*}$: resolved, $p < 0.05$ uncorrected" in caption
    holm = summaries["holm"].copy()
    holm.loc[2, "f1_diff_resolved"] = True  # as a resolving table would have it
    assert r"$^{*}$: resolved, $p < 0.05$ after Holm's correction over 4 comparisons" in _caption(
        to_latex(holm, ABOUT, "tab:f"))
    holm.loc[2, "f1_best"] = True
    assert "bold: better than every other row" in _caption(to_latex(holm, ABOUT, "tab:f"))


def test_comments_come_first_and_more_columns_span_the_page(summaries):
    latex = to_latex(summaries["holm"], ABOUT, "tab:f", comments=["ran: 15 runs", "again: python -m bench report"])
    assert latex.startswith("% ran: 15 runs\n% again: python -m bench report\n\\begin{table}[t]\n")
    assert r"\begin{tabular}{@{}p{0.36\linewidth}rrrr@{}}" in latex and r"\resizebox" not in latex
    wider = to_latex(summaries["holm"], "w", "tab:w",
                     columns=("label", "runs", "exact", "exact_ci", "f1", "f1_ci", "f1_diff"))
    assert r"\begin{table*}" in wider and r"\begin{tabular}{@{}llrrrrr@{}}" in wider


def test_a_study_column_is_filled_where_the_summary_names_studies(summaries):
    assert list(table(summaries["holm"], "md", ("study", "label"))["study"]) == [""] * 5
    named = summaries["holm"].assign(study="faithfulness_x")
    assert set(table(named, "latex", ("study", "label"))["study"]) == {r"faithfulness\_x"}


@pytest.mark.parametrize("correction", ["holm", "none"])
def test_the_compact_table_fits_a_column_of_a_two_column_article(summaries, correction, tmp_path):
    engine = shutil.which("pdflatex")
    if engine is None:
        pytest.skip("no TeX engine installed (pdflatex): the LaTeX was checked, not compiled")
    summary = summaries[correction].copy()
    summary.loc[2, "f1_best"] = True  # a bold cell too: bold math must fit as well
    latex = to_latex(summary, ABOUT, "tab:faithfulness", comments=["what ran"])
    (tmp_path / "paper.tex").write_text("\\documentclass[twocolumn]{article}\n\\usepackage{booktabs}\n"
                                        "\\begin{document}\n" + latex + "Text.\n\\end{document}\n")
    subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log, log[log.find("Overfull"):][:600]
