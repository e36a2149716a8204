"""The report's plots: the forest of differences to the baseline, the scores, the curves during training and
the cost (seaborn style, matplotlib's Agg backend), each saved as PNG and PDF without the
metadata that would change from one run to the next, and one colour per variant in every plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.reporting.statistics import difference_text, mean_interval

# no creation date or software version in the files: the same records give the same bytes
_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


def pyplot():
    """matplotlib's pyplot and seaborn, set to the report's style on the Agg backend (no display needed); every
    figure of a report, the search's included, is drawn through this."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    plt.rcParams.update({"svg.hashsalt": "qanet-bench", "pdf.compression": 6})
    return plt, sns


def colours(labels: list[str]) -> dict[str, tuple]:
    """The same colour for a variant in every plot of a report."""
    _, sns = pyplot()
    palette = sns.color_palette("colorblind" if len(labels) <= 10 else "husl", max(len(labels), 3))
    return dict(zip(labels, palette, strict=False))


def save(figure, folder: Path, name: str) -> list[Path]:
    paths = []
    for extension in ("png", "pdf"):
        path = Path(folder) / f"{name}.{extension}"
        figure.savefig(path, dpi=150, bbox_inches="tight", metadata=_METADATA[extension])
        paths.append(path)
    pyplot()[0].close(figure)
    return paths


# One line style per variant, in the palette's order: with the colour it tells the curves apart in greyscale.
_LINE_STYLES = ("-", "--", ":", "-.", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (8, 2)), (0, (1, 4)), (0, (4, 2, 1, 2)))
MEMORY_AXIS = "peak memory per run (MB, the CUDA allocator's)"


def line_style(palette: dict, label: str):
    """The line style of a variant (by its label), the same in every plot of a report."""
    return _LINE_STYLES[list(palette).index(label) % len(_LINE_STYLES)]


def _legend_below(figure, handles: list, names: list[str]) -> None:
    """One legend for every panel, under them (the constrained layout makes room), where it covers no data."""
    columns = min(len(names), 3 if len(figure.axes) > 1 else 2)
    figure.legend(handles, names, loc="outside lower center", ncol=columns, frameon=False)


def _f1_panels(plt, xlabels: list[str], titles: list[str]):
    """Side by side panels sharing dev F1 as their y axis."""
    figure, axes = plt.subplots(1, len(xlabels), figsize=(5 * len(xlabels), 4.2), sharey=True, squeeze=False,
                                layout="constrained")
    axes = list(axes[0])
    for ax, xlabel, title in zip(axes, xlabels, titles, strict=True):
        ax.set_xlabel(xlabel)
        ax.set_title(title)
    axes[0].set_ylabel("dev F1 (%)")
    return figure, axes


def _in_order(frame: pd.DataFrame, labels: dict[str, str], palette: dict) -> list[str]:
    """The variants present in `frame`, in the report's order (the palette's), so legends read alike."""
    present = set(frame["variant"])
    by_label = {label: variant for variant, label in labels.items()}
    return [by_label[label] for label in palette if by_label.get(label) in present]


def _label_axis(ax, labels: list[str]) -> None:
    ax.set_xticks(range(len(labels)))
    long = max((len(label) for label in labels), default=0) > 14 or len(labels) > 4
    ax.set_xticklabels(labels, rotation=25 if long else 0, ha="right" if long else "center")


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


def scores(summary: pd.DataFrame, runs: pd.DataFrame, palette: dict, folder: Path) -> list[Path]:
    """EM and F1 per variant, of the ok runs: the mean with its 95% t interval, and each seed as a point left
    of it, joined across variants by a thin grey line (the design is paired: seed s of every variant), in the
    variants' order."""
    plt, _ = pyplot()
    labels = list(summary["label"])
    ok = runs[runs["status"] == "ok"]
    seeds = sorted(set(ok["seed"]))
    offsets = _seed_offsets(seeds)
    figure, axes = plt.subplots(1, 2, figsize=(min(14.0, max(9.0, 1.1 * len(labels) + 4)), 4.3))
    for ax, (metric, name) in zip(axes, (("exact", "EM"), ("f1", "F1")), strict=True):
        by_seed = ok.pivot(index="seed", columns="variant", values=metric).reindex(columns=list(summary["variant"]))
        for seed, row in by_seed.iterrows():  # NaN where a seed has no ok run: its line breaks there
            ax.plot(np.arange(len(labels)) - _SIDE + offsets[seed], row.to_numpy(dtype=float), color="0.55",
                    linewidth=0.7, alpha=0.8, zorder=1)
        for i, row in summary.reset_index(drop=True).iterrows():
            colour = palette[row["label"]]
            seeds_here = by_seed[row["variant"]].dropna()
            ax.scatter(i - _SIDE + seeds_here.index.map(offsets), seeds_here, color=colour, s=16, zorder=2)
            mean, low, high = row[f"{metric}_mean"], row[f"{metric}_low"], row[f"{metric}_high"]
            error = None if low != low else [[mean - low], [high - mean]]
            ax.errorbar(i + _SIDE, mean, yerr=error, fmt="o", color=colour, capsize=5, markersize=7, zorder=3)
        _label_axis(ax, labels)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        _from_zero(ax)
        ax.set_ylabel(f"dev {name} (%)")
        ax.set_title(name)
    figure.suptitle(f"Mean and 95% t interval over {_seeds_text(summary['ok'])} seeds; lines join one seed's runs "
                    "(their differences, paired t: the forest plot)")
    figure.tight_layout()
    return save(figure, folder, "scores")


def _over_seeds(group: pd.DataFrame) -> pd.DataFrame:
    """One variant's curve: at each evaluation step, the mean over seeds with its 95% t interval (NaN below two
    seeds), the mean training time, and whether every seed scored the whole dev set there."""
    rows = []
    for step, at_step in group.groupby("step"):
        interval = mean_interval(at_step["value"])
        rows.append({"step": step, "mean": interval.mean, "low": interval.low, "high": interval.high,
                     "minutes": at_step["train_seconds"].mean() / 60, "whole_dev": bool(at_step["whole_dev"].all())})
    return pd.DataFrame(rows)


def _evaluation_ticks(steps: list[int]) -> list[int]:
    """The evaluation steps as ticks, thinned to about ten from the last (the final evaluation keeps its tick)."""
    every = -(-len(steps) // 10)
    return sorted(steps[::-1][::every])


def _ok_f1_curves(curve: pd.DataFrame) -> pd.DataFrame:
    """The ok runs' F1 evaluations, each marked whole_dev where it scored the whole dev set (the run's largest
    total: its last evaluation always does). Where a run scored a sample and then the whole set at one step (a
    time budget ending right after an evaluation), the whole set's score stands for that step."""
    f1 = curve[(curve["metric"] == "f1") & (curve["status"] == "ok")]
    f1 = f1.drop_duplicates(["variant", "seed", "step"], keep="last")
    return f1.assign(whole_dev=f1["total"] == f1.groupby(["variant", "seed"])["total"].transform("max"))


def curves(curve: pd.DataFrame, labels: dict[str, str], palette: dict, folder: Path,
           wall_clock: bool) -> list[Path]:
    """Dev F1 of the ok runs during training, against steps and, where `wall_clock` (see
    `comparability.wall_clock_comparable`), against training time: the mean over seeds with a band of its 95% t
    interval (none at a step fewer than two seeds reached). Open circles: evaluations on a sample of dev; filled
    diamonds: on the whole dev set (every run's last, the score the tables report). Each variant has its colour
    and its line style, so the curves read in greyscale too. No plot without an ok run's curve."""
    plt, _ = pyplot()
    f1 = _ok_f1_curves(curve)
    if f1.empty:
        return []
    panels = [("training step", "F1 over steps")]
    if wall_clock:
        panels.append(("training time (minutes, evaluation excluded)", "F1 over training time"))
    figure, axes = _f1_panels(plt, *map(list, zip(*panels, strict=True)))
    variants = _in_order(f1, labels, palette)
    shade = max(0.12, 0.36 / len(variants))  # bands stack: the more variants, the lighter each, or they hide the lines
    for variant in variants:
        by_step = _over_seeds(f1[f1["variant"] == variant])
        style = {"color": palette[labels[variant]], "linestyle": line_style(palette, labels[variant])}
        for ax, x in zip(axes, (by_step["step"], by_step["minutes"]), strict=False):  # minutes: if a panel
            _mean_line(ax, x, by_step, labels[variant], style)
            ax.fill_between(x, by_step["low"], by_step["high"], color=style["color"], alpha=shade, linewidth=0)
            _mark_evaluations(ax, x, by_step, style["color"])
    axes[0].set_xticks(_evaluation_ticks(sorted(set(f1["step"]))))
    _from_zero(axes[0])
    figure.suptitle(f"Mean over {_seeds_text(f1.groupby('variant')['seed'].nunique())} ok seeds, 95% t band")
    handles, names = axes[0].get_legend_handles_labels()
    keys = _evaluation_keys(f1)
    _legend_below(figure, handles + keys, names + [key.get_label() for key in keys])
    return save(figure, folder, "curves")


_SAMPLED = {"marker": "o", "markersize": 4, "markerfacecolor": "white", "linestyle": "none"}
_WHOLE_DEV = {"marker": "D", "markersize": 6, "markeredgecolor": "black", "markeredgewidth": 0.6, "linestyle": "none"}


def _mean_line(ax, x: pd.Series, by_step: pd.DataFrame, label: str, style: dict) -> None:
    """The mean over seeds: solid through the evaluations of one kind, dotted into a whole-dev-set evaluation
    from a sampled one (other questions: the step between them is no trend)."""
    x, mean, whole = np.asarray(x), by_step["mean"].to_numpy(), by_step["whole_dev"].to_numpy()
    kind = whole if whole.all() else ~whole
    ax.plot(x[kind], mean[kind], label=label, linewidth=1.6, **style)
    for index in np.flatnonzero(whole & ~kind):
        if index:
            ax.plot(x[index - 1:index + 1], mean[index - 1:index + 1], color=style["color"], linestyle=":",
                    linewidth=1.2)


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


def cost(runs: pd.DataFrame, labels: dict[str, str], palette: dict, folder: Path, time: bool, memory: bool
         ) -> list[Path]:
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
    columns, xlabels, titles = map(list, zip(*panels, strict=True))
    figure, axes = _f1_panels(plt, xlabels, titles)
    for variant in _in_order(ok, labels, palette):
        chosen = ok[ok["variant"] == variant]
        for ax, column in zip(axes, columns, strict=True):
            ax.scatter(chosen[column], chosen["f1"], color=palette[labels[variant]], label=labels[variant], s=30,
                       alpha=0.85)
    _legend_below(figure, *axes[0].get_legend_handles_labels())
    return save(figure, folder, "cost")


def _test_text(row) -> str:
    """The test behind a difference and its n: `paired t, n = 3 pairs` or `Welch t, 3 vs 2 runs`."""
    return f"paired t, n = {int(row['diff_n'])} pairs" if row["diff_n"] else f"Welch t, {row['diff_runs']} runs"


def _effect_text(row) -> str:
    """`+1.2 [−0.5, +2.9]`, as in the tables."""
    text = difference_text(row["f1_diff"], row["f1_diff_low"], row["f1_diff_high"])
    return text if row["f1_diff_low"] == row["f1_diff_low"] else f"{text} no interval"


def forest(summary: pd.DataFrame, baseline_label: str, palette: dict, folder: Path) -> list[Path]:
    """The report's headline: each variant's difference in dev F1 to the baseline with its 95% interval,
    largest first, every row labelled with its numbers; the test and its n in the title where all rows share
    them, on each row otherwise."""
    plt, _ = pyplot()
    effects = summary[~summary["baseline"] & summary["f1_diff"].notna()].copy()
    effects = effects.iloc[effects["f1_diff"].abs().argsort()[::-1]].reset_index(drop=True)
    tests = effects.apply(_test_text, axis=1)
    shared_test = tests.iloc[0] if tests.nunique() == 1 else None
    figure, ax = plt.subplots(figsize=(7.5, 0.5 * len(effects) + 1.6))
    for i, row in effects.iterrows():
        low, high = row["f1_diff_low"], row["f1_diff_high"]
        error = None if low != low else [[row["f1_diff"] - low], [high - row["f1_diff"]]]
        ax.errorbar(row["f1_diff"], i, xerr=error, fmt="o", color=palette[row["label"]], capsize=4)
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(effects)))
    ax.set_yticklabels([f"{row['label']}: {_effect_text(row)}" + ("" if shared_test else f" ({tests[i]})")
                        for i, row in effects.iterrows()])
    ax.invert_yaxis()
    ax.set_xlabel(f"ΔF1 against {baseline_label} (points, 95% interval)")
    ax.set_title("Difference in dev F1 to the baseline" + (f": {shared_test}" if shared_test else ""))
    figure.tight_layout()
    return save(figure, folder, "forest")
