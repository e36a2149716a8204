"""Executing runs (bench.runner): outcomes, logs, resume and restart, locks, execution context, parallel."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from bench.cli import main as bench_main
from bench.spec import NOT_IN_ID
from qanet.config import RunConfig
from qanet.train import Trainer
from tests.conftest import ROOT, TINY, TWO_BY_TWO, _run, _study, records_in

# Measurements, placement and resume history vary between two executions of the same run; nothing else may.
MEASURED = ("wall_seconds", "train_seconds", "eval_seconds", "compile_seconds", "train_examples_per_s",
            "peak_memory_mb", "environment", "checkpoint", "resumed_from", "execution", "time_bounded", "restarted",
            "timed_alone", "attention_kernel", "compile_shapes", "optuna", "timeline")


def comparable(record: dict) -> dict:
    """A record without its measurements: equal for two executions of the same run."""
    kept = {key: value for key, value in record.items() if key not in MEASURED}
    kept["curve"] = [{k: v for k, v in entry.items() if k != "train_seconds"} for entry in record.get("curve", [])]
    for key in NOT_IN_ID:
        kept["config"]["train"].pop(key, None)
    return kept


def test_injected_oom_and_nan_are_recorded_and_the_study_goes_on(tmp_path, monkeypatch, capsys):
    study = _study(tmp_path, TWO_BY_TWO)
    real_step = Trainer.train_step

    def faulty_step(self, questions, on_device):
        run = (self.config.model.char_encoder, self.config.train.seed)
        if run == ("depthwise1d", 0):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if run == ("depthwise1d", 1) and self.step == 2:
            real_loss = self.model.loss
            self.model.loss = lambda *args: real_loss(*args) * float("nan")
        return real_step(self, questions, on_device)

    monkeypatch.setattr(Trainer, "train_step", faulty_step)
    _run(study, tmp_path / "runs")
    by_run = {(r["variant"], r["seed"]): r for r in records_in(tmp_path / "runs" / "tiny")}
    oom, diverged = by_run[("model.char_encoder=depthwise1d", 0)], by_run[("model.char_encoder=depthwise1d", 1)]
    assert oom["status"] == "oom" and oom["error"].startswith("out of memory at batch size 16: CUDA out of memory")
    assert diverged["status"] == "diverged" and diverged["error"] == "loss became nan at step 3"
    assert diverged["steps"] == 2
    assert by_run[("base", 0)]["status"] == by_run[("base", 1)]["status"] == "ok"
    *_, other, _, outcome = capsys.readouterr().out.splitlines()
    assert other.startswith("| char_encoder = depthwise1d ") and "| 1 oom, 1 diverged " in other
    assert outcome == "all 4 runs reached a recorded outcome (ok 2, oom 1, diverged 1)"  # qanet.outcome's order


def test_what_the_loss_watch_names_reaches_the_record_and_the_log(tmp_path, monkeypatch):
    """A warning (here at step 2) is in the record's warnings and the log; a divergence it judges (at step 4)
    is the record's status and error, and the steps count the run's."""
    from bench.runner import execute
    from qanet.divergence import LossCurveWatch
    from qanet.outcome import Diverged

    reason = "mean training loss 30.00 over steps 3-4 is above 9.00, the loss of a uniform guess"

    def judge(self, window):
        if window.last_step == 4:
            raise Diverged(4, reason)
        return "training loss rising" if window.last_step == 2 else None

    monkeypatch.setattr(LossCurveWatch, "judge", judge)
    spec = _tiny_spec(tmp_path, **{"train.loss_check_every": 2})
    record = execute(spec).to_json()
    assert (record["status"], record["error"], record["steps"]) == ("diverged", reason, 4)
    assert record["warnings"] == ["training loss rising"]
    events = [json.loads(line) for line in spec.log_path.read_text().splitlines()]
    assert [(event["event"], event["step"]) for event in events] == [
        ("begin", 0), ("warning", 2), ("step", 2), ("evaluation", 3), ("end", 4)]
    assert events[1]["message"] == "training loss rising" and events[-1]["error"] == reason


def test_each_run_logs_its_events_as_json_lines_and_a_resume_appends(tmp_path):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0", "--set", "train.loss_check_every=2")
    [record] = [r for r in records_in(tmp_path / "runs" / "tiny") if r["variant"] == "base"]
    log = tmp_path / "runs" / "tiny" / f"{record['id']}.log.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["begin", "step", "evaluation", "step", "step", "evaluation", "end"]
    assert [e["step"] for e in events if e["event"] == "step"] == [2, 4, 6]
    assert all(e["loss"] > 0 and e["examples_per_s"] > 0 and e["learning_rate"] > 0
               for e in events if e["event"] == "step")
    curve = [{k: v for k, v in e.items() if k not in ("event", "time")} for e in events if e["event"] == "evaluation"]
    assert curve == record["curve"] and events[-1]["status"] == "ok" and events[-1]["metrics"] == record["metrics"]


def _bench(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ})


def test_sigkill_then_rerun_gives_the_records_of_an_uninterrupted_run(tmp_path):
    study = _study(tmp_path, TWO_BY_TWO)
    args = ["run", study, "--scale", "smoke", *TINY, "--set", "train.steps=10"]
    assert _bench(*args, "--out", str(tmp_path / "whole")).wait(timeout=600) == 0

    killed = _bench(*args, "--out", str(tmp_path / "killed"))
    checkpoints = tmp_path / "killed" / "tiny" / "checkpoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(checkpoints.glob("*/checkpoint.pt"))) < 2:
        time.sleep(0.05)  # kill in the middle of the second run, after its first checkpoint
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert len(records_in(tmp_path / "killed" / "tiny")) < 4
    assert _bench(*args, "--out", str(tmp_path / "killed")).wait(timeout=600) == 0

    whole = {r["id"]: comparable(r) for r in records_in(tmp_path / "whole" / "tiny")}
    resumed = {r["id"]: comparable(r) for r in records_in(tmp_path / "killed" / "tiny")}
    assert len(whole) == 4 and resumed == whole
    # and it did resume: the killed run continued from its checkpoint, it did not start again
    [continued] = [r for r in records_in(tmp_path / "killed" / "tiny") if r["resumed_from"]]
    [step] = continued["resumed_from"]
    assert step >= 2 and step % 2 == 0  # a checkpoint step (train.checkpoint_every=2)
    log = tmp_path / "killed" / "tiny" / f"{continued['id']}.log.jsonl"
    begins = [json.loads(line)["step"] for line in log.read_text().splitlines() if '"begin"' in line]
    assert begins == [0, step]
    assert all(not r["resumed_from"] for r in records_in(tmp_path / "whole" / "tiny"))
    # its wall time is the sum of the two processes' sessions, the killed one's until its last logged event
    first, second = continued["timeline"]["sessions"]
    assert first["seconds"] > 0 and second["seconds"] > 0
    assert continued["wall_seconds"] == pytest.approx(first["seconds"] + second["seconds"], abs=0.02)
    assert continued["timeline"]["started"] == first["started"] < second["started"] <= continued["timeline"]["ended"]
    assert all(len(r["timeline"]["sessions"]) == 1 for r in records_in(tmp_path / "whole" / "tiny"))


def test_dask_local_cluster_runs_the_study(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0]"))
    # two single-threaded workers: joblib runs locally when a cluster has only one thread in all
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        _run(study, tmp_path / "runs", "--backend", "dask", "--scheduler", cluster.scheduler_address)
    records = records_in(tmp_path / "runs" / "tiny")
    assert len(records) == 2 and {r["status"] for r in records} == {"ok"}
    assert all(r["environment"]["pid"] != os.getpid() for r in records)  # trained in a Dask worker process


def test_planning_a_study_prepares_nothing(tmp_path, monkeypatch, capsys):
    """--dry-run and the plan need the data's fingerprint only: digests and settings, not a build or a load."""
    from qanet.data import prepare as prepare_module

    study = _study(tmp_path, TWO_BY_TWO)
    monkeypatch.setattr(prepare_module, "_build", lambda *args, **kwargs: pytest.fail("the plan built the data"))
    monkeypatch.setattr(prepare_module, "load_prepared", lambda *args: pytest.fail("the plan loaded the data"))
    _run(study, tmp_path / "runs", "--dry-run")
    listed = capsys.readouterr().out
    assert "4 runs, 0 done, 4 to run" in listed and listed.count("to run") == 5
    monkeypatch.undo()
    _run(study, tmp_path / "runs", "--seeds", "0")
    [record] = [r for r in records_in(tmp_path / "runs" / "tiny") if r["variant"] == "base"]
    assert record["id"] in listed  # the id planned without the data is the id of the run that used it


def test_a_record_counts_as_done_only_in_the_execution_context_that_made_it(tmp_path, capsys):
    """On the CPU the numbers depend on the thread count, which the id leaves out: a record made with
    one thread is not taken as done by a study running with two; the difference is said, and it reruns."""
    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0]"))
    _run(study, tmp_path / "runs", "--set", "train.threads=1")
    first = {r["id"]: r for r in records_in(tmp_path / "runs" / "tiny")}
    assert {r["execution"]["threads"] for r in first.values()} == {1}
    assert all(r["execution"] == {"device": "cpu", "threads": 1, "dtype": "fp32"} for r in first.values())
    capsys.readouterr()
    _run(study, tmp_path / "runs", "--set", "train.threads=1", "--dry-run")
    assert "2 done, 0 to run" in capsys.readouterr().out
    _run(study, tmp_path / "runs", "--set", "train.threads=2", "--dry-run")
    listed = capsys.readouterr().out
    assert "0 done, 2 to run" in listed and listed.count("'threads': 1") == 2 and "trained again from" in listed
    _run(study, tmp_path / "runs", "--set", "train.threads=2")
    assert capsys.readouterr().out.count("but was made with {'device': 'cpu', 'threads': 1") == 2
    second = {r["id"]: r for r in records_in(tmp_path / "runs" / "tiny")}
    assert second.keys() == first.keys() and {r["execution"]["threads"] for r in second.values()} == {2}
    for record in second.values():  # trained again from step 0, not relabelled from the old final checkpoint
        assert record["resumed_from"] == [] and record["steps"] == 6
        log = tmp_path / "runs" / "tiny" / f"{record['id']}.log.jsonl"
        assert [json.loads(line)["step"] for line in log.read_text().splitlines() if '"begin"' in line] == [0]


def test_a_run_another_process_is_training_is_left_to_it(tmp_path, capsys, monkeypatch):
    """Two `bench run`s on one study share the work: a run's lock file is held while it trains, and a
    run finished by the other process meanwhile is not trained again."""
    import fcntl

    from bench.runner import execute, execution_context, finished_record
    from bench.spec import RunSpec, in_folder

    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0]"))
    _run(study, tmp_path / "runs", "--dry-run")
    held_id = capsys.readouterr().out.split("\n  ")[1].split()[0]  # the first run listed
    lock = tmp_path / "runs" / "tiny" / "checkpoints" / f"{held_id}.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "another process" is training it
        _run(study, tmp_path / "runs")
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "all 1 runs reached a recorded outcome (ok 1); 1 left to another process " \
                                   "that is training them"
    assert {r["id"] for r in records_in(tmp_path / "runs" / "tiny")} != {held_id} and len(
        records_in(tmp_path / "runs" / "tiny")) == 1

    [done] = records_in(tmp_path / "runs" / "tiny")
    config = RunConfig.from_dict(done["config"])
    [spec] = in_folder([RunSpec("tiny", done["variant"], "smoke", config)], tmp_path / "runs" / "tiny")
    monkeypatch.setattr(Trainer, "run", lambda self: pytest.fail("a finished run was trained again"))
    assert spec.id == done["id"] and finished_record(spec, execution_context(config, None))
    assert execute(spec).to_json() == done


def test_runs_another_process_finished_meanwhile_are_said_once_and_counted_apart(tmp_path, capsys, monkeypatch):
    """Two `bench run`s of one study at once: the runs the other one finished after this one planned are said
    once each, as done by another process, and are not counted among this process's outcomes."""
    from bench import runner

    study, real_plan = _study(tmp_path, TWO_BY_TWO), runner.plan

    def plan_then_another_process_trains_them(*args, **kwargs):
        planned = real_plan(*args, **kwargs)  # both runs still to train, as this process sees them
        monkeypatch.setattr(runner, "plan", real_plan)
        _run(study, tmp_path / "runs", "--seeds", "0")  # meanwhile, "another process" trains them
        capsys.readouterr()
        return planned

    monkeypatch.setattr(runner, "plan", plan_then_another_process_trains_them)
    _run(study, tmp_path / "runs", "--seeds", "0")
    said = capsys.readouterr().out.splitlines()
    assert said[0].endswith("0 done, 2 to run -> " + str(tmp_path / "runs" / "tiny"))
    ended = [line for line in said if " seed 0: " in line]
    assert [line.split(" seed 0: ")[1].split(" (")[0] for line in ended] == ["done by another process meanwhile"] * 2
    assert said[-1] == "nothing was run here; 2 done by another process meanwhile"
    assert len(records_in(tmp_path / "runs" / "tiny")) == 2


def test_finished_means_ok_pruned_or_stopped_in_the_same_context(tmp_path):
    from bench.runner import execute, finished_record
    from bench.spec import RunSpec

    spec = RunSpec("tiny", "base", "smoke", RunConfig(), folder=tmp_path, fingerprint="f")
    context = {"device": "cpu", "threads": 2, "dtype": "fp32"}
    for status, done in (("ok", True), ("pruned", True), ("stopped", True), ("diverged", False), ("failed", False)):
        spec.record_path.write_text(json.dumps({"id": spec.id, "variant": "base", "seed": 0, "scale": "smoke",
                                                "config": spec.config.to_dict(), "status": status,
                                                "execution": context}))
        assert (finished_record(spec, context) is not None) is done
        assert finished_record(spec, {**context, "threads": 1}) is None
    if not torch.cuda.is_available():  # a device that fails where the run executes is a recorded failure
        spec.record_path.unlink()
        record = execute(spec, device="cuda:0").to_json()
        assert record["status"] == "failed" and "this machine has no cuda device" in record["error"]
        assert json.loads(spec.record_path.read_text())["execution"]["device"] == "cuda"


def test_a_run_that_its_minutes_end_says_so(tmp_path):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0", "--set", "train.minutes=0.00001")
    records = records_in(tmp_path / "runs" / "tiny")
    assert len(records) == 2
    for record in records:
        assert record["time_bounded"]["ended_by_time"] is True and record["steps"] < 6 and record["status"] == "ok"


def test_a_step_bounded_record_is_not_time_bounded_and_its_context_leaves_hardware_out(tmp_path):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0")
    for record in records_in(tmp_path / "runs" / "tiny"):
        assert record["time_bounded"] is None and "hardware" not in record["execution"]


def test_tensorboard_logs_the_curve_without_changing_the_run_id(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is part of the [all] extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "plain", "--seeds", "0", "--set", "train.loss_check_every=2")
    _run(study, tmp_path / "logged", "--seeds", "0", "--set", "train.loss_check_every=2",
         "--set", "train.tensorboard=true")
    plain, logged = ({r["id"] for r in records_in(tmp_path / folder / "tiny")} for folder in ("plain", "logged"))
    assert plain == logged
    for run_id in logged:
        events = EventAccumulator(str(tmp_path / "logged" / "tiny" / "tensorboard" / run_id))
        events.Reload()
        assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]
        assert [e.step for e in events.Scalars("train/grad_norm_max")] == [2, 4, 6]
        assert [e.step for e in events.Scalars("dev/f1")] == [3, 6]


def test_gpus_are_a_queue_a_slow_run_does_not_hold_back_the_runs_behind_it(tmp_path, monkeypatch):
    """Four runs on two GPUs, the first slow: the other three all go to the GPU that is free (round-robin
    would queue the third behind the slow one). Threads stand in for the GPU workers."""
    import threading

    from bench import runner
    from bench.spec import RunSpec

    specs = [RunSpec("tiny", f"v{i}", "smoke", RunConfig(), folder=tmp_path, fingerprint="f") for i in range(4)]
    placed, first_started = {}, threading.Event()

    def fake_execute(spec, device=None, threads=None, hooks=(), force=False, alone=False):
        placed[spec.variant] = device
        if spec.variant == "v0":
            first_started.set()
            time.sleep(1.0)
        else:
            first_started.wait()
        return {"variant": spec.variant}

    monkeypatch.setattr(runner, "execute", fake_execute)
    done = [record["variant"] for record in runner.run_parallel(specs, gpus=[0, 1], backend="threading")]
    assert sorted(done) == ["v0", "v1", "v2", "v3"] and done[-1] == "v0"
    assert {placed["v1"], placed["v2"], placed["v3"]} == {"cuda:1" if placed["v0"] == "cuda:0" else "cuda:0"}


def _tiny_spec(tmp_path, study: str = "tiny", variant: str = "base", **settings):
    from bench.spec import RunSpec, in_folder
    from qanet.config import build_config

    overrides = {"train.steps": 6, "train.eval_every": 3, "train.checkpoint_every": 2, "train.threads": 1,
                 "data.synthetic.train_paragraphs": 20, "data.synthetic.dev_paragraphs": 5, **settings}
    [spec] = in_folder([RunSpec(study, variant, "smoke", build_config("tiny", overrides))], tmp_path / "runs")
    return spec


def test_a_failed_run_closes_its_tensorboard_log_with_what_it_logged(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is part of the [all] extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bench.runner import execute
    from qanet.hooks import Hooks

    class FailsAtStep3(Hooks):
        def on_step(self, report):
            if report.step == 3:
                raise RuntimeError("a bug")

    spec = _tiny_spec(tmp_path, **{"train.tensorboard": True, "train.loss_check_every": 1})
    record = execute(spec, hooks=[FailsAtStep3()]).to_json()
    assert record["status"] == "failed" and record["steps"] == 3  # its hook failed after step 3
    events = EventAccumulator(str(spec.tensorboard_dir))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]  # flushed and closed, nothing lost
    ended = json.loads(spec.log_path.read_text().splitlines()[-1])
    assert ended["event"] == "end" and ended["status"] == "failed" and ended["step"] == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_run_that_failed_before_training_began_trains_when_run_again(tmp_path):
    """Its log ends with an end event of no step; the next attempt (the same id: the device is not part of it)
    drops that event and trains."""
    from bench.runner import execute

    spec = _tiny_spec(tmp_path)
    failed = execute(spec, device="cuda:0")  # this machine has none: it fails before its trainer exists
    assert failed.result.status == "failed" and "no cuda device" in failed.result.error
    assert json.loads(spec.log_path.read_text().splitlines()[-1])["step"] is None
    again = execute(spec)
    assert again.spec.id == spec.id and again.result.status == "ok", again.result.error
    events = [json.loads(line) for line in spec.log_path.read_text().splitlines()]
    assert events[0]["event"] == "begin" and all(event["step"] is not None for event in events)


def test_a_checkpoint_made_in_another_context_is_not_resumed(tmp_path):
    """A run killed with one thread and run again with two trains from step 0 (the numbers of a resumed
    run would mix two regimes), and its record says why."""
    from bench.runner import execute
    from qanet.hooks import Hooks

    class Killed(Hooks):
        def on_step(self, report):
            if report.step == 5:
                raise KeyboardInterrupt

    spec = _tiny_spec(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        execute(spec, hooks=[Killed()])
    assert (spec.checkpoint_dir / "checkpoint.pt").exists() and spec.context_path.exists()
    record = execute(_with_threads(spec, 2)).to_json()
    assert record["status"] == "ok" and record["resumed_from"] == []
    assert "its checkpoint was made with {'device': 'cpu', 'threads': 1" in record["restarted"]
    same = execute(_with_threads(spec, 2)).to_json()  # done now, in this context: the record is the answer
    assert same == {**record, "restarted": None}


def test_an_interrupted_restart_resumes_and_keeps_its_reason(tmp_path):
    """A run restarted because its record came from another context, then interrupted, resumes from its
    own checkpoint next time (it does not find the old record and restart again)."""
    from bench.runner import execute
    from qanet.hooks import Hooks

    class Killed(Hooks):
        def on_step(self, report):
            if report.step == 5:
                raise KeyboardInterrupt

    spec = _tiny_spec(tmp_path)
    execute(spec)  # one thread
    with pytest.raises(KeyboardInterrupt):
        execute(_with_threads(spec, 2), hooks=[Killed()])
    assert not spec.record_path.exists() and spec.record_path.with_name(f"{spec.id}.json.replaced").exists()
    record = execute(_with_threads(spec, 2)).to_json()
    assert record["resumed_from"] == [4] and record["steps"] == 6
    assert "its record says ok but was made with {'device': 'cpu', 'threads': 1" in record["restarted"]
    events = [json.loads(line) for line in spec.log_path.read_text().splitlines()]
    assert [(e["event"], e["step"]) for e in events if e["event"] in ("begin", "end")] == [
        ("begin", 0), ("begin", 4), ("end", 6)]  # the interrupted attempt's end (step 5) is redone: dropped
    assert [e["dropped_events"] for e in events if e["event"] == "begin"] == [0, 1]


def test_hooks_hear_of_the_end_once_even_when_one_of_them_fails_there(tmp_path):
    from bench.runner import execute
    from qanet.hooks import Hooks

    class FailsAtTheEnd(Hooks):
        def on_end(self, result):
            raise RuntimeError("cannot close")

    spec = _tiny_spec(tmp_path)
    record = execute(spec, hooks=[FailsAtTheEnd()]).to_json()
    assert record["status"] == "failed" and "cannot close" in record["error"]
    ends = [line for line in spec.log_path.read_text().splitlines() if '"end"' in line]
    assert len(ends) == 1


def _with_threads(spec, threads: int):
    import dataclasses

    from qanet.config import set_value

    return dataclasses.replace(spec, config=set_value(spec.config, "train.threads", threads))


def test_a_damaged_checkpoint_is_set_aside_and_its_run_trained_again(tmp_path):
    from bench.runner import execute

    spec = _tiny_spec(tmp_path)
    spec.checkpoint_dir.mkdir(parents=True)
    (spec.checkpoint_dir / "checkpoint.pt").write_bytes(b"half a checkpoint")
    record = execute(spec).to_json()
    assert record["status"] == "ok" and record["resumed_from"] == [] and record["steps"] == 6
    assert "not a readable checkpoint" in record["restarted"]
    assert (spec.checkpoint_dir / "checkpoint.pt.damaged").read_bytes() == b"half a checkpoint"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA: the runs must fail at once")
def test_the_gpu_queue_reaches_loky_workers(tmp_path):
    """The queue of free GPUs travels to joblib's worker processes: every run gets a GPU index (here each
    fails at once, as this machine has none, and says so in its record)."""
    from bench.runner import run_parallel

    specs = [_tiny_spec(tmp_path, variant=f"v{i}", **{"train.seed": 0, "train.steps": 6 + i}) for i in range(3)]
    records = [record.to_json() for record in run_parallel(specs, gpus=[0, 1])]
    assert sorted(r["variant"] for r in records) == ["v0", "v1", "v2"]
    assert all(r["status"] == "failed" and "this machine has no cuda device" in r["error"] for r in records)
    assert {r["execution"]["device"] for r in records} == {"cuda"}


def test_bench_train_fresh_starts_again_and_says_so(tmp_path, capsys):
    small = ["--preset", "tiny", "--out", str(tmp_path / "train"), *TINY]
    bench_main(["train", *small])
    first = capsys.readouterr().out
    bench_main(["train", *small])
    assert "asked to start again" not in capsys.readouterr().out
    bench_main(["train", *small, "--fresh"])
    again = capsys.readouterr().out
    assert "asked to start again (--force, --fresh): trained from step 0" in again
    assert first.splitlines()[-2].split(";")[0] == again.splitlines()[-2].split(";")[0]  # same run, same result
    [record] = records_in(tmp_path / "train")
    assert record["resumed_from"] == [] and record["restarted"].startswith("asked to start again")
