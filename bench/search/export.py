"""The best trial of a stored search written as an ordinary study file for `bench run` (a small TOML writer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.search.definition import Search, load_search
from bench.search.storage import existing_optuna_study, optuna_name, refuse_a_changed_search, storage_url
from bench.study import StudyError
from qanet.config import config_value


def export_best_trial(search_file: str, overrides: list[tuple[str, Any]], *, scale: str, storage: str | None,
                      heartbeat: int, path: Path) -> Path:
    """`bench search --export-best PATH`: the best trial of the search stored at `storage` (the default where
    None) at `scale`, written to `path` (see export_best); returns the path. A stored search whose definition
    changed since is refused."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = load_search(search_file, overrides)
    url = storage_url(search, storage)
    optuna_study = existing_optuna_study(optuna_name(search, scale), url, heartbeat)
    refuse_a_changed_search(optuna_study, search, scale, url)
    export_best(optuna_study, search, scale, path)
    return path


def export_best(optuna_study, search: Search, scale: str, path: Path) -> None:
    """The best trial as an ordinary study file, three seeds from the search's, the search's budget. At the
    search's scale its first seed is the trial's very run (same settings, same id, the same training
    questions held out): [scale.NAME.set] pins what the trial set over that scale's own settings. The dev
    scores of its three seeds, never used to choose, are the numbers to report."""
    from optuna.trial import TrialState

    if not optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise StudyError(f"{optuna_study.study_name}: no complete trial yet, nothing to export")
    best = optuna_study.best_trial
    about = (f"Best trial ({best.number}) of the Optuna search {search.name} at scale {scale}: "
             f"{search.objective_text(scale)} {best.value:.2f}")
    seeds = [search.seed + offset for offset in range(3)]
    lines = [f"description = {json.dumps(about)}", f"preset = {json.dumps(search.preset)}",
             f"seeds = {json.dumps(seeds)}", "", "[budget]"]
    lines += [f"{key} = {_toml(value)}" for key, value in search.budget.items()]
    lines += ["", "[set]"] + _settings({**search.fixed, **best.params})
    lines += ["", f"[scale.{scale}.set]  # seed {search.seed} at scale {scale} is the trial's run, record "
                  f"{best.user_attrs.get('record_id')}"] + _settings(
        {**search.pinned(scale, best.params), **{key: config_value(key, value)
                                                  for key, value in search.trial_overrides()}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _settings(settings: dict) -> list[str]:
    return [f"{json.dumps(key)} = {_toml(value)}" for key, value in settings.items()]


def _toml(value) -> str:
    return json.dumps(value)  # numbers, strings, booleans and lists read back the same in TOML

