"""Optuna searches: `bench search`, pruning through the trainer's hooks, records linked to trials, resume,
export, PostgreSQL with two workers, a worker killed mid-trial, the held-out objective, TPE's random start,
the pruner's warm-up, a changed search refused, and a report that only reads the storage."""

import dataclasses
import glob
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from bench.cli import main as bench_main
from bench.records import RunRecord
from bench.scales import SCALES
from bench.search.definition import load_search
from bench.search.storage import open_storage_to_read
from bench.search.trials import objective_function
from bench.spec import RunSpec, in_folder
from bench.study import StudyError
from bench.study import load_study as load_ablation
from qanet.outcome import TrainResult
from tests.conftest import ROOT, records_in

SEARCH = """
kind = "optuna"
preset = "paper"
trials = 4
[set]
"train.optimizer" = "adam"
[params."train.lr"]
type = "float"
low = 1e-5
high = 1.0
log = true
[scale.smoke]
holdout_questions = 24
[scale.smoke.set]
"train.steps" = {steps}
"train.eval_every" = 4
"train.checkpoint_every" = 4
"train.warmup_steps" = 0
"data.synthetic.train_paragraphs" = 20
"data.synthetic.dev_paragraphs" = 5
"train.threads" = 1
"""


def _search(tmp_path, steps: int = 12, name: str = "tiny_search") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SEARCH.format(steps=steps))
    return path


def _variant(tmp_path, name: str, *replacements: tuple[str, str]) -> Path:
    """SEARCH (300 steps) with some of its text replaced."""
    text = SEARCH.format(steps=300)
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _trials(storage: str, name: str):
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


# Optuna features used on purpose warn "experimental": nothing a user can act on (bench.search.storage)
@pytest.mark.filterwarnings("error::optuna.exceptions.ExperimentalWarning")
def test_a_search_runs_its_trials_links_records_resumes_and_exports_the_best(tmp_path, capsys):
    study, storage = _search(tmp_path), f"sqlite:///{tmp_path / 'optuna.db'}"
    common = ["search", str(study), "--scale", "smoke", "--storage", storage, "--out", str(tmp_path / "runs")]
    bench_main([*common, "--trials", "2"])
    bench_main(common)  # resumed: up to the file's 4 trials
    trials = _trials(storage, "tiny_search-smoke")
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state.is_finished() for t in trials)
    records = {r["id"]: r for r in records_in(tmp_path / "runs" / "tiny_search")}
    for trial in trials:
        record = records[trial.user_attrs["record_id"]]
        assert record["optuna"]["trial"] == trial.number and record["optuna"]["study"] == "tiny_search"
        assert record["config"]["train"]["lr"] == pytest.approx(trial.params["train.lr"])
        assert record["status"] == {"COMPLETE": "ok", "PRUNED": "pruned", "FAIL": record["status"]}[trial.state.name]
        # the trial saw the held-out scores of its run's curve, and its value is the held-out one
        assert trial.intermediate_values == {entry["step"]: entry["holdout_f1"] for entry in record["curve"]}
        assert record["holdout_metrics"]["total"] == 24 and record["metrics"]["total"] == 30  # 4 paragraphs; dev
        if trial.state.name == "COMPLETE":
            assert trial.value == record["holdout_metrics"]["f1"]
    said = capsys.readouterr().out
    assert "4 trials, random search, objective held-out train F1 (24 questions, seed 0)" in said  # 4 <= 10
    best = max((t for t in trials if t.value is not None and t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert f"best: trial {best.number}, held-out train F1 (24 questions, seed 0) {best.value:.2f}" in said
    with pytest.raises(SystemExit):  # nothing complete in another storage: one line, exit 2
        bench_main([*common[:5], f"sqlite:///{tmp_path / 'empty.db'}", "--export-best", str(tmp_path / "x.toml")])
    exported = tmp_path / "best.toml"
    bench_main([*common, "--export-best", str(exported)])
    ablation = load_ablation(str(exported))
    [run] = ablation.runs("full", seeds=[0])
    assert run.config.train.lr == pytest.approx(best.params["train.lr"]) and run.config.train.optimizer == "adam"
    # at the search's scale, seed 0 of the exported study is the best trial's very run
    assert ablation.seeds == [0, 1, 2]
    [spec] = in_folder(ablation.runs("smoke", seeds=[0]), tmp_path / "runs" / ablation.name)
    assert spec.id == best.user_attrs["record_id"]


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_a_pruned_trial_is_a_pruned_record_with_its_step(tmp_path):
    search = load_search(str(_search(tmp_path)))
    study = optuna.create_study(direction="maximize", pruner=_AlwaysPrune())
    study.optimize(objective_function(search, "smoke", out=tmp_path / "runs", storage="memory", threads=1), n_trials=1)
    [trial] = study.trials
    [record] = records_in(tmp_path / "runs" / "tiny_search")
    assert trial.state.name == "PRUNED" and record["status"] == "pruned" and record["steps"] == 4
    assert record["error"].startswith("pruned at step 4") and trial.intermediate_values.keys() == {4}


@pytest.mark.parametrize("text,message", [
    ('kind = "optuna"\nbogus = 1\n', "bogus = 1: unknown key"),
    ('kind = "optuna"\n[params."train.lr"]\ntype = "float"\nlow = 0.1\nhigh = 0.01\n', "low < high"),
    ('kind = "optuna"\n[params."train.lr"]\ntype = "float"\nlow = 0\nhigh = 1\nlog = true\n', "low > 0 on a log"),
    ('kind = "optuna"\n[params."train.lr"]\ntype = "normal"\n', "expected float, int or categorical"),
    ('kind = "optuna"\npruner = "asha"\n[params."train.lr"]\ntype = "float"\nlow = 0.1\nhigh = 1\n',
     "pruner = 'asha': expected one of median, hyperband, threshold, none"),
    ('kind = "optuna"\n[params."train.seed"]\ntype = "int"\nlow = 0\nhigh = 9\n', "params.train.seed = "),
    ('kind = "optuna"\n[params."model.widht"]\ntype = "int"\nlow = 1\nhigh = 2\n', "model.widht: unknown key"),
    ('kind = "optuna"\ntrials = 0\n[params."train.lr"]\ntype = "float"\nlow = 0.1\nhigh = 1\n', "trials = 0"),
    ('kind = "optuna"\nstartup_trials = 0\n[params."train.lr"]\ntype = "float"\nlow = 0.1\nhigh = 1\n',
     "startup_trials = 0: expected an integer >= 1"),
    ('kind = "optuna"\n[params."train.lr"]\ntype = "float"\nlow = 0.1\nhigh = 1\n[scale.smoke]\nholdout_questions = '
     '"all"\n', "scale.smoke.holdout_questions = 'all': expected an integer >= 1"),
    ('kind = "optuna"\n[set]\n"data.holdout_questions" = 5\n[params."train.lr"]\ntype = "float"\nlow = 0.1\n'
     'high = 1\n', "set.data.holdout_questions = 5: set holdout_questions = N instead"),
])
def test_bad_search_files_are_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exit_status:
        bench_main(["search", str(path), "--scale", "smoke", "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    said = capsys.readouterr().err.strip().splitlines()
    assert exit_status.value.code == 2 and len(said) == 1 and said[0].startswith(f"error: {path}")
    assert message in said[0]


def test_bench_run_points_a_search_file_to_bench_search(tmp_path):
    with pytest.raises(StudyError, match="a search .* python -m bench search tiny_search"):
        load_ablation(str(_search(tmp_path)))


def test_the_shipped_searches_load_at_every_scale():
    for name in ("lr_adam", "lr_adadelta"):
        search = load_search(name)
        sampled = {param.key: param.ends()[0] for param in search.params_at("smoke")}
        assert search.count_at("trials", "smoke") <= 8 and search.config(sampled, "smoke").train.steps == 300
        for scale in ("smoke", "cpu"):  # TPE has trials left after its random start
            startup = search.count_at("startup_trials", scale)
            assert search.sampling_text(scale, search.count_at("trials", scale)) == \
                f"TPE, its first {startup} trials random"


def test_tpe_draws_at_random_only_for_its_startup_trials(tmp_path):
    search = load_search(str(_variant(tmp_path, "startup", ("holdout_questions = 24", "holdout_questions = 24\n"
                                                                                     "startup_trials = 3"))))

    def draws(sampler) -> list[dict]:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(lambda trial: -abs(math.log10(trial.suggest_float("train.lr", 1e-5, 1.0, log=True)) + 2),
                       n_trials=5)
        return [trial.params for trial in study.trials]

    tpe, random = draws(search.sampler_object(7, "smoke")), draws(optuna.samplers.RandomSampler(seed=7))
    assert tpe[:3] == random[:3] and tpe[3:] != random[3:]  # TPE's start-up draws are its random sampler's
    assert search.sampling_text("smoke", 3) == "random search" and search.sampling_text("full", 20) == \
        "TPE, its first 10 trials random"
    randomly = load_search(str(_variant(tmp_path, "randomly", ("trials = 4", 'trials = 4\nsampler = "random"'))))
    assert randomly.sampling_text("smoke", 50) == "random search"


SEARCHED_WARM_UP = ("[scale.smoke]\n", '[params."train.warmup_steps"]\ntype = "int"\nlow = 0\nhigh = 150\n\n'
                                         "[scale.smoke]\n")


def test_the_pruner_waits_for_the_longest_warm_up_a_trial_can_have(tmp_path):
    fixed = ('"train.warmup_steps" = 0', '"train.warmup_steps" = 40')
    searched = load_search(str(_variant(tmp_path, "searched", SEARCHED_WARM_UP)))
    assert searched.longest_warmup("smoke") == 150
    assert load_search(str(_variant(tmp_path, "fixed", fixed))).longest_warmup("smoke") == 40
    adadelta = _variant(tmp_path, "adadelta", fixed, ('"adam"', '"adadelta"'))  # Adadelta has no warm-up
    assert load_search(str(adadelta)).longest_warmup("smoke") == 0
    assert load_search("lr_adam").longest_warmup("smoke") == 150  # the shipped search's warm-up range
    study = optuna.create_study(direction="maximize", pruner=searched.pruner_object("smoke"))
    for _ in range(2):  # two finished trials, well above the third at every step
        study.add_trial(optuna.trial.create_trial(value=50.0, intermediate_values={100: 50.0, 200: 50.0}))
    slow_start = study.ask()
    slow_start.report(1.0, 100)  # a warm-up of up to 150 steps may still be running: not judged
    assert not slow_start.should_prune()
    slow_start.report(1.0, 200)
    assert slow_start.should_prune()
    hyperband = _variant(tmp_path, "hyperband", fixed, ("trials = 4\n", 'trials = 4\npruner = "hyperband"\n'))
    assert load_search(str(hyperband)).pruner_object("smoke")._min_resource == 40  # its first rung


def test_the_objective_is_the_held_out_score_never_the_dev_score(tmp_path, monkeypatch):
    """A run another trial finished (the same settings) stands for this trial: its held-out curve is reported
    and its held-out score returned, whatever its dev score."""
    search = load_search(str(_search(tmp_path)))
    curve = [{"step": 4, "f1": 90.0, "holdout_f1": 10.0}, {"step": 8, "f1": 95.0, "holdout_f1": 20.0}]
    finished = TrainResult("ok", 8, {"f1": 95.0}, curve=curve, holdout_metrics={"f1": 20.0})

    def trained_by_trial_99(spec, **kwargs):
        return RunRecord(dataclasses.replace(spec, tags={"optuna": {"trial": 99}}), finished)

    monkeypatch.setattr("bench.runner.execute", trained_by_trial_99)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective_function(search, "smoke", out=tmp_path / "runs", storage="memory", threads=1), n_trials=1)
    [trial] = study.trials
    assert trial.value == 20.0 and trial.intermediate_values == {4: 10.0, 8: 20.0}


def test_a_stored_search_whose_file_changed_is_not_continued(tmp_path, capsys, monkeypatch):
    study, storage = _search(tmp_path, steps=4, name="changing"), f"sqlite:///{tmp_path / 'optuna.db'}"
    command = ["search", str(study), "--scale", "smoke", "--storage", storage, "--out", str(tmp_path / "runs")]
    bench_main([*command, "--trials", "1"])
    assert optuna.load_study(study_name="changing-smoke", storage=storage).metric_names == ["held-out train F1"]
    study.write_text(study.read_text().replace("trials = 4", "trials = 5"))  # more trials: the same search
    bench_main([*command, "--trials", "1"])
    study.write_text(study.read_text().replace("high = 1.0", "high = 0.1"))
    for more in (["--trials", "2"], ["--export-best", str(tmp_path / "best.toml")]):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_status:
            bench_main([*command, *more])
        said = capsys.readouterr().err.strip().splitlines()
        assert exit_status.value.code == 2 and len(said) == 1, said
        assert said[0].startswith(f"error: {study}: changed since the Optuna study 'changing-smoke'")
        assert "optuna delete-study --study-name changing-smoke" in said[0]
    assert len(_trials(storage, "changing-smoke")) == 1 and not (tmp_path / "best.toml").exists()
    search = load_search(str(study))
    before = search.definition_hash("smoke")
    smoke = SCALES["smoke"]  # the scale's own settings changed in the code:
    monkeypatch.setitem(SCALES, "smoke", dataclasses.replace(smoke, budget={**smoke.budget, "train.eval_every": 7}))
    assert search.definition_hash("smoke") != before


def test_a_studys_scale_table_pins_settings_at_that_scale_only(tmp_path):
    path = tmp_path / "pinned.toml"
    path.write_text('seeds = [0]\n[set]\n"train.warmup_steps" = 57\n[scale.cpu.set]\n"train.warmup_steps" = 57\n')
    study = load_ablation(str(path))
    assert [run.config.train.warmup_steps for run in study.runs("cpu")] == [57]  # over the scale's own 500
    smoke_warmup = SCALES["smoke"].settings()["train.warmup_steps"]
    assert [run.config.train.warmup_steps for run in study.runs("smoke")] == [smoke_warmup]
    path.write_text('[scale.tiny.set]\n"train.steps" = 5\n')
    with pytest.raises(StudyError, match=r"pinned.toml: scale.tiny = .*: expected \[scale.NAME.set\]"):
        load_ablation(str(path))


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of its own on 127.0.0.1 (initdb + pg_ctl in a temporary folder), stopped after."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if not found[-1]:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it with apt-get)")
    bin_dir = Path(found[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="qanet-bench-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses root
    if as_user:
        shutil.chown(folder, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    pg(str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "bench", "--auth=trust")
    pg(str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-w", "-l", str(folder / "log"), "-o",
       f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    try:
        pg(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "optuna")
        yield f"postgresql+psycopg://bench@127.0.0.1:{port}/optuna"
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_search_through_postgresql(postgres, tmp_path, capsys):
    study = _search(tmp_path, name="shared")  # pruned for certain: F1 below 50 at its first evaluation
    study.write_text(study.read_text().replace('trials = 4', 'trials = 4\npruner = "threshold"\nprune_below = 50'))
    bench_main(["search", str(study), "--scale", "smoke", "--storage", postgres, "--out", str(tmp_path / "runs"),
                "--jobs", "2", "--trials", "10"])
    trials = _trials(postgres, "shared-smoke")
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and 10 <= len(trials) <= 11  # a worker may start one as the other ends
    assert all(t.state.is_finished() for t in trials) and any(t.state.name == "PRUNED" for t in trials)
    records = {r["id"]: r for r in records_in(tmp_path / "runs" / "shared")}
    assert {t.user_attrs["record_id"] for t in trials} == set(records)
    assert {r["optuna"]["trial"] for r in records.values()} <= set(numbers)
    assert "storage postgresql+psycopg://bench@127.0.0.1" in capsys.readouterr().out


def test_a_worker_killed_mid_trial_is_failed_by_heartbeat_and_its_trial_retried(tmp_path):
    study, storage = _search(tmp_path, steps=400, name="killed"), f"sqlite:///{tmp_path / 'optuna.db'}"
    command = [sys.executable, "-m", "bench", "search", str(study), "--scale", "smoke", "--storage", storage,
               "--out", str(tmp_path / "runs"), "--trials", "2", "--heartbeat", "1"]
    worker = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    checkpoints = tmp_path / "runs" / "killed" / "checkpoints"
    while time.time() < deadline and not list(checkpoints.glob("*/checkpoint.pt")):
        time.sleep(0.5)
    assert list(checkpoints.glob("*/checkpoint.pt")), "the first trial wrote no checkpoint in 120 s"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(4)  # past the grace period of 3 heartbeats
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=600)
    trials = _trials(storage, "killed-smoke")
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and failed[0].number == 0
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from bench.search.storage import experimental_on_purpose

    with experimental_on_purpose():
        [retry] = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == 0]
    assert retry.state.name in ("COMPLETE", "PRUNED") and retry.params == failed[0].params
    resumed = json.loads(next((tmp_path / "runs" / "killed").glob("*.json")).read_text())
    assert resumed["resumed_from"] and resumed["resumed_from"][0] >= 4  # the retry continued the dead trial's run


def test_the_report_of_a_search_has_its_best_trials_and_optunas_plots(tmp_path, capsys):
    study = tmp_path / "two_params.toml"
    study.write_text(SEARCH.format(steps=8).replace('[scale.smoke.set]', '[params."train.warmup_steps"]\n'
                                                    'type = "int"\nlow = 0\nhigh = 50\n\n[scale.smoke.set]'))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    bench_main(["study", str(study), "--scale", "smoke", "--storage", storage, "--out", str(tmp_path / "runs")])
    assert capsys.readouterr().err.splitlines() == ["note: `bench study` is now `bench search`"]  # its old name works
    bench_main(["report", str(study), "--storage", storage, "--records", str(tmp_path / "runs"), "--out",
                str(tmp_path / "reports")])
    out = tmp_path / "reports" / "two_params"
    for name in ("history", "slice", "importances", "contour", "intermediate", "score_vs_lr"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.pdf").exists(), name
    trials = _trials(storage, "two_params-smoke")
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    first_row = (out / "best.md").read_text().splitlines()[2]
    assert first_row.startswith(f"| {best.number} ") and best.user_attrs["record_id"] in first_row
    report = (out / "report.md").read_text()
    assert f"{len(trials)} trials (random search): " in report and "![intermediate](intermediate.png)" in report
    assert "Objective: held-out train F1 (24 questions, seed 0), maximised" in report


def _stored_search(storage: str, name: str = "tiny_search-smoke") -> None:
    """An Optuna study such as bench search leaves, two complete trials, none of them trained."""
    lr = optuna.distributions.FloatDistribution(1e-5, 1.0, log=True)
    optuna_study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for number, value in enumerate((1e-3, 1e-2)):
        optuna_study.add_trial(optuna.trial.create_trial(params={"train.lr": value}, distributions={"train.lr": lr},
                                                         value=10.0 + number, user_attrs={"record_id": f"r{number}"}))


def _report_fails(arguments: list[str], capsys) -> str:
    """What bench report says on stderr as it exits with status 2."""
    with pytest.raises(SystemExit) as exit_status:
        bench_main(["report", *arguments])
    assert exit_status.value.code == 2
    return capsys.readouterr().err


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_report_never_creates_a_storage_nor_changes_a_byte_of_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _report_fails(["lr_adam"], capsys) == ("error: results/optuna/lr_adam.db: no search stored there (run "
                                                  "python -m bench search lr_adam first)\n")
    assert list(tmp_path.iterdir()) == []  # neither the default storage's file nor its folder
    study, folder = _search(tmp_path), tmp_path / "optuna"
    database = folder / "search.db"
    folder.mkdir()
    database.touch()  # what a report that wrote left behind: an empty database
    storage = f"sqlite:///{database}"
    report = [str(study), "--scale", "smoke", "--storage", storage, "--out", str(tmp_path / "reports")]
    assert _report_fails(report, capsys) == ("error: optuna/search.db: no search stored there (run python -m bench "
                                             "search tiny_search --scale smoke first)\n")
    assert database.stat().st_size == 0
    _stored_search(storage)
    stored = _sha256(database)
    bench_main(["report", *report])
    assert _sha256(database) == stored and list(folder.iterdir()) == [database]  # no -journal, -wal or -shm left
    assert "| 1 " in (tmp_path / "reports" / "tiny_search" / "best.md").read_text()
    with pytest.raises(optuna.exceptions.StorageInternalError) as refused:  # opened read-only indeed
        optuna.create_study(storage=open_storage_to_read(storage, StudyError("nothing there")))
    assert "attempt to write a readonly database" in str(refused.value.__cause__)


def test_a_report_reads_postgresql_without_creating_optunas_tables(postgres, tmp_path, capsys):
    import psycopg
    import sqlalchemy

    with psycopg.connect(postgres.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute("CREATE DATABASE no_search_yet")
    empty = postgres.rsplit("/", 1)[0] + "/no_search_yet"
    report = [str(_search(tmp_path)), "--storage", empty, "--out", str(tmp_path / "reports")]
    nothing_there = f"error: {empty}: no search stored there (run python -m bench search tiny_search first)\n"
    assert _report_fails(report, capsys) == nothing_there
    engine = sqlalchemy.create_engine(empty)
    assert sqlalchemy.inspect(engine).get_table_names() == []
    engine.dispose()
    _stored_search(empty, "another_search-smoke")  # Optuna's tables, without this search
    assert _report_fails(report, capsys) == nothing_there
    _stored_search(empty)
    bench_main(["report", *report])
    assert "| 1 " in (tmp_path / "reports" / "tiny_search" / "best.md").read_text()


def test_a_search_reads_its_data_from_a_pack_as_the_same_search_and_the_same_runs(tmp_path, capsys):
    """`bench search --set data.pack=DIR`: the pack is where the data lies, not what the search is (its
    definition is the same, so files and pack workers share one Optuna study), and a trial from the pack is
    the run it is from the files (one id); any other --set changes the search."""
    from qanet.config import DataConfig, SyntheticConfig, parse_overrides
    from qanet.data.pack import write_pack
    from qanet.data.prepare import prepare

    data = DataConfig(synthetic=SyntheticConfig(train_paragraphs=20, dev_paragraphs=5))
    write_pack(prepare(data), tmp_path / "pack", data)
    path = str(_search(tmp_path, steps=4))
    files, packed = load_search(path), load_search(path, parse_overrides([f"data.pack={tmp_path / 'pack'}"]))
    assert packed.definition_hash("smoke") == files.definition_hash("smoke")
    longer = load_search(path, parse_overrides(["train.steps=8"]))
    assert longer.definition_hash("smoke") != files.definition_hash("smoke")
    sampled = {"train.lr": 0.01}
    [from_files], [from_pack] = (in_folder([RunSpec("s", "t", "smoke", search.config(sampled, "smoke"))], tmp_path)
                                 for search in (files, packed))
    assert from_pack.config.data.pack == str(tmp_path / "pack") and from_pack.id == from_files.id

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    bench_main(["search", path, "--scale", "smoke", "--storage", storage, "--out", str(tmp_path / "runs"),
                "--trials", "1", "--set", f"data.pack={tmp_path / 'pack'}"])
    [record] = records_in(tmp_path / "runs" / "tiny_search")
    assert record["config"]["data"]["pack"] == str(tmp_path / "pack") and record["status"] in ("ok", "pruned")


def test_search_set_refuses_what_the_search_decides_and_leaves_placement_out_of_the_search(tmp_path):
    from qanet.config import ConfigError, parse_overrides

    path = str(_search(tmp_path))
    for setting in ("train.lr=0.5", "train.seed=7", "data.holdout_questions=3"):
        with pytest.raises(ConfigError, match=f"--set {setting}: the search file decides it"):
            load_search(path, parse_overrides([setting]))
    placed = load_search(path, parse_overrides(["train.threads=1", "train.device=cpu", "train.compile=false"]))
    assert placed.definition_hash("smoke") == load_search(path).definition_hash("smoke")
