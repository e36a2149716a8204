import json

import pytest

from qanet.config import DataConfig, SyntheticConfig
from qanet.data.pack import write_pack
from qanet.data.prepare import prepare
from tests.conftest import ROOT, run_python, run_with_only

SCRIPT = str(ROOT / "benchmarks" / "gpu_reference.py")


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    config = DataConfig(synthetic=SyntheticConfig(train_paragraphs=40, dev_paragraphs=10))
    directory = tmp_path_factory.mktemp("pack") / "synthetic"
    write_pack(prepare(config, tmp_path_factory.mktemp("cache")), directory)
    return directory


def test_the_reference_script_runs_end_to_end_on_the_cpu_with_only_torch_and_numpy(pack, tmp_path,
                                                                                   only_torch_and_numpy):
    """The issue's CPU command, made smaller (batch 4, context 100) so that the paper-size model takes seconds."""
    out = tmp_path / "record.json"
    result = run_with_only(only_torch_and_numpy, SCRIPT, "--pack", str(pack), "--device", "cpu", "--steps", "20",
                                           "--eval-questions", "100", "--batch-size", "4", "--context-len", "100",
                                           "--eval-every-seconds", "2", "--wall-minutes", "0.5", "--out", str(out))
    record = json.loads(out.read_text())
    [fp32] = [row for row in record["check"] if "error" not in row]
    assert fp32["variant"] == "fp32 eager" and fp32["step_ms"] > 0 and fp32["peak_memory_mb"] > 0
    assert fp32["gflop_per_step"] > 1 and fp32["tflop_per_s"] > 0
    assert any(name.startswith("aten::_scaled_dot_product") for name in fp32["attention"]), fp32
    assert "bf16 compiled: skipped" in result.stdout
    assert record["status"] == "ok" and record["steps"] == 20 and record["config"]["model"]["model_blocks"] == 7
    assert record["attention_kernel"] == "flash" and record["warnings"] == [] and record["compile_shapes"] == []
    assert record["environment"]["torch"] and record["pack"]["fingerprint"].endswith(".fp16")
    curve = record["curve"]
    assert len(curve) >= 2 and curve[-1]["total"] == 60 and curve[-1]["step"] == 20  # every dev question at the end
    assert all({"step", "train_seconds", "exact", "f1", "total"} <= entry.keys() for entry in curve)
    assert record["time_to_f1"] == {"60": None, "70": None, "75": None}  # 20 steps learn nothing yet
    assert "training time cut to 0.50 min" in result.stdout and record["config"]["train"]["minutes"] == 0.5


def test_time_to_f1_is_the_first_evaluation_past_each_mark():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    curve = [{"train_seconds": 60.0, "f1": 55.0}, {"train_seconds": 120.0, "f1": 71.0},
             {"train_seconds": 180.0, "f1": 69.0}, {"train_seconds": 240.0, "f1": 75.5}]
    assert module.time_to_f1(curve) == {"60": 120.0, "70": 120.0, "75": 240.0}
    assert module.time_to_f1(curve[:1]) == {"60": None, "70": None, "75": None}


def test_the_gpu_machine_environment_has_torch_and_numpy_and_nothing_of_ours(only_torch_and_numpy):
    script = """
import importlib.util
print(sorted(name for name in ("torch", "numpy", "spacy", "pandas", "optuna", "evaluate", "tqdm", "joblib", "pyarrow")
             if importlib.util.find_spec(name)))
"""
    assert run_with_only(only_torch_and_numpy, "-c", script).stdout.strip() == "['numpy', 'torch']"


def test_a_number_that_is_not_a_positive_integer_is_refused_in_one_line():
    result = run_python(SCRIPT, "--pack", "p", "--batch-size", "0", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == ("gpu_reference.py: error: argument --batch-size: '0': expected "
                                                      "an integer >= 1")
