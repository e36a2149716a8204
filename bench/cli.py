"""`python -m bench`: the command line of the harness."""

from __future__ import annotations

import argparse
import sys

from bench import data_commands, report_command, run_command, search_command, train_command
from bench.records import RecordError
from bench.study import StudyError
from qanet.config import ConfigError
from qanet.data.download import DownloadError
from qanet.data.pack import PackError
from qanet.data.squad import SquadFormatError
from qanet.train import CheckpointError

# Errors a user can fix: one line on stderr and exit status 2, no traceback.
# OSError: a missing path, a full disk, a folder that cannot be written.
USER_ERRORS = (ConfigError, StudyError, RecordError, SquadFormatError, DownloadError, PackError, CheckpointError,
               OSError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="qanet-bench: train, measure and compare QANet variants on SQuAD.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_commands.register(commands)
    train_command.register(commands)
    run_command.register(commands)
    report_command.register(commands)
    search_command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
