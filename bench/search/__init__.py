"""Optuna searches (`python -m bench search`): a search file's trials, each a run with a record.

    definition.py  the search file (kind = "optuna"): Search, read and checked by load_search; its distributions
                   (Param), each trial's settings, its sampler and pruner, the definition a stored search keeps
    storage.py     storage URLs (default: results/optuna/NAME.db), the storage opened for writing or read-only,
                   the Optuna study of a search at a scale, refusing to continue a search whose file changed
    trials.py      the objective (one trial = one run), a worker's loop (WorkerJob), run_trials: the Optuna
                   study created or continued and its workers started; SearchSummary
    export.py      the best trial written as a study file for `bench run` (--export-best)

The report of a search is bench.reporting.search's.
"""
