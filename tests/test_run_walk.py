"""benchmarks/run_walk.py: the walk a reader takes through a command, and what is counted of it."""

import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import run_walk  # noqa: E402


def _stop(module: str, caller: str | None) -> dict:
    return {"module": module, "function": "f", "caller": caller}


def test_stops_count_modules_entered_returns_moves_back_into_one_left_before_and_climbs_calls_upward():
    stops = [_stop("bench/cli.py", None), _stop("bench/study.py", "bench/cli.py"),
             _stop("qanet/config.py", "bench/study.py"), _stop("bench/study.py", "qanet/config.py"),
             _stop("bench/study.py", "bench/study.py"), _stop("bench/commands/progress.py", "qanet/train.py")]
    assert run_walk.measures(stops) == {"functions": 6, "stops": 5, "files": 4, "returns": 1, "climbs": 2}


def test_the_walk_of_a_dry_run_follows_the_harness_and_stops_at_the_librarys_door(tmp_path):
    stops = run_walk.walk(ROOT, ["run", "ablation_char_cnn", "--scale", "smoke", "--dry-run", "--out", str(tmp_path)])
    names = [f"{stop['module']}:{stop['function']}" for stop in stops]
    assert names[0] == "bench/cli.py:main" and "bench/runner.py:plan" in names
    assert "qanet/data/prepare.py:fingerprint" in names  # the door: bench calls it
    assert not [name for name in names if name.startswith("qanet/data/synthetic.py")]  # behind the door
    assert len(names) == len(set(names))  # each function once, where it is first entered
