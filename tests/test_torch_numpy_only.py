"""The run path on a machine with torch and numpy only, as the GPU machines are (issue 24): `bench run` and `bench
train` train from a pack, write records, logs and checkpoints and show their progress without tqdm; what needs
another library (the closing table, report, search, parallel runs) says in one line what to install.

Each command runs in `python -S` with only the `only_torch_and_numpy` folder and the repository on its path, so
that importing pandas, joblib, tqdm, Optuna or spaCy at the top of a module on the way fails the test."""

import json
import re
import tomllib
from types import SimpleNamespace

import pytest

from bench.commands.common import EXTRAS, install_advice
from bench.commands.progress import STEP_LINES, StepLines
from qanet.config import SyntheticConfig
from qanet.data.synthetic import write_synthetic
from qanet.hooks import StepReport
from tests.conftest import ROOT, run_python, run_with_only

TINY_RUN = ["--set", "train.steps=4", "--set", "train.eval_every=2", "--set", "train.threads=1"]


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """Small synthetic data as a pack, made where every extra is installed (spaCy tokenises it)."""
    files = write_synthetic(SyntheticConfig(train_paragraphs=20, dev_paragraphs=5), tmp_path_factory.mktemp("data"))
    directory = tmp_path_factory.mktemp("pack") / "synthetic"
    run_python("-m", "bench", "data", "pack", "--train", str(files["train"]), "--dev", str(files["dev"]),
               "--out", str(directory))
    return directory


def test_bench_run_trains_from_a_pack_and_ends_with_a_note_instead_of_the_table(pack, tmp_path,
                                                                                only_torch_and_numpy):
    out = tmp_path / "runs"
    result = run_with_only(only_torch_and_numpy, "-m", "bench", "run", "ablation_char_cnn", "--scale", "smoke",
                           "--seeds", "0", "--set", f"data.pack={pack}", *TINY_RUN, "--out", str(out))
    folder = out / "ablation_char_cnn"
    records = [json.loads(path.read_text()) for path in folder.glob("*.json")]
    assert sorted(record["variant"] for record in records) == ["base", "model.char_encoder=depthwise1d"]
    for record in records:
        assert record["status"] == "ok" and record["steps"] == 4
        assert (folder / f"{record['id']}.log.jsonl").is_file() and (folder / record["checkpoint"]).is_file()
    said = result.stdout.splitlines()
    assert any(line.startswith("base seed 0: ok, EM ") for line in said)
    assert said[-2:] == ["note: no summary table (pandas is not installed: pip install 'qanet-bench[bench]'); the "
                         "records are written", "all 2 runs reached a recorded outcome (ok 2)"]
    assert result.stderr.count("step 0/4: training begins") == 2 and result.stderr.count("step 4/4\n") == 2


def test_bench_train_trains_from_a_pack_without_tqdm(pack, tmp_path, only_torch_and_numpy):
    out = tmp_path / "train"
    result = run_with_only(only_torch_and_numpy, "-m", "bench", "train", "--set", f"data.pack={pack}", *TINY_RUN,
                           "--out", str(out))
    assert "step 2: dev EM" in result.stdout and "ok: dev EM" in result.stdout and "step 4/4" in result.stderr
    [record] = [json.loads(path.read_text()) for path in out.glob("*.json")]
    assert record["status"] == "ok" and (out / record["checkpoint"]).is_file()


def test_help_and_list_need_only_torch_and_numpy(only_torch_and_numpy):
    assert "COMMAND" in run_with_only(only_torch_and_numpy, "-m", "bench", "--help").stdout
    assert "ablation_char_cnn" in run_with_only(only_torch_and_numpy, "-m", "bench", "list").stdout


@pytest.mark.parametrize(("command", "said"), [
    (["report", "ablation_char_cnn", "--scale", "smoke"],
     "report: pandas is not installed: pip install 'qanet-bench[report]'"),
    (["search", "lr_adam", "--scale", "smoke"], "search: optuna is not installed: pip install 'qanet-bench[tune]'"),
    (["run", "ablation_char_cnn", "--scale", "smoke", "--jobs", "2"],
     "run: joblib is not installed: pip install 'qanet-bench[bench]'"),
    (["run", "ablation_char_cnn", "--scale", "smoke", "--backend", "dask", "--scheduler", "tcp://127.0.0.1:1"],
     "run: dask is not installed: pip install 'qanet-bench[cluster]'"),
], ids=["report", "search", "jobs", "dask"])
def test_what_needs_another_library_is_refused_in_one_line_naming_its_extra(command, said, pack, tmp_path,
                                                                            only_torch_and_numpy):
    where = ["--records" if command[0] == "report" else "--out", str(tmp_path / "runs")]
    data = ["--set", f"data.pack={pack}"] if command[0] == "run" else []
    result = run_with_only(only_torch_and_numpy, "-m", "bench", *command, *data, *where, check=False)
    assert result.returncode == 2 and result.stderr.splitlines() == [f"error: python -m bench {said}"]
    assert not list(tmp_path.glob("runs/**/*.json"))


def test_without_tqdm_a_run_prints_a_line_as_it_begins_and_at_each_tenth_of_its_steps(capsys):
    lines = StepLines()
    lines.on_begin(SimpleNamespace(step=0, config=SimpleNamespace(train=SimpleNamespace(steps=500))))
    for step in range(1, 501):
        read = step % 50 == 0  # the loss is read every train.loss_check_every steps
        lines.on_step(StepReport(step, 2.5 if read else None, 1e-3, 40.0 if read else None, None))
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1 + STEP_LINES
    assert said[0] == "step 0/500: training begins" and said[-1] == "step 500/500: loss 2.500, 40 examples/s"


def test_every_library_of_an_extra_is_named_with_that_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    listed = {re.match(r"[\w.-]+", requirement).group().lower().replace("-", "_"): extra
              for extra, requirements in extras.items() if extra != "dev"  # dev: tools, not imported
              for requirement in requirements if not requirement.startswith("qanet-bench")}
    assert {library: EXTRAS.get(library) for library in listed} == listed
    assert set(EXTRAS.values()) <= set(extras)


def test_a_missing_module_that_is_no_optional_library_gets_no_install_advice():
    assert install_advice(ModuleNotFoundError("No module named 'bench.gone'", name="bench.gone"), "run") is None


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA: runs fail at once")
def test_runs_on_gpu_workers_need_no_joblib(pack, tmp_path, only_torch_and_numpy):
    """--gpus 0,0 on the GPU machine: worker processes from the standard library, not joblib. Here, without
    CUDA, each run fails at once in its worker and says so in its record, which comes back."""
    code = f"""
from bench.runner import run_parallel
from bench.spec import RunSpec, in_folder
from qanet.config import build_config
specs = in_folder([RunSpec("s", f"v{{i}}", "smoke", build_config("tiny", {{"data.pack": {str(pack)!r},
                                                                        "train.seed": i}})) for i in range(3)],
                  {str(tmp_path)!r})
records = list(run_parallel(specs, gpus=[0, 0]))
print(sorted((r.spec.variant, r.result.status, "no cuda device" in r.result.error) for r in records))
"""
    said = run_with_only(only_torch_and_numpy, "-c", code).stdout
    assert said.strip() == str([(f"v{i}", "failed", True) for i in range(3)])
