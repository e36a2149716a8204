"""The `python -m bench` commands, one module each: arguments and printing only. Each imports the
core it drives (bench.study, bench.search, bench.runner, bench.reporting: torch, pandas, Optuna) when
it runs, not when the parser is built, so `--help` answers at once."""
