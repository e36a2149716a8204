"""The report of an Optuna search: the best trials, how the search went, what mattered (Optuna's own
matplotlib plots, the curves the pruner judged among them), and the held-out score against the learning
rate with the pruned trials marked. Scores are those the search chose on: training questions held out, not
the dev set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.records import RecordError, records_frame
from bench.reporting import plots
from bench.scales import SCALES
from bench.search.definition import Search
from bench.search.storage import (
    experimental_on_purpose,
    nothing_stored,
    open_storage_to_read,
    optuna_name,
    without_password,
)


def report_search(search: Search, url: str, asked_scale: str | None, *, records_root: Path,
                  out: Path) -> list[Path]:
    """Write the report of the search's trials in the Optuna storage at `url` under `out`; returns the files.
    The storage is only read: a report never creates it, nor changes a byte of it."""
    import optuna

    nothing_there = nothing_stored(url, search.name, asked_scale)
    storage = open_storage_to_read(url, nothing_there)
    scale = _scale_with_trials(search, storage, url, asked=asked_scale, nothing_there=nothing_there)
    optuna_study = optuna.load_study(study_name=optuna_name(search, scale), storage=storage)
    return write_search_report(search, scale, optuna_study, records_root=records_root, out=out)


def _scale_with_trials(search: Search, storage, url: str, *, asked: str | None, nothing_there: Exception) -> str:
    """`asked`, or the one scale the search has trials at in the storage; an error where that is not one."""
    import optuna

    stored = optuna.get_all_study_names(storage)
    scales = [scale for scale in SCALES if optuna_name(search, scale) in stored]
    if not scales:
        raise nothing_there
    if asked not in (None, *scales) or (asked is None and len(scales) > 1):
        raise RecordError(f"{without_password(url)}: the search {search.name} has trials at scale(s) "
                          f"{', '.join(scales)}" + ("; choose one with --scale" if len(scales) > 1 else ""))
    return asked or scales[0]


def trials_frame(optuna_study, search: Search, records: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: number, state, value (column `search.curve_key`: the held-out score), the sampled
    settings, the steps its run reached, its record."""
    by_id = records.set_index("id") if not records.empty else pd.DataFrame()
    rows = []
    for trial in optuna_study.get_trials(deepcopy=False):
        record_id = trial.user_attrs.get("record_id")
        steps = by_id.loc[record_id, "steps"] if record_id in by_id.index else None
        rows.append({"trial": trial.number, "state": trial.state.name.lower(), search.curve_key: trial.value,
                     **trial.params, "steps": steps, "record": record_id})
    return pd.DataFrame(rows)


def best_table(frame: pd.DataFrame, objective: str, count: int = 10) -> str:
    if frame.empty or not (frame["state"] == "complete").any():
        return "no complete trial yet\n"
    done = frame[frame["state"] == "complete"].sort_values([objective, "trial"], ascending=[False, True])
    shown = done.head(count).copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: f"{v:.4g}")
    return shown.to_markdown(index=False, disable_numparse=True) + "\n"


def write_search_report(search: Search, scale: str, optuna_study, *, records_root: Path, out: Path) -> list[Path]:
    """Write the search's report under `out`; returns the files."""
    import optuna
    import optuna.visualization.matplotlib as optuna_plots

    plots.pyplot()  # the report's style, before Optuna draws its first figure
    records = records_frame(search.name, records_root)
    records = records[records["scale"] == scale] if not records.empty else records
    frame = trials_frame(optuna_study, search, records)
    out.mkdir(parents=True, exist_ok=True)
    (out / "trials.csv").write_text(frame.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
    (out / "best.md").write_text(best_table(frame, search.curve_key), encoding="utf-8")
    figures = []
    trials = optuna_study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    target = search.metric_name
    with experimental_on_purpose():  # Optuna's plots
        drawings = {}
        if complete:
            drawings["history"] = lambda: optuna_plots.plot_optimization_history(optuna_study, target_name=target)
            drawings["slice"] = lambda: optuna_plots.plot_slice(optuna_study, target_name=target)
        if len(complete) >= 2 and len(optuna_study.best_trial.params) >= 2:
            # PED-ANOVA: Optuna's own, deterministic and without scikit-learn (which fANOVA needs)
            drawings["importances"] = lambda: optuna_plots.plot_param_importances(
                optuna_study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target_name=target)
            drawings["contour"] = lambda: optuna_plots.plot_contour(optuna_study, target_name=target)
        if any(t.intermediate_values for t in trials):  # the scores the pruner compared, pruned trials included
            drawings["intermediate"] = lambda: _named(optuna_plots.plot_intermediate_values(optuna_study), target,
                                                      trials)
        for name, draw in drawings.items():
            axes = draw()
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            figures += plots.save(figure, out, name)
    if "train.lr" in frame and not frame.empty:
        figures += score_against_lr(frame, search, optuna_study, out)
    counted = len(frame)
    lines = [f"# {search.name} ({scale}): Optuna search", "", search.description, "",
             f"{counted} trials ({search.sampling_text(scale, counted)}): "
             + ", ".join(f"{state} {count}" for state, count in
                         (frame["state"].value_counts().sort_index().items() if not frame.empty else [])), "",
             f"Objective: {search.objective_text(scale)}, maximised: training questions held out of every trial "
             f"(whole paragraphs), never the dev set. To report: export the best trial (`python -m bench search "
             f"{search.name} --scale {scale} --export-best PATH`), train it over three seeds (`python -m bench run "
             f"PATH --scale {scale}`) and report that study's dev scores (`python -m bench report PATH`).",
             "", f"Pruning: {search.pruner}; no score before step {search.longest_warmup(scale)} is judged (the "
             f"longest learning-rate warm-up a trial can have).", "",
             "## Best trials", "", best_table(frame, search.curve_key), "## Plots", ""]
    if "importances" in drawings:
        lines += [f"The parameter importances and the contour rest on {len(complete)} complete trials: indicative "
                  "only (the history plot shows complete trials; pruned ones are in the intermediate values).", ""]
    lines += [f"![{path.stem}]({path.name})" for path in figures if path.suffix == ".png"] + [""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return [out / "report.md", out / "best.md", out / "trials.csv", *figures]


def _named(axes, target: str, trials: list):
    """Optuna's intermediate-values plot with its y axis named (it has no target_name) and its ticks at the
    evaluations' steps."""
    axes.set_ylabel(f"{target} at each evaluation")
    axes.set_xticks(sorted({step for trial in trials for step in trial.intermediate_values}))
    return axes


def score_against_lr(trials: pd.DataFrame, search: Search, optuna_study, folder: Path) -> list[Path]:
    """Each trial's held-out score against its learning rate (log scale): complete trials as points, pruned
    ones as crosses at the last score reported before the pruner stopped them."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    plt, _ = plots.pyplot()

    last_reported = {t.number: t.intermediate_values[max(t.intermediate_values)]
                     for t in optuna_study.get_trials(deepcopy=False) if t.intermediate_values}
    figure, ax = plt.subplots(figsize=(6.5, 4))
    complete = trials[trials["state"] == "complete"]
    pruned = trials[trials["state"] == "pruned"]
    ax.scatter(complete["train.lr"], complete[search.curve_key], color="tab:blue", s=36, label="complete")
    ax.scatter(pruned["train.lr"], [last_reported.get(n) for n in pruned["trial"]], color="tab:red", marker="x",
               s=40, label="pruned (last score reported)")
    ax.set_xscale("log")
    # labels at 1 and 3 of each decade: a range of a decade or two (1e-4 to 1e-2) would show one or two labels
    # at the powers of ten alone, and labelled minor ticks overlap
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
    ax.xaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("learning rate (train.lr, log scale)")
    ax.set_ylabel(f"{search.metric_name} (%)")
    ax.set_title(f"{search.metric_name[0].upper()}{search.metric_name[1:]} against learning rate")
    ax.legend(frameon=False)
    figure.tight_layout()
    return plots.save(figure, folder, "score_vs_lr")
