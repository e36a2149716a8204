"""Optuna searches: studies/NAME.toml with `kind = "optuna"` -> trials, each a normal run with a record.

    kind = "optuna"
    description = "..."
    preset = "paper"
    seed = 0                        # the sampler's seed and every trial's training seed
    trials = 20
    objective = "f1"                # or "exact": dev score of the run, maximised
    sampler = "tpe"                 # or "random"
    pruner = "median"               # or "hyperband", "none": fed the dev score at each evaluation
    [budget]
    steps = 25000
    [set]
    "train.optimizer" = "adam"
    [params."train.lr"]
    type = "float"                  # float, int or categorical
    low = 1e-4
    high = 3e-3
    log = true
    [scale.smoke]                   # what the smoke scale changes besides its own settings
    trials = 8
    set = { "train.steps" = 300, "train.eval_every" = 100 }

Each trial is executed like a study's run (bench.runner.execute): a record under OUT/NAME/ with variant
"trial N" and an `optuna` field (study, trial number, storage), and the trial's user attribute
`record_id` names the record. A pruned trial is a record with status "pruned".
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.study import NOT_A_SETTING, SCALES, StudyError, read_study_file, scale_settings
from qanet.config import PRESETS, ConfigError, RunConfig, build_config
from qanet.train import Hooks, StopTraining

OBJECTIVES = ("f1", "exact")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "threshold", "none")
_KEYS = {"kind": str, "description": str, "preset": str, "seed": int, "trials": int, "objective": str,
         "sampler": str, "pruner": str, "prune_below": float, "budget": dict, "set": dict, "params": dict,
         "scale": dict}


@dataclass(frozen=True)
class Param:
    """One searched setting and its distribution."""

    key: str
    type: str  # float, int, categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log)
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(self.key, list(self.choices))


@dataclass
class SearchStudy:
    name: str
    path: Path
    description: str
    preset: str
    seed: int
    trials: int
    objective: str
    sampler: str
    pruner: str
    prune_below: float  # the threshold pruner's: a run whose dev score falls below it is pruned
    budget: dict[str, Any]
    fixed: dict[str, Any]
    params: dict[str, dict[str, Any]]  # key -> its distribution as written
    scales: dict[str, dict[str, Any]] = field(default_factory=dict)

    def error(self, key: str, value: Any, problem: str) -> StudyError:
        return StudyError(f"{self.path}: {key} = {value!r}: {problem}")

    def trials_at(self, scale: str) -> int:
        return self.scales.get(scale, {}).get("trials", self.trials)

    def params_at(self, scale: str) -> list[Param]:
        """The distributions at a scale: a scale may narrow one (`[scale.smoke.params."train.warmup_steps"]
        high = 100`: a warm-up longer than a 300-step run means nothing)."""
        narrowed = self.scales.get(scale, {}).get("params", {})
        return [_param(self.path, key, {**spec, **narrowed.get(key, {})}) for key, spec in self.params.items()]

    def config(self, sampled: dict[str, Any], scale: str) -> RunConfig:
        """The run of one trial: preset, fixed settings, budget, the scale's settings, the sampled values."""
        overrides = {**self.fixed, **{f"train.{key}": value for key, value in self.budget.items()},
                     **scale_settings(scale), **self.scales.get(scale, {}).get("set", {}), **sampled,
                     "train.seed": self.seed}
        try:
            return build_config(self.preset, overrides)
        except ConfigError as error:
            raise StudyError(f"{self.path}: {error}") from None

    def sampler_object(self, seed: int):
        import optuna

        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)  # workers in parallel spread out

    def pruner_object(self):
        import optuna

        if self.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
        if self.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner()
        if self.pruner == "threshold":
            return optuna.pruners.ThresholdPruner(lower=self.prune_below)
        return optuna.pruners.NopPruner()


def load_search(name: str) -> SearchStudy:
    """Read and check a search study; every scale's extremes are built once so errors come first."""
    path, raw = read_study_file(name)
    for key, value in raw.items():
        if key not in _KEYS:
            raise StudyError(f"{path}: {key} = {value!r}: unknown key (expected one of {sorted(_KEYS)})")
        kinds = (int, float) if _KEYS[key] is float else _KEYS[key]
        if not isinstance(value, kinds) or (_KEYS[key] in (int, float) and isinstance(value, bool)):
            raise StudyError(f"{path}: {key} = {value!r}: expected {_KEYS[key].__name__}")
    if raw.get("kind") != "optuna":
        raise StudyError(f"{path}: kind = {raw.get('kind')!r}: not an Optuna study (kind = \"optuna\")")
    study = SearchStudy(
        name=path.stem, path=path, description=raw.get("description", ""), preset=raw.get("preset", "paper"),
        seed=raw.get("seed", 0), trials=raw.get("trials", 20), objective=raw.get("objective", "f1"),
        sampler=raw.get("sampler", "tpe"), pruner=raw.get("pruner", "median"),
        prune_below=float(raw.get("prune_below", 1.0)), budget=raw.get("budget", {}),
        fixed=raw.get("set", {}), params=raw.get("params", {}),
        scales=raw.get("scale", {}))
    _check(study)
    return study


def _param(path: Path, key: str, spec: Any) -> Param:
    where = f"{path}: params.{key}"
    if not isinstance(spec, dict):
        raise StudyError(f"{where} = {spec!r}: expected a table (type, low, high, log, or choices)")
    unknown = set(spec) - {"type", "low", "high", "log", "choices"}
    if unknown:
        raise StudyError(f"{where}.{sorted(unknown)[0]}: unknown (expected type, low, high, log, choices)")
    kind = spec.get("type")
    if kind == "categorical":
        if not isinstance(spec.get("choices"), list) or not spec["choices"]:
            raise StudyError(f"{where}.choices = {spec.get('choices')!r}: expected a non-empty list")
        return Param(key, kind, choices=tuple(spec["choices"]))
    if kind not in ("float", "int"):
        raise StudyError(f"{where}.type = {kind!r}: expected float, int or categorical")
    low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
    numbers = (int,) if kind == "int" else (int, float)
    if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise StudyError(f"{where}: low = {low!r}, high = {high!r}: expected {kind} numbers with low < high")
    if not isinstance(log, bool) or (log and low <= 0):
        raise StudyError(f"{where}.log = {log!r}: expected true or false, and low > 0 on a log scale")
    return Param(key, kind, low, high, log)


def _check(study: SearchStudy) -> None:
    if study.preset not in PRESETS:
        raise study.error("preset", study.preset, f"unknown preset (choose one of {sorted(PRESETS)})")
    for key, allowed in (("objective", OBJECTIVES), ("sampler", SAMPLERS), ("pruner", PRUNERS)):
        if getattr(study, key) not in allowed:
            raise study.error(key, getattr(study, key), f"expected one of {', '.join(allowed)}")
    if study.trials < 1:
        raise study.error("trials", study.trials, "expected an integer >= 1")
    for section, keys in (("set", study.fixed), ("params", study.params)):
        for key in keys:
            if key in NOT_A_SETTING:
                raise study.error(f"{section}.{key}", keys[key], NOT_A_SETTING[key].replace("'seeds' list",
                                                                                            "'seed'"))
    if not study.params:
        raise study.error("params", {}, "nothing to search: add [params.\"train.lr\"] or another")
    for scale, settings in study.scales.items():
        if scale not in SCALES or not isinstance(settings, dict) or set(settings) - {"trials", "set", "params"}:
            raise study.error(f"scale.{scale}", settings, f"expected a scale ({', '.join(SCALES)}) with trials, "
                                                          f"set and/or params")
        for key in settings.get("params", {}):
            if key not in study.params:
                raise study.error(f"scale.{scale}.params.{key}", settings["params"][key], "not a searched setting")
    for scale in SCALES:
        params = study.params_at(scale)
        for extreme in ("low", "high"):  # every setting and both ends of every range must build
            study.config({p.key: p.choices[0] if p.type == "categorical" else
                          (int(getattr(p, extreme)) if p.type == "int" else getattr(p, extreme))
                          for p in params}, scale)


class ReportToTrial(Hooks):
    """Hands each evaluation's dev score to the Optuna trial, and ends the run as "pruned" when the pruner
    says so."""

    def __init__(self, trial, objective: str) -> None:
        self.trial, self.objective = trial, objective

    def on_evaluation(self, step: int, entry: dict) -> None:
        self.trial.report(entry[self.objective], step)
        if self.trial.should_prune():
            raise StopTraining("pruned", f"pruned at step {step} (dev {self.objective} {entry[self.objective]:.2f})")


class RunFailed(RuntimeError):
    """A trial whose run ended failed, oom or diverged: Optuna records the trial as failed."""


def objective_function(study: SearchStudy, scale: str, out: Path, storage: str, threads: int | None):
    """Optuna's objective: one trial = one run (resumed from its checkpoint if a trial with the same
    settings was cut off), its record linked both ways. A trial that draws settings already run, or being
    run by another worker, waits for that run and takes its result (the same settings are the same run)."""

    def objective(trial) -> float:
        import optuna

        from bench.runner import LOCKED, execute, plan

        sampled = {param.key: param.suggest(trial) for param in study.params_at(scale)}
        config = study.config(sampled, scale)
        [spec] = plan(study.name, [(f"trial {trial.number}", study.seed, config)], scale, out / study.name)
        spec = dataclasses.replace(spec, tags={"optuna": {"study": study.name, "trial": trial.number,
                                                          "storage": without_password(storage),
                                                          "params": sampled}})
        trial.set_user_attr("record_id", spec.id)
        reporter = ReportToTrial(trial, study.objective)
        record = execute(spec, threads=threads, hooks=[reporter])
        while record["status"] == LOCKED:  # another worker is training these very settings
            time.sleep(5)
            record = execute(spec, threads=threads, hooks=[reporter])
        if (record.get("optuna") or {}).get("trial") != trial.number:  # another trial's run: its curve is ours
            for entry in record.get("curve") or []:
                trial.report(entry[study.objective], entry["step"])
        if record["status"] == "pruned":
            raise optuna.TrialPruned(record["error"])
        if record["status"] != "ok":
            last_line = ((record["error"] or "").strip().splitlines() or [""])[-1]
            raise RunFailed(f"trial {trial.number}: {record['status']}: {last_line}")
        return record["metrics"][study.objective]

    return objective


def without_password(url: str) -> str:
    """A storage URL fit for a record or a terminal: user:password@ loses the password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}"


def optuna_name(search: SearchStudy, scale: str) -> str:
    """The Optuna study of a search at a scale: one per scale, as their scores do not compare."""
    return f"{search.name}-{scale}"
