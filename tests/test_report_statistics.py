"""What a report's table claims: labels that say what ran at its scale (renamed where asked), a difference
called resolved, marked or bold only where its t test, Holm-corrected over the table's comparisons, says so
(the same in every format), the tests' numbers as scipy gives them, the pairs behind a difference where the
row's n does not say them, and decimals the interval allows. Synthetic records (a frame as `records_frame`
gives it) except where a real study file or the committed records are the point. The LaTeX table's layout:
test_tables_latex.py."""

import io
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main as bench_main
from bench.environment import ROOT
from bench.records import RecordError, records_frame
from bench.reporting.statistics import (
    adjusted,
    decimals,
    difference_interval,
    difference_text,
    holm,
    mean_interval,
    p_text,
)
from bench.reporting.tables import (
    conclusions,
    default_baseline,
    seed_warnings,
    summarise,
    table,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
    variant_labels,
)
from bench.scales import SCALES
from bench.study import StudyError, available, is_search, load_study, value_text
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


def test_a_study_files_labels_and_then_labels_asked_for_rename_variants(tmp_path):
    path = tmp_path / "widths.toml"
    path.write_text(STUDY + '[labels]\n"model.hidden=48" = "wide"\n')
    study = load_study(str(path))
    assert variant_labels(study, "smoke") == {BASE: "hidden = 64 (base)", WIDE: "wide", NARROW: "hidden = 32"}
    # --labels: a key is a variant's name, its default label or its study file's
    renamed = variant_labels(study, "smoke", {"hidden = 32": "narrow", "base": "paper width", "wide": "wider"})
    assert renamed == {BASE: "paper width", WIDE: "wider", NARROW: "narrow"}
    assert variant_labels(study, "smoke", {"hidden = 48": "wider"})[WIDE] == "wider"
    swapped = variant_labels(study, "smoke", {"hidden = 32": "wide", "wide": "narrow"})  # each key as written
    assert (swapped[WIDE], swapped[NARROW]) == ("narrow", "wide")
    summary = summarise(_frame({BASE: [50.0, 52.0, 51.0], NARROW: [49.0, 50.5, 50.2]}), study, BASE, "smoke",
                        labels=renamed)
    assert list(summary["label"]) == ["paper width", "narrow"]


def test_a_label_that_names_no_variant_or_two_variants_with_one_label_are_refused_in_one_line(study):
    with pytest.raises(StudyError) as error:
        variant_labels(study, "smoke", {"hidden = 100": "huge"})
    said = str(error.value)
    assert "\n" not in said and "'hidden = 100'" in said and "widths" in said
    assert "hidden = 64 (base); hidden = 48; hidden = 32" in said
    with pytest.raises(StudyError, match="'model.hidden=48', 'model.hidden=32' would both be labelled 'small'"):
        variant_labels(study, "smoke", {WIDE: "small", NARROW: "small"})


# 2. Significance, stated and not overstated


def test_a_value_is_bold_only_where_its_corrected_paired_tests_against_every_other_row_resolve_it(study):
    clear = _frame({BASE: [50.0, 52.0, 51.0], WIDE: [54.1, 56.0, 55.2], NARROW: [49.0, 50.5, 50.2]})
    summary = summarise(clear, study, BASE, "smoke")
    assert list(summary["f1_best"]) == [False, True, False] and list(summary["exact_best"]) == [False, True, False]
    assert "**55.1 ± 1.0**" in to_markdown(summary)
    assert r"\textbf{\boldmath \begin{tabular}[t]{@{}r@{}}$55.1$\\{}$\pm 1.0$\end{tabular}}" in to_latex(
        summary, "widths", "tab:w")
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
    assert not cpu["peak_memory_mb_best"].any() and "peak MiB (process peak)" in to_markdown(cpu)
    gpu = summarise(_frame(scores, alone=True, memory=memory, device="cuda"), study, BASE, "smoke")
    assert list(gpu["peak_memory_mb_best"]) == [True, False] and "**903**" in to_markdown(gpu)


def test_a_difference_states_its_pairs_where_the_rows_n_does_not_and_the_csv_its_diff_n(study):
    """n is said once, in its column, where the difference rests on all of the row's seeds; pairs fewer than
    those (the baseline lacks a seed) and Welch's t are said in the cell."""
    summary = summarise(_frame({BASE: [50.0, 52.0, None], WIDE: [54.1, 56.0, 55.0], NARROW: [49.0, 50.5, 50.2]}),
                        study, BASE, "smoke")
    csv = pd.read_csv(io.StringIO(to_csv(summary)), dtype=str).set_index("variant")
    assert csv.loc[WIDE, "diff_n"] == "2" and csv.loc[WIDE, "diff_seeds_unpaired"] == "2"
    cells = dict(zip(summary["variant"], table(summary)["ΔF1 [95% CI]"], strict=True))
    assert cells[WIDE].endswith("(n = 2)") and cells[NARROW].endswith("(n = 2)")
    all_paired = table(summarise(_frame({BASE: [50.0, 52.0, 51.0], WIDE: [54.1, 56.0, 55.0]}), study, BASE, "smoke"))
    assert "n =" not in all_paired.loc[1, "ΔF1 [95% CI]"]
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
    assert difference.high - difference.low < 0.5 and re.search(r"−0\.\d\d\*? \[", table(tight).loc[1, "ΔF1 [95% CI]"])


def test_holm_adjusts_as_the_textbook_step_down_and_leaves_untested_entries_out():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    nan = math.nan
    adjusted_with_gaps = holm([0.01, nan, 0.04])  # m = 2, not 3
    assert adjusted_with_gaps[0] == pytest.approx(0.02) and math.isnan(adjusted_with_gaps[1])
    assert adjusted_with_gaps[2] == pytest.approx(0.04)
    assert holm([0.5, 0.6, 0.001]) == pytest.approx([1.0, 1.0, 0.003])  # capped at 1, never below a smaller p's
    assert holm([]) == [] and adjusted([0.01, 0.04], "none") == [0.01, 0.04]


def test_an_unknown_correction_is_refused_by_name(study):
    with pytest.raises(ValueError, match="'bonferroni'"):
        adjusted([0.01], "bonferroni")
    with pytest.raises(ValueError, match="'bonferroni'"):
        summarise(_frame({BASE: [50.0, 52.0, 51.0], WIDE: [54.1, 56.0, 55.2]}), study, BASE, "smoke",
                  correction="bonferroni")


def test_each_interval_carries_the_t_test_scipy_gives():
    from scipy import stats

    variant = pd.Series([70.1, 71.3, 69.8], index=[0, 1, 2])
    baseline = pd.Series([68.0, 70.2, 69.1, 67.5], index=[0, 1, 2, 3])
    paired, expected = difference_interval(variant, baseline), stats.ttest_rel(variant, baseline.loc[[0, 1, 2]])
    assert (paired.t, paired.df, paired.p) == pytest.approx((expected.statistic, expected.df, expected.pvalue))
    elsewhere = variant.set_axis([5, 6, 7])  # no seed shared: Welch
    welch, expected = difference_interval(elsewhere, baseline), stats.ttest_ind(elsewhere, baseline, equal_var=False)
    assert welch.method == "Welch t"
    assert (welch.t, welch.df, welch.p) == pytest.approx((expected.statistic, expected.df, expected.pvalue))
    one, expected = mean_interval([1.2, -0.4, 0.9, 0.3]), stats.ttest_1samp([1.2, -0.4, 0.9, 0.3], 0.0)
    assert (one.t, one.df, one.p) == pytest.approx((expected.statistic, expected.df, expected.pvalue))
    single = mean_interval([1.0])
    assert math.isnan(single.t) and math.isnan(single.df) and math.isnan(single.p)


def test_a_difference_without_spread_is_read_as_it_is():
    """Every seed moved alike: nonzero, the test is certain (t = inf, p = 0); zero, it finds nothing (p = 1)."""
    shifted = difference_interval(pd.Series([51.0, 52.0, 53.0]), pd.Series([50.0, 51.0, 52.0]))
    assert shifted.t == math.inf and shifted.p == 0 and shifted.low == shifted.high == pytest.approx(1.0)
    same = difference_interval(pd.Series([50.0, 51.0]), pd.Series([50.0, 51.0]))
    assert same.t == 0 and same.p == 1
    welch = difference_interval(pd.Series([51.0, 51.0], index=[0, 1]), pd.Series([50.0, 50.0], index=[2, 3]))
    assert welch.method == "Welch t" and welch.p == 0 and math.isnan(welch.df)


@pytest.mark.parametrize("mean, low, high, text", [
    (0.29, -6.0, 6.0, "+0.3 [−6, +6]"),  # rounded at the interval's decimals it would read 0 beside a point at +0.29
    (0.04, -1.4, 1.5, "+0.04 [−1.4, +1.5]"),
    (0.0, -6.0, 6.0, "0 [−6, +6]"),
    (2.4, -3.6, 8.4, "+2 [−4, +8]"),
    (-0.87, -1.33, -0.41, "−0.9 [−1.3, −0.4]"),
])
def test_a_nonzero_difference_never_reads_as_zero(mean, low, high, text):
    assert difference_text(mean, low, high) == text


def test_latex_differences_are_numbers_in_math_mode():
    assert difference_text(-0.87, -1.33, 0.41, latex=True) == "$-0.9$ [$-1.3$, $+0.4$]"


@pytest.mark.parametrize("p, text", [(0.0151, "p = 0.015"), (0.0603, "p = 0.06"), (0.0496, "p = 0.0496"),
                                     (0.34, "p = 0.34"), (1.0, "p = 1"), (0.0004, "p < 0.001")])
def test_p_values_keep_their_side_of_the_threshold(p, text):
    assert p_text(p) == text


# 3. The committed faithfulness records: one difference below 0.05 of four is no finding


@pytest.fixture(scope="module")
def faithfulness():
    frame = records_frame("faithfulness", ROOT / "results" / "reference" / "faithfulness-cpu")
    return frame[frame["scale"] == "cpu"], load_study("faithfulness")


def test_the_dropout_placement_difference_does_not_survive_holm_over_the_tables_four(faithfulness):
    frame, study = faithfulness
    holm_summary = summarise(frame, study, "base", "cpu").set_index("variant")
    row = holm_summary.loc["model.dropout_placement=outputs"]
    assert row["f1_diff_p"] == pytest.approx(0.015, abs=0.001) and row["f1_diff_df"] == 2
    assert row["f1_diff_p_adjusted"] == pytest.approx(0.06, abs=0.004) and row["f1_diff_comparisons"] == 4
    assert not holm_summary["f1_diff_resolved"].any() and (holm_summary["correction"] == "holm").all()
    uncorrected = summarise(frame, study, "base", "cpu", correction="none").set_index("variant")
    assert uncorrected.loc["model.dropout_placement=outputs", "f1_diff_resolved"]
    assert uncorrected["f1_diff_p_adjusted"].equals(uncorrected["f1_diff_p"])
    header = to_csv(holm_summary.reset_index()).splitlines()[0].split(",")
    for metric in ("exact", "f1"):
        assert {f"{metric}_diff_{end}" for end in ("t", "df", "p", "p_adjusted", "resolved")} <= set(header)
    assert "correction" in header and "diff_n" in header and "diff_method" in header


def test_the_conclusions_say_not_resolved_and_what_the_interval_rules_out(faithfulness):
    frame, study = faithfulness
    said = conclusions(summarise(frame, study, "base", "cpu"), "f1")
    assert len(said) == 4 and all("not resolved" in line and "no effect beyond ±" in line for line in said)
    # the interval's farther bound, −1.33, rounded away from 0: ±1.4
    assert ("dropout_placement = outputs: ΔF1 −0.9 [−1.3, −0.4], 3 seeds paired: not resolved (p = 0.06 "
            "Holm-corrected over 4 comparisons): no effect beyond ±1.4 F1 at 95%") in said
    uncorrected = conclusions(summarise(frame, study, "base", "cpu", correction="none"), "f1")
    assert ("dropout_placement = outputs: ΔF1 −0.9 [−1.3, −0.4], 3 seeds paired: lower than base configuration "
            "(p = 0.015 uncorrected)") in uncorrected


def test_the_mark_follows_the_corrected_test_in_every_style(faithfulness):
    frame, study = faithfulness
    holm_summary, uncorrected = (summarise(frame, study, "base", "cpu", correction=c) for c in ("holm", "none"))
    assert "*" not in to_markdown(holm_summary) and "*" not in to_html(holm_summary)
    assert "| −0.87* [−1.33, −0.41] |" in to_markdown(uncorrected)
    assert "<td>−0.87* [−1.33, −0.41]</td>" in to_html(uncorrected)
    assert "$-0.87^{*}$" in to_latex(uncorrected, "f", "tab:f")


# 4. Asking for a table


@pytest.mark.parametrize("columns, told", [("label,nope", "'label,nope': 'nope' is no column (choose from"),
                                            ("label,f1,f1", "'label,f1,f1': name each column once, label included"),
                                            ("f1", "'f1': name each column once, label included")])
def test_columns_must_name_table_columns_once(capsys, columns, told):
    with pytest.raises(SystemExit) as exit_status:
        bench_main(["report", "ablation_char_cnn", "--columns", columns])
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_status.value.code == 2 and f"--columns: {told}" in said


def test_records_are_read_from_a_studys_own_folder_by_another_name_and_another_studys_are_refused():
    folder = ROOT / "results" / "reference" / "faithfulness-cpu"
    assert len(records_frame("faithfulness", folder)) == 15
    with pytest.raises(RecordError, match="faithfulness-cpu: records of faithfulness, not of ablation_ema"):
        records_frame("ablation_ema", folder)
