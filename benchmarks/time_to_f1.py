"""Training seconds at which a run's whole-dev F1 first reached 60, 70 and 75, read from bench records.

    python3 benchmarks/time_to_f1.py RECORD... [--dev-questions N]

RECORD is a run's record (ID.json, written by `bench train` or `bench run` as the run ends) or its event log
(ID.log.jsonl: all that a run cut short leaves). Only evaluations of the whole dev set count: a sample of
questions gives another, noisier number. The dev set's size is --dev-questions, or else the largest `total`
among the file's evaluations (a finished run always ends with a whole-dev evaluation). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

F1_MARKS = (60, 70, 75)


def read_run(path: Path) -> tuple[dict, list[dict]]:
    """What the file says of its run (a record's top-level fields; {} for a log) and its evaluations in order."""
    if path.name.endswith(".jsonl"):
        events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return {}, [event for event in events if event.get("event") == "evaluation"]
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict) or not isinstance(record.get("curve"), list):
        raise ValueError("no curve of evaluations")
    return record, record["curve"]


def whole_dev(evaluations: list[dict], dev_questions: int | None) -> list[dict]:
    size = dev_questions or max((entry["total"] for entry in evaluations), default=None)
    return [entry for entry in evaluations if entry["total"] == size]


def first_reached(evaluations: list[dict]) -> dict[int, dict | None]:
    """For each mark, the first evaluation whose F1 is at least it (None: never)."""
    return {mark: next((entry for entry in evaluations if entry["f1"] >= mark), None) for mark in F1_MARKS}


def describe(path: Path, dev_questions: int | None) -> list[str]:
    record, evaluations = read_run(path)
    scored = whole_dev(evaluations, dev_questions)
    run = (f"run {record['id']} ({record.get('variant')}, seed {record.get('seed')}), {record.get('status')}, "
           f"{record.get('steps')} steps" if record else "a run's event log")
    if not scored:
        return [f"{path}: {run}; no evaluation of the whole dev set"]
    last = scored[-1]
    unreached = f"not reached in {last['train_seconds']:.0f} s"
    lines = [f"{path}: {run}; {len(scored)} evaluations of the whole dev set ({last['total']:,} questions), the last "
             f"at {last['train_seconds']:.1f} s of training: F1 {last['f1']:.2f}"]
    for mark, entry in first_reached(scored).items():
        reached = f"{entry['train_seconds']:.1f} s (step {entry['step']:,}, F1 {entry['f1']:.2f})" if entry else None
        lines.append(f"  F1 {mark}: {reached or unreached}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="+", type=Path, metavar="RECORD", help="a run's ID.json or ID.log.jsonl")
    parser.add_argument("--dev-questions", type=int, help="the dev set's size (default: the largest evaluation's)")
    args = parser.parse_args(argv)
    failed = False
    for path in args.records:
        try:
            print("\n".join(describe(path, args.dev_questions)))
        except (OSError, ValueError, KeyError, TypeError) as error:
            print(f"{path}: not a run's record or event log ({type(error).__name__}: {error})", file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
