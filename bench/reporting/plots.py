"""The report's plots: the forest of differences to the baseline, the scores, the curves during training and
the cost (seaborn style, matplotlib's Agg backend). Each is drawn for the width it is printed at (`FigureSize`:
one column of a paper or the page's width), its text in TrueType fonts, and saved as PNG and PDF without the
metadata that would change from one run to the next; one colour per variant in every plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.reporting.statistics import difference_text, mean_interval

# no creation date or software version in the files: the same records give the same bytes
_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


@dataclass(frozen=True)
class FigureSize:
    """The width a figure is printed at, in inches (one column of a two-column paper: about 3.3; the page's
    width: about 6.9), and the PNG's resolution. Text keeps its size in points at any width, so a figure reads
    alike printed at its width: its height follows from the width and what it holds, and its labels wrap."""

    width: float = 6.9
    dpi: int = 300


SINGLE_COLUMN = FigureSize(width=3.3)
DOUBLE_COLUMN = FigureSize(width=6.9)


def pyplot():
    """matplotlib's pyplot and seaborn, set to the report's style on the Agg backend (no display needed); every
    figure of a report, the search's included, is drawn through this."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    # seaborn's paper sizes: 8.8 pt ticks and legends, 9.6 pt labels and titles (a figure's too), a caption's size
    # printed at the figure's width
    sns.set_theme(style="whitegrid", context="paper")
    # TrueType (Type 42) fonts in PDF and PostScript: many venues reject the Type 3 fonts matplotlib embeds by default
    plt.rcParams.update({"svg.hashsalt": "qanet-bench", "pdf.compression": 6, "pdf.fonttype": 42,
                         "ps.fonttype": 42, "figure.titlesize": "medium"})
    return plt, sns


# Okabe and Ito's colours (Color Universal Design, 2008), told apart with each common colour vision deficiency,
# the most distinct first: blue, vermillion and bluish green differ in hue and lightness; yellow, faint on white,
# comes last.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000", "#F0E442")


def colours(labels: list[str]) -> dict[str, tuple]:
    """The same colour for a variant in every plot of a report: Okabe and Ito's up to eight variants, husl's
    evenly spaced hues beyond (no larger set of colours stays distinct)."""
    from matplotlib.colors import to_rgb

    _, sns = pyplot()
    if len(labels) <= len(OKABE_ITO):
        return dict(zip(labels, map(to_rgb, OKABE_ITO), strict=False))
    return dict(zip(labels, sns.color_palette("husl", len(labels)), strict=True))


def save(figure, folder: Path, name: str, *, size: FigureSize = DOUBLE_COLUMN) -> list[Path]:
    """The figure as PNG, at `size`'s dpi, and PDF, trimmed to what it draws: its layout keeps that within the
    width it was drawn at, so the printed width is that width."""
    paths = []
    for extension in ("png", "pdf"):
        path = Path(folder) / f"{name}.{extension}"
        figure.savefig(path, dpi=size.dpi, bbox_inches="tight", pad_inches=0.02, metadata=_METADATA[extension])
        paths.append(path)
    pyplot()[0].close(figure)
    return paths


def _font(font: str):
    """The style's font for `font`, an rcParams key such as "ytick.labelsize" (in points, or relative: "large")."""
    import matplotlib
    from matplotlib.font_manager import FontProperties

    return FontProperties(size=matplotlib.rcParams[font])


def _text_width(text: str, font: str) -> float:
    """How wide `text` prints in `font` (an rcParams key), in inches: its widest line."""
    from matplotlib.textpath import TextToPath

    points = max(TextToPath().get_text_width_height_descent(line, _font(font), ismath=False)[0]
                 for line in text.split("\n"))
    return points / 72


def _line_height(font: str) -> float:
    """The inches one line of text in `font` (an rcParams key) takes, at matplotlib's line spacing."""
    return _font(font).get_size_in_points() * 1.2 / 72


def _wrap(pieces: list[str], width: float, font: str) -> str:
    """The pieces (words, or phrases that read best whole, like an interval) joined by spaces into lines no
    wider than `width` inches in `font`; a phrase breaks at its spaces only where it alone is wider, and a word
    wider than `width` stays whole."""
    words = [word for piece in pieces
             for word in ([piece] if _text_width(piece, font) <= width else piece.split(" "))]
    lines = words[:1]
    for word in words[1:]:
        joined = f"{lines[-1]} {word}"
        if _text_width(joined, font) <= width:
            lines[-1] = joined
        else:
            lines.append(word)
    return "\n".join(lines)


def _lines(text: str) -> int:
    return text.count("\n") + 1


# One line style per variant, in the palette's order: with the colour it tells the curves apart in greyscale.
_LINE_STYLES = ("-", "--", ":", "-.", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (8, 2)), (0, (1, 4)), (0, (4, 2, 1, 2)))
MEMORY_AXIS = "peak memory per run (MiB, the CUDA allocator's)"


def line_style(palette: dict, label: str):
    """The line style of a variant (by its label), the same in every plot of a report."""
    return _LINE_STYLES[list(palette).index(label) % len(_LINE_STYLES)]


_LEGEND_KEY = 0.6  # inches a legend entry takes beside its text: the key, the gaps around it and between columns


def _legend_columns(names: list[str], size: FigureSize) -> int:
    """As many legend columns as the width holds whole entries (three at most: more reads as a row of words)."""
    widest = max((_text_width(name, "legend.fontsize") for name in names), default=0) + _LEGEND_KEY
    return max(1, min(len(names), 3, int(size.width // widest)))


def _legend_height(names: list[str], size: FigureSize) -> float:
    rows = -(-len(names) // _legend_columns(names, size))
    return rows * 1.5 * _line_height("legend.fontsize") + 0.1


def _legend_below(figure, handles: list, names: list[str], size: FigureSize) -> None:
    """One legend for every panel, under them (the constrained layout makes room), where it covers no data."""
    figure.legend(handles, names, loc="outside lower center", ncol=_legend_columns(names, size), frameon=False)


_PANEL = 1.6  # the narrowest a panel of curves or costs gets, in inches: narrower, its ticks crowd
_PANEL_HEIGHT = 2.2  # the tallest, however wide: a single panel across the page stays a strip
_TITLE_ROOM = 0.35  # a figure's title, in inches
_SIDE_ROOM = 0.5  # the y axis's label and tick labels beside a panel


def _panel_grid(count: int, size: FigureSize) -> tuple[int, int, float]:
    """Columns, rows and each panel's width (inches) for `count` panels: as many side by side as the width
    holds at `_PANEL` each, in rows below that."""
    columns = min(count, max(1, int(size.width // _PANEL)))
    return columns, -(-count // columns), size.width / columns


def _f1_panels(plt, size: FigureSize, panels: list[tuple[str, str]], legend: list[str], *, share_x: bool = False):
    """Panels of (x label, title) sharing dev F1 as their y axis, laid out by `_panel_grid`, with room below for
    a legend of `legend`. Where they share the x axis too, only a panel with none below it has x labels."""
    columns, rows, width = _panel_grid(len(panels), size)
    height = min(width * 0.75, _PANEL_HEIGHT)
    text = _line_height("axes.titlesize") * 2 + _line_height("axes.labelsize") * 2 + _line_height("xtick.labelsize")
    figure, grid = plt.subplots(rows, columns, figsize=(size.width, rows * (height + text) + _TITLE_ROOM
                                                        + _legend_height(legend, size)),
                                sharex=share_x, sharey=True, squeeze=False, layout="constrained")
    axes = list(grid.flat)
    for ax in axes[len(panels):]:
        ax.remove()
    for index, (ax, (xlabel, title)) in enumerate(zip(axes, panels, strict=False)):
        lowest = not share_x or index + columns >= len(panels)
        ax.tick_params(labelbottom=lowest)
        ax.set_xlabel(_wrap(xlabel.split(" "), width - 0.2, "axes.labelsize") if lowest else "")
        ax.set_title(_wrap(title.split(" "), width - 0.3, "axes.titlesize"))  # clear of the next title
    axes = axes[:len(panels)]
    for ax in axes[::columns]:
        ax.set_ylabel("dev F1 (%)")
    return figure, axes


def _suptitle(figure, text: str, size: FigureSize) -> float:
    """The figure's title, wrapped to its width; returns the inches it takes."""
    title = _wrap(text.split(" "), size.width - 0.2, "figure.titlesize")
    figure.suptitle(title)
    return _lines(title) * _line_height("figure.titlesize")


def _in_order(frame: pd.DataFrame, labels: dict[str, str], palette: dict) -> list[str]:
    """The variants present in `frame`, in the report's order (the palette's), so legends read alike."""
    present = set(frame["variant"])
    by_label = {label: variant for variant, label in labels.items()}
    return [by_label[label] for label in palette if by_label.get(label) in present]


def _words_fit(labels: list[str], column: float) -> bool:
    """Whether every word of the names fits a column `column` inches wide: then the names wrap, not slant."""
    return all(_text_width(word, "xtick.labelsize") <= column for label in labels for word in label.split(" "))


def _name_columns(ax, labels: list[str], column: float) -> float:
    """The variants' names under their columns, `column` inches apart: wrapped to the column where every word
    fits it; otherwise each on one slanted line, steep enough (30° at least) that the next name clears it.
    Returns the height (inches) they take below the axis."""
    line = _line_height("xtick.labelsize")
    ax.set_xticks(range(len(labels)))
    if _words_fit(labels, column):
        names = [_wrap(label.split(" "), column, "xtick.labelsize") for label in labels]
        ax.set_xticklabels(names)
        return max(map(_lines, names)) * line
    slant = max(np.radians(30), np.arcsin(min(1.0, 1.3 * line / column)))  # names `column` apart, a line and more
    ax.set_xticklabels(labels, rotation=np.degrees(slant), ha="right", rotation_mode="anchor")
    return max(_text_width(label, "xtick.labelsize") for label in labels) * np.sin(slant) + line


def _from_zero(ax) -> None:
    """A score is never negative, whatever a wide t interval says: the axis stops at 0."""
    ax.set_ylim(bottom=max(ax.get_ylim()[0], 0))


def _seeds_text(counts) -> str:
    """`n = 3`, or `n = 2–3` where the variants have different numbers of ok seeds."""
    low, high = int(min(counts, default=0)), int(max(counts, default=0))
    return f"n = {low}" if low == high else f"n = {low}–{high}"


def _seed_offsets(seeds: list[int]) -> dict[int, float]:
    """A small fixed horizontal offset per seed, the same in every column, so one seed's points line up and
    the line joining them stays readable (random jitter would break the pairing the design has)."""
    step = min(0.05, 0.2 / max(len(seeds), 1))
    return {seed: (rank - (len(seeds) - 1) / 2) * step for rank, seed in enumerate(seeds)}


_SIDE = 0.12  # the seeds sit this far left of their variant's column, the mean and its interval as far right
_VARIANT_COLUMN = 0.45  # the narrowest column a variant's scores get, in inches: narrower, EM and F1 are stacked


def scores(summary: pd.DataFrame, runs: pd.DataFrame, palette: dict, folder: Path, *,
           size: FigureSize = DOUBLE_COLUMN) -> list[Path]:
    """EM and F1 per variant, of the ok runs: the mean with its 95% t interval, and each seed as a point left
    of it, joined across variants by a thin grey line (the design is paired: seed s of every variant), in the
    variants' order. EM and F1 side by side where the width gives each variant `_VARIANT_COLUMN` and room to
    wrap its name, EM above F1 otherwise."""
    plt, _ = pyplot()
    labels = list(summary["label"])
    ok = runs[runs["status"] == "ok"]
    seeds = sorted(set(ok["seed"]))
    offsets = _seed_offsets(seeds)
    # side by side only where the names wrap under their columns: slanted names need more room than a half
    # width leaves, and the constrained layout would squeeze the axes to nothing to make it
    column = (size.width / 2 - _SIDE_ROOM) / len(labels)
    side_by_side = column >= _VARIANT_COLUMN and _words_fit(labels, column)
    panel = size.width / 2 if side_by_side else size.width
    figure, axes = plt.subplots(1 if side_by_side else 2, 2 if side_by_side else 1, layout="constrained")
    for ax, (metric, name) in zip(axes, (("exact", "EM"), ("f1", "F1")), strict=True):
        by_seed = ok.pivot(index="seed", columns="variant", values=metric).reindex(columns=list(summary["variant"]))
        for seed, row in by_seed.iterrows():  # NaN where a seed has no ok run: its line breaks there
            ax.plot(np.arange(len(labels)) - _SIDE + offsets[seed], row.to_numpy(dtype=float), color="0.55",
                    linewidth=0.7, alpha=0.8, zorder=1)
        for i, row in summary.reset_index(drop=True).iterrows():
            colour = palette[row["label"]]
            seeds_here = by_seed[row["variant"]].dropna()
            ax.scatter(i - _SIDE + seeds_here.index.map(offsets), seeds_here, color=colour, s=12, zorder=2)
            mean, low, high = row[f"{metric}_mean"], row[f"{metric}_low"], row[f"{metric}_high"]
            error = None if low != low else [[mean - low], [high - mean]]
            ax.errorbar(i + _SIDE, mean, yerr=error, fmt="o", color=colour, capsize=3, markersize=5, zorder=3)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        _from_zero(ax)
        ax.set_ylabel(f"dev {name} (%)")
        ax.set_title(name)
    names = max(_name_columns(ax, labels, (panel - _SIDE_ROOM) / len(labels)) for ax in axes)
    if not side_by_side:
        axes[0].tick_params(labelbottom=False)  # F1's below name the columns of both
    title = _suptitle(figure, f"Mean and 95% t interval over {_seeds_text(summary['ok'])} seeds; lines join one "
                      "seed's runs (their differences, paired t: the forest plot)", size)
    axes_height = min(max(panel * 0.5, 1.5), _PANEL_HEIGHT)
    rows = 1 if side_by_side else 2
    # the height from what the figure holds, set once it is drawn: the constrained layout fits it at saving
    figure.set_size_inches(size.width, rows * (axes_height + _line_height("axes.titlesize")) + names + title + 0.3)
    return save(figure, folder, "scores", size=size)


def _over_seeds(group: pd.DataFrame) -> pd.DataFrame:
    """One variant's curve: at each evaluation step, the mean over seeds with its 95% t interval (NaN below two
    seeds), the mean training time, and whether every seed scored the whole dev set there."""
    rows = []
    for step, at_step in group.groupby("step"):
        interval = mean_interval(at_step["value"])
        rows.append({"step": step, "mean": interval.mean, "low": interval.low, "high": interval.high,
                     "minutes": at_step["train_seconds"].mean() / 60, "whole_dev": bool(at_step["whole_dev"].all())})
    return pd.DataFrame(rows)


def _evaluation_ticks(steps: list[int], panel: float) -> list[int]:
    """The evaluation steps as ticks, thinned from the last (the final evaluation keeps its tick) to as many as
    a panel `panel` inches wide shows apart (ten at most)."""
    room = _text_width(str(max(steps)), "xtick.labelsize") + 0.1  # a tick label and a gap
    every = -(-len(steps) // max(2, min(10, int((panel - 0.4) / room))))  # the y axis's ticks beside the first
    return sorted(steps[::-1][::every])


def _ok_f1_curves(curve: pd.DataFrame) -> pd.DataFrame:
    """The ok runs' F1 evaluations, each marked whole_dev where it scored the whole dev set (the run's largest
    total: its last evaluation always does). Where a run scored a sample and then the whole set at one step (a
    time budget ending right after an evaluation), the whole set's score stands for that step."""
    f1 = curve[(curve["metric"] == "f1") & (curve["status"] == "ok")]
    f1 = f1.drop_duplicates(["variant", "seed", "step"], keep="last")
    return f1.assign(whole_dev=f1["total"] == f1.groupby(["variant", "seed"])["total"].transform("max"))


_ONE_PANEL_MOST = 3  # variants, the baseline included, one panel shows: with more their bands merge into one
_BASELINE_STYLE = {"color": "0.45", "linestyle": "-"}  # neutral, the same in every panel of small multiples
_SHADE = 0.2  # a band's opacity where a panel has two


def curves(curve: pd.DataFrame, labels: dict[str, str], palette: dict, folder: Path, *, wall_clock: bool,
           baseline: str, size: FigureSize = DOUBLE_COLUMN) -> list[Path]:
    """Dev F1 of the ok runs during training: the mean over seeds with a band of its 95% t interval (none at a
    step fewer than two seeds reached). Open circles: evaluations on a sample of dev; filled diamonds: on the
    whole dev set (every run's last, the score the tables report). Each variant has its colour and its line
    style, so the curves read in greyscale too. No plot without an ok run's curve.

    Up to `_ONE_PANEL_MOST` variants share one panel over steps and, where `wall_clock` (see
    `comparability.wall_clock_comparable`), a second over training time. With more, small multiples: a panel
    per variant against the `baseline` (grey in each), over steps only: a time panel each would double the
    figure, and `cost` has each run's F1 against its time where the clocks compare."""
    plt, _ = pyplot()
    f1 = _ok_f1_curves(curve)
    if f1.empty:
        return []
    by_variant = {variant: _over_seeds(f1[f1["variant"] == variant]) for variant in _in_order(f1, labels, palette)}
    keys = _evaluation_keys(f1)
    if len(by_variant) > _ONE_PANEL_MOST:
        figure, axes, handles = _against_the_baseline(plt, by_variant, labels, palette, baseline=baseline, size=size,
                                                      keys=keys)
    else:
        figure, axes, handles = _together(plt, by_variant, labels, palette, wall_clock=wall_clock, size=size,
                                          keys=keys)
    axes[0].set_xticks(_evaluation_ticks(sorted(set(f1["step"])), _panel_grid(len(axes), size)[2]))
    _from_zero(axes[0])
    _suptitle(figure, f"Mean over {_seeds_text(f1.groupby('variant')['seed'].nunique())} ok seeds, 95% t band",
              size)
    _legend_below(figure, handles, [handle.get_label() for handle in handles], size)
    return save(figure, folder, "curves", size=size)


def _together(plt, by_variant: dict[str, pd.DataFrame], labels: dict[str, str], palette: dict, *,
              wall_clock: bool, size: FigureSize, keys: list):
    """Every variant in one panel over steps, and in one over training time where `wall_clock`: the figure, its
    axes and its legend's entries."""
    panels = [("training step", "F1 over steps")]
    if wall_clock:
        panels.append(("training time (minutes, evaluation excluded)", "F1 over training time"))
    legend = [labels[variant] for variant in by_variant] + [key.get_label() for key in keys]
    figure, axes = _f1_panels(plt, size, panels, legend)
    shade = max(0.12, 0.36 / len(by_variant))  # bands stack: the more variants, the lighter each
    for variant, by_step in by_variant.items():
        style = {"color": palette[labels[variant]], "linestyle": line_style(palette, labels[variant])}
        for ax, x in zip(axes, (by_step["step"], by_step["minutes"]), strict=False):  # minutes: if a panel
            _draw_curve(ax, x, by_step, labels[variant], style=style, shade=shade)
    return figure, axes, axes[0].get_legend_handles_labels()[0] + keys


def _against_the_baseline(plt, by_variant: dict[str, pd.DataFrame], labels: dict[str, str], palette: dict, *,
                          baseline: str, size: FigureSize, keys: list):
    """Small multiples over steps, sharing both axes: a panel per variant but the baseline, titled with its
    label, each with the baseline's curve (where it has one) in the same grey: the figure, its axes and its
    legend's entries."""
    from matplotlib.lines import Line2D

    others = [variant for variant in by_variant if variant != baseline]
    reference = [Line2D([], [], label=labels[baseline], **_BASELINE_STYLE)] if baseline in by_variant else []
    legend = [line.get_label() for line in reference + keys]
    figure, axes = _f1_panels(plt, size, [("training step", labels[variant]) for variant in others], legend,
                              share_x=True)
    for ax, variant in zip(axes, others, strict=True):
        if reference:
            _draw_curve(ax, by_variant[baseline]["step"], by_variant[baseline], labels[baseline],
                        style=_BASELINE_STYLE, shade=_SHADE)
        style = {"color": palette[labels[variant]], "linestyle": line_style(palette, labels[variant])}
        _draw_curve(ax, by_variant[variant]["step"], by_variant[variant], labels[variant], style=style, shade=_SHADE)
    return figure, axes, reference + keys


def _draw_curve(ax, x: pd.Series, by_step: pd.DataFrame, label: str, *, style: dict, shade: float) -> None:
    """One variant's mean over seeds, its band and its evaluations' markers."""
    _mean_line(ax, x, by_step, label, style=style)
    ax.fill_between(x, by_step["low"], by_step["high"], color=style["color"], alpha=shade, linewidth=0)
    _mark_evaluations(ax, x, by_step, style["color"])


_SAMPLED = {"marker": "o", "markersize": 3.5, "markerfacecolor": "white", "linestyle": "none"}
_WHOLE_DEV = {"marker": "D", "markersize": 5, "markeredgecolor": "black", "markeredgewidth": 0.6, "linestyle": "none"}


def _mean_line(ax, x: pd.Series, by_step: pd.DataFrame, label: str, *, style: dict) -> None:
    """The mean over seeds: solid through the evaluations of one kind, dotted into a whole-dev-set evaluation
    from a sampled one (other questions: the step between them is no trend)."""
    x, mean, whole = np.asarray(x), by_step["mean"].to_numpy(), by_step["whole_dev"].to_numpy()
    kind = whole if whole.all() else ~whole
    ax.plot(x[kind], mean[kind], label=label, linewidth=1.4, **style)
    for index in np.flatnonzero(whole & ~kind):
        if index:
            ax.plot(x[index - 1:index + 1], mean[index - 1:index + 1], color=style["color"], linestyle=":",
                    linewidth=1.1)


def _mark_evaluations(ax, x: pd.Series, by_step: pd.DataFrame, colour) -> None:
    whole = by_step["whole_dev"].to_numpy()
    ax.plot(x[~whole], by_step["mean"][~whole], markeredgecolor=colour, zorder=3, **_SAMPLED)
    ax.plot(x[whole], by_step["mean"][whole], markerfacecolor=colour, zorder=4, **_WHOLE_DEV)


def _evaluation_keys(f1: pd.DataFrame) -> list:
    """Legend entries for the evaluation markers (a sample of dev only where some evaluation scored one)."""
    from matplotlib.lines import Line2D

    keys = [Line2D([], [], markerfacecolor="0.5", label="whole dev set", **_WHOLE_DEV)]
    if f1["whole_dev"].all():
        return keys
    return [Line2D([], [], markeredgecolor="0.3", label="sample of dev", **_SAMPLED), *keys]


def cost(runs: pd.DataFrame, labels: dict[str, str], palette: dict, folder: Path, *, time: bool, memory: bool,
         size: FigureSize = DOUBLE_COLUMN) -> list[Path]:
    """Quality against cost, one point per ok run: F1 against wall time where the clocks compare (`time`:
    `comparability.wall_clock_comparable`) and against peak memory where it is each run's own (`memory`:
    `comparability.memory_per_run`, the CUDA allocator's peak); no plot where neither is."""
    panels = [(x, xlabel, title) for x, xlabel, title, shown in (
        ("wall_seconds", "wall time per run (minutes)", "F1 against time", time),
        ("peak_memory_mb", MEMORY_AXIS, "F1 against memory", memory)) if shown]
    if not panels:
        return []
    plt, _ = pyplot()
    ok = runs[runs["status"] == "ok"].assign(wall_seconds=lambda frame: frame["wall_seconds"] / 60)
    variants = _in_order(ok, labels, palette)
    columns = [column for column, _, _ in panels]
    figure, axes = _f1_panels(plt, size, [(xlabel, title) for _, xlabel, title in panels],
                              [labels[variant] for variant in variants])
    for variant in variants:
        chosen = ok[ok["variant"] == variant]
        for ax, column in zip(axes, columns, strict=True):
            ax.scatter(chosen[column], chosen["f1"], color=palette[labels[variant]], label=labels[variant], s=20,
                       alpha=0.85)
    _legend_below(figure, *axes[0].get_legend_handles_labels(), size)
    return save(figure, folder, "cost", size=size)


def _test_text(row) -> str:
    """The test behind a difference and its n: `paired t, n = 3 pairs` or `Welch t, 3 vs 2 runs`."""
    return f"paired t, n = {int(row['diff_n'])} pairs" if row["diff_n"] else f"Welch t, {row['diff_runs']} runs"


def _effect_text(row) -> str:
    """`+1.2 [−0.5, +2.9]`, as in the tables."""
    text = difference_text(row["f1_diff"], row["f1_diff_low"], row["f1_diff_high"])
    return text if row["f1_diff_low"] == row["f1_diff_low"] else f"{text} no interval"


_ROW_LABELS = 0.45  # of the forest's width, its rows' labels take at most this share: the rest shows the intervals


def forest(summary: pd.DataFrame, baseline_label: str, palette: dict, folder: Path, *,
           size: FigureSize = DOUBLE_COLUMN) -> list[Path]:
    """The report's headline: each variant's difference in dev F1 to the baseline with its 95% interval,
    largest first, every row labelled with its numbers (wrapped to `_ROW_LABELS` of the width); the test and
    its n in the title where all rows share them, on each row otherwise."""
    plt, _ = pyplot()
    effects = summary[~summary["baseline"] & summary["f1_diff"].notna()].copy()
    effects = effects.iloc[effects["f1_diff"].abs().argsort()[::-1]].reset_index(drop=True)
    tests = effects.apply(_test_text, axis=1)
    shared_test = tests.iloc[0] if tests.nunique() == 1 else None
    rows = [_wrap([f"{row['label']}:", _effect_text(row)] + ([] if shared_test else [f"({tests[i]})"]),
                  size.width * _ROW_LABELS, "ytick.labelsize") for i, row in effects.iterrows()]
    beside = size.width - max(_text_width(text, "ytick.labelsize") for text in rows) - 0.3  # the axis's width
    xlabel = _wrap(f"ΔF1 against {baseline_label} (points, 95% interval)".split(" "), beside, "axes.labelsize")
    row_height = max(map(_lines, rows)) * _line_height("ytick.labelsize") + 0.15
    figure, ax = plt.subplots(layout="constrained")
    title = _suptitle(figure, "Difference in dev F1 to the baseline" + (f": {shared_test}" if shared_test else ""),
                      size)  # over the whole width: over the axis alone it would stick out beside long labels
    figure.set_size_inches(size.width, len(rows) * row_height + title + _lines(xlabel) * _line_height("axes.labelsize")
                           + _line_height("xtick.labelsize") + 0.3)
    for i, row in effects.iterrows():
        low, high = row["f1_diff_low"], row["f1_diff_high"]
        error = None if low != low else [[row["f1_diff"] - low], [high - row["f1_diff"]]]
        ax.errorbar(row["f1_diff"], i, xerr=error, fmt="o", color=palette[row["label"]], capsize=3, markersize=5)
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the largest difference on top
    ax.set_xlabel(xlabel)
    return save(figure, folder, "forest", size=size)
