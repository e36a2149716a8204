"""benchmarks/gpu_diagnose.py: its CPU path end to end (what CI can run), and the verdict it draws."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, load_script, run_with_only

SCRIPT = ROOT / "benchmarks" / "gpu_diagnose.py"


@pytest.fixture(scope="module")
def diagnose():
    return load_script(SCRIPT)


def test_the_diagnosis_runs_end_to_end_on_the_cpu_with_only_torch_and_numpy(pack, tmp_path,
                                                                            only_torch_and_numpy):
    out = tmp_path / "diagnosis.json"
    result = run_with_only(only_torch_and_numpy, str(SCRIPT), "--pack", str(pack), "--device", "cpu", "--small",
                           "--batch-size", "4", "--context-len", "100", "--steps", "30", "--eval-every", "10",
                           "--eval-questions", "20", "--loss-every", "5", "--warmup-steps", "10",
                           "--gradient-batches", "1", "--poll-seconds", "1", "--compiled-gradients-seconds", "0",
                           "--out", str(out))
    record = json.loads(out.read_text())
    assert record["kind"] == "gpu-diagnosis" and not record.get("errors"), record.get("errors")
    # the first stage, before the arms; its compilations are tests/test_compiled_gradients.py's (minutes here)
    compiled = record["compiled_gradients"]
    assert compiled["verdict"]["statuses"] == {"inductor, mix_order_reduction=True": "not run",
                                               "inductor, mix_order_reduction=False": "not run"}
    assert compiled["scope"]["batch_size"] == 4 and compiled["scope"]["context_width"] == 100
    assert compiled["reference"]["non_finite"] == 0 and compiled["noise"]["run"] == "eager fp32, one example at a time"
    kernels = {row["kernel"] for row in record["kernels"]}
    assert kernels == {"flash bfloat16", "flash float32", "math bfloat16"}  # what a CPU has
    inputs = {row["input"] for row in record["kernels"]}
    assert {"embedding encoder, keys 100", "embedding encoder, keys 50", "model encoder, keys 100",
            "random q/k/v, real mask, keys 192", "random q/k/v, real mask, keys 320"} <= inputs, inputs
    fp32_flash = [row for row in record["kernels"] if row["kernel"] == "flash float32"]
    assert {row["tensor"] for row in fp32_flash} == {"out", "dq", "dk", "dv"}
    assert all(row["cosine"] > 0.9999 and row["non_finite"] == 0 for row in fp32_flash)
    groups = {row["group"] for row in record["gradients"]}
    assert {"embedding", "model_encoder", "pointer", "self-attention (both encoders)"} <= groups
    assert {row["weights"] for row in record["gradients"]} == {"initialisation"}
    assert all(0.99 < row["cosine"] <= 1.0 and 0.9 < row["norm_ratio"] < 1.1 for row in record["gradients"])
    [arm] = record["arms"]  # only fp32 eager means what it says on a CPU
    assert arm["arm"] == "fp32" and arm["status"] == "ok" and arm["steps"] == 30
    assert [w["step"] for w in arm["windows"]] == [5, 10, 15, 20, 25, 30]
    assert all(w["ms_per_step"] > 0 and w["grad_norm_mean"] > 0 for w in arm["windows"])
    assert [(e["step"], e["total"]) for e in arm["evaluations"]] == [(10, 20), (20, 20), (30, 60)]
    assert {row["weights"] for row in record["trained_gradients"]} == {"fp32 after 30 steps"}
    causes = {row["cause"]: row["finding"] for row in record["verdict"]["rows"]}
    assert causes == {"Inductor's gradients (mix-order reduction)": "not resolved",
                      "paper configuration unstable at lr 1e-3": "cleared"}, record["verdict"]
    assert record["verdict"]["training_path"] == "fp32"
    assert "paper configuration unstable at lr 1e-3     cleared" in result.stdout
    assert list(record["stage_seconds"]) == ["compiled_gradients", "kernels", "gradients", "arms", "trained_gradients"]


def _arm(name: str, losses: list[float], f1: float, status: str = "ok", first_step: int = 100) -> dict:
    windows = [{"step": first_step + 100 * i, "loss": loss} for i, loss in enumerate(losses)]
    return {"arm": name, "status": status, "windows": windows, "steps": windows[-1]["step"],
            "evaluations": [{"step": 1000, "total": 1000, "f1": f1}]}


HEALTHY = [9.0, 8.0, 7.0, 6.5, 6.0, 5.8, 5.6, 5.5, 5.4, 5.3, 5.2, 5.1, 5.0, 4.9, 4.8]
RISING = [9.0, 8.0, 7.5, 7.3, 7.2, 7.2, 7.3, 7.3, 7.2, 7.2, 7.4, 7.8, 8.2, 8.6, 9.0]


def test_an_arm_is_learning_rising_diverged_or_too_short(diagnose):
    assert diagnose.arm_health(_arm("a", HEALTHY, 30), 1000) == "learning"
    assert diagnose.arm_health(_arm("a", RISING, 10), 1000) == "rising"
    assert diagnose.arm_health(_arm("a", HEALTHY[:12], 30), 1000) == "too short"  # two windows after step 1,000
    assert diagnose.arm_health(_arm("a", HEALTHY[:13], 30), 1000) == "learning"  # steps 1,001-1,300
    assert diagnose.arm_health({**_arm("a", HEALTHY, 30), "warnings": ["rising"]}, 1000) == "rising"  # the trainer's
    falling_fast = [9.0, 8.5, 8.0, 7.5, 7.0, 6.5, 6.0, 5.5, 5.0, 4.5, 4.0, 3.5, 3.0, 2.5]
    assert diagnose.arm_health(_arm("a", falling_fast, 30), 1000) == "learning"
    assert diagnose.arm_health(_arm("a", HEALTHY, 30, status="diverged"), 1000) == "diverged"
    assert diagnose.arm_health(_arm("a", HEALTHY[:12] + [float("nan")] * 3, 30), 1000) == "diverged"
    noisy = [9, 8, 7, 6.5, 6, 5.8, 5.6, 5.5, 5.4, 5.5, 5.3, 5.45, 5.25, 5.4, 5.2]  # +-2 %: noise, not a rise
    assert diagnose.arm_health(_arm("a", noisy, 30), 1000) == "learning"


def _diagnosis(diagnose, **losses) -> dict:
    arms = {name: _arm(name, HEALTHY, 30) for name in diagnose.ARMS_BY_NAME}
    arms.update({name: _arm(name, curve, 8) for name, curve in losses.items()})
    return {"arms": list(arms.values()), "kernels": []}


def test_the_verdict_names_the_one_thing_that_breaks_training(diagnose):
    result = diagnose.verdict(_diagnosis(diagnose, **{"bf16-cudnn": RISING}))
    findings = {row["cause"]: row["finding"] for row in result["rows"]}
    assert findings == {"cuDNN attention backward": "implicated", "bf16 itself": "cleared", "CUDA graphs": "cleared",
                        "Inductor's bf16 code": "cleared", "cuDNN under Inductor": "cleared",
                        "paper configuration unstable at lr 1e-3": "cleared"}
    assert result["training_path"] == "bf16-inductor" and "train.compile_mode=reduce-overhead" in result["flags"]

    result = diagnose.verdict(_diagnosis(diagnose, **{"bf16-inductor": RISING}))
    findings = {row["cause"]: row["finding"] for row in result["rows"]}
    assert findings["Inductor's bf16 code"] == "implicated" and findings["cuDNN attention backward"] == "cleared"
    assert result["training_path"] == "bf16-cudagraphs" and result["flags"] == "--set train.compile=auto"


def test_when_fp32_degenerates_too_the_configuration_is_implicated_and_no_path_is_offered(diagnose):
    everything = {name: RISING for name in diagnose.ARMS_BY_NAME}
    result = diagnose.verdict(_diagnosis(diagnose, **everything))
    findings = {row["cause"]: row["finding"] for row in result["rows"]}
    assert findings["paper configuration unstable at lr 1e-3"] == "implicated"
    assert findings["bf16 itself"] == "not resolved"  # both sides degenerate: the cause is what they share
    assert result["training_path"] is None and "no arm learned" in result["summary"]


def test_a_lower_f1_beyond_the_gap_implicates_even_without_a_rising_loss(diagnose):
    diagnosis = _diagnosis(diagnose)
    [cudagraphs] = [arm for arm in diagnosis["arms"] if arm["arm"] == "bf16-cudagraphs"]
    cudagraphs["evaluations"][0]["f1"] = 30 - diagnose.F1_GAP - 1
    findings = {row["cause"]: row["finding"] for row in diagnose.verdict(diagnosis)["rows"]}
    assert findings["CUDA graphs"] == "implicated"
    assert findings["Inductor's bf16 code"] == "cleared"  # Inductor's arm learned better than the graphs' arm


def test_the_arms_are_chosen_by_name_and_a_wrong_name_is_refused_in_one_line(diagnose, capsys):
    args = diagnose.parse_args(["--pack", "p", "--arms", "bf16-inductor, bf16-inductor-cudnn"])
    assert args.arms == ("bf16-inductor", "bf16-inductor-cudnn")
    assert diagnose.parse_args(["--pack", "p"]).arms == diagnose.DEFAULT_ARMS
    with pytest.raises(SystemExit) as refused:
        diagnose.parse_args(["--pack", "p", "--arms", "fp32,fp16"])
    assert refused.value.code == 2 and "argument --arms: 'fp32,fp16': expected arms among" in capsys.readouterr().err


def test_cudnn_kernel_gradients_that_disagree_implicate_it(diagnose):
    def rows(cudnn_cosine: float, non_finite: int = 0, cudnn_error: float = 0.009, efficient_cosine: float = 0.9999
             ) -> list[dict]:
        return [{"input": "keys 400", "kernel": kernel, "tensor": tensor, "cosine": cosine, "max_rel_error": error,
                 "non_finite": bad, "eligible": True}
                for kernel, cosine, error, bad in (("cudnn bfloat16", cudnn_cosine, cudnn_error, non_finite),
                                                   ("efficient bfloat16", efficient_cosine, 0.009, 0))
                for tensor in ("out", "dq", "dk", "dv")]

    assert diagnose.kernel_finding(rows(0.9998))[0] == "cleared"
    assert diagnose.kernel_finding(rows(0.7))[0] == "implicated"
    assert diagnose.kernel_finding(rows(0.9998, non_finite=3))[0] == "implicated"
    assert diagnose.kernel_finding(rows(1.0, cudnn_error=1.0))[0] == "implicated"  # right direction, twice the size
    assert diagnose.kernel_finding(rows(0.5, efficient_cosine=0.98))[0] == "not resolved"  # the control disagrees too
    ineligible = [r for r in rows(0.7) if r["kernel"] != "cudnn bfloat16"]
    ineligible.append({"input": "keys 400", "kernel": "cudnn bfloat16", "eligible": False, "why": "No kernel"})
    finding, evidence = diagnose.kernel_finding(ineligible)
    assert finding == "not resolved" and "No kernel" in evidence


def test_inductor_gradients_that_disagree_at_torchs_default_implicate_inductor_and_leave_its_path(diagnose):
    diagnosis = _diagnosis(diagnose)
    wrong = "inductor, mix_order_reduction=True (pass 1): model encoder LayerNorm cosine 0.7100, relative error 0.8"
    diagnosis["compiled_gradients"] = {
        "mix_order_reduction_default": True, "verdict": {"agreement_scope": "batch 32, context width 400"},
        "settings": [{"setting": "inductor, mix_order_reduction=True", "mix_order_reduction": True,
                      "status": "disagrees", "disagreements": [wrong]},
                     {"setting": "inductor, mix_order_reduction=False", "mix_order_reduction": False,
                      "status": "agrees", "disagreements": []}]}
    result = diagnose.verdict(diagnosis)
    [row] = [row for row in result["rows"] if row["cause"] == "Inductor's gradients (mix-order reduction)"]
    assert row["finding"] == "implicated"
    assert row["evidence"] == ("gradients: inductor, mix_order_reduction=True: disagrees; inductor, "
                               f"mix_order_reduction=False: agrees; {wrong}")
    assert result["training_path"] == "bf16-cudagraphs"  # every arm learned: the fastest one not implicated
    diagnosis["compiled_gradients"]["mix_order_reduction_default"] = False  # a torch that trains without it
    [row] = [row for row in diagnose.verdict(diagnosis)["rows"] if row["cause"].startswith("Inductor's gradients")]
    assert row["finding"] == "cleared" and row["evidence"].endswith("at batch 32, context width 400")
    assert diagnose.verdict(diagnosis)["training_path"] == "bf16-inductor"


def test_the_training_path_is_never_an_arm_the_verdict_implicates(diagnose):
    diagnosis = _diagnosis(diagnose)
    [inductor] = [arm for arm in diagnosis["arms"] if arm["arm"] == "bf16-inductor"]
    inductor["evaluations"][0]["f1"] = 15  # its loss falls, but it trails the CUDA-graph arm by 15 points
    result = diagnose.verdict(diagnosis)
    assert {row["cause"]: row["finding"] for row in result["rows"]}["Inductor's bf16 code"] == "implicated"
    assert result["training_path"] == "bf16-cudagraphs"


def test_an_arm_that_left_no_result_is_failed_with_how_it_ended_and_its_output(diagnose, tmp_path):
    (tmp_path / "fp32.out").write_text("Traceback ...\nRuntimeError: CUDA error: an illegal memory access\n")
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    ended = diagnose.how_it_ended(process, open(tmp_path / "log", "w"))  # noqa: SIM115 - closed by it
    arm = diagnose.arm_progress(tmp_path, diagnose.ARMS_BY_NAME["fp32"], 32, ended)
    assert arm["status"] == "failed" and arm["error"].startswith("exited with 3: Traceback")
    assert "illegal memory access" in arm["error"]
    assert diagnose.arm_health(arm, 1000) == "failed"
    assert diagnose.arm_progress(tmp_path, diagnose.ARMS_BY_NAME["fp32"], 32)["status"] == "running"


def test_the_verdict_of_a_committed_record_is_printed_without_a_device(diagnose, capsys, tmp_path):
    record = ROOT / "results" / "reference" / "gpu-diagnosis-nvidia-h200.json"
    diagnose.main(["--judge", str(record)])
    table = capsys.readouterr().out
    assert "cuDNN attention backward                 cleared       kernels: dq/dk/dv on 7 inputs" in table
    assert "Inductor's bf16 code                     not resolved  training: bf16-inductor: too short" in table
    assert "no arm learned past the warm-up" in table  # none ran 300 steps past step 1,000
    # the record's own warm-up is the default; --warmup-steps overrides it
    shorter = json.loads(record.read_text())
    shorter["settings"]["warmup_steps"] = 500
    (tmp_path / "shorter.json").write_text(json.dumps(shorter))
    diagnose.main(["--judge", str(tmp_path / "shorter.json")])
    assert "bf16-cudnn: learning through step 1,200" in capsys.readouterr().out
    diagnose.main(["--judge", str(tmp_path / "shorter.json"), "--warmup-steps", "1000"])
    assert "bf16-cudnn: too short through step 1,200" in capsys.readouterr().out


def test_every_training_path_the_verdict_can_name_is_a_valid_bench_run(diagnose):
    """The verdict names its path as `bench run`/`bench train` settings; each builds a configuration on that path."""
    import torch

    from qanet.config import build_config
    from qanet.device import training_path

    for flags in diagnose.PATH_FLAGS.values():
        config = build_config("paper", flags.replace("--set ", "").split())
        mode, _ = training_path(config, torch.device("cuda"))
        assert config.train.attention_kernels == "auto" and mode in (None, "cudagraphs", "reduce-overhead")
