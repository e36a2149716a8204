"""The report's figures show the design: paired seeds, the differences first, t intervals, ok runs only, and
wall clock only where it measures the variants. Checked on the matplotlib objects of a real smoke study's
report (a grid study: 2 variants x 3 seeds, evaluating a sample of dev every 2 steps) and of small frames."""

import itertools
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.text import Text
from scipy import stats

from bench.cli import main as bench_main
from bench.records import CURVE_COLUMNS, records_frame
from bench.reporting import plots
from bench.reporting.comparability import wall_clock_comparable
from bench.reporting.document import WALL_CLOCK_LEFT_OUT
from bench.reporting.statistics import mean_interval
from tests.conftest import records_in

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

    def keep(figure, folder, name, **size):
        drawn[name] = figure
        return save(figure, folder, name, **size)

    monkeypatch.setattr(plots, "save", keep)
    return drawn


def _edited_copy(folder, tmp_path, edit) -> Path:
    """A copy of the session's records with `edit(record)` applied to each (it returns the changed record)."""
    shutil.copytree(folder / "runs", tmp_path / "runs")
    shutil.copy(folder / "pairs.toml", tmp_path / "pairs.toml")
    for record in records_in(tmp_path / "runs" / "pairs"):
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
    ok = {(r["variant"], r["seed"]) for r in records_in(folder / "runs" / "pairs") if r["status"] == "ok"}
    return pd.DataFrame([{"variant": r["variant"], "seed": r["seed"], **entry}
                         for r in records_in(folder / "runs" / "pairs") if (r["variant"], r["seed"]) in ok
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
    title = " ".join(figure.get_suptitle().split())  # wrapped to the figure's width
    assert "n = 3 seeds" in title and "95% t interval" in title and "lines join one seed's runs" in title


def test_the_forest_of_paired_differences_comes_first_in_any_design(paired_records, tmp_path, figures):
    out = _report(paired_records, tmp_path)  # a grid study: no one-at-a-time design needed
    images = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("![")]
    assert images == ["![forest](forest.png)", "![scores](scores.png)", "![curves](curves.png)",
                      "![cost](cost.png)"]
    ax = figures["forest"].axes[0]
    assert "paired t, n = 3 pairs" in figures["forest"].get_suptitle()
    assert "95% interval" in " ".join(ax.get_xlabel().split())  # wrapped to the axis's width
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
    assert "n =" not in figures["forest"].get_suptitle()


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


def test_up_to_three_variants_share_a_panel_each_with_its_colour_and_line_style(tmp_path, figures):
    names = ["a", "b", "c"]
    curve = _curve_frame({(name, seed): [10 + i, 20 + seed] for i, name in enumerate(names) for seed in (0, 1)},
                         [5, 10])
    palette = plots.colours(names)
    plots.curves(curve, dict(zip(names, names, strict=True)), palette, tmp_path, wall_clock=True, baseline="a")
    for ax in figures["curves"].axes:  # over steps and over time
        lines = [_curve_line(ax, name) for name in names]
        assert len({str(line.get_linestyle()) for line in lines}) == 3
        assert [to_rgb(line.get_color()) for line in lines] == [to_rgb(c) for c in plots.OKABE_ITO[:3]]


def test_no_band_where_fewer_than_two_seeds_reached_a_step(tmp_path, figures):
    curve = _curve_frame({("a", 0): [10, 20, 30], ("a", 1): [12, 22]}, [5, 10, 15])  # seed 1 ended at step 10
    curve.loc[(curve["seed"] == 1) & (curve["step"] == 10), "total"] = 100
    palette = plots.colours(["a"])
    plots.curves(curve, {"a": "a"}, palette, tmp_path, wall_clock=False, baseline="a")
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


# The faithfulness study's variants: five, with names as long as a study's get.
FIVE = {"base": "base configuration", "conv": "conv_activation = none", "dropout": "dropout_placement = outputs",
        "vocabulary": "vocabulary = train", "before": "before the fixes"}
STEPS = [500, 1000, 1500, 2000, 2500, 3000]


@pytest.fixture(scope="module")
def five_variants():
    """A made-up study of FIVE x 3 seeds ("base" its baseline), with seed noise: its summary, runs and curves."""
    rng = np.random.default_rng(0)
    runs = pd.DataFrame([{"variant": variant, "seed": seed, "status": "ok", "exact": 18 + 0.3 * i + rng.normal(0, 0.3),
                          "f1": 27 + 0.4 * i + rng.normal(0, 0.3), "wall_seconds": 3000 + 100 * i + rng.normal(0, 50),
                          "peak_memory_mb": 900.0 + 50 * i} for i, variant in enumerate(FIVE) for seed in (0, 1, 2)])
    f1 = runs.pivot(index="seed", columns="variant", values="f1")
    rows = []
    for variant, label in FIVE.items():
        row = {"variant": variant, "label": label, "baseline": variant == "base", "ok": 3, "diff_n": 3,
               "diff_runs": "3 vs 3"}
        for metric in ("exact", "f1"):
            interval = mean_interval(runs[runs["variant"] == variant][metric])
            row |= {f"{metric}_mean": interval.mean, f"{metric}_low": interval.low, f"{metric}_high": interval.high}
        difference = mean_interval(f1[variant] - f1["base"]) if variant != "base" else mean_interval([])
        rows.append(row | {"f1_diff": difference.mean, "f1_diff_low": difference.low, "f1_diff_high": difference.high})
    curve = _curve_frame({(variant, seed): [8 + 4 * k + 0.5 * i + rng.normal(0, 0.5) for k in range(len(STEPS))]
                          for i, variant in enumerate(FIVE) for seed in (0, 1, 2)}, STEPS)
    return pd.DataFrame(rows), runs, curve


def _draw_every_plot(study, folder: Path, size: plots.FigureSize) -> list[Path]:
    """forest, scores, curves (small multiples: more than three variants) and cost, time and memory panels."""
    summary, runs, curve = study
    palette = plots.colours(list(FIVE.values()))
    return (plots.forest(summary, FIVE["base"], palette, folder, size=size)
            + plots.scores(summary, runs, palette, folder, size=size)
            + plots.curves(curve, FIVE, palette, folder, wall_clock=True, baseline="base", size=size)
            + plots.cost(runs, FIVE, palette, folder, time=True, memory=True, size=size))


def test_pdfs_embed_truetype_fonts_only_and_the_same_records_give_the_same_bytes(five_variants, tmp_path):
    """Many venues reject Type 3 fonts (matplotlib's default). matplotlib writes each font dictionary as a plain
    object (only streams are compressed): a Type 42 font is a /Type0 font over a /CIDFontType2 with its glyphs
    in a /FontFile2 (TrueType) stream."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = _draw_every_plot(five_variants, tmp_path / "a", plots.DOUBLE_COLUMN), \
        _draw_every_plot(five_variants, tmp_path / "b", plots.DOUBLE_COLUMN)
    pdfs = [path for path in first if path.suffix == ".pdf"]
    assert [path.stem for path in pdfs] == ["forest", "scores", "curves", "cost"]
    for path in pdfs:
        pdf = path.read_bytes()
        subtypes = set(re.findall(rb"/Subtype /(\w+)", pdf))
        assert b"Type3" not in subtypes and {b"Type0", b"CIDFontType2"} <= subtypes and b"/FontFile2" in pdf, path
    for one, other in zip(first, second, strict=True):
        assert one.read_bytes() == other.read_bytes(), one.name


def _outline(label: Text, renderer) -> np.ndarray:
    """The corners of a label's box on the canvas, turned as the label is: a slanted label turns about its
    alignment point (rotation_mode "anchor", as the scores' names do)."""
    turned = label.get_rotation()
    label.set_rotation(0)
    box = label.get_window_extent(renderer)
    label.set_rotation(turned)
    corners = np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]])
    if not turned:
        return corners
    assert label.get_rotation_mode() == "anchor"
    pivot = np.array([{"left": box.x0, "center": (box.x0 + box.x1) / 2, "right": box.x1}[label.get_ha()],
                      {"bottom": box.y0, "center": (box.y0 + box.y1) / 2, "top": box.y1}[label.get_va()]])
    angle = np.radians(turned)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (corners - pivot) @ rotation.T + pivot


def _overlap(one: np.ndarray, other: np.ndarray) -> bool:
    """Whether two convex outlines overlap: no edge's normal separates their projections."""
    for outline in (one, other):
        for start, end in zip(outline, np.roll(outline, -1, axis=0), strict=True):
            normal = np.array([start[1] - end[1], end[0] - start[0]])
            if (one @ normal).max() <= (other @ normal).min() or (other @ normal).max() <= (one @ normal).min():
                return False
    return True


def _overlapping(labels: list[Text], renderer) -> list[tuple[str, str]]:
    shown = [(label.get_text(), _outline(label, renderer)) for label in labels
             if label.get_visible() and label.get_text()]
    return [(a, b) for (a, one), (b, other) in itertools.combinations(shown, 2) if _overlap(one, other)]


def _assert_readable(figure) -> None:
    """No text under 7 pt printed, no tick labels running into each other."""
    canvas = FigureCanvasAgg(figure)  # saved, the figure was closed: laid out again as it was for saving
    canvas.draw()
    renderer = canvas.get_renderer()
    assert min(text.get_fontsize() for text in figure.findobj(Text) if text.get_text()) >= 7
    for ax in figure.axes:
        assert not _overlapping(ax.get_xticklabels(), renderer), ax.get_title()
        assert not _overlapping(ax.get_yticklabels(), renderer), ax.get_title()


def _png_width(path: Path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]  # the IHDR chunk's width, in pixels


@pytest.mark.parametrize("size", [plots.SINGLE_COLUMN, plots.DOUBLE_COLUMN], ids=["column", "page"])
def test_every_plot_prints_at_its_width_with_text_a_reader_can_read(five_variants, tmp_path, figures, size):
    """Printed at the width asked: the layout keeps the text within it (the tight bounding box would widen a
    figure whose text stuck out), the PNG at the size's dpi; and readable there (`_assert_readable`)."""
    written = _draw_every_plot(five_variants, tmp_path, size)
    for name in ("forest", "scores", "curves", "cost"):
        _assert_readable(figures[name])
    three = five_variants[2][five_variants[2]["variant"].isin(list(FIVE)[:3])]  # one panel, and one over time
    (tmp_path / "three").mkdir()
    written += plots.curves(three, FIVE, plots.colours(list(FIVE.values())), tmp_path / "three", wall_clock=True,
                            baseline="base", size=size)
    _assert_readable(figures["curves"])
    for png in (path for path in written if path.suffix == ".png"):
        assert size.width - 0.2 <= _png_width(png) / size.dpi <= size.width + 0.05, png


def test_more_than_three_variants_get_a_panel_each_against_the_same_grey_baseline(five_variants, tmp_path,
                                                                                  figures):
    """One panel would merge five bands into one; each panel: the variant (titled) and the baseline, sharing both
    axes, over steps only (where the clocks compare, the cost plot has time)."""
    plots.curves(five_variants[2], FIVE, plots.colours(list(FIVE.values())), tmp_path, wall_clock=True, baseline="base")
    figure = figures["curves"]
    others = [label for variant, label in FIVE.items() if variant != "base"]
    assert [" ".join(ax.get_title().split()) for ax in figure.axes] == others
    baselines = [_curve_line(ax, FIVE["base"]) for ax in figure.axes]
    assert all(to_rgb(line.get_color()) == to_rgb(baselines[0].get_color()) for line in baselines)
    assert np.ptp(to_rgb(baselines[0].get_color())) == 0  # a grey: no variant's colour
    assert all(np.array_equal(line.get_ydata(), baselines[0].get_ydata()) for line in baselines)
    for ax, label in zip(figure.axes, others, strict=True):
        assert to_rgb(_curve_line(ax, label).get_color()) == plots.colours(list(FIVE.values()))[label]
        assert ax.get_shared_x_axes().joined(ax, figure.axes[0]) and ax.get_shared_y_axes().joined(ax, figure.axes[0])
        assert ax.get_xlabel() in ("training step", "")
    [legend] = figure.legends
    assert FIVE["base"] in {text.get_text() for text in legend.get_texts()}


# Machado, Oliveira and Fernandes (2009): how linear sRGB looks with each complete dichromacy (severity 1).
VISIONS = {"normal": np.eye(3),
           "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                          [-0.003882, -0.048116, 1.051998]],
           "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                            [-0.011820, 0.042940, 0.968881]],
           "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                          [0.004733, 0.691367, 0.303900]]}
# CIELAB ΔE (1976) that two thin lines' colours keep at least, with each vision: seaborn's "colorblind" orange
# (#DE8F05) and vermillion (#D55E00), which a reader mixed up, are 12.6 apart with deuteranopia.
DISTINCT = 15


def _lab(linear: np.ndarray) -> np.ndarray:
    """CIELAB (D65 white) of a linear sRGB colour."""
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _distance(one, other, vision: str) -> float:
    def seen(colour):
        encoded = np.array(to_rgb(colour))
        linear = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
        return _lab(np.clip(np.asarray(VISIONS[vision]) @ linear, 0, 1))

    return float(np.linalg.norm(seen(one) - seen(other)))


def test_the_first_eight_colours_stay_apart_with_each_common_colour_vision_deficiency():
    assert min(_distance("#DE8F05", "#D55E00", vision) for vision in VISIONS) < DISTINCT  # the threshold tells
    palette = plots.colours([f"v{i}" for i in range(8)])
    assert list(palette.values())[:5] == list(plots.colours([f"v{i}" for i in range(5)]).values())  # its order
    for (one, other), vision in itertools.product(itertools.combinations(palette.values(), 2), VISIONS):
        assert _distance(one, other, vision) >= DISTINCT, (one, other, vision)
    assert len(set(plots.colours([f"v{i}" for i in range(9)]).values())) == 9  # beyond eight: husl's hues


def test_each_forest_label_says_the_difference_its_point_sits_at(tmp_path, figures):
    """Within rounding at the decimals it shows, and never 0 for a nonzero difference: +0.29 with an interval
    of [−6, +6] reads +0.3, not 0 (the interval's decimals alone would round it away)."""
    summary = pd.DataFrame({
        "variant": ["a", "b", "c"], "label": ["a", "b", "c"], "baseline": [True, False, False],
        "f1_diff": [np.nan, 0.29, -1.46], "f1_diff_low": [np.nan, -6.0, -2.8], "f1_diff_high": [np.nan, 6.0, -0.2],
        "diff_method": [None, "paired t", "paired t"], "diff_n": [np.nan, 3, 3],
        "diff_runs": [None, "3 vs 3", "3 vs 3"]})
    plots.forest(summary, "a", plots.colours(["a", "b", "c"]), tmp_path)
    ax = figures["forest"].axes[0]
    points = {y: x for line in ax.get_lines() if line.get_marker() == "o"  # the errorbars' points
              for x, y in zip(*line.get_data(), strict=True)}
    labels = ax.get_yticklabels()
    assert len(labels) == len(points) == 2
    for position, label in zip(ax.get_yticks(), labels, strict=True):
        number = re.search(r": ([+−]?\d+(?:\.(\d+))?)", label.get_text())
        shown, places = float(number[1].replace("−", "-")), len(number[2] or "")
        point = points[position]
        assert abs(shown - point) <= 0.5 * 10 ** -places + 1e-9 and np.sign(shown) == np.sign(point), label
