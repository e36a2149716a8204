"""train.attention_kernels: which SDPA kernels training may use, that it takes effect, and that records say so."""

import json

import pytest
import torch
from torch.nn.attention import SDPBackend

from qanet.config import ConfigError, build_config, set_value
from qanet.data.prepare import prepare
from qanet.device import attention_kernel_in_use, training_attention_kernels
from qanet.train import Trainer
from tests.test_train import _config
from tests.test_train import thirty_two as thirty_two  # a fixture, re-exported for this module's tests


def test_auto_leaves_cudnn_out_on_cuda_only():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert SDPBackend.CUDNN_ATTENTION not in training_attention_kernels("auto", cuda)
    assert set(training_attention_kernels("auto", cuda)) == {SDPBackend.MATH, SDPBackend.FLASH_ATTENTION,
                                                              SDPBackend.EFFICIENT_ATTENTION}
    assert SDPBackend.CUDNN_ATTENTION in training_attention_kernels("auto", cpu)
    assert training_attention_kernels("cudnn", cuda) == [SDPBackend.CUDNN_ATTENTION]
    assert training_attention_kernels("efficient", cpu) == [SDPBackend.EFFICIENT_ATTENTION]


def test_the_kernel_in_use_is_the_one_sdpa_picks_under_the_setting():
    config = build_config("tiny", {"train.device": "cpu"})
    assert attention_kernel_in_use(config, torch.device("cpu")) == "flash"  # PyTorch's CPU flash kernel
    config = set_value(config, "train.attention_kernels", "math")
    assert attention_kernel_in_use(config, torch.device("cpu")) == "math"


def test_a_kernel_that_cannot_run_here_is_refused_in_one_line():
    config = build_config("tiny", {"train.device": "cpu", "train.attention_kernels": "efficient"})
    with pytest.raises(ConfigError) as refused:
        attention_kernel_in_use(config, torch.device("cpu"))
    message = str(refused.value)
    assert message.startswith("train.attention_kernels = 'efficient': no such attention kernel runs here (cpu, "
                              "float32, head dim 32") and "\n" not in message
    with pytest.raises(ConfigError, match="train.attention_kernels = 'x': expected one of"):
        build_config("tiny", {"train.attention_kernels": "x"})


def _attention_ops(trainer: Trainer) -> set[str]:
    """The SDPA implementations one training step runs (forward and backward)."""
    from torch.profiler import profile

    questions, on_device = next(trainer.batches())
    with profile() as profiled:
        trainer.train_step(questions, on_device)
    return {event.name.removesuffix("_backward") for event in profiled.events()
            if event.name.startswith("aten::_scaled_dot_product_")}


@pytest.mark.parametrize(("setting", "op"), [("auto", "aten::_scaled_dot_product_flash_attention_for_cpu"),
                                             ("math", "aten::_scaled_dot_product_attention_math")])
def test_training_runs_the_kernel_the_setting_names_and_the_result_says_which(thirty_two, tmp_path, setting, op):
    config = _config(thirty_two, **{"train.attention_kernels": setting})
    trainer = Trainer(config, prepare(config.data, tmp_path))
    assert _attention_ops(trainer) == {op}
    assert trainer.result.attention_kernel == {"auto": "flash", "math": "math"}[setting]


def test_the_setting_is_in_the_execution_context_and_the_record_but_not_the_id(tmp_path):
    from bench.runner import execute, execution_context, finished_record
    from bench.spec import RunSpec

    settings = {"train.device": "cpu", "train.steps": 2, "train.eval_every": 2, "data.synthetic.train_paragraphs": 20,
                "data.synthetic.dev_paragraphs": 5}
    config = build_config("tiny", settings)
    assert "attention_kernels" not in execution_context(config, 1)  # a CPU's auto: as every record before it
    spec = RunSpec("s", "v", "smoke", config, folder=tmp_path, fingerprint="fp")
    config = build_config("tiny", {**settings, "train.attention_kernels": "math"})
    math_spec = RunSpec("s", "v", "smoke", config, folder=tmp_path, fingerprint="fp")
    assert math_spec.id == spec.id
    assert execution_context(config, 1)["attention_kernels"] == "math"
    assert execution_context(config, 1, device="cuda")["attention_kernels"] == "math"
    record = execute(math_spec, threads=1).to_json()
    assert record["status"] == "ok" and record["attention_kernel"] == "math", record.get("error")
    assert json.loads(math_spec.record_path.read_text())["execution"]["attention_kernels"] == "math"
    assert not finished_record(spec, execution_context(build_config("tiny", {"train.device": "cpu"}), 1))  # auto: again


def test_a_study_may_not_vary_the_attention_kernel(tmp_path):
    from bench.study import StudyError, load_study

    path = tmp_path / "kernels.toml"
    path.write_text('preset = "paper"\nseeds = [0]\n[budget]\nsteps = 10\n[axes]\n'
                    '"train.attention_kernels" = ["auto", "math"]\n')
    with pytest.raises(StudyError, match="train.attention_kernels.*where a run executes"):
        load_study(str(path))
