"""Every entry point answers malformed input with one line naming the place, exit status 2, and no output
left behind (issue 9's sweep: one test per class of input)."""

import json

import pytest
import torch

from bench.cli import main as bench_main

VALID = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": [
    {"id": "q1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]}]}]}]}


def refused(argv: list[str], capsys) -> str:
    """Run `python -m bench ARGV` here; it must exit 2 with one line on stderr, printing nothing else."""
    with pytest.raises(SystemExit) as exit_status:
        bench_main(argv)
    said = capsys.readouterr()
    lines = said.err.strip().splitlines()
    assert exit_status.value.code == 2, said
    assert len(lines) == 1 or lines[0].startswith("usage:"), said.err  # argparse: usage, then one error line
    return lines[-1]


def _with(path_of, **change) -> dict:
    data = json.loads(json.dumps(VALID))
    question = data["data"][0]["paragraphs"][0]["qas"][0]
    for key, value in change.items():
        path_of(data, question)[key] = value
    return data


SQUAD_FILES = {
    "not JSON": "this is not json",
    "truncated": json.dumps(VALID)[:60],
    "a list at the top": "[1, 2]",
    "no data key": '{"version": "1.1"}',
    "context not a string": json.dumps(_with(lambda d, q: d["data"][0]["paragraphs"][0], context=5)),
    "empty question": json.dumps(_with(lambda d, q: q, question="")),
    "answer outside the context": json.dumps(_with(lambda d, q: q["answers"][0], text="Berlin", answer_start=99)),
    "answer_start not an integer": json.dumps(_with(lambda d, q: q["answers"][0], answer_start="12")),
    "0 bytes": "",
    "no articles": '{"version": "1.1", "data": []}',
    "articles without paragraphs": '{"version": "1.1", "data": [{"title": "T", "paragraphs": []}]}',
    "paragraphs without questions": json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": "Paris is in France.", "qas": []}]}]}),
}


@pytest.mark.parametrize("case", sorted(SQUAD_FILES))
def test_a_bad_squad_file_is_named_and_nothing_is_cached(tmp_path, capsys, case):
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_text(SQUAD_FILES[case])
    good.write_text(json.dumps(VALID))
    line = refused(["data", "prepare", "--train", str(bad), "--dev", str(good), "--cache-dir",
                    str(tmp_path / "cache")], capsys)
    assert line.startswith(f"error: {bad}"), line
    written = [path.name for path in (tmp_path / "cache").rglob("*") if path.is_file()]
    assert written in ([], ["digests.json"])  # at most the cache of file digests, no prepared data


def test_duplicate_ids_a_directory_and_a_missing_path_are_named(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(VALID))
    twice = json.loads(json.dumps(VALID))
    twice["data"].append(twice["data"][0])
    duplicated = tmp_path / "twice.json"
    duplicated.write_text(json.dumps(twice))
    for bad, words in ((duplicated, "duplicate"), (tmp_path, "directory"), (tmp_path / "absent.json", "no such")):
        line = refused(["data", "prepare", "--train", str(bad), "--dev", str(good), "--cache-dir",
                        str(tmp_path / "cache")], capsys)
        assert str(bad) in line and words in line.lower(), line


@pytest.mark.parametrize("setting,message", [
    ("bogus.key=1", "bogus.key: unknown key (no section 'bogus')"),
    ("model.widht=3", "model.widht: unknown key"),
    ("model.hidden=abc", "model.hidden = 'abc': expected an integer"),
    ("model.hidden", "'model.hidden': expected key=value"),
    ("train.steps=-5", "train.steps = -5: must be an integer >= 1"),
])
def test_a_bad_set_is_one_line_before_anything_runs(tmp_path, capsys, setting, message):
    line = refused(["run", "ablation_ema", "--scale", "smoke", "--out", str(tmp_path), "--set", setting], capsys)
    assert message in line and not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv,message", [
    (["--seeds", "1,x"], "argument --seeds: '1,x': expected comma-separated integers"),
    (["--seeds", "1,1"], "argument --seeds: '1,1': expected distinct integers >= 0"),
    (["--gpus", "a"], "argument --gpus: 'a': expected comma-separated integers"),
    (["--jobs", "0"], "argument --jobs: '0': expected an integer >= 1"),
    (["--jobs", "two"], "argument --jobs: 'two': expected an integer >= 1"),
    (["--backend", "spark"], "argument --backend: invalid choice: 'spark'"),
])
def test_bad_command_line_numbers_are_refused(tmp_path, capsys, argv, message):
    line = refused(["run", "ablation_ema", "--scale", "smoke", "--out", str(tmp_path), *argv], capsys)
    assert message in line and not any(tmp_path.iterdir())


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle ran code",))


@pytest.mark.parametrize("content,message", [
    (None, "no such checkpoint"),
    (b"", "not a readable checkpoint"),
    (b"\x00\x01 random bytes \xff" * 40, "not a readable checkpoint"),
    ("truncated", "not a readable checkpoint"),
    ("code", "refused: loading it would call print"),
    ("not ours", "not a qanet-bench checkpoint (no step, config"),
])
def test_a_bad_checkpoint_is_refused_in_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "checkpoint.pt"
    if content == "truncated":
        torch.save({"step": 1, "model": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:500])
    elif content == "code":
        torch.save({"step": _RunsCode()}, path)
    elif content == "not ours":
        torch.save({"weights": torch.zeros(3)}, path)
    elif content is not None:
        path.write_bytes(content)
    line = refused(["predict", str(path), "--context", "Paris is in France.", "-q", "Where?"], capsys)
    assert line.startswith(f"error: {path}: ") and message in line, line
    assert "this pickle ran code" not in capsys.readouterr().out


@pytest.mark.parametrize("command", [["run", "ablation_ema", "--scale", "smoke"], ["train", "--preset", "tiny"]])
def test_an_output_folder_that_cannot_be_written_is_refused_before_training(tmp_path, capsys, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = refused([*command, "--out", str(blocker / "runs")], capsys)
    assert f"{blocker / 'runs'}" in line and "cannot write there" in line


def test_a_full_disk_leaves_no_temporary_file_and_the_run_says_it_could_not_write_its_record(
        tmp_path, capsys, monkeypatch):
    import errno
    from pathlib import Path

    from bench import records

    real_write = Path.write_text

    def disk_full(self, text, *args, **kwargs):
        if self.name.startswith(".") and self.suffix == ".tmp" and "disk" in self.parts:
            real_write(self, text[: len(text) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, text, *args, **kwargs)

    (tmp_path / "disk").mkdir()
    target = tmp_path / "disk" / "record.json"
    target.write_text('{"kept": true}')
    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError):
        records.write_json_atomically(target, {"new": 1})
    assert json.loads(target.read_text()) == {"kept": True} and sorted(target.parent.iterdir()) == [target]
    line = refused(["run", "ablation_ema", "--scale", "smoke", "--seeds", "0", "--out", str(tmp_path / "disk"),
                    "--set", "train.steps=2", "--set", "train.eval_every=1", "--set", "train.threads=1",
                    "--set", "data.synthetic.train_paragraphs=10", "--set", "data.synthetic.dev_paragraphs=3"], capsys)
    assert "its record could not be written (No space left on device)" in line
    assert not list((tmp_path / "disk").rglob("*.tmp"))


def test_a_checkpoint_that_cannot_be_written_leaves_the_last_good_one_alone(tmp_path, monkeypatch, capsys):
    from qanet import checkpoint
    from tests.conftest import _study

    real_save = torch.save
    saves = []

    def fails_the_second_time(state, path):
        saves.append(path)
        real_save(state, path)
        if len(saves) == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", fails_the_second_time)
    study = _study(tmp_path, 'seeds = [0]\n[axes]\n"train.ema" = [true]\n')
    with pytest.raises(SystemExit) as exit_status:  # a failed run: exit status 1
        bench_main(["run", study, "--scale", "smoke", "--out", str(tmp_path / "runs"), "--set", "train.steps=4",
                    "--set", "train.checkpoint_every=2", "--set", "train.eval_every=4", "--set", "train.threads=1",
                    "--set", "data.synthetic.train_paragraphs=10", "--set", "data.synthetic.dev_paragraphs=3"])
    assert exit_status.value.code == 1
    [record] = json.loads("[" + ",".join(p.read_text() for p in (tmp_path / "runs" / "tiny").glob("*.json")) + "]")
    checkpoint = tmp_path / "runs" / "tiny" / "checkpoints" / record["id"] / "checkpoint.pt"
    assert record["status"] == "failed" and record["error"] == f"no space left on device: {checkpoint}"
    assert capsys.readouterr().err.splitlines() == [f"error: base seed 0: no space left on device: {checkpoint}"]
    checkpoints = list((tmp_path / "runs" / "tiny" / "checkpoints").rglob("*.pt*"))
    assert [p.name for p in checkpoints] == ["checkpoint.pt"]
    assert torch.load(checkpoints[0], weights_only=True)["step"] == 2


@pytest.fixture
def small_disk(tmp_path):
    """A file system of 1 MiB of its own (tmpfs), unmounted after: mounting one needs root."""
    import subprocess

    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"no small file system to fill: mount -t tmpfs needs root ({mounted.stderr.strip()})")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_ends_the_run_failed_with_one_line_naming_the_file(small_disk, tmp_path, capsys):
    """A real full disk (not a simulated error): the checkpoint does not fit. torch.save writing to the file
    itself failed with an internal RuntimeError ("unexpected pos") and nothing on stderr."""
    from tests.conftest import _study, records_in

    study = _study(tmp_path, 'seeds = [0]\n[axes]\n"train.ema" = [true]\n')
    with pytest.raises(SystemExit) as exit_status:
        bench_main(["run", study, "--scale", "smoke", "--out", str(small_disk), "--set", "train.steps=4",
                    "--set", "train.checkpoint_every=2", "--set", "train.eval_every=4", "--set", "train.threads=1",
                    "--set", "data.synthetic.train_paragraphs=10", "--set", "data.synthetic.dev_paragraphs=3"])
    [record] = records_in(small_disk / "tiny")  # written once the checkpoint's space was freed
    checkpoint = small_disk / "tiny" / "checkpoints" / record["id"] / "checkpoint.pt"
    assert exit_status.value.code == 1 and record["status"] == "failed"
    assert record["error"] == f"no space left on device: {checkpoint}"
    assert capsys.readouterr().err.splitlines() == [f"error: base seed 0: no space left on device: {checkpoint}"]
    assert not list(small_disk.rglob("*.tmp"))


@pytest.mark.parametrize("error,said", [
    (OSError(28, "No space left on device", "/disk/run.log.jsonl"), "no space left on device: /disk/run.log.jsonl"),
    (PermissionError(13, "Permission denied", "/disk/ckpt.pt"), "permission denied: /disk/ckpt.pt"),
    (OSError(30, "Read-only file system", "/disk/x"), "read-only file system: /disk/x"),
])
def test_a_write_the_machine_refuses_is_the_runs_error_in_one_line(error, said):
    from bench.runner import _outcome
    from qanet.config import build_config

    assert _outcome(error, build_config("tiny")) == ("failed", said)
    status, traceback = _outcome(OSError(5, "Input/output error", "/disk/x"), build_config("tiny"))
    assert status == "failed" and traceback.startswith("OSError: [Errno 5]")  # not the user's to fix: all of it
