"""`python -m bench`: the command line of the harness. Building the parser imports the command modules
(bench.commands) and the light modules their arguments name (the scales, the records root, the presets);
torch, pandas and Optuna are imported by a command when it runs: `--help` answers at once. A command line that
names a command has only that command's module add its arguments, so following a command starts in its module."""

from __future__ import annotations

import argparse
import sys

from bench.commands import data, report, run, search, train
from bench.commands.common import install_advice

COMMAND_MODULES = (data, train, run, report, search)  # in the order --help lists their commands


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix: one line on stderr and exit status 2, no traceback. OSError: a missing path, a
    full disk, a folder that cannot be written. Imported when one is raised, so that a command that never
    touches checkpoints does not import torch to name its error."""
    from bench.records import RecordError
    from bench.study import StudyError
    from qanet.checkpoint import CheckpointError
    from qanet.config import ConfigError
    from qanet.data.download import DownloadError
    from qanet.data.pack import PackError
    from qanet.data.squad import SquadFormatError

    return ConfigError, StudyError, RecordError, SquadFormatError, DownloadError, PackError, CheckpointError, OSError


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="qanet-bench: train, measure and compare QANet variants on SQuAD. A study file "
                    "(studies/NAME.toml) names variants x seeds for `run`; a search file (kind = \"optuna\") "
                    "names ranges for `search`; `report` turns either's records into tables and plots.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    named = [module for module in COMMAND_MODULES if argv[:1] and argv[0] in module.COMMANDS]
    for module in named or COMMAND_MODULES:  # all of them for --help or a command this does not know
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except ModuleNotFoundError as error:  # an optional library (an extra of pyproject.toml) this machine lacks
        advice = install_advice(error, args.command)
        if advice is None:
            raise
        print(f"error: python -m bench {args.command}: {advice}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        if not isinstance(error, user_errors()):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
