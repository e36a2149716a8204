"""The report of an Optuna search: the best trials, how the search went, what mattered (Optuna's own
matplotlib plots), and the dev score against the learning rate with the pruned trials marked."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from bench import plots
from bench.records import records_frame
from bench.search import SearchStudy


def trials_frame(study, search: SearchStudy, records: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: number, state, value, the sampled settings, the steps its run reached, its record."""
    by_id = records.set_index("id") if not records.empty else pd.DataFrame()
    rows = []
    for trial in study.get_trials(deepcopy=False):
        record_id = trial.user_attrs.get("record_id")
        steps = by_id.loc[record_id, "steps"] if record_id in by_id.index else None
        rows.append({"trial": trial.number, "state": trial.state.name.lower(), search.objective: trial.value,
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


def write_search_report(search: SearchStudy, scale: str, study, records_root: Path, out: Path) -> list[Path]:
    """Write the search's report under `out`; returns the files."""
    import optuna
    import optuna.visualization.matplotlib as optuna_plots

    records = records_frame(search.name, records_root)
    records = records[records["scale"] == scale] if not records.empty else records
    frame = trials_frame(study, search, records)
    out.mkdir(parents=True, exist_ok=True)
    (out / "trials.csv").write_text(frame.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
    (out / "best.md").write_text(best_table(frame, search.objective), encoding="utf-8")
    figures = []
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        drawings = {"history": lambda: optuna_plots.plot_optimization_history(study),
                    "slice": lambda: optuna_plots.plot_slice(study)}
        if len(complete) >= 2 and len(study.best_trial.params) >= 2:
            # PED-ANOVA: Optuna's own, deterministic and without scikit-learn (which fANOVA needs)
            drawings["importances"] = lambda: optuna_plots.plot_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
            drawings["contour"] = lambda: optuna_plots.plot_contour(study)
        for name, draw in drawings.items():
            if complete:
                axes = draw()
                figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
                figures += plots.save(figure, out, name)
    if "train.lr" in frame and not frame.empty:
        figures += plots.score_against_lr(frame, search.objective, study, out)
    lines = [f"# {search.name} ({scale}): Optuna search", "", search.description, "",
             f"{len(frame)} trials: " + ", ".join(f"{state} {count}" for state, count in
                                                  (frame["state"].value_counts().sort_index().items()
                                                   if not frame.empty else [])), "",
             "## Best trials", "", best_table(frame, search.objective), "## Plots", ""]
    lines += [f"![{path.stem}]({path.name})" for path in figures if path.suffix == ".png"] + [""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return [out / "report.md", out / "best.md", out / "trials.csv", *figures]
