"""The report's plots (seaborn style, matplotlib's Agg backend), each saved as PNG and PDF without the
metadata that would change from one run to the next, and one colour per variant in every plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

# no creation date or software version in the files: the same records give the same bytes
_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    plt.rcParams.update({"svg.hashsalt": "qanet-bench", "pdf.compression": 6})
    return plt, sns


def colours(labels: list[str]) -> dict[str, tuple]:
    """The same colour for a variant in every plot of a report."""
    _, sns = _pyplot()
    palette = sns.color_palette("colorblind" if len(labels) <= 10 else "husl", max(len(labels), 3))
    return dict(zip(labels, palette, strict=False))


def save(figure, folder: Path, name: str) -> list[Path]:
    paths = []
    for extension in ("png", "pdf"):
        path = Path(folder) / f"{name}.{extension}"
        figure.savefig(path, dpi=150, bbox_inches="tight", metadata=_METADATA[extension])
        paths.append(path)
    _pyplot()[0].close(figure)
    return paths


def _two_panels(figure, axes, xlabels: tuple[str, str], titles: tuple[str, str]) -> None:
    """Two panels sharing dev F1 as their y axis, one legend under both."""
    for ax, xlabel, title in zip(axes, xlabels, titles, strict=True):
        ax.set_xlabel(xlabel)
        ax.set_title(title)
    axes[0].set_ylabel("dev F1 (%)")
    _legend_below(figure, axes[0])


def _legend_below(figure, ax) -> None:
    """One legend for both panels, under them, where it covers no data."""
    handles, names = ax.get_legend_handles_labels()
    rows = (len(names) + 2) // 3
    figure.tight_layout(rect=(0, 0.06 + 0.05 * rows, 1, 1))
    figure.legend(handles, names, loc="lower center", ncol=min(len(names), 3), frameon=False)


def _in_order(frame: pd.DataFrame, labels: dict[str, str], palette: dict) -> list[str]:
    """The variants present in `frame`, in the report's order (the palette's), so legends read alike."""
    present = set(frame["variant"])
    by_label = {label: variant for variant, label in labels.items()}
    return [by_label[label] for label in palette if by_label.get(label) in present]


def _label_axis(ax, labels: list[str]) -> None:
    ax.set_xticks(range(len(labels)))
    long = max((len(label) for label in labels), default=0) > 14 or len(labels) > 4
    ax.set_xticklabels(labels, rotation=25 if long else 0, ha="right" if long else "center")


def scores(summary: pd.DataFrame, runs: pd.DataFrame, palette: dict, folder: Path) -> list[Path]:
    """EM and F1 per variant: the mean with its 95% CI, and each seed as a point."""
    plt, _ = _pyplot()
    labels = list(summary["label"])
    figure, axes = plt.subplots(1, 2, figsize=(min(14.0, max(9.0, 1.1 * len(labels) + 4)), 4.0))
    rng = np.random.default_rng(0)  # the seeds' horizontal jitter, the same every time
    for ax, (metric, name) in zip(axes, (("exact", "EM"), ("f1", "F1")), strict=True):
        for i, row in summary.reset_index(drop=True).iterrows():
            colour = palette[row["label"]]
            seeds = runs[(runs["variant"] == row["variant"]) & (runs["status"] == "ok")][metric]
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(seeds)), seeds, color=colour, alpha=0.5, s=18, zorder=2)
            mean, low, high = row[f"{metric}_mean"], row[f"{metric}_low"], row[f"{metric}_high"]
            error = None if low != low else [[mean - low], [high - mean]]
            ax.errorbar(i, mean, yerr=error, fmt="o", color=colour, capsize=5, markersize=7, zorder=3)
        _label_axis(ax, labels)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_ylim(bottom=max(ax.get_ylim()[0], 0))  # a score is never negative, whatever a wide CI says
        ax.set_ylabel(f"dev {name} (%)")
        ax.set_title(f"{name}: mean, 95% CI, seeds")
    figure.tight_layout()
    return save(figure, folder, "scores")


def curves(curve: pd.DataFrame, labels: dict[str, str], palette: dict, folder: Path) -> list[Path]:
    """Dev F1 during training against steps and against training time: the mean over seeds, and a band of
    one standard deviation (the evaluations of one step across seeds)."""
    plt, _ = _pyplot()
    f1 = curve[curve["metric"] == "f1"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for variant in _in_order(f1, labels, palette):
        group = f1[f1["variant"] == variant]
        by_step = group.groupby("step").agg(mean=("value", "mean"), sd=("value", "std"),
                                            minutes=("train_seconds", "mean"))
        by_step["sd"] = by_step["sd"].fillna(0)
        by_step["minutes"] = by_step["minutes"] / 60
        colour = palette[labels[variant]]
        for ax, x in zip(axes, (by_step.index, by_step["minutes"]), strict=True):
            ax.plot(x, by_step["mean"], color=colour, label=labels[variant], linewidth=1.6)
            ax.fill_between(x, by_step["mean"] - by_step["sd"], by_step["mean"] + by_step["sd"], color=colour,
                            alpha=0.2, linewidth=0)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    _two_panels(figure, axes, ("training step", "training time (minutes, evaluation excluded)"),
                ("F1 over steps", "F1 over training time"))
    return save(figure, folder, "curves")


def cost(runs: pd.DataFrame, labels: dict[str, str], palette: dict, folder: Path) -> list[Path]:
    """Quality against cost: F1 against wall time and against peak memory, one point per ok run."""
    plt, _ = _pyplot()
    ok = runs[runs["status"] == "ok"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for variant in _in_order(ok, labels, palette):
        group = ok[ok["variant"] == variant]
        for ax, x in zip(axes, (group["wall_seconds"] / 60, group["peak_memory_mb"]), strict=True):
            ax.scatter(x, group["f1"], color=palette[labels[variant]], label=labels[variant], s=30, alpha=0.85)
    _two_panels(figure, axes, ("wall time per run (minutes)", "peak memory (MB)"),
                ("F1 against time", "F1 against memory"))
    return save(figure, folder, "cost")


def forest(summary: pd.DataFrame, baseline_label: str, palette: dict, folder: Path) -> list[Path]:
    """Every axis's effect on F1 (the difference to the base with its 95% CI), largest first."""
    plt, _ = _pyplot()
    effects = summary[~summary["baseline"] & summary["f1_diff"].notna()].copy()
    effects = effects.iloc[effects["f1_diff"].abs().argsort()[::-1]].reset_index(drop=True)
    figure, ax = plt.subplots(figsize=(7, 0.45 * len(effects) + 1.4))
    for i, row in effects.iterrows():
        low, high = row["f1_diff_low"], row["f1_diff_high"]
        error = None if low != low else [[row["f1_diff"] - low], [high - row["f1_diff"]]]
        ax.errorbar(row["f1_diff"], i, xerr=error, fmt="o", color=palette[row["label"]], capsize=4)
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(effects)))
    ax.set_yticklabels(effects["label"])
    ax.invert_yaxis()
    ax.set_xlabel(f"ΔF1 against {baseline_label} (points, 95% CI)")
    ax.set_title("Effect of each change on dev F1")
    figure.tight_layout()
    return save(figure, folder, "forest")


def score_against_lr(trials: pd.DataFrame, objective: str, study, folder: Path) -> list[Path]:
    """Each trial's dev score against its learning rate (log scale): complete trials as points, pruned ones as
    crosses at the last score reported before the pruner stopped them."""
    plt, _ = _pyplot()
    last_reported = {t.number: t.intermediate_values[max(t.intermediate_values)]
                     for t in study.get_trials(deepcopy=False) if t.intermediate_values}
    figure, ax = plt.subplots(figsize=(6.5, 4))
    complete = trials[trials["state"] == "complete"]
    pruned = trials[trials["state"] == "pruned"]
    ax.scatter(complete["train.lr"], complete[objective], color="tab:blue", s=36, label="complete")
    ax.scatter(pruned["train.lr"], [last_reported.get(n) for n in pruned["trial"]], color="tab:red", marker="x",
               s=40, label="pruned (last score reported)")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (train.lr, log scale)")
    ax.set_ylabel(f"dev {'F1' if objective == 'f1' else 'EM'} (%)")
    ax.set_title("Dev score against learning rate")
    ax.legend(frameon=False)
    figure.tight_layout()
    return save(figure, folder, "score_vs_lr")
