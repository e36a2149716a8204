"""What a report's table claims: labels that say what ran at its scale, bold only where the paired interval
excludes 0 (the same in every format), the pairs behind each difference, decimals the interval allows, and a
LaTeX table a paper can take as it is. Synthetic records (a frame as `records_frame` gives it) except where a
real study file is the point."""

import io
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main as bench_main
from bench.reporting.statistics import decimals, difference_interval
from bench.reporting.tables import (
    COMPACT,
    default_baseline,
    seed_warnings,
    summarise,
    table,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
)
from bench.study import load_study
from bench.study_files import SCALES, StudyError, available, is_search, value_text
from qanet.config import get_value

STUDY = """
description = "three variants"
preset = "smoke"
seeds = [0, 1, 2]
[axes]
"model.hidden" = [64, 48, 32]
"""


def _frame(scores: dict[str, list[float]], alone: bool = False, speed: dict[str, list[float]] | None = None,
           memory: dict[str, list[float]] | None = None, device: str = "cpu") -> pd.DataFrame:
    """Records of `variant -> F1 per seed` (EM 10 lower); `speed`: train examples/s per seed; `memory`: MB."""
    rows = []
    for variant, values in scores.items():
        for seed, f1 in enumerate(values):
            if f1 is None:
                continue
            examples = (speed or {}).get(variant, [100.0] * len(values))[seed]
            megabytes = (memory or {}).get(variant, [900.0] * len(values))[seed]
            rows.append({"variant": variant, "seed": seed, "status": "ok", "exact": f1 - 10, "f1": f1,
                         "train_examples_per_s": examples, "wall_seconds": 6000 / examples, "peak_memory_mb": megabytes,
                         "parameters": 1000, "steps": 500, "timed_alone": alone, "time_bounded": False,
                         "device_kind": device, "id": f"{variant}{seed}"})
    return pd.DataFrame(rows)


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "widths.toml"
    path.write_text(STUDY)
    return load_study(str(path))


BASE, WIDE, NARROW = "base", "model.hidden=48", "model.hidden=32"
SHORT = ["--set", "train.steps=2", "--set", "train.eval_every=2", "--set", "data.synthetic.train_paragraphs=8",
         "--set", "data.synthetic.dev_paragraphs=2", "--set", "train.threads=1"]


# 1. Labels say what ran


def _label_settings(label: str) -> dict[str, str]:
    """`hidden = 64 (base)` or `char_encoder = conv2d, optimizer = adam` -> {short key: value text}."""
    return dict(part.split(" = ", 1) for part in label.removesuffix(" (base)").split(", "))


def _scales_here() -> list[str]:
    scales = []
    for scale in SCALES:
        try:
            load_study("ablation_char_cnn").runs(scale, seeds=[0])
        except StudyError:  # the cpu scale reads ../shared/data: absent on a bare clone
            continue
        scales.append(scale)
    return scales


@pytest.mark.parametrize("scale", _scales_here())
def test_every_shipped_studys_labels_state_the_settings_its_runs_have_at_each_scale(scale):
    """Each label's settings are the configuration the run of that variant has at that scale (ablation_hidden at
    smoke: the base ran hidden 64, not the paper's 128)."""
    checked = 0
    for name in [name for name in available() if not is_search(name)]:
        study = load_study(name)
        runs = study.runs(scale, seeds=study.seeds[:1])
        frame = _frame({run.variant: [50.0] for run in runs})
        summary = summarise(frame.assign(seed=study.seeds[0]), study, default_baseline(study), scale)
        configs = {run.variant: run.config for run in runs}
        keys = {key.rsplit(".", 1)[-1]: key for key in study.axes}
        for _, row in summary.iterrows():
            if row["variant"] in study.named or row["label"] == "base configuration":
                continue
            for short, text in _label_settings(row["label"]).items():
                assert value_text(get_value(configs[row["variant"]], keys[short])) == text, (name, scale, row)
                checked += 1
    assert checked > 10
    if scale == "smoke":
        hidden = load_study("ablation_hidden")
        labels = summarise(_frame({run.variant: [50.0] for run in hidden.runs(scale, seeds=[0])}), hidden, "base",
                           scale)["label"]
        assert "hidden = 64 (base)" in set(labels)


def _smoke_report(tmp_path, name: str, study_text: str) -> Path:
    """Run a tiny study file at the smoke scale and report it (Markdown and CSV): its report folder."""
    study = tmp_path / f"{name}.toml"
    study.write_text(study_text)
    bench_main(["run", str(study), "--scale", "smoke", "--out", str(tmp_path / "runs"), *SHORT])
    bench_main(["report", str(study), "--records", str(tmp_path / "runs"), "--out", str(tmp_path / "reports"),
                "--format", "md,csv"])
    return tmp_path / "reports" / name


def test_a_variant_that_the_scale_makes_the_base_run_is_named_in_the_report(tmp_path):
    """At the smoke scale every run's context is 150, so `context_len = 150` is the base's run: it has no record,
    and the report says why rather than leave the row out in silence."""
    report = _smoke_report(tmp_path, "context", 'description = "context"\npreset = "paper"\nseeds = [0]\n'
                                                '[axes]\n"data.context_len" = [400, 150]\n')
    said = (report / "report.md").read_text()
    assert "> **Warning:** variant 'data.context_len=150' is the same run as 'base' at this scale: left out" in said


def test_the_report_of_a_smoke_study_labels_its_base_with_the_smoke_width(tmp_path):
    """The report's table and its plots' legends take one set of labels: the run's scale's."""
    report = _smoke_report(tmp_path, "hidden", 'description = "width"\npreset = "paper"\nseeds = [0]\n[axes]\n'
                                               '"model.hidden" = [128, 100]\n[with."model.hidden=100"]\n'
                                               '"model.heads" = 4\n')
    labels = list(pd.read_csv(report / "table.csv")["label"])
    assert labels == ["hidden = 64 (base)", "hidden = 100"]


# 2. Significance, stated and not overstated


def test_a_value_is_bold_only_where_its_paired_interval_against_every_other_row_excludes_zero(study):
    clear = _frame({BASE: [50.0, 52.0, 51.0], WIDE: [54.1, 56.0, 55.2], NARROW: [49.0, 50.5, 50.2]})
    summary = summarise(clear, study, BASE, "smoke")
    assert list(summary["f1_best"]) == [False, True, False] and list(summary["exact_best"]) == [False, True, False]
    assert "**55.1 ± 1.0**" in to_markdown(summary)
    assert r"\textbf{55.1 $\pm$ 1.0}" in to_latex(summary, "widths", "tab:w")
    assert "<strong>55.1 ± 1.0</strong>" in to_html(summary)
    # the case: +0.70 [-0.72, +2.11] over three pairs is no win, in any format
    unresolved = _frame({BASE: [28.0, 27.6, 28.4], WIDE: [28.24, 28.93, 28.92], NARROW: [20.0, 21.0, 22.0]})
    summary = summarise(unresolved, study, BASE, "smoke")
    assert not summary["f1_best"].any()
    assert "**" not in to_markdown(summary) and r"\textbf" not in to_latex(summary, "w", "tab:w")
    assert "<strong>" not in to_html(summary)


def test_cost_columns_are_bold_only_for_runs_timed_alone(study):
    scores = {BASE: [50.0, 52.0, 51.0], WIDE: [50.5, 51.0, 51.8]}
    speed = {BASE: [100.0, 101.0, 99.5], WIDE: [120.0, 121.5, 119.0]}
    shared = summarise(_frame(scores, alone=False, speed=speed), study, BASE, "smoke")
    assert not shared["train_examples_per_s_best"].any() and not shared["wall_minutes_best"].any()
    assert "**" not in to_markdown(shared)
    alone = summarise(_frame(scores, alone=True, speed=speed), study, BASE, "smoke")
    assert list(alone["train_examples_per_s_best"]) == [False, True]
    assert list(alone["wall_minutes_best"]) == [False, True]
    assert not alone["peak_memory_mb_best"].any()  # identical memory: nothing is clearly least
    assert "**120.2**" in to_markdown(alone)


def test_peak_memory_is_compared_only_where_it_is_each_runs_own(study):
    """On a CPU it is the process's peak RSS so far: a later run in one process inherits the earlier ones'."""
    scores = {BASE: [50.0, 52.0, 51.0], WIDE: [50.5, 51.0, 51.8]}
    memory = {BASE: [900, 905, 903], WIDE: [1400, 1402, 1410]}
    cpu = summarise(_frame(scores, alone=True, memory=memory), study, BASE, "smoke")
    assert not cpu["peak_memory_mb_best"].any() and "peak MB (process peak)" in to_markdown(cpu)
    gpu = summarise(_frame(scores, alone=True, memory=memory, device="cuda"), study, BASE, "smoke")
    assert list(gpu["peak_memory_mb_best"]) == [True, False] and "**903**" in to_markdown(gpu)


def test_every_difference_states_its_pairs_and_the_csv_its_diff_n(study):
    summary = summarise(_frame({BASE: [50.0, 52.0, 51.0], WIDE: [54.1, 56.0, None]}), study, BASE, "smoke")
    csv = pd.read_csv(io.StringIO(to_csv(summary)), dtype=str).set_index("variant")
    assert csv.loc[WIDE, "diff_n"] == "2" and csv.loc[WIDE, "diff_seeds_unpaired"] == "2"
    assert "(n = 2)" in to_markdown(summary)
    welch = summarise(_frame({BASE: [50.0, 52.0, None, None], WIDE: [None, None, 54.0, 55.0]}), study, BASE, "smoke")
    assert welch.loc[1, "diff_n"] == 0 and "(Welch, 2 vs 2)" in to_markdown(welch)


def test_a_report_warns_of_few_seeds_and_of_seeds_pairing_left_out():
    row = {"label": "hidden = 48", "ok": 2, "diff_n": 2, "diff_method": "paired t", "diff_seeds_unpaired": "2"}
    said = " | ".join(seed_warnings(pd.Series(row)))
    assert "2 ok seeds, fewer than 3" in said and "rests on 2 pairs" in said and "left out seed(s) 2" in said
    assert seed_warnings(pd.Series({**row, "ok": 3, "diff_n": 3, "diff_seeds_unpaired": ""})) == []


@pytest.mark.parametrize("half_width, places", [(8.3, 0), (25.0, 0), (1.4, 1), (0.47, 1), (0.21, 2), (0.09, 2),
                                                 (0.004, 2), (math.nan, 1)])
def test_decimals_follow_the_width_of_the_interval(half_width, places):
    assert decimals(half_width) == places


def test_no_cell_shows_two_decimals_on_an_interval_of_several_points(study):
    summary = summarise(_frame({BASE: [41.9, 50.0, 36.0], WIDE: [39.0, 49.0, 31.0]}), study, BASE, "smoke")
    cells = table(summary)
    for cell in list(cells["F1"]) + list(cells["F1 95% CI"]) + list(cells["ΔF1 [95% CI]"]):
        assert not re.search(r"\d\.\d\d", cell), cell
    tight = summarise(_frame({BASE: [50.0, 50.1, 50.05], WIDE: [49.8, 49.85, 49.9]}), study, BASE, "smoke")
    difference = difference_interval(pd.Series([-0.2, -0.25, -0.15]), pd.Series([0.0, 0.0, 0.0]))
    assert difference.high - difference.low < 0.5 and re.search(r"−0\.\d\d \[", table(tight).loc[1, "ΔF1 [95% CI]"])


# 4. A LaTeX table a paper can use


def test_the_latex_table_is_compact_unscaled_and_its_caption_states_the_method(study):
    summary = summarise(_frame({BASE: [50.0, 52.0, 51.0], WIDE: [54.1, 56.0, 55.2]}), study, BASE, "smoke")
    latex = to_latex(summary, "widths (smoke): three variants", "tab:w")
    header = next(line for line in latex.splitlines() if line.startswith("variant"))
    assert header == r"variant & $n$ & EM & F1 & $\Delta$F1 [95\% CI] \\" and COMPACT[0] == "label"
    assert r"\resizebox" not in latex and r"\begin{table}" in latex
    caption = latex.split(r"\caption{", 1)[1]
    for statement in (r"mean $\pm$ sample standard deviation", "$n = 3$ seeds", r"95\% confidence interval",
                      "Student's $t$ on the per-seed differences", "Bold: better than every other row"):
        assert statement in caption
    wider = to_latex(summary, "w", "tab:w", ("label", "runs", "exact", "exact_ci", "f1", "f1_ci", "f1_diff"))
    assert r"\begin{table*}" in wider and r"F1 95\% CI" in wider


@pytest.mark.parametrize("columns, told", [("label,nope", "'label,nope': 'nope' is no column (choose from"),
                                            ("label,f1,f1", "'label,f1,f1': name each column once, label included"),
                                            ("f1", "'f1': name each column once, label included")])
def test_columns_must_name_table_columns_once(capsys, columns, told):
    with pytest.raises(SystemExit) as exit_status:
        bench_main(["report", "ablation_char_cnn", "--columns", columns])
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_status.value.code == 2 and f"--columns: {told}" in said


def test_records_are_read_from_a_studys_own_folder_by_another_name_and_another_studys_are_refused():
    from bench.environment import ROOT
    from bench.records import RecordError, records_frame

    folder = ROOT / "results" / "reference" / "faithfulness-cpu"
    assert len(records_frame("faithfulness", folder)) == 15
    with pytest.raises(RecordError, match="faithfulness-cpu: records of faithfulness, not of ablation_ema"):
        records_frame("ablation_ema", folder)
