import json

import pytest

from tests.conftest import run_python


def test_prepare_prints_counts_coverage_time_and_memory(tmp_path):
    cache = str(tmp_path / "cache")
    first = run_python("-m", "bench", "data", "prepare", "--cache-dir", cache)
    assert "building features" in first.stdout
    rows = {line.split()[0]: line.split()[1:] for line in first.stdout.splitlines() if line.strip()}
    assert rows["questions"] == ["9000", "1200"]
    assert rows["answers_repaired"] == ["0", "0"]
    assert "vocabulary:" in first.stdout and "peak RSS" in first.stdout
    second = run_python("-m", "bench", "data", "prepare", "--cache-dir", cache, "--json")
    summary = json.loads(second.stdout[second.stdout.index("{"):])
    assert summary["train"]["questions"] == 9000 and summary["peak_rss_mb"] > 0
    assert "loading cached" in second.stdout


def test_malformed_input_is_one_line_and_exit_status_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "", "qas": []}]}]}')
    result = run_python("-m", "bench", "data", "prepare", "--train", str(bad), "--dev", str(bad),
                        "--cache-dir", str(tmp_path), check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {bad}: article 'T', question -: empty context"


def test_help_explains_the_commands():
    result = run_python("-m", "bench", "data", "prepare", "--help")
    assert "synthetic" in result.stdout and "--vectors" in result.stdout


SMALL_RUN = ["--set", "train.steps=4", "--set", "train.eval_every=2", "--set", "data.synthetic.train_paragraphs=20",
             "--set", "data.synthetic.dev_paragraphs=5", "--set", "train.threads=1"]


def test_train_writes_a_record_and_predict_answers_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "results" / "train"
    result = run_python("-m", "bench", "train", "--preset", "tiny", *SMALL_RUN, "--out", str(out))
    assert "step 2: dev EM" in result.stdout and "step 4: dev EM" in result.stdout
    [path] = out.glob("*.json")
    record = json.loads(path.read_text())
    assert f"checkpoint: {record['checkpoint']} (python -m bench predict {path} " in result.stdout
    assert record["status"] == "ok" and record["steps"] == 4
    assert [entry["step"] for entry in record["curve"]] == [2, 4]
    for key in ("exact", "f1", "total"):
        assert key in record["metrics"]
    assert record["metrics"]["total"] == 30
    assert record["config"]["model"]["hidden"] == 64 and record["parameters"] > 0
    assert record["train_examples_per_s"] > 0 and record["peak_memory_mb"] > 0
    assert record["environment"]["torch"] and "sha" in record["environment"]["git"]

    again = run_python("-m", "bench", "train", "--preset", "tiny", *SMALL_RUN, "--out", str(out))
    assert json.loads(path.read_text())["metrics"] == record["metrics"]  # resumed at the end: nothing retrained
    assert "step 2: dev EM" not in again.stdout

    context = "Kavel Ostrani was born in Port Velosa in 1874. Mirel Dasko founded the Trel Guild in 1902."
    answer = run_python("-m", "bench", "predict", record["checkpoint"], "--context", context,
                        "-q", "Where was Kavel Ostrani born?", "-q", "Who founded the Trel Guild?")
    lines = answer.stdout.splitlines()
    assert lines[0] == "Q: Where was Kavel Ostrani born?" and lines[2] == "Q: Who founded the Trel Guild?"
    assert lines[1].startswith("A: ") and lines[1][3:] in context and lines[3][3:] in context
    paragraph = tmp_path / "paragraph.txt"
    paragraph.write_text(context)
    from_file = run_python("-m", "bench", "predict", record["checkpoint"], "--context-file", str(paragraph),
                           "-q", "Where was Kavel Ostrani born?")
    assert from_file.stdout.splitlines() == lines[:2]

    from bench.cli import main as bench_main

    monkeypatch.chdir(tmp_path)  # a run id is looked up under ./results/runs and ./results/train
    bench_main(["predict", record["id"], "--context", context, "-q", "Where was Kavel Ostrani born?"])
    assert capsys.readouterr().out.splitlines() == lines[:2]
    (tmp_path / "results").rename(tmp_path / "moved")  # a record's checkpoint is found beside it
    moved = tmp_path / "moved" / "train" / path.name
    bench_main(["predict", str(moved), "--context", context, "-q", "Where was Kavel Ostrani born?"])
    assert capsys.readouterr().out.splitlines() == lines[:2]
    for run, said in ((record["id"], f"{record['id']}: no such checkpoint, record or run id (ids are looked up in "),
                      (str(tmp_path / "none.json"), "none.json: no such record")):
        with pytest.raises(SystemExit) as exit_status:
            bench_main(["predict", run, "--context", context, "-q", "Who?"])
        error = capsys.readouterr().err
        assert exit_status.value.code == 2 and error.count("\n") == 1 and said in error


def test_bad_override_is_one_line(tmp_path):
    result = run_python("-m", "bench", "train", "--set", "model.heads=7", "--out", str(tmp_path), check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: model.heads = 7: must divide model.hidden = 64; "
                                     "choose one of [1, 2, 4, 8, 16, 32, 64]")


def test_a_device_this_machine_lacks_is_refused_before_anything_runs(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal is for machines without it")
    out = tmp_path / "runs"
    for command in (["train", "--set", "train.device=cuda"],
                    ["run", "ablation_char_cnn", "--scale", "smoke", "--set", "train.device=cuda:1"],
                    ["run", "ablation_char_cnn", "--scale", "smoke", "--gpus", "0"]):
        result = run_python("-m", "bench", *command, "--out", str(out), check=False)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "this machine has no cuda device" in result.stderr
        assert ("name GPUs it has, or leave --gpus out" if "--gpus" in command else "use cpu or auto") in result.stderr
    assert not out.exists()  # nothing written


def test_each_command_module_names_the_commands_it_adds():
    """A command line naming a command has only that command's module add its arguments (bench.cli, by each
    module's COMMANDS): they must be the commands it adds, aliases included."""
    import argparse

    from bench.cli import COMMAND_MODULES, build_parser

    for module in COMMAND_MODULES:
        commands = argparse.ArgumentParser().add_subparsers()
        module.register(commands)
        assert set(commands.choices) == set(module.COMMANDS), module.__name__
    every = build_parser([])._subparsers._group_actions[0].choices
    assert set(every) == {name for module in COMMAND_MODULES for name in module.COMMANDS}
    only_run = build_parser(["run", "ablation_ema"])._subparsers._group_actions[0].choices
    assert set(only_run) == {"list", "run"}
    assert vars(build_parser([]).parse_args(["run", "ablation_ema"])) == vars(
        build_parser(["run", "ablation_ema"]).parse_args(["run", "ablation_ema"]))
