"""What a report's runs were, stated from their records: the data, the model and the budget, the settings that
differ from the study file (a `--set` given to `bench run`, or a file edited since), what each named variant
sets, how to run them again, each run as a row (runs.csv), whether their costs can be confounded with the
order they ran in, and what to cite. Every format of a report takes these from here."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pandas as pd

from bench.records import study_records
from bench.spec import NOT_IN_ID
from bench.study import DATA_LOCATIONS, Study, value_text
from qanet.config import RunConfig

# where the data was read from and where a run executed: they differ between machines running the same study
_NOT_COMPARED = {*DATA_LOCATIONS, *(f"train.{key}" for key in NOT_IN_ID)}


def settings(config: RunConfig) -> dict[str, Any]:
    """A configuration as dotted keys: `model.hidden` -> 128."""
    return {f"{section}.{key}": value for section, values in config.to_dict().items() for key, value in values.items()}


def overrides(study: Study, scale: str, records: Path) -> dict[str, dict[str, Any]]:
    """Record id -> the settings its run had that the study file does not give it at `scale`."""
    made_at_scale = [record.spec for record in study_records(study.name, records) if record.spec.scale == scale]
    planned = {(run.variant, run.seed): settings(run.config)
               for run in study.runs(scale, seeds=sorted({made.seed for made in made_at_scale}))}
    found = {}
    for run in made_at_scale:
        if (run.variant, run.seed) not in planned:
            continue
        made = settings(run.config)
        plan = planned[(run.variant, run.seed)]
        found[run.id] = {key: value for key, value in made.items()
                         if key not in _NOT_COMPARED and plan.get(key) != value}
    return found


def trained_as(frame: pd.DataFrame, variant: str) -> dict[str, Any]:
    """How a variant's runs were trained, from their records (`records_frame`): the first run's settings, the
    seed, where the data was read from and where it ran left out, and its data's fingerprint; {} where the
    variant has no run. What two studies' baselines were trained with differently is what these differ in."""
    runs = frame[frame["variant"] == variant]
    if runs.empty:
        return {}
    first = runs.iloc[0]
    return {**{key: first[key] for key in frame.columns if "." in key and key not in _NOT_COMPARED | {"train.seed"}},
            "data fingerprint": first["dataset_fingerprint"]}


def settings_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{key} = {value_text(value)}" for key, value in values.items())


def shared_overrides(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The settings every run had beyond the study file's (what `bench run --set` gave them all)."""
    runs = list(found.values())
    return {key: value for key, value in runs[0].items() if all(run.get(key) == value for run in runs[1:])} \
        if runs else {}


def _data_name(frame: pd.DataFrame) -> str:
    """The data sets the runs read, by name: `SQuAD v1.1`, `synthetic data`, or several joined by "and"."""
    def name(run) -> str:
        if run["data.train"] == "synthetic":
            return "synthetic data"
        where = " ".join(str(run.get(key) or "") for key in ("data.train", "data.dev", "data.pack")).lower()
        return "SQuAD v2.0" if "v2.0" in where else "SQuAD v1.1" if "v1.1" in where else "SQuAD-format files"

    return " and ".join(dict.fromkeys(name(run) for _, run in frame.iterrows()))


def _questions_scored(frame: pd.DataFrame) -> str:
    """The dev questions the runs' last evaluations scored: `10,570`."""
    return " or ".join(f"{total:,}" for total in sorted({int(total) for total in frame["total"].dropna()})) or "no"


def data_text(frame: pd.DataFrame) -> str:
    """The data the runs trained and were scored on, from their configuration and their last evaluation."""
    name = _data_name(frame)
    if name == "synthetic data":
        name += " (generated question-answer pairs: its scores say nothing about SQuAD)"
    else:
        name += f" with {frame.iloc[0]['data.vectors']} word vectors"
    return f"{name}; {_questions_scored(frame)} dev questions scored at the end of each run"


def scores_on(frame: pd.DataFrame) -> str:
    """What the scores are, for a caption: `Dev EM and F1 (%) on SQuAD v1.1, 10,570 questions.`"""
    return f"Dev EM and F1 (%) on {_data_name(frame)}, {_questions_scored(frame)} questions."


def model_text(frame: pd.DataFrame) -> str:
    """The model size and the budget of the baseline's runs (the first row's configuration)."""
    first = frame.iloc[0]
    parameters = frame["parameters"].dropna()
    size = f"{int(parameters.iloc[0]):,} parameters, " if len(parameters) else ""
    minutes = first.get("train.minutes")
    if minutes == minutes and minutes is not None:  # a time budget: the step setting is only its cap
        steps = frame["steps"].dropna()
        budget = f"{minutes:g} minutes a run ({int(steps.min()):,}-{int(steps.max()):,} steps reached)"
    else:
        budget = f"{int(first['train.steps']):,} steps"
    return (f"hidden {first['model.hidden']}, {first['model.model_blocks']} model blocks, {first['model.heads']} "
            f"heads ({size}char encoder {first['model.char_encoder']}); {budget} of batch "
            f"{first['train.batch_size']}, {first['train.optimizer']}, context limit {first['data.context_len']} "
            f"tokens")


def what_ran(frame: pd.DataFrame, study: Study, found: dict[str, dict[str, Any]], baseline: str, *,
             labels: dict[str, str], default_labels: dict[str, str]) -> list[str]:
    """What ran, as lines: the data, the baseline's model and budget, the settings beyond the study file's, what
    each named or renamed variant sets (its label no longer says). The report states them once in each
    format."""
    base_runs = frame[frame["variant"] == baseline]
    lines = [f"Data: {data_text(frame)}.",
             f"Baseline ({labels[baseline]}): {model_text(base_runs)}." if len(base_runs) else
             f"Baseline ({labels[baseline]}): no records at this scale. The runs: {model_text(frame)}."]
    shared = shared_overrides(found)
    if shared:
        lines.append(f"Set for every run beyond the study file: {settings_text(shared)}.")
    for run_id, extra in found.items():
        own = {key: value for key, value in extra.items() if key not in shared}
        if own:
            row = frame[frame["id"] == run_id].iloc[0]
            lines.append(f"Set for {labels.get(row['variant'], row['variant'])} seed {row['seed']} beyond the "
                         f"study file: {settings_text(own)}.")
    for name, values in study.variants().items():
        renamed = labels.get(name) != default_labels.get(name)
        if name in set(frame["variant"]) and values and (name in study.named or renamed):
            lines.append(f"{labels.get(name, name)} sets: {settings_text(values)}.")
    return lines


def code_line(frame: pd.DataFrame) -> str:
    """The code versions the records were made with."""
    shas = sorted({sha[:10] for sha in frame["git_sha"].dropna()}) or ["unknown"]
    return f"Code: git {', '.join(shas)}"


def run_line(study: str, frame: pd.DataFrame, scale: str, found: dict[str, dict[str, Any]]) -> str:
    """The `bench run` command that makes a study's runs again: its seeds and the settings every run had beyond
    the study file."""
    seeds = ",".join(str(seed) for seed in sorted(set(frame["seed"])))
    extra = "".join(f" --set {shlex.quote(f'{key}={value_text(value)}')}"
                    for key, value in shared_overrides(found).items())
    return f"Runs: `python -m bench run {study} --scale {scale} --seeds {seeds}{extra}`"


def report_line(command: str) -> str:
    return f"Report: `{command}`"


def unreliable_wall_times(frame: pd.DataFrame) -> pd.Series:
    """The runs whose wall time misses a session: resumed before records timed each session (a wall time below
    the training time it includes gives them away), or resumed after a session that logged nothing (its length
    is not known). Their wall time is left out of means."""
    before_sessions = frame["sessions"].isna() & (frame["wall_seconds"] < frame["train_seconds"])
    return before_sessions | (frame["wall_complete"] == False)  # noqa: E712 - None: a record before the field


def cost_warnings(frame: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """Where the records' costs could mislead: runs resumed (their wall time summed, or not known), and costs that
    follow the order the runs ran in rather than the variant."""
    warnings = []
    for _, row in frame[unreliable_wall_times(frame)].iterrows():
        warnings.append(f"{labels.get(row['variant'], row['variant'])} seed {row['seed']} was resumed and its record "
                        f"misses the length of a session ({row['wall_seconds']:.0f} s of wall time, "
                        f"{row['train_seconds']:.0f} s of training): its wall time is left out of the means")
    resumed = frame[frame["sessions"].fillna(1) > 1]
    if len(resumed):
        warnings.append(f"{len(resumed)} run(s) were resumed: their wall time is the sum of their sessions, the "
                        "steps redone after the last checkpoint included")
    return warnings + _order_warnings(frame)


def _order_warnings(frame: pd.DataFrame) -> list[str]:
    if frame["variant"].nunique() < 2 or frame["seed"].nunique() < 2:
        return []
    if frame["started"].isna().any():
        return ["the records do not say when their runs started (made before records did): whether the costs "
                "drift with the order the runs ran in, not with the variant, cannot be checked"]
    order = frame.sort_values("started")["variant"].tolist()
    changes = sum(a != b for a, b in zip(order, order[1:], strict=False))
    if changes == frame["variant"].nunique() - 1:
        return ["the runs ran variant by variant, so the costs (throughput, wall time, memory) of the later "
                "variants carry whatever drifted over the hours: compare them with care (bench run now runs "
                "seed by seed)"]
    return []


RUN_COLUMNS = ["study", "scale", "variant", "label", "seed", "id", "status", "git_sha", "git_dirty", "overrides",
               "started", "ended", "sessions", "wall_seconds", "wall_complete", "train_seconds", "eval_seconds",
               "steps", "train_examples_per_s", "peak_memory_mib", "parameters", "device", "threads", "error"]


def runs_csv(frame: pd.DataFrame, labels: dict[str, str], found: dict[str, dict[str, Any]]) -> str:
    """One row per run, in the order they ran (where known): who it is, how it ended, the code, the settings
    beyond the study file, when, and every metric it recorded (peak memory in MiB)."""
    runs = frame.assign(label=frame["variant"].map(labels), peak_memory_mib=frame["peak_memory_mb"],
                        wall_complete=~unreliable_wall_times(frame),
                        overrides=frame["id"].map(lambda run_id: "; ".join(
                            f"{key}={value_text(value)}" for key, value in found.get(run_id, {}).items())))
    metrics = [column for column in frame if column in ("exact", "f1", "total")
               or column.startswith(("HasAns", "NoAns"))]
    # ISO 8601 in UTC, as the runner writes them: their text sorts as their times do
    runs = runs.sort_values(["started", "variant", "seed"], na_position="last", kind="stable")
    return runs[[*RUN_COLUMNS, *metrics]].to_csv(index=False, lineterminator="\n")


_BIBTEX = {
    "qanet": """@inproceedings{yu2018qanet,
  title     = {{QANet}: Combining Local Convolution with Global Self-Attention for Reading Comprehension},
  author    = {Yu, Adams Wei and Dohan, David and Luong, Minh-Thang and Zhao, Rui and Chen, Kai and
               Norouzi, Mohammad and Le, Quoc V.},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2018}
}""",
    "squad": """@inproceedings{rajpurkar2016squad,
  title     = {{SQuAD}: 100,000+ Questions for Machine Comprehension of Text},
  author    = {Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle = {Proceedings of the 2016 Conference on Empirical Methods in Natural Language Processing (EMNLP)},
  pages     = {2383--2392},
  year      = {2016}
}""",
    "glove": """@inproceedings{pennington2014glove,
  title     = {{GloVe}: Global Vectors for Word Representation},
  author    = {Pennington, Jeffrey and Socher, Richard and Manning, Christopher D.},
  booktitle = {Proceedings of the 2014 Conference on Empirical Methods in Natural Language Processing (EMNLP)},
  pages     = {1532--1543},
  year      = {2014}
}""",
}


def citations(frame: pd.DataFrame) -> list[str]:
    """The BibTeX entries of what the runs used: QANet always, SQuAD where they read it, GloVe where its vectors."""
    keys = ["qanet"]
    if (frame["data.train"] != "synthetic").any():
        keys.append("squad")
    if frame["data.vectors"].astype(str).str.lower().str.contains("glove").any():
        keys.append("glove")
    return [_BIBTEX[key] for key in keys]
