"""The report's figures show the design: paired seeds, the differences first, t intervals, ok runs only, and
wall clock only where it measures the variants. Checked on the matplotlib objects of a real smoke study's
report (a grid study: 2 variants x 3 seeds, evaluating a sample of dev every 2 steps) and of small frames."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from scipy import stats

from bench.cli import main as bench_main
from bench.records import CURVE_COLUMNS, read_records, records_frame
from bench.reporting import plots
from bench.reporting.comparability import wall_clock_comparable
from bench.reporting.document import WALL_CLOCK_LEFT_OUT

STUDY = """
description = "two encoders, three seeds"
preset = "paper"
design = "grid"
seeds = [0, 1, 2]
[axes]
"model.char_encoder" = ["conv2d", "depthwise1d"]
"""
SHORT = ["--set", "train.steps=8", "--set", "train.eval_every=2", "--set", "train.checkpoint_every=8",
         "--set", "train.eval_questions=4", "--set", "data.synthetic.train_paragraphs=20",
         "--set", "data.synthetic.dev_paragraphs=5", "--set", "train.threads=1"]
VARIANTS = ["model.char_encoder=conv2d", "model.char_encoder=depthwise1d"]
GREY = to_rgb("0.55")


@pytest.fixture(scope="session")
def paired_records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plots")
    (folder / "pairs.toml").write_text(STUDY)
    bench_main(["run", str(folder / "pairs.toml"), "--scale", "smoke", "--out", str(folder / "runs"), *SHORT])
    return folder


@pytest.fixture
def figures(monkeypatch):
    """Every figure a report draws, by name, as matplotlib left it just before saving."""
    drawn = {}
    save = plots.save

    def keep(figure, folder, name):
        drawn[name] = figure
        return save(figure, folder, name)

    monkeypatch.setattr(plots, "save", keep)
    return drawn


def _edited_copy(folder, tmp_path, edit) -> Path:
    """A copy of the session's records with `edit(record)` applied to each (it returns the changed record)."""
    shutil.copytree(folder / "runs", tmp_path / "runs")
    shutil.copy(folder / "pairs.toml", tmp_path / "pairs.toml")
    for record in read_records(tmp_path / "runs" / "pairs"):
        (tmp_path / "runs" / "pairs" / f"{record['id']}.json").write_text(json.dumps(edit(record)))
    return tmp_path


def _report(folder, out) -> str:
    bench_main(["report", str(folder / "pairs.toml"), "--records", str(folder / "runs"), "--out", str(out),
                "--format", "md,csv"])
    return out / "pairs"


def _diverge_seed_2_of_depthwise(record: dict) -> dict:
    """Seed 2 of depthwise1d diverged: its curve (made absurdly good here) must not reach any plot."""
    if (record["variant"], record["seed"]) != (VARIANTS[1], 2):
        return record
    return {**record, "status": "diverged", "curve": [{**entry, "f1": 90.0} for entry in record["curve"]]}


def _ok_curves(folder) -> pd.DataFrame:
    ok = {(r["variant"], r["seed"]) for r in read_records(folder / "runs" / "pairs") if r["status"] == "ok"}
    return pd.DataFrame([{"variant": r["variant"], "seed": r["seed"], **entry}
                         for r in read_records(folder / "runs" / "pairs") if (r["variant"], r["seed"]) in ok
                         for entry in r["curve"]])


def _curve_line(ax, label: str):
    [line] = [line for line in ax.get_lines() if line.get_label() == label]
    return line


def _band_extent(ax, colour, x: float) -> tuple[float, float] | None:
    """The band of `colour` at `x`: its lowest and highest y there; None where it has none."""
    [band] = [c for c in ax.collections if np.allclose(c.get_facecolor()[0][:3], colour)]
    ys = [y for path in band.get_paths() for vx, y in path.vertices if np.isclose(vx, x)]
    return (min(ys), max(ys)) if ys else None


def test_scores_join_each_seeds_runs_across_variants_and_say_n_and_the_test(paired_records, tmp_path, figures):
    _report(paired_records, tmp_path)
    figure = figures["scores"]
    runs = records_frame("pairs", paired_records / "runs")
    for ax, metric in zip(figure.axes, ("exact", "f1"), strict=True):
        joins = [line for line in ax.get_lines() if to_rgb(line.get_color()) == GREY]
        assert len(joins) == 3 and all(line.get_linewidth() < 1 for line in joins)  # one thin line per seed
        for seed, line in zip((0, 1, 2), joins, strict=True):
            x, y = line.get_data()
            assert np.diff(x) == pytest.approx([1.0])  # the same offset in each column: no jitter, no crossing
            expected = [runs[(runs["variant"] == v) & (runs["seed"] == seed)][metric].item() for v in VARIANTS]
            assert list(y) == pytest.approx(expected)  # in the variants' order
    title = figure._suptitle.get_text()
    assert "n = 3 seeds" in title and "95% t interval" in title and "lines join one seed's runs" in title


def test_the_forest_of_paired_differences_comes_first_in_any_design(paired_records, tmp_path, figures):
    out = _report(paired_records, tmp_path)  # a grid study: no one-at-a-time design needed
    images = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("![")]
    assert images == ["![forest](forest.png)", "![scores](scores.png)", "![curves](curves.png)",
                      "![cost](cost.png)"]
    ax = figures["forest"].axes[0]
    assert "paired t, n = 3 pairs" in ax.get_title() and "95% interval" in ax.get_xlabel()
    row = pd.read_csv(out / "table.csv").set_index("variant").loc[VARIANTS[1]]
    [label] = [text.get_text() for text in ax.get_yticklabels()]
    low, high = (f"{value:+.1f}".replace("-", "−") for value in (row["f1_diff_low"], row["f1_diff_high"]))
    assert label.startswith("char_encoder = depthwise1d: ") and f"[{low}, {high}]" in label


def test_the_forest_names_each_rows_test_where_the_rows_differ(tmp_path, figures):
    summary = pd.DataFrame({
        "variant": ["a", "b", "c"], "label": ["a", "b", "c"], "baseline": [True, False, False],
        "f1_diff": [np.nan, 1.5, -0.4], "f1_diff_low": [np.nan, 0.2, -3.1], "f1_diff_high": [np.nan, 2.8, 2.3],
        "diff_method": [None, "paired t", "Welch t"], "diff_n": [np.nan, 3, 0],
        "diff_runs": [None, "3 vs 3", "1 vs 3"]})
    plots.forest(summary, "a", plots.colours(["a", "b", "c"]), tmp_path)
    ax = figures["forest"].axes[0]
    assert [text.get_text() for text in ax.get_yticklabels()] == [
        "b: +1.5 [+0.2, +2.8] (paired t, n = 3 pairs)", "c: −0.4 [−3.1, +2.3] (Welch t, 1 vs 3 runs)"]
    assert "n =" not in ax.get_title()


def test_curves_are_the_ok_runs_mean_with_a_t_interval_band(paired_records, tmp_path, figures):
    folder = _edited_copy(paired_records, tmp_path, _diverge_seed_2_of_depthwise)
    _report(folder, tmp_path / "reports")
    ax = figures["curves"].axes[0]
    palette = plots.colours(["char_encoder = conv2d", "char_encoder = depthwise1d"])
    ok = _ok_curves(folder)
    assert len(ok[ok["variant"] == VARIANTS[1]]["seed"].unique()) == 2  # the diverged run is not among them
    for variant, (label, colour) in zip(VARIANTS, palette.items(), strict=True):
        steps, means = _curve_line(ax, label).get_data()
        for step, mean in zip(steps, means, strict=True):
            values = ok[(ok["variant"] == variant) & (ok["step"] == step)]["f1"]
            assert mean == pytest.approx(values.mean())
            expected = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
            assert _band_extent(ax, colour, step) == pytest.approx(expected)


def test_the_whole_dev_set_evaluation_is_marked_apart_and_ticks_sit_at_the_evaluations(paired_records, tmp_path,
                                                                                        figures):
    _report(paired_records, tmp_path)
    figure = figures["curves"]
    ax = figure.axes[0]
    assert list(ax.get_xticks()) == [2, 4, 6, 8]
    whole = [line for line in ax.get_lines() if line.get_marker() == "D"]
    sampled = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(whole) == len(sampled) == 2  # one of each per variant
    assert all(list(line.get_xdata()) == [8] for line in whole)  # the last evaluation scores the whole dev set
    assert all(list(line.get_xdata()) == [2, 4, 6] for line in sampled)
    assert all(line.get_markerfacecolor() != "white" for line in whole)
    [legend] = figure.legends
    assert {"whole dev set", "sample of dev"} <= {text.get_text() for text in legend.get_texts()}


def _curve_frame(values: dict[tuple[str, int], list[float]], steps: list[int]) -> pd.DataFrame:
    """A curves_frame of ok runs: (variant, seed) -> F1 at `steps`; the last evaluation scores the whole dev set."""
    return pd.DataFrame([{"study": "s", "variant": variant, "seed": seed, "scale": "smoke", "status": "ok",
                          "step": step, "train_seconds": step, "total": 100 if step == steps[-1] else 10,
                          "metric": "f1", "value": value}
                         for (variant, seed), scores in values.items()
                         for step, value in zip(steps, scores, strict=False)], columns=CURVE_COLUMNS)


def test_each_variant_has_a_colour_blind_safe_colour_and_its_own_line_style(tmp_path, figures):
    names = ["a", "b", "c", "d"]
    curve = _curve_frame({(name, seed): [10 + i, 20 + seed] for i, name in enumerate(names) for seed in (0, 1)},
                         [5, 10])
    palette = plots.colours(names)
    plots.curves(curve, dict(zip(names, names, strict=True)), palette, tmp_path, wall_clock=True)
    for ax in figures["curves"].axes:
        lines = [_curve_line(ax, name) for name in names]
        assert len({str(line.get_linestyle()) for line in lines}) == 4
        assert [to_rgb(line.get_color()) for line in lines] == [to_rgb(c) for c in plots.pyplot()[1].color_palette(
            "colorblind", 4)]


def test_no_band_where_fewer_than_two_seeds_reached_a_step(tmp_path, figures):
    curve = _curve_frame({("a", 0): [10, 20, 30], ("a", 1): [12, 22]}, [5, 10, 15])  # seed 1 ended at step 10
    curve.loc[(curve["seed"] == 1) & (curve["step"] == 10), "total"] = 100
    palette = plots.colours(["a"])
    plots.curves(curve, {"a": "a"}, palette, tmp_path, wall_clock=False)
    ax = figures["curves"].axes[0]
    assert _band_extent(ax, palette["a"], 10) == pytest.approx(stats.t.interval(0.95, 1, loc=21, scale=1))
    assert _band_extent(ax, palette["a"], 15) is None


def test_time_panels_are_left_out_where_runs_shared_the_machine(paired_records, tmp_path, figures, capsys):
    folder = _edited_copy(paired_records, tmp_path, lambda record: {**record, "timed_alone": record["seed"] != 1})
    _report(folder, tmp_path / "reports")
    assert f"warning: {WALL_CLOCK_LEFT_OUT}" in capsys.readouterr().out
    [steps] = figures["curves"].axes
    assert steps.get_xlabel() == "training step"
    assert "cost" not in figures


def test_time_panels_stay_for_runs_timed_alone(paired_records, tmp_path, figures, capsys):
    _report(paired_records, tmp_path)
    assert "wall clock" not in capsys.readouterr().out
    assert [ax.get_title() for ax in figures["curves"].axes] == ["F1 over steps", "F1 over training time"]
    # a CPU run's peak memory is its process's so far: no memory panel (a GPU's is in the next test)
    assert [ax.get_title() for ax in figures["cost"].axes] == ["F1 against time"]


def test_a_time_bounded_run_counts_as_timed():
    runs = pd.DataFrame({"variant": ["a", "a"], "status": ["ok", "ok"], "f1": [50.0, 52.0],
                         "wall_seconds": [60.0, 62.0], "peak_memory_mb": [np.nan, np.nan],
                         "timed_alone": [False, True], "time_bounded": [True, False]})
    assert wall_clock_comparable(runs)
    assert not wall_clock_comparable(runs.assign(time_bounded=False))
