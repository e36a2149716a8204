"""benchmarks/compiled_gradients.py: a wrong gradient is caught and named by setting and group, eager agrees with
itself, the command runs with only torch and numpy, and Inductor's gradients agree with eager on a tiny model."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ROOT, load_script, run_with_only

SCRIPT = ROOT / "benchmarks" / "compiled_gradients.py"
# a model and batch small enough for Inductor to compile on 2 cores within a minute
TINY = ["--device", "cpu", "--batch-size", "2", "--context-len", "24", "--set", "data.question_len=8",
        "--set", "data.char_len=6", "--set", "model.hidden=16", "--set", "model.heads=2",
        "--set", "model.model_blocks=1", "--set", "model.model_convs=1", "--set", "model.embedding_convs=1",
        "--set", "model.char_dim=8", "--synthetic-words", "50", "--synthetic-chars", "20"]
MIX_ORDER, NO_MIX_ORDER, CUDA_GRAPHS = "inductor, mix_order_reduction=True", "inductor, mix_order_reduction=False", \
    "cudagraphs"


@pytest.fixture(scope="module")
def gradients():
    return load_script(SCRIPT)


def tiny_comparison(gradients, passes: int = 2, scope: str = "model"):
    args = gradients.parse_args([*TINY, "--passes", str(passes)])
    config = gradients.run_config(args)
    device = torch.device("cpu")
    vectors, chars, batch, _ = gradients.comparison_inputs(args, config, device)
    torch.manual_seed(0)
    model = gradients.deterministic_model(config.model, vectors, chars)
    return gradients.Comparison(model, batch, device, config.train.bf16,
                                gradients.training_attention_kernels("auto", device), scope, passes)


def compiled_as_eager(comparison, corrupt=lambda setting, found: None) -> None:
    """Each compiled setting's passes computed eagerly instead, then `corrupt(setting, gradients by name)` applied to
    its last pass: what a setting that compiles wrongly would hand back, without a compilation."""
    def passes(setting):
        found = [comparison.eager(comparison.bf16) for _ in range(comparison.passes)]
        corrupt(setting, found[-1].gradients)
        return found
    comparison.compiled_passes = passes


def setting(result: dict, name: str) -> dict:
    [row] = [row for row in result["settings"] if row["setting"] == name]
    return row


def disagreeing_groups(row: dict) -> set[str]:
    return {group["group"] for found in row["passes"] for group in found["groups"] if not group["agrees"]}


def test_eager_agrees_with_itself_and_the_agreement_says_exactly_where(gradients):
    comparison = tiny_comparison(gradients)
    compiled_as_eager(comparison)
    progress = []
    result = gradients.compare_compiled_gradients(comparison, report=lambda line: None,
                                                  on_progress=lambda found: progress.append(len(found["settings"])))
    assert progress == [0, 1, 2, 3]  # after the eager noise, then after each setting
    assert result["verdict"]["statuses"] == {MIX_ORDER: "agrees", NO_MIX_ORDER: "agrees",
                                             CUDA_GRAPHS: "not applicable"}
    assert setting(result, CUDA_GRAPHS)["why"] == "CUDA graphs need CUDA"
    assert result["verdict"]["disagreements"] == []
    assert result["note"] == gradients.CPU_NOTE  # mix-order reduction is Triton's: no effect on a CPU
    scope = result["verdict"]["agreement_scope"]
    assert scope.startswith("batch 2, context width 24, question width 8, fp32, ")
    assert f"(cpu), torch {torch.__version__}, hidden 16, 1 model blocks, compiled whole" in scope
    assert f"an agreement clears {MIX_ORDER} and {NO_MIX_ORDER} only at: {scope}" in result["verdict"]["summary"]
    noise = {row["group"]: row["relative_error"] for row in result["noise"]["groups"]}
    assert {"embedding", "embedding encoder", "embedding encoder LayerNorm", "context-query attention",
            "model encoder", "model encoder LayerNorm", "pointer", "whole model"} == set(noise)
    # one example at a time is the same gradient, rounded otherwise: a little noise, never more
    assert 0 < noise["whole model"] < 1e-5 and max(noise.values()) < 1e-5
    json.dumps(result, allow_nan=False)  # the record holds no NaN or infinity


def test_a_group_scaled_beyond_the_eager_noise_is_named_with_its_setting_and_pass(gradients):
    comparison = tiny_comparison(gradients)
    norms = {f"model_encoder.{name}" for name, _ in comparison.model.model_encoder.named_parameters() if "norm" in name}

    def scale_norms(found_setting, found):
        if found_setting.name == MIX_ORDER:
            for name in norms:
                found[name] *= 0.5

    compiled_as_eager(comparison, scale_norms)
    result = gradients.compare_compiled_gradients(comparison, report=lambda line: None)
    assert result["verdict"]["statuses"][MIX_ORDER] == "disagrees"
    assert result["verdict"]["statuses"][NO_MIX_ORDER] == "agrees"
    assert disagreeing_groups(setting(result, MIX_ORDER)) == {"model encoder LayerNorm", "whole model"}
    [layer_norm] = [line for line in result["verdict"]["disagreements"] if "model encoder LayerNorm" in line]
    assert layer_norm.startswith(f"{MIX_ORDER} (pass 2): model encoder LayerNorm cosine 1.0000, relative error 0.5 ")
    assert "non-finite 0; worst model_encoder.blocks.0." in layer_norm
    # Inductor's finding is judged on the setting training compiles with: torch's default mix-order reduction
    default = result["mix_order_reduction_default"]
    expected = {True: "implicated", False: "cleared", None: "not resolved"}[default]
    assert result["verdict"]["inductor"]["finding"] == expected
    assert result["verdict"]["summary"].endswith(f"(torch's default mix-order reduction): {expected}")
    result["mix_order_reduction_default"] = True
    finding, evidence = gradients.inductor_finding(result)
    assert finding == "implicated"
    assert evidence.startswith(f"{MIX_ORDER}: disagrees; {NO_MIX_ORDER}: agrees; {MIX_ORDER} (pass 2): ")
    result["mix_order_reduction_default"] = False  # a torch that trains without it
    finding, evidence = gradients.inductor_finding(result)
    assert finding == "cleared" and evidence.endswith(f"; at {result['verdict']['agreement_scope']}")


def test_the_tolerance_is_the_eager_noise_times_the_factor_and_at_least_the_floor(gradients):
    bf16_like = {"groups": [{"group": "pointer", "relative_error": 0.004}, {"group": "embedding", "relative_error": 0}],
                 "loss_relative_error": 3e-4}
    assert gradients.tolerances(bf16_like) == {"pointer": gradients.NOISE_FACTOR * 0.004, "embedding": gradients.FLOOR,
                                               "loss": gradients.NOISE_FACTOR * 3e-4}
    comparison = tiny_comparison(gradients)
    probe = gradients.compare_compiled_gradients(comparison, settings=(), report=lambda line: None)
    tolerance = probe["noise"]["tolerances"]["embedding"]
    embedding = [name for name, _ in comparison.model.named_parameters() if name.startswith("embedding.")]

    def scale_embedding(found_setting, found):  # a scale of 1 + e is a relative error of e
        factor = 1 + (3 * tolerance if found_setting.name == MIX_ORDER else tolerance / 3)
        for name in embedding:
            found[name] *= factor

    compiled_as_eager(comparison, scale_embedding)
    result = gradients.compare_compiled_gradients(comparison, gradients.INDUCTOR_SETTINGS, report=lambda line: None)
    assert disagreeing_groups(setting(result, MIX_ORDER)) == {"embedding"}
    assert disagreeing_groups(setting(result, NO_MIX_ORDER)) == set()


def test_a_non_finite_gradient_disagrees_however_small_its_share(gradients):
    comparison = tiny_comparison(gradients)

    def poison(found_setting, found):  # the start bias's gradient is 0 but for rounding: a softmax ignores a shift
        if found_setting.name == NO_MIX_ORDER:
            found["pointer.start.bias"][0] = float("nan")

    compiled_as_eager(comparison, poison)
    result = gradients.compare_compiled_gradients(comparison, gradients.INDUCTOR_SETTINGS, report=lambda line: None)
    assert result["verdict"]["statuses"] == {MIX_ORDER: "agrees", NO_MIX_ORDER: "disagrees"}
    assert disagreeing_groups(setting(result, NO_MIX_ORDER)) == {"pointer", "whole model"}
    [pointer] = [line for line in result["verdict"]["disagreements"] if ": pointer " in line]
    assert pointer.startswith(f"{NO_MIX_ORDER} (pass 2): pointer cosine ") and "non-finite 1;" in pointer
    [row] = [row for row in setting(result, NO_MIX_ORDER)["passes"][-1]["groups"] if row["group"] == "pointer"]
    assert row["relative_error"] < row["tolerance"]  # its value alone would pass: the count decides
    json.dumps(result, allow_nan=False)


def test_a_setting_that_fails_or_is_out_of_time_is_recorded_not_skipped(gradients):
    comparison = tiny_comparison(gradients)

    def broken(found_setting):
        raise RuntimeError("backend exploded")

    comparison.compiled_passes = broken
    result = gradients.compare_compiled_gradients(comparison, gradients.INDUCTOR_SETTINGS[:1],
                                                  report=lambda line: None)
    assert setting(result, MIX_ORDER) | {"seconds": 0} == {
        "setting": MIX_ORDER, "compile_mode": "default", "mix_order_reduction": True, "status": "failed",
        "why": "RuntimeError: backend exploded", "seconds": 0}
    late = gradients.compare_compiled_gradients(comparison, gradients.INDUCTOR_SETTINGS, deadline=0,
                                                report=lambda line: None)
    assert set(late["verdict"]["statuses"].values()) == {"not run"}
    assert gradients.inductor_finding(late)[0] == late["verdict"]["inductor"]["finding"] == "not resolved"
    untried = gradients.compare_compiled_gradients(comparison, (), report=lambda line: None)
    assert untried["verdict"]["inductor"]["evidence"].startswith("no Inductor setting compared (torch's default")


def test_the_command_runs_with_only_torch_and_numpy_and_writes_its_record(tmp_path, only_torch_and_numpy):
    out = tmp_path / "record.json"
    result = run_with_only(only_torch_and_numpy, str(SCRIPT), *TINY, "--settings", "cudagraphs", "--out", str(out))
    record = json.loads(out.read_text())
    assert record["kind"] == "compiled-gradients" and record["inputs"]["synthetic"]["words"] == 50
    assert record["config"]["model"]["hidden"] == 16 and record["scope"]["batch_size"] == 2
    assert record["verdict"]["statuses"] == {CUDA_GRAPHS: "not applicable"}
    assert record["reference"]["run"] == "eager fp32" and record["reference"]["non_finite"] == 0
    lines = result.stdout.splitlines()
    assert lines[0].endswith(f"compiled_gradients.py {' '.join(TINY)} --settings cudagraphs --out {out}")
    assert "cudagraphs: not applicable (0.0 s): CUDA graphs need CUDA" in lines


def test_a_command_interrupted_while_compiling_keeps_the_reference_it_measured(tmp_path, only_torch_and_numpy):
    """As a GPU session cuts a stage at its budget (SIGINT): the record holds what finished."""
    out = tmp_path / "record.json"
    command = [sys.executable, "-S", str(SCRIPT), *TINY, "--settings", "inductor-mix-order", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": f"{only_torch_and_numpy}{os.pathsep}{ROOT}", "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process:
        lines = []
        for line in process.stdout:  # the eager passes are done once the tolerances are printed
            lines.append(line)
            if line.startswith("torch's default triton.mix_order_reduction"):
                time.sleep(1)  # into the compilation
                process.send_signal(signal.SIGINT)
        lines += process.stdout.readlines()
    assert process.returncode == 130, "".join(lines)
    record = json.loads(out.read_text())
    assert record["reference"]["non_finite"] == 0 and record["settings"] == [] and "interrupted" in record
    assert lines[-1] == f"interrupted: what finished is in {out}\n"


def test_inductor_gradients_agree_with_eager_on_a_tiny_model(gradients):
    """A real compilation (Inductor's C++ code on a CPU), each encoder block compiled (train.compile_scope "blocks":
    about 30 s on 2 cores; the whole model, 70 s): every group of both passes within its tolerance."""
    comparison = tiny_comparison(gradients, scope="blocks")
    result = gradients.compare_compiled_gradients(comparison, gradients.INDUCTOR_SETTINGS[:1],
                                                  report=lambda line: None)
    row = setting(result, MIX_ORDER)
    assert row["status"] == "agrees", row.get("why") or row["disagreements"]
    assert len(row["passes"]) == 2 and result["scope"]["compile_scope"] == "blocks"
    groups = [group for found in row["passes"] for group in found["groups"]]
    assert all(group["non_finite"] == 0 and group["relative_error"] <= group["tolerance"] for group in groups)
    assert gradients.inductor_finding(result)[0] == result["verdict"]["inductor"]["finding"] == "cleared"
