"""The next GPU session's scripts on this CPU, as CI can run them: benchmarks/gpu_session.sh end to end from a
synthetic pack with only torch and numpy importable (as on the GPU machine), benchmarks/time_to_f1.py on
constructed records, benchmarks/gpu_sharing.py with k = 1 and 2, and docs/gpu.md's Inductor training call."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_python

SESSION = ROOT / "benchmarks" / "gpu_session.sh"
TIME_TO_F1 = str(ROOT / "benchmarks" / "time_to_f1.py")
SHARING = str(ROOT / "benchmarks" / "gpu_sharing.py")
# the paper model, made small enough for seconds on a CPU
SMALL_RUN = "--set train.device=cpu --set train.batch_size=4 --set data.context_len=100 --set train.threads=1"


def _session(pack_dir, tmp_path, only_torch_and_numpy, seconds: int, **settings: str) -> subprocess.CompletedProcess:
    """gpu_session.sh as on the GPU machine: a plain python3 with only torch and numpy, and no GPU (STUDY_GPUS
    empty: the study's runs go one after another)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CODE_VERSION": "abc123",
           "PYTHONPATH": str(only_torch_and_numpy), "RUNS": str(tmp_path / "runs"), "STUDY_GPUS": "", **settings}
    return subprocess.run(["bash", str(SESSION), str(pack_dir), str(tmp_path / "out"), str(seconds)], env=env,
                          capture_output=True, text=True, timeout=600)


def _records(folder) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def test_the_session_runs_its_stages_in_their_budgets_and_a_later_call_keeps_the_finished_runs(pack, tmp_path,
                                                                                        only_torch_and_numpy):
    # Inductor's C++ compilation takes minutes on this CPU: the gradient stage is cut at its budget after its eager
    # reference, which shows that a stage cut short keeps what it measured and the next stages still run
    first = _session(pack, tmp_path, only_torch_and_numpy, 400, GRADIENTS_SECONDS="40",
                     GRADIENTS_ARGS="--device cpu --small --batch-size 4 --context-len 50 --passes 1",
                     STUDY_ARGS=f"{SMALL_RUN} --set train.steps=4 --set train.eval_every=2",
                     TRAIN_ARGS=f"{SMALL_RUN} --set train.steps=6")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    out = tmp_path / "out"
    stages = (out / "stages.txt").read_text().strip()
    assert stages.startswith("code abc123, ") and first.stdout.strip().endswith(stages)
    assert "compiled-gradients: cut at its 40 s budget; ablation_char_cnn: ok in " in stages
    assert "; train: ok in " in stages and stages.endswith("; time to F1: ok")
    assert (out / "code-version.txt").read_text().strip() == "abc123"
    assert "reference: eager fp32, loss" in (out / "compiled-gradients.log").read_text()
    assert json.loads((out / "compiled-gradients.json").read_text())["reference"]["loss"] > 0  # written as it stopped

    study = _records(out / "records" / "ablation_char_cnn")
    assert sorted((r["variant"], r["seed"]) for r in study) == [("base", 0), ("base", 1),
                                                                ("model.char_encoder=depthwise1d", 0),
                                                                ("model.char_encoder=depthwise1d", 1)]
    assert all(r["status"] == "ok" and r["scale"] == "gpu" and r["steps"] == 4 for r in study)
    assert len(list((out / "records" / "ablation_char_cnn").glob("*.log.jsonl"))) == 4
    assert not list(out.rglob("checkpoint.pt"))  # they stay in RUNS: too big to come back

    [trained] = _records(out / "records" / "train")
    train = trained["config"]["train"]
    assert trained["status"] == "ok" and trained["steps"] == 6 and trained["config"]["model"]["model_blocks"] == 7
    assert train["eval_every_seconds"] == 60 and train["eval_questions"] is None and 0 < train["minutes"] < 6
    dev_questions = json.loads((pack / "manifest.json").read_text())["questions"]["dev"]
    assert trained["config"]["data"]["pack"] == str(pack) and trained["metrics"]["total"] == dev_questions
    said = (out / "time-to-f1.txt").read_text()
    assert f"run {trained['id']} (" in said and "F1 60: not reached in" in said

    # a later call, with no time for the gradients or the training run: the study's runs are found finished
    later = _session(pack, tmp_path, only_torch_and_numpy, 60, GRADIENTS_SECONDS="0", STUDY_ARGS=SMALL_RUN
                     + " --set train.steps=4 --set train.eval_every=2")
    assert later.returncode == 0, later.stdout[-3000:] + later.stderr[-2000:]
    assert "4 runs, 4 done, 0 to run" in (out / "ablation_char_cnn.log").read_text()
    stages = (out / "stages.txt").read_text()
    assert "compiled-gradients: skipped (a budget of 0 s)" in stages and "train: skipped" in stages
    assert "time to F1: skipped with the training run" in stages


def test_a_stage_that_fails_fails_the_session_and_the_others_still_run(pack, tmp_path, only_torch_and_numpy):
    # time enough to train the small run in seconds, but not with TRAIN_OVERHEAD's 1,000 s kept for compiling
    result = _session(pack, tmp_path, only_torch_and_numpy, 400, GRADIENTS_SECONDS="0",
                      STUDY_ARGS="--set train.no_such_setting=1", TRAIN_OVERHEAD="1000",
                      TRAIN_ARGS=f"{SMALL_RUN} --set train.steps=6")
    assert result.returncode == 1
    stages = (tmp_path / "out" / "stages.txt").read_text()
    assert "ablation_char_cnn: failed with exit status 2" in stages and "train: skipped (a budget of 0 s)" in stages
    assert "no_such_setting" in (tmp_path / "out" / "ablation_char_cnn.log").read_text()


def test_the_documented_inductor_training_call_trains_the_paper_model_on_inductors_path():
    """docs/gpu.md's follow-up call, should the gradients not settle Inductor: its TRAIN_ARGS are a valid
    `bench train` on Inductor + CUDA graphs with one shape, and the session's train stage takes them last."""
    import torch

    from qanet.config import build_config
    from qanet.device import training_path

    [call] = re.findall(r'^GRADIENTS_SECONDS=0 STUDY_SECONDS=0 TRAIN_OVERHEAD=(\d+) TRAIN_ARGS="([^"]*)" '
                        r'CODE_VERSION=SHA bash benchmarks/gpu_session.sh \.packs/squad-v1.1-glove-6b-50d \$OUT 570$',
                        (ROOT / "docs" / "gpu.md").read_text(), flags=re.MULTILINE)
    overhead, train_args = call
    words = train_args.split()
    assert words[0] == "--fresh" and words[1::2] == ["--set"] * (len(words) // 2)  # not the earlier auto run's
    config = build_config("paper", words[2::2])
    assert training_path(config, torch.device("cuda")) == ("reduce-overhead", 400)
    assert config.train.attention_kernels == "auto" and int(overhead) >= 205  # the cold compilation measured
    assert "--out \"$runs/train\" ${TRAIN_ARGS:-}" in SESSION.read_text()


def _evaluation(seconds: float, f1: float, total: int = 10570) -> dict:
    return {"step": int(seconds * 20), "train_seconds": seconds, "exact": f1 - 10, "f1": f1, "total": total}


RECORD = {"id": "abc", "variant": "custom", "seed": 0, "status": "ok", "steps": 7200,
          "curve": [_evaluation(60, 41.5), _evaluation(100, 65.0, total=2000), _evaluation(120, 58.2),
                    _evaluation(180, 64.9), _evaluation(240, 70.3), _evaluation(300, 69.8), _evaluation(360, 72.1)]}


def test_time_to_f1_counts_only_whole_dev_evaluations_and_says_what_was_not_reached(tmp_path):
    path = tmp_path / "abc.json"
    path.write_text(json.dumps(RECORD))
    said = run_python(TIME_TO_F1, str(path)).stdout.splitlines()
    assert said[0] == (f"{path}: run abc (custom, seed 0), ok, 7200 steps; 6 evaluations of the whole dev set "
                       f"(10,570 questions), the last at 360.0 s of training: F1 72.10")
    # the sample of 2,000 questions at 100 s is past 60, the whole dev set only at 180 s
    assert said[1:] == ["  F1 60: 180.0 s (step 3,600, F1 64.90)", "  F1 70: 240.0 s (step 4,800, F1 70.30)",
                        "  F1 75: not reached in 360 s"]


def test_time_to_f1_reads_the_event_log_of_a_run_cut_short_and_refuses_other_files(tmp_path):
    log = tmp_path / "abc.log.jsonl"
    events = [{"event": "begin", "step": 0}, {"event": "evaluation", **_evaluation(60, 41.5)},
              {"event": "step", "step": 1500, "loss": 5.1}, {"event": "evaluation", **_evaluation(120, 61.0)}]
    log.write_text("".join(json.dumps(event) + "\n" for event in events))
    said = run_python(TIME_TO_F1, str(log)).stdout.splitlines()
    assert said[0].startswith(f"{log}: a run's event log; 2 evaluations of the whole dev set (10,570 questions)")
    assert said[1:] == ["  F1 60: 120.0 s (step 2,400, F1 61.00)", "  F1 70: not reached in 120 s",
                        "  F1 75: not reached in 120 s"]
    # --dev-questions names the whole dev set when no evaluation of it is in the file
    assert "no evaluation of the whole dev set" in run_python(TIME_TO_F1, str(log), "--dev-questions", "99").stdout
    (tmp_path / "other.json").write_text("[1, 2]")
    refused = run_python(TIME_TO_F1, str(tmp_path / "other.json"), check=False)
    assert refused.returncode == 1 and "not a run's record or event log" in refused.stderr


def test_gpu_sharing_runs_k_runs_side_by_side_and_sums_their_rates(pack, tmp_path):
    """On the CPU `--jobs k` stands in for `--gpus` naming one GPU k times (joblib: the full environment)."""
    out = tmp_path / "sharing"
    result = run_python(SHARING, "--pack", str(pack), "--device", "cpu", "--ks", "2,1", "--minutes", "0.03",
                        *SMALL_RUN.split(), "--out", str(out))
    summary = json.loads((out / "sharing.json").read_text())
    assert [row["k"] for row in summary["rows"]] == [1, 2]  # the smallest first, whatever the order asked
    for row in summary["rows"]:
        k = row["k"]
        assert row["status"] == "measured" and row["statuses"] == ["ok"] * k and row["exit_status"] == 0
        assert row["total_steps_per_s"] == pytest.approx(sum(row["per_run_steps_per_s"]), abs=0.02)
        assert all(steps / seconds > 0 for steps, seconds in zip(row["steps"], row["train_seconds"], strict=True))
        assert len(row["compile_seconds"]) == len(row["peak_memory_mb"]) == k
        records = _records(out / "records" / f"k{k}")
        assert sorted(r["seed"] for r in records) == list(range(k)) and {r["variant"] for r in records} == {"base"}
        assert all(r["scale"] == "gpu" and r["config"]["train"]["minutes"] == 0.03 for r in records)
        assert f"--jobs {k} --set train.device=cpu" in row["command"] and (out / f"k{k}.log").is_file()
    assert summary["torch"] and summary["device"]
    assert f"device {summary['device']}, torch {summary['torch']}, 0.03 min of training a run" in result.stdout


def test_gpu_sharing_begins_no_k_that_would_not_end_in_the_call(pack, tmp_path):
    out = tmp_path / "sharing"
    result = run_python(SHARING, "--pack", str(pack), "--device", "cpu", "--wall-seconds", "30", "--out", str(out))
    rows = json.loads((out / "sharing.json").read_text())["rows"]
    assert [(row["k"], row["status"]) for row in rows] == [(1, "not run"), (2, "not run"), (4, "not run")]
    assert re.search(r" 1  not run: \d+ s left in --wall-seconds, about 120 s needed", result.stdout)
