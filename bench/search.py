"""Searches: studies/NAME.toml with `kind = "optuna"` -> Optuna trials, each a normal run with a record.

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

Each trial is executed like a study's run (bench.runner.execute): a record under OUT/NAME/ with variant
"trial N" and an `optuna` field (`study`: the search's name; trial number, storage), and the trial's user attribute
`record_id` names the record. A pruned trial is a record with status "pruned".

The objective is scored on training questions held out of every trial (whole paragraphs, the same for every
trial: qanet.data.batching.holdout_questions), never on the dev set: a dev score of the best of many trials is
biased upwards by the choosing, so the dev set is left for the final study that --export-best writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.spec import NOT_IN_ID, RunSpec, in_folder
from bench.study_files import (
    DATA_LOCATIONS,
    NOT_A_SETTING,
    SCALES,
    StudyError,
    check_keys,
    read_study_file,
    run_config,
    scale_settings,
)
from qanet.config import ConfigError, RunConfig, apply_overrides, config_value
from qanet.data.batching import HOLDOUT_SEED
from qanet.hooks import Hooks
from qanet.outcome import StopTraining

OPTUNA = Path("results") / "optuna"  # the default storage's folder: one SQLite file per search
DEFINITION = "definition_sha256"  # the Optuna study's user attribute: Search.definition_hash of its trials

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
        config = run_config(self.path, self.preset, self.fixed, self.budget, scale, self.pinned(scale, sampled),
                            {"train.seed": self.seed})
        return apply_overrides(config, self.overrides).validate()

    def longest_warmup(self, scale: str) -> int:
        """The longest learning-rate warm-up of any trial at a scale (Adam's; Adadelta has none)."""
        configs = [self.config(sampled, scale) for sampled in self.extremes(scale)]
        return max(config.train.warmup_steps if config.train.optimizer == "adam" else 0 for config in configs)

    def definition(self, scale: str) -> dict[str, Any]:
        """Everything that decides what the trials at a scale are and how they are drawn, pruned and scored:
        the whole search file but its description and trial count (raising it continues a search), and the
        command line's settings. Where the data lies (files or a pack) is left out: workers on several machines
        find the same data at different paths, or read it from a pack."""
        scale_own = {key: value for key, value in scale_settings(scale).items() if key not in DATA_LOCATIONS}
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


class ReportToTrial(Hooks):
    """Hands each evaluation's held-out score (the curve entry's `key`, e.g. holdout_f1) to the Optuna
    trial, and ends the run as "pruned" when the pruner says so."""

    def __init__(self, trial, key: str) -> None:
        self.trial, self.key = trial, key

    def on_evaluation(self, step: int, entry: dict) -> None:
        self.trial.report(entry[self.key], step)
        if self.trial.should_prune():
            raise StopTraining("pruned", f"pruned at step {step} ({self.key} {entry[self.key]:.2f})")


class RunFailed(RuntimeError):
    """A trial whose run ended failed, oom or diverged: Optuna records the trial as failed."""


def objective_function(search: Search, scale: str, out: Path, storage: str, threads: int | None):
    """Optuna's objective: one trial = one run (resumed from its checkpoint if a trial with the same
    settings was cut off), its record linked both ways. A trial that draws settings already run, or being
    run by another worker, waits for that run and takes its result (the same settings are the same run)."""

    def objective(trial) -> float:
        import optuna

        from bench.runner import Locked, execute

        sampled = {param.key: param.suggest(trial) for param in search.params_at(scale)}
        link = {"optuna": {"study": search.name, "trial": trial.number, "storage": without_password(storage),
                           "params": sampled}}
        [spec] = in_folder([RunSpec(search.name, f"trial {trial.number}", scale, search.config(sampled, scale),
                                 tags=link)], out / search.name)
        trial.set_user_attr("record_id", spec.id)
        reporter = ReportToTrial(trial, search.curve_key)
        record = execute(spec, threads=threads, hooks=[reporter], alone=threads is None)
        while isinstance(record, Locked):  # another worker is training these very settings
            time.sleep(5)
            record = execute(spec, threads=threads, hooks=[reporter], alone=threads is None)
        result = record.result
        if record.spec.tags["optuna"]["trial"] != trial.number:  # another trial's run: its curve is ours
            for entry in result.curve:
                trial.report(entry[search.curve_key], entry["step"])
        if result.status == "pruned":
            raise optuna.TrialPruned(result.error)
        if result.status != "ok":
            last_line = ((result.error or "").strip().splitlines() or [""])[-1]
            raise RunFailed(f"trial {trial.number}: {result.status}: {last_line}")
        return result.holdout_metrics[search.objective]

    return objective


def without_password(url: str) -> str:
    """A storage URL fit for a record or a terminal: user:password@ loses the password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}"


def optuna_name(search: Search, scale: str) -> str:
    """The Optuna study of a search at a scale: one per scale, as their scores do not compare."""
    return f"{search.name}-{scale}"


def storage_url(search: Search, asked: str | None) -> str:
    """The URL asked for, else the search's SQLite file under results/optuna/ (made by the first `bench search`:
    open_storage; a report only reads it)."""
    if asked:
        return asked
    return f"sqlite:///{(Path.cwd() / OPTUNA).resolve() / search.name}.db"


def open_storage(url: str, heartbeat: int):
    """The Optuna study's storage, for trials to be written to it (tables and SQLite file made where absent); a
    trial whose worker fell silent is failed and run again once, with the same settings (so its run resumes from
    its checkpoint)."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    # SQLite with several workers: wait for a busy database rather than fail after 5 s
    engine = {"connect_args": {"timeout": 60}} if sqlite_file is not None else None
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5, and used here on purpose
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                  max_retry=1, inherit_intermediate_values=True))
        except Exception as error:  # noqa: BLE001 - a bad URL, a missing driver, a server that is down
            raise _storage_error(url, error) from None


# What RDBStorage reads when it opens a storage, and would create or stamp (write) where absent
OPTUNA_TABLES = {"studies", "version_info", "alembic_version"}


def open_storage_to_read(url: str, nothing_there: StudyError):
    """The storage of a search that has run, opened without writing a byte to it: a SQLite file read-only
    (SQLite's mode=ro: no journal either), another database without creating Optuna's tables. `nothing_there`
    is raised where it holds no search: a SQLite file that does not exist, a database without Optuna's tables."""
    from optuna.storages import RDBStorage

    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.is_file():
        raise nothing_there
    reading_url = url if sqlite_file is None else _read_only_sqlite(url, sqlite_file)
    if OPTUNA_TABLES - _table_names(reading_url, url):  # some or all of them absent
        raise nothing_there
    try:
        return RDBStorage(reading_url, skip_table_creation=True)
    except Exception as error:  # noqa: BLE001 - tables of another Optuna version (its message says what to do)
        raise _storage_error(url, error) from None


def nothing_stored(url: str, search_name: str, scale: str | None = None) -> StudyError:
    """The one line for a storage without the search (at `scale`, where one was asked for): a SQLite file named
    by its path (relative to the working directory where it lies under it), another storage by its URL."""
    sqlite_file = _sqlite_file(url)
    where = without_password(url) if sqlite_file is None else _relative_where_possible(sqlite_file)
    at_scale = f" --scale {scale}" if scale else ""
    return StudyError(f"{where}: no search stored there (run python -m bench search {search_name}{at_scale} first)")


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (":memory:" for one in memory, which holds nothing); None for another database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise _storage_error(url, error) from None
    return Path(parsed.database or ":memory:") if parsed.get_backend_name() == "sqlite" else None


def _relative_where_possible(path: Path) -> Path:
    absolute, here = path.absolute(), Path.cwd()
    return absolute.relative_to(here) if absolute.is_relative_to(here) else path


def _read_only_sqlite(url: str, sqlite_file: Path) -> str:
    """The URL of the same SQLite file opened read-only: a SQLite URI (the path percent-encoded, as URIs want)
    with mode=ro, the URL's own options kept."""
    from urllib.parse import quote

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    read_only = parsed.set(database=f"file:{quote(str(sqlite_file.resolve()))}",
                           query={**parsed.query, "mode": "ro", "uri": "true"})
    return read_only.render_as_string(hide_password=False)


def _table_names(reading_url: str, url: str) -> set[str]:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(reading_url)
        try:
            return set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except Exception as error:  # noqa: BLE001 - a missing driver, a server that is down, a file that is no database
        raise _storage_error(url, error) from None


def _storage_error(url: str, error: Exception) -> StudyError:
    return StudyError(f"--storage {without_password(url)}: {type(error).__name__}: "
                      f"{str(error).strip().splitlines()[0]}")


def refuse_a_changed_search(optuna_study, search: Search, scale: str, url: str) -> None:
    """Trials drawn, trained or scored under another definition would not compare with new ones: a stored
    search whose file (or the scale's own settings) changed since is not continued. One stored before
    the definition was recorded is taken as it is."""
    stored = optuna_study.user_attrs.get(DEFINITION)
    if stored not in (None, search.definition_hash(scale)):
        raise StudyError(f"{search.path}: changed since the Optuna study {optuna_study.study_name!r} in "
                         f"{without_password(url)} ran its trials at scale {scale}: give another --storage, or "
                         f"delete that study (optuna delete-study --study-name {optuna_study.study_name} "
                         f"--storage URL)")


def work(search_file: str, overrides: list[tuple[str, Any]], scale: str, url: str, trials: int, out: Path,
         threads: int | None, heartbeat: int, worker: int, say_trial) -> None:
    """One worker: trials until the Optuna study holds `trials` finished ones (complete, pruned or failed)."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = load_search(search_file, overrides)
    storage = open_storage(url, heartbeat)
    name = optuna_name(search, scale)
    optuna.storages.fail_stale_trials(optuna.load_study(study_name=name, storage=storage))  # dead workers' trials
    # the sampler's seed: the search's for a fresh single-worker search (reproducible), moved on by the trials
    # already there and by the worker's number, so that no two workers, and no resumed search, draw the same
    # first settings (the same settings are the same run id: one would wait on the other's lock)
    existing = len(optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False))
    optuna_study = optuna.load_study(study_name=name, storage=storage, pruner=search.pruner_object(scale),
                                     sampler=search.sampler_object(search.seed + existing + 1000 * worker, scale))
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    if len(optuna_study.get_trials(deepcopy=False, states=finished)) >= trials:
        return
    optuna_study.optimize(objective_function(search, scale, out, url, threads), catch=(RunFailed,),
                   callbacks=[MaxTrialsCallback(trials, states=finished), say_trial])


def existing_optuna_study(name: str, url: str, heartbeat: int):
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=open_storage(url, heartbeat))
    except KeyError:
        raise StudyError(f"{without_password(url)}: no Optuna study {name!r} there (run bench search first)"
                         ) from None


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
    print(f"wrote {path}: python -m bench run {path} --scale {scale}")


def _settings(settings: dict) -> list[str]:
    return [f"{json.dumps(key)} = {_toml(value)}" for key, value in settings.items()]


def _toml(value) -> str:
    return json.dumps(value)  # numbers, strings, booleans and lists read back the same in TOML

