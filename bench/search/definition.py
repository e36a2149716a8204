"""The search file: studies/NAME.toml with `kind = "optuna"`, read and checked into a Search (its distributions,
the trials' settings, its sampler and pruner).

    kind = "optuna"
    description = "..."
    preset = "paper"
    seed = 0                        # the sampler's seed and every trial's training seed
    trials = 20
    objective = "f1"                # or "exact": the run's score on training questions held out, maximised
    holdout_questions = 2000        # held out of every trial's training (data.holdout_questions)
    sampler = "tpe"                 # or "random"
    startup_trials = 10             # TPE draws at random until the Optuna study holds this many
    pruner = "median"               # or "hyperband", "threshold", "none": fed the held-out score at each evaluation
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
    startup_trials = 4
    holdout_questions = 1200
    set = { "train.steps" = 300, "train.eval_every" = 100 }
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.scales import SCALES
from bench.spec import NOT_IN_ID
from bench.study import DATA_LOCATIONS, NOT_A_SETTING, StudyError, check_keys, read_study_file, run_config
from qanet.config import ConfigError, RunConfig, apply_overrides
from qanet.data.batching import HOLDOUT_SEED

OBJECTIVES = ("f1", "exact")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "threshold", "none")
_KEYS = {"kind": str, "description": str, "preset": str, "seed": int, "trials": int, "objective": str,
         "holdout_questions": int, "sampler": str, "startup_trials": int, "pruner": str, "prune_below": float,
         "budget": dict, "set": dict, "params": dict, "scale": dict}
COUNTS = ("trials", "startup_trials", "holdout_questions")  # integers >= 1 that a [scale.X] may change
OBJECTIVE_NAMES = {"f1": "F1", "exact": "EM"}


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

    def ends(self) -> list:
        """The values at the ends of the range (every choice of a categorical)."""
        if self.type == "categorical":
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.type == "int" else [self.low, self.high]


@dataclass
class Search:
    name: str
    path: Path
    description: str
    preset: str
    seed: int
    trials: int
    objective: str
    holdout_questions: int  # training questions held out of every trial, its objective scored on them
    sampler: str
    startup_trials: int  # TPE's random start: n_startup_trials
    pruner: str
    prune_below: float  # the threshold pruner's: a run whose held-out score falls below it is pruned
    budget: dict[str, Any]
    fixed: dict[str, Any]
    params: dict[str, dict[str, Any]]  # key -> its distribution as written
    scales: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: list[tuple[str, Any]] = field(default_factory=list)  # bench search --set, over every trial's own

    def error(self, key: str, value: Any, problem: str) -> StudyError:
        return StudyError(f"{self.path}: {key} = {value!r}: {problem}")

    def count_at(self, key: str, scale: str) -> int:
        """`trials`, `startup_trials` or `holdout_questions` at a scale: its [scale.X] value, else the file's."""
        return self.scales.get(scale, {}).get(key, getattr(self, key))

    def sampling_text(self, scale: str, trials: int) -> str:
        """How `trials` trials are drawn: TPE draws at random until the Optuna study holds `startup_trials` trials."""
        startup = self.count_at("startup_trials", scale)
        if self.sampler == "random" or trials <= startup:
            return "random search"
        return f"TPE, its first {startup} trials random"

    @property
    def metric_name(self) -> str:
        return f"held-out train {OBJECTIVE_NAMES[self.objective]}"

    def objective_text(self, scale: str) -> str:
        return (f"{self.metric_name} ({self.count_at('holdout_questions', scale)} questions, "
                f"seed {HOLDOUT_SEED})")

    @property
    def curve_key(self) -> str:
        """The score a trial reports at each evaluation: its curve entry's held-out objective."""
        return f"holdout_{self.objective}"

    def params_at(self, scale: str) -> list[Param]:
        """The distributions at a scale: a scale may narrow one (`[scale.smoke.params."train.warmup_steps"]
        high = 100`: a warm-up longer than a 300-step run means nothing)."""
        narrowed = self.scales.get(scale, {}).get("params", {})
        return [_param(self.path, key, {**distribution, **narrowed.get(key, {})})
                for key, distribution in self.params.items()]

    def extremes(self, scale: str) -> list[dict[str, Any]]:
        """Every combination of the ends of the searched ranges at a scale."""
        ends = [[(param.key, value) for value in param.ends()] for param in self.params_at(scale)]
        return [dict(combination) for combination in itertools.product(*ends)]

    def pinned(self, scale: str, sampled: dict[str, Any]) -> dict[str, Any]:
        """What a trial sets over the scale's own settings: the [scale.X] set, the held-out questions and
        the sampled values (an exported study pins them at that scale)."""
        return {**self.scales.get(scale, {}).get("set", {}),
                "data.holdout_questions": self.count_at("holdout_questions", scale), **sampled}

    def trial_overrides(self) -> list[tuple[str, Any]]:
        """The command line's settings that change what a trial is: not where its data lies, nor where and how
        it executes (the settings a run's id leaves out)."""
        return [(key, value) for key, value in self.overrides if key not in DATA_LOCATIONS
                and key.removeprefix("train.") not in NOT_IN_ID]

    def config(self, sampled: dict[str, Any], scale: str) -> RunConfig:
        """The run of one trial: preset, fixed settings, budget, the scale's settings, then `pinned`, then the
        command line's settings."""
        config = run_config(self.path, self.preset, fixed=self.fixed, budget=self.budget, scale=scale,
                            pinned=self.pinned(scale, sampled), own={"train.seed": self.seed})
        return apply_overrides(config, self.overrides).validate()

    def longest_warmup(self, scale: str) -> int:
        """The longest learning-rate warm-up of any trial at a scale (none for an optimiser without warm-up)."""
        return max(self.config(sampled, scale).train.warmup for sampled in self.extremes(scale))

    def definition(self, scale: str) -> dict[str, Any]:
        """Everything that decides what the trials at a scale are and how they are drawn, pruned and scored:
        the whole search file but its description and trial count (raising it continues a search), and the
        command line's settings. Where the data lies (files or a pack) is left out: workers on several machines
        find the same data at different paths, or read it from a pack."""
        scale_own = {key: value for key, value in SCALES[scale].settings().items() if key not in DATA_LOCATIONS}
        typed = {key: str(value) for key, value in self.trial_overrides()}
        return {**({"command_line": typed} if typed else {}), "scale": scale, "scale_settings": scale_own,
                "preset": self.preset, "seed": self.seed,
                "objective": self.objective, "holdout_questions": self.count_at("holdout_questions", scale),
                "sampler": self.sampler, "startup_trials": self.count_at("startup_trials", scale),
                "pruner": self.pruner, "prune_below": self.prune_below, "budget": self.budget, "set": self.fixed,
                "scale_set": self.scales.get(scale, {}).get("set", {}),
                "params": [dataclasses.asdict(param) for param in self.params_at(scale)]}

    def definition_hash(self, scale: str) -> str:
        return hashlib.sha256(json.dumps(self.definition(scale), sort_keys=True).encode()).hexdigest()

    def sampler_object(self, seed: int, scale: str):
        import optuna

        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.count_at("startup_trials", scale),
                                          constant_liar=True)  # workers in parallel spread out

    def pruner_object(self, scale: str):
        """The pruner, never pruning during the longest warm-up a trial can have: a score reported while the
        learning rate is still rising says how long the warm-up is, not how good the settings are. The median
        pruner starts after 2 trials, whatever the sampler's random start: the median of 2 finished curves
        is enough to stop a run far below them, and waiting for 10 would prune nothing in a short search."""
        import optuna

        warmup = self.longest_warmup(scale)
        if self.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup)
        if self.pruner == "hyperband":  # its first rung no earlier than the warm-up's end
            return optuna.pruners.HyperbandPruner(min_resource=warmup or "auto")
        if self.pruner == "threshold":
            return optuna.pruners.ThresholdPruner(lower=self.prune_below, n_warmup_steps=warmup)
        return optuna.pruners.NopPruner()


def load_search(name: str, overrides: list[tuple[str, Any]] = ()) -> Search:
    """Read and check a search file, with `overrides` (bench search --set) over every trial's settings; every
    scale's extremes are built once so errors come first."""
    path, raw = read_study_file(name)
    check_keys(path, raw, _KEYS)
    if raw.get("kind") != "optuna":
        raise StudyError(f"{path}: kind = {raw.get('kind')!r}: not an Optuna search (kind = \"optuna\")")
    search = Search(
        name=path.stem, path=path, description=raw.get("description", ""), preset=raw.get("preset", "paper"),
        seed=raw.get("seed", 0), trials=raw.get("trials", 20), objective=raw.get("objective", "f1"),
        holdout_questions=raw.get("holdout_questions", 2000), sampler=raw.get("sampler", "tpe"),
        startup_trials=raw.get("startup_trials", 10), pruner=raw.get("pruner", "median"),
        prune_below=float(raw.get("prune_below", 1.0)), budget=raw.get("budget", {}),
        fixed=raw.get("set", {}), params=raw.get("params", {}),
        scales=raw.get("scale", {}), overrides=list(overrides))
    _check(search)
    return search


def _param(path: Path, key: str, distribution: Any) -> Param:
    where = f"{path}: params.{key}"
    if not isinstance(distribution, dict):
        raise StudyError(f"{where} = {distribution!r}: expected a table (type, low, high, log, or choices)")
    unknown = set(distribution) - {"type", "low", "high", "log", "choices"}
    if unknown:
        raise StudyError(f"{where}.{sorted(unknown)[0]}: unknown (expected type, low, high, log, choices)")
    kind = distribution.get("type")
    if kind == "categorical":
        if not isinstance(distribution.get("choices"), list) or not distribution["choices"]:
            raise StudyError(f"{where}.choices = {distribution.get('choices')!r}: expected a non-empty list")
        return Param(key, kind, choices=tuple(distribution["choices"]))
    if kind not in ("float", "int"):
        raise StudyError(f"{where}.type = {kind!r}: expected float, int or categorical")
    low, high, log = distribution.get("low"), distribution.get("high"), distribution.get("log", False)
    numbers = (int,) if kind == "int" else (int, float)
    if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise StudyError(f"{where}: low = {low!r}, high = {high!r}: expected {kind} numbers with low < high")
    if not isinstance(log, bool) or (log and low <= 0):
        raise StudyError(f"{where}.log = {log!r}: expected true or false, and low > 0 on a log scale")
    return Param(key, kind, low, high, log)


def _check(search: Search) -> None:
    for key, allowed in (("objective", OBJECTIVES), ("sampler", SAMPLERS), ("pruner", PRUNERS)):
        if getattr(search, key) not in allowed:
            raise search.error(key, getattr(search, key), f"expected one of {', '.join(allowed)}")
    for section, keys in (("set", search.fixed), ("params", search.params)):
        for key in keys:
            if key in NOT_A_SETTING:
                raise search.error(f"{section}.{key}", keys[key], NOT_A_SETTING[key].replace("'seeds' list",
                                                                                            "'seed'"))
    if not search.params:
        raise search.error("params", {}, "nothing to search: add [params.\"train.lr\"] or another")
    for key, value in search.overrides:  # what the search itself decides cannot be set from outside it
        if key in search.params or key in ("train.seed", "data.holdout_questions"):
            raise ConfigError(f"--set {key}={value}: the search file decides it (a searched range, its seed or its "
                              f"held-out questions); change the file instead")
    for scale, settings in search.scales.items():
        if (scale not in SCALES or not isinstance(settings, dict) or set(settings) - {*COUNTS, "set", "params"}
                or not all(isinstance(settings.get(key, {}), dict) for key in ("set", "params"))):
            raise search.error(f"scale.{scale}", settings, f"expected a scale ({', '.join(SCALES)}) with "
                                                          f"{', '.join(COUNTS)}, set and/or params")
        for key in settings.get("params", {}):
            if key not in search.params:
                raise search.error(f"scale.{scale}.params.{key}", settings["params"][key], "not a searched setting")
    _check_counts(search)
    scale_sets = [(f"scale.{scale}.set", settings.get("set", {})) for scale, settings in search.scales.items()]
    for section, keys in (("set", search.fixed), ("params", search.params), *scale_sets):
        if "data.holdout_questions" in keys:  # a trial's held-out slice is the search's own key
            raise search.error(f"{section}.data.holdout_questions", keys["data.holdout_questions"],
                              "set holdout_questions = N instead (top level or [scale.X])")
    for scale in SCALES:  # every setting and every combination of the ends of the ranges must build
        for sampled in search.extremes(scale):
            search.config(sampled, scale)


def _check_counts(search: Search) -> None:
    """`trials`, `startup_trials` and `holdout_questions`, top level and per scale: integers >= 1."""
    tables = [("", {key: getattr(search, key) for key in COUNTS}),
              *((f"scale.{scale}.", settings) for scale, settings in search.scales.items())]
    for where, table in tables:
        for key in COUNTS:
            value = table.get(key, 1)
            if type(value) is not int or value < 1:
                raise search.error(f"{where}{key}", value, "expected an integer >= 1")

