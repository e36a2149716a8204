"""How far a reader walks to follow a run: the harness functions `bench run STUDY --scale smoke` enters, in order.

The walk is the sequence of functions and methods of bench/ and qanet/ entered for the first time, in call order
(comprehensions, lambdas and functions local to another are read with it; class bodies run on import are not
part of it); it follows the harness (bench/) and stops at the library's door: a qanet function that bench calls
is in it, and what that calls in turn (the model, the training loop, data preparation) is the library's own walk,
read top-down in qanet/. From it:

- *functions*: its length;
- *stops*: the modules it enters, in order (a reader opening a file; the functions read on there, one after
  another, are one stop), so that stops = files + returns;
- *files*: the distinct modules among them;
- *returns*: the times the walk moves back into a module it had already left (a reader flipping back);
- *climbs*: calls from a lower layer into a higher one (qanet -> bench, the harness core -> bench/commands/), a
  callback a reader cannot see coming from the caller's code.

The run trains for real (in this process, into a temporary folder), so the walk is the one a user's command
takes. `--baseline DIR` walks another checkout (e.g. a `git worktree` of an older commit) the same way, in a
process of its own, and prints both.

    python benchmarks/run_walk.py [--study ablation_char_cnn] [--seeds 0] [--list] [--baseline /tmp/old]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LAYERS = (("bench/commands/", 2), ("bench/", 1), ("qanet/", 0))  # top-down: the reader's order


def _layer(module: str) -> int:
    return next(rank for prefix, rank in LAYERS if module.startswith(prefix))


def walk(root: Path, arguments: list[str]) -> list[dict]:
    """The walk of `python -m bench ARGUMENTS` run from `root`: each function's module, name and caller's module."""
    prefix = str(root) + os.sep
    walked: list[dict] = []
    seen: set[tuple[str, str]] = set()
    behind_the_door = None  # the qanet frame bench called: nothing beneath it is walked

    def module_of(frame) -> str | None:
        path = frame.f_code.co_filename
        if not path.startswith(prefix):
            return None
        module = path[len(prefix):]
        return module if module.startswith(("bench/", "qanet/")) else None

    def caller_module(frame) -> str | None:
        frame = frame.f_back
        while frame is not None and module_of(frame) is None:
            frame = frame.f_back
        return module_of(frame) if frame is not None else None

    def profile(frame, event, _):
        nonlocal behind_the_door
        if event == "return" and frame is behind_the_door:
            behind_the_door = None
        if event != "call" or behind_the_door is not None:
            return
        module, name = module_of(frame), frame.f_code.co_qualname
        # what runs on import (class bodies), and comprehensions, lambdas and local functions: read with their
        # owner, not walked on their own
        if module is None or "<" in name or frame.f_back is None or frame.f_back.f_code.co_name == "<module>":
            return
        caller = caller_module(frame)
        if (module, name) not in seen:
            seen.add((module, name))
            walked.append({"module": module, "function": name, "caller": caller})
        if module.startswith("qanet/") and caller is not None and caller.startswith("bench/"):
            behind_the_door = frame

    sys.path.insert(0, str(root))
    from bench.cli import main as bench_main

    sys.setprofile(profile)
    try:
        bench_main(arguments)
    finally:
        sys.setprofile(None)
    return walked


def measures(walked: list[dict]) -> dict:
    modules = [function["module"] for function in walked]
    entered = [module for i, module in enumerate(modules) if i == 0 or module != modules[i - 1]]
    climbs = sum(1 for function in walked
                 if function["caller"] and _layer(function["module"]) > _layer(function["caller"]))
    return {"functions": len(walked), "stops": len(entered), "files": len(set(entered)),
            "returns": len(entered) - len(set(entered)), "climbs": climbs}


def _walk_in_a_process(root: Path, arguments: list[str]) -> list[dict]:
    """The walk of another checkout, measured by that checkout's Python path in a process of its own."""
    script = (f"import json, sys; from pathlib import Path; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
              f"import run_walk; print(json.dumps(run_walk.walk(Path({str(root)!r}), {arguments!r})))")
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(root)})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", default="ablation_char_cnn")
    parser.add_argument("--seeds", default="0", help="the seeds to run (the walk is the same for any)")
    parser.add_argument("--list", action="store_true", help="print every stop")
    parser.add_argument("--baseline", type=Path, help="another checkout to walk the same way")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as out:
        command = ["run", args.study, "--scale", "smoke", "--seeds", args.seeds, "--out", out]
        print(f"command: python -m bench {' '.join(command[:-2])} (records in a temporary folder)")
        walks = {"this checkout": _walk_in_a_process(root, command)}
    if args.baseline:
        with tempfile.TemporaryDirectory() as out:
            walks[f"baseline {args.baseline}"] = _walk_in_a_process(args.baseline.resolve(), command[:-1] + [out])
    for name, walked in walks.items():
        print(f"{name}: " + ", ".join(f"{key} {value}" for key, value in measures(walked).items()))
        if args.list:
            for number, stop in enumerate(walked, 1):
                print(f"  {number:3d} {stop['module']}:{stop['function']}")


if __name__ == "__main__":
    main()
