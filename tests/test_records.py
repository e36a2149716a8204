"""Run records (bench.records): their fields, reading them into frames, comparing them, damaged ones."""

import json

import pytest

from bench.cli import main as bench_main
from bench.records import RECORD_COLUMNS, records_frame
from tests.conftest import TWO_BY_TWO, _run, _study, records_in


def test_study_runs_skips_finished_runs_and_loads_into_pandas(tmp_path, capsys):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs")
    first = capsys.readouterr().out
    assert "4 runs, 0 done, 4 to run" in first
    *_, header, _, base, other, _, outcome = first.splitlines()  # the report's table, then the outcome
    assert outcome == "all 4 runs reached a recorded outcome (ok 4)"
    assert header.startswith("| variant ") and base.startswith("| char_encoder = conv2d (base) | 2 ok ")
    assert other.startswith("| char_encoder = depthwise1d ") and "| 2 ok " in other
    records = records_in(tmp_path / "runs" / "tiny")
    assert len(records) == 4 and {r["status"] for r in records} == {"ok"}
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / "tiny").glob("*.json")}

    _run(study, tmp_path / "runs")
    again = capsys.readouterr().out
    assert "4 runs, 4 done, 0 to run" in again and again.splitlines()[-1].startswith("nothing was run")
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / "tiny").glob("*.json")}

    frame = records_frame("tiny", tmp_path / "runs")
    assert list(frame.columns[:len(RECORD_COLUMNS)]) == RECORD_COLUMNS
    assert len(frame) == 4 and set(frame["variant"]) == {"base", "model.char_encoder=depthwise1d"}
    assert set(frame["model.char_encoder"]) == {"conv2d", "depthwise1d"}
    assert frame["exact"].between(0, 100).all() and (frame["peak_memory_mb"] > 0).all()
    assert (frame["steps"] == 6).all() and set(frame["seed"]) == {0, 1}


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


def test_a_time_bounded_record_names_its_hardware_and_report_refuses_to_mix_hardware(tmp_path, capsys):
    study = _study(tmp_path, TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0", "--set", "train.minutes=5")
    records = sorted(records_in(tmp_path / "runs" / "tiny"), key=lambda record: record["variant"] == "base")
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


def _set(record: dict, key: str, value) -> str:
    """The record's JSON with one value replaced: `key` is dotted, a number in it an index (curve.0.f1)."""
    *path, last = key.split(".")
    inner = record
    for step in path:
        inner = inner[int(step)] if isinstance(inner, list) else inner[step]
    inner[int(last) if isinstance(inner, list) else last] = value
    return json.dumps(record)


TEXTS = {"half written": '{"id": "abc", "status": "ok", "conf', "a list": "[1, 2]", "an id alone": '{"id": 5}',
         "not UTF-8": "\xff\xfe"}
# a record of the wrong types: the value, and what the warning says of it
WRONG_TYPES = {"metrics.f1": ("forty-two", "metrics.f1 = 'forty-two', expected a number"),
               "wall_seconds": ("fast", "wall_seconds = 'fast', expected a number"),
               "seed": (True, "seed = True, expected an integer"),
               "curve.0.train_loss": ([1], "curve[0].train_loss = [1], expected a number or null"),
               "status": ("fine", "status = 'fine', expected one of ok, failed,"),
               "environment": (None, "environment = None, expected an object"),
               "config.model.hidden": ("wide", "its configuration no longer reads: model.hidden = 'wide'")}


@pytest.mark.parametrize("damage", [*TEXTS, *WRONG_TYPES])
def test_a_damaged_record_is_named_left_out_by_readers_and_its_run_redone(tmp_path, capsys, monkeypatch, damage):
    """Damaged: not JSON, not an object, or a field not of its type. `bench list`, `run --dry-run` and `report`
    leave the run out with one line naming the file (and the field), and `bench run` trains it again."""
    (tmp_path / "studies").mkdir()
    study = _study(tmp_path / "studies", TWO_BY_TWO)
    _run(study, tmp_path / "runs", "--seeds", "0")
    [damaged, intact] = sorted((tmp_path / "runs" / "tiny").glob("*.json"))
    if damage in TEXTS:
        damaged.write_bytes(TEXTS[damage].encode("latin-1"))
    else:
        damaged.write_text(_set(json.loads(damaged.read_text()), damage, WRONG_TYPES[damage][0]))
    capsys.readouterr()
    bench_main(["report", study, "--records", str(tmp_path / "runs"), "--out", str(tmp_path / "reports")])
    said = capsys.readouterr()
    table = (tmp_path / "reports" / "tiny" / "table.csv").read_text().splitlines()
    [warning] = [line for line in said.err.splitlines() if str(damaged) in line]
    assert warning.startswith(f"warning: {damaged}: not a readable run record") and len(table) == 2  # one variant
    assert damage in TEXTS or WRONG_TYPES[damage][1] in warning
    monkeypatch.chdir(tmp_path)
    bench_main(["list", "--out", str(tmp_path / "runs")])
    header, *lines = capsys.readouterr().out.splitlines()
    [listed] = [dict(zip(header.split(), line.split(), strict=False)) for line in lines if line.startswith("tiny ")]
    assert listed["runs"] == "4" and listed["smoke"] == "1"  # runs done at the smoke scale: the intact one
    _run(study, tmp_path / "runs", "--seeds", "0", "--dry-run")
    said = capsys.readouterr()
    assert "1 done, 1 to run" in said.out and "(its record is damaged: trained again from step 0" in said.out
    _run(study, tmp_path / "runs", "--seeds", "0")
    said = capsys.readouterr().out
    assert json.loads(damaged.read_text())["status"] == "ok" and "1 done, 1 to run" in said
    assert "its record is damaged: trained again from step 0" in said


def _committed_record_folders() -> list[str]:
    """Every folder under results/reference that holds run records (a JSON object with a variant and a config)."""
    from bench.environment import ROOT

    reference = ROOT / "results" / "reference"
    found = set()
    for path in reference.rglob("*.json"):
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith("{") and '"variant"' in text and '"config"' in text:
            found.add(str(path.parent.relative_to(reference)))
    return sorted(found)


@pytest.mark.parametrize("folder", _committed_record_folders())
def test_committed_records_load_back_into_their_types_and_todays_write_the_same_json(folder):
    """Every committed record reads back as a RunRecord (spec, result) under its own id and gives back its file,
    gaining only the fields added since it was written (the settings data.pack and train.compile_scope, its
    timeline and its id scheme, for the demo's; train.compile reads back as it was, false)."""
    from bench.environment import ROOT
    from bench.records import RunRecord, read_record

    paths = sorted((ROOT / "results" / "reference" / folder).glob("*.json"))
    assert paths
    for path in paths:
        written = json.loads(path.read_text(encoding="utf-8"))
        record = read_record(path)
        assert record.spec.id == path.stem == written["id"] and record.spec.seed == written["seed"]
        assert record.result.status == written["status"] and record.result.metrics == written["metrics"]
        again = record.to_json()
        assert {key: again[key] for key in written if key != "config"} == {
            key: value for key, value in written.items() if key != "config"}
        for section, settings in written["config"].items():
            assert {key: again["config"][section][key] for key in settings} == settings
        if folder == "ablation_char_cnn-smoke":  # written by the code just before those settings
            assert again.keys() - written.keys() == {"timeline", "id_scheme"}
            assert again["timeline"] is None and again["id_scheme"] is None  # not known: from before schemes said
            assert {(section, key) for section in again["config"] for key in again["config"][section]} - {
                (section, key) for section in written["config"] for key in written["config"][section]} == {
                ("data", "pack"), ("train", "compile_scope")}
        assert RunRecord.from_json(again, path.parent).to_json() == again


def test_every_record_field_has_a_json_type_the_reader_checks():
    """A field of a type JSON does not write as itself (a tuple, a Path) would read back as damaged in every
    record, and `bench run` would train every finished run again."""
    import types
    import typing

    from bench.records import _JSON_NAMES, _RUN_KEYS, RunRecord, _field_types, _json_type, _mismatch
    from qanet.outcome import TrainResult

    def json_types(kind):
        for option in typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,):
            yield _json_type(option)
            for inner in typing.get_args(option):
                yield from json_types(inner)

    kinds = [*_RUN_KEYS.values(), *_field_types(TrainResult).values(), *_field_types(RunRecord).values()]
    assert {found for kind in kinds for found in json_types(kind)} <= set(_JSON_NAMES)
    # inside a value of the right shape, the wrong item is named
    assert _mismatch({"f1": "x"}, dict[str, float] | None, "metrics") == "metrics.f1 = 'x', expected a number"
    assert _mismatch([1], dict[str, float] | None, "metrics") == "metrics = [1], expected an object or null"
    assert _mismatch(3, float, "f1") is None and _mismatch(True, float, "f1") == "f1 = True, expected a number"
