"""Several runs per GPU (`bench run --gpus 0,0`): accepted where the GPU exists, refused in one line where it
does not, and the runs that share a card are placed on it together and recorded as not timed alone."""

import threading

import pytest
import torch

from bench import runner
from bench.cli import main as bench_main
from bench.spec import RunSpec
from qanet.config import RunConfig
from tests.conftest import TWO_BY_TWO, _run, _study


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpus_naming_a_gpu_this_machine_lacks_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        _run(_study(tmp_path, TWO_BY_TWO), tmp_path / "runs", "--gpus", "0,0", "--dry-run")
    said = capsys.readouterr().err
    assert stopped.value.code == 2 and said.count("\n") == 1
    assert said.startswith("error: --gpus 0,0: GPU 0: this machine has no cuda device")


def test_gpus_naming_one_gpu_twice_is_accepted_where_it_exists(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "why_missing", lambda device: None if device.index == 0 else "absent")
    _run(_study(tmp_path, TWO_BY_TWO), tmp_path / "runs", "--gpus", "0,0", "--dry-run")
    assert "4 runs, 0 done, 4 to run" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        _run(_study(tmp_path, TWO_BY_TWO), tmp_path / "runs", "--gpus", "0,1", "--dry-run")
    assert "GPU 1: absent" in capsys.readouterr().err


def test_seeds_must_still_be_distinct(capsys):
    with pytest.raises(SystemExit) as stopped:
        bench_main(["run", "ablation_char_cnn", "--seeds", "0,0", "--dry-run"])
    assert stopped.value.code == 2 and "'0,0': expected distinct integers >= 0" in capsys.readouterr().err


def test_a_gpu_named_twice_holds_two_runs_at_once_and_none_is_timed_alone(tmp_path, monkeypatch):
    """Threads stand in for the GPU workers: with --gpus 0,0 two runs are on cuda:0 at the same time."""
    specs = [RunSpec("tiny", f"v{i}", "smoke", RunConfig(), folder=tmp_path, fingerprint="f") for i in range(4)]
    both_running = threading.Barrier(2, timeout=10)
    placed = []

    def fake_execute(spec, device=None, threads=None, hooks=(), force=False, alone=False):
        placed.append((device, alone))
        both_running.wait()  # times out (BrokenBarrierError) unless two runs are in at once
        return spec.variant

    monkeypatch.setattr(runner, "execute", fake_execute)
    done = list(runner.run_parallel(specs, gpus=[0, 0], backend="threading"))
    assert sorted(done) == ["v0", "v1", "v2", "v3"]
    assert placed == [("cuda:0", False)] * 4
