import json
import math

import numpy as np
import pytest
import torch

from qanet.config import DataConfig, RunConfig, SyntheticConfig, build_config
from qanet.data.prepare import prepare
from qanet.data.synthetic import generate
from qanet.train import EMA, Hooks, JsonLinesLog, Trainer, make_optimizer

TINY = {
    "model.char_dim": 16, "model.hidden": 32, "model.heads": 2, "model.model_blocks": 1,
    "model.embedding_convs": 1, "train.batch_size": 8, "train.warmup_steps": 20, "train.threads": 1,
    "train.eval_batch_size": 32, "data.train": "synthetic", "data.dev": "synthetic", "data.vectors": "random",
}


@pytest.fixture(scope="module")
def thirty_two(tmp_path_factory):
    """A SQuAD file of 32 synthetic questions, used as both train and dev."""
    dataset = generate(8, seed=11, prefix="train")
    kept = 0
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            paragraph["qas"] = paragraph["qas"][:max(0, 32 - kept)]
            kept += len(paragraph["qas"])
    assert kept == 32
    path = tmp_path_factory.mktemp("data") / "thirty_two.json"
    path.write_text(json.dumps(dataset))
    return str(path)


def _config(path: str, **overrides) -> RunConfig:
    config = build_config("paper", {**TINY, **overrides})
    config.data = DataConfig(train=path, dev=path, context_len=400)
    return config.validate()


def test_overfits_32_examples(thirty_two, tmp_path):
    config = _config(thirty_two, **{"train.steps": 600, "train.eval_every": 200, "train.ema": False,
                                    "model.dropout": 0.0, "model.char_dropout": 0.0, "model.survival_last": 1.0})
    result = Trainer(config, prepare(config.data, tmp_path)).run()
    assert result.status == "ok"
    assert result.metrics["exact"] >= 95, result.curve


def _final_weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _untimed(curve: list[dict]) -> list[dict]:
    return [{key: value for key, value in entry.items() if key != "train_seconds"} for entry in curve]


def test_resume_after_a_crash_equals_an_uninterrupted_run(thirty_two, tmp_path):
    overrides = {"train.steps": 12, "train.eval_every": 6, "train.checkpoint_every": 4, "train.loss_check_every": 1}
    config = _config(thirty_two, **overrides)
    prepared = prepare(config.data, tmp_path / "cache")
    whole = Trainer(config, prepared, tmp_path / "whole")
    whole_result = whole.run()

    class Crash(Hooks):
        def on_step(self, step, loss, learning_rate, examples_per_s):
            if step == 10:  # two steps after the checkpoint at 8: their work is lost and redone
                raise KeyboardInterrupt

    log = JsonLinesLog(tmp_path / "split.log.jsonl")
    with pytest.raises(KeyboardInterrupt):
        Trainer(_config(thirty_two, **overrides), prepared, tmp_path / "split", [log, Crash()]).run()
    resumed = Trainer(_config(thirty_two, **overrides), prepared, tmp_path / "split", [log])
    assert resumed.step == 8
    resumed_result = resumed.run()
    for name, tensor in _final_weights(whole).items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert _untimed(resumed_result.curve) == _untimed(whole_result.curve)
    assert resumed_result.train_examples == whole_result.train_examples
    assert whole_result.resumed_from == [] and resumed_result.resumed_from == [8]
    events = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [(e["event"], e["step"]) for e in events if e["event"] in ("begin", "end")] == [
        ("begin", 0), ("begin", 8), ("end", 12)]  # the killed run logged no end; the resume says where it began
    steps = [e["step"] for e in events]
    assert steps == sorted(steps) and events[-1]["event"] == "end"  # the lost steps 9 and 10 logged once
    assert [e["dropped_events"] for e in events if e["event"] == "begin"] == [0, 2]


@pytest.mark.parametrize("check_every", [1, 5])
def test_non_finite_loss_stops_the_run_as_diverged(thirty_two, tmp_path, monkeypatch, check_every):
    """The loss is checked on the device: the run stops at the next read by the host, and the record
    names the step where the loss first stopped being finite."""
    config = _config(thirty_two, **{"train.steps": 10, "train.loss_check_every": check_every})
    trainer = Trainer(config, prepare(config.data, tmp_path))
    real_loss = trainer.model.loss

    def poisoned(*args):
        loss = real_loss(*args)
        return loss * float("nan") if trainer.step == 3 else loss

    monkeypatch.setattr(trainer.model, "loss", poisoned)
    result = trainer.run()
    assert result.status == "diverged" and result.steps == 3  # the steps whose loss was finite
    assert result.error == "loss became nan at step 4"


def test_evaluation_keeps_every_dev_question_even_past_the_context_limit(tmp_path):
    config = build_config("paper", {**TINY, "train.steps": 2, "train.eval_every": 2, "data.context_len": 20})
    config.data.synthetic = SyntheticConfig(train_paragraphs=10, dev_paragraphs=5)
    prepared = prepare(config.data, tmp_path)
    result = Trainer(config, prepared).run()
    assert result.metrics["total"] == len(prepared.dev) == 30
    assert result.train_questions_left_out > 0  # answers beyond token 20 cannot be trained on


def test_adam_warm_up_follows_the_inverse_exponential_curve():
    config = build_config("paper", {"train.warmup_steps": 1000})
    model = torch.nn.Linear(2, 2)
    optimizer, scheduler = make_optimizer(model, config)
    rates = []
    for _ in range(1001):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0
    assert rates[1] == pytest.approx(1e-3 * math.log(2) / math.log(1000))
    assert rates[999] == pytest.approx(1e-3) and rates[1000] == pytest.approx(1e-3)
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.999) and optimizer.param_groups[0]["eps"] == 1e-7


def test_adadelta_and_weight_decay_on_weights_only():
    config = build_config("paper", {"train.optimizer": "adadelta"})
    optimizer, _ = make_optimizer(torch.nn.Linear(2, 2), config)
    assert isinstance(optimizer, torch.optim.Adadelta)
    weights, biases = optimizer.param_groups
    assert weights["lr"] == 0.5 and weights["rho"] == 0.95 and weights["weight_decay"] == 3e-7
    assert biases["weight_decay"] == 0.0


def test_ema_warms_up_before_reaching_its_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.9999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update()  # decay_1 = 2 / 11
    assert ema.shadow["weight"].item() == pytest.approx(9 / 11)
    ema.swap()
    assert model.weight.item() == pytest.approx(9 / 11)
    ema.swap()
    assert model.weight.item() == 1.0


def test_training_batches_are_length_bucketed_and_reproducible(thirty_two, tmp_path):
    config = _config(thirty_two)
    trainer = Trainer(config, prepare(config.data, tmp_path))
    pairs = [(b.tolist(), on_device.tolist()) for _, (b, on_device) in zip(range(8), trainer.batches(), strict=False)]
    assert all(host == device for host, device in pairs)  # the device holds the same order
    first = [host for host, _ in pairs]
    trainer.step = 4
    again = [b.tolist() for _, (b, _) in zip(range(4), trainer.batches(), strict=False)]
    assert again == first[4:]
    covered = sorted(q for batch in first[:4] for q in batch)
    assert covered == list(range(32))  # one epoch sees every question once
    assert np.all([len(b) <= 8 for b in first])


def test_trains_from_a_prepared_directory_with_only_torch_and_numpy(tmp_path, only_torch_and_numpy):
    """The GPU image has no spaCy, pyarrow, pandas or evaluate: training must not need them."""
    from tests.conftest import run_with_only

    config = build_config("paper", {**TINY, "train.steps": 2, "train.eval_every": 2})
    config.data.synthetic = SyntheticConfig(train_paragraphs=5, dev_paragraphs=2)
    directory = prepare(config.data, tmp_path).directory
    script = f"""
from qanet.config import build_config
from qanet.data.prepare import load_prepared
from qanet.train import Trainer
config = build_config("paper", {TINY!r} | {{"train.steps": 2, "train.eval_every": 2}})
config.data.train = config.data.dev = "/data/stayed/behind.json"  # only the prepared directory travelled
print(Trainer(config, load_prepared({str(directory)!r})).run().status)
"""
    assert run_with_only(only_torch_and_numpy, "-c", script).stdout.strip().endswith("ok")


def test_peak_memory_is_per_run_even_when_runs_share_a_process():
    from qanet.train import peak_memory_mb, reset_peak_memory

    cpu = torch.device("cpu")
    reset_peak_memory(cpu)
    block = np.ones(200_000_000 // 8)  # 200 MB, then freed
    high = peak_memory_mb(cpu)
    del block
    reset_peak_memory(cpu)
    assert peak_memory_mb(cpu) < high - 150


def test_evaluations_during_training_score_a_fixed_sample_and_the_last_one_the_whole_dev_set(tmp_path):
    config = build_config("paper", {**TINY, "train.steps": 4, "train.eval_every": 2, "train.eval_questions": 10})
    config.data.synthetic = SyntheticConfig(train_paragraphs=10, dev_paragraphs=5)
    prepared = prepare(config.data, tmp_path)
    result = Trainer(config, prepared).run()
    assert [entry["total"] for entry in result.curve] == [10, len(prepared.dev)]
    assert result.metrics["total"] == len(prepared.dev)


def test_the_evaluation_sample_is_fixed_and_spread_over_the_whole_dev_set():
    from qanet.data.batching import evaluation_sample

    sample = evaluation_sample(10_570, 2_000)
    assert np.array_equal(sample, evaluation_sample(10_570, 2_000))
    assert len(np.unique(sample)) == 2_000 and np.all(np.diff(sample) > 0)
    assert sample.max() > 10_000 and np.histogram(sample, bins=5, range=(0, 10_570))[0].min() > 300
    assert np.array_equal(evaluation_sample(30, None), np.arange(30))
    assert np.array_equal(evaluation_sample(30, 50), np.arange(30))


def _one_second_per_look(monkeypatch) -> None:
    """Every reading of the trainer's clock moves it one second on."""
    import itertools
    from types import SimpleNamespace

    from qanet import train as train_module

    clock = itertools.count()
    monkeypatch.setattr(train_module, "time", SimpleNamespace(perf_counter=lambda: float(next(clock))))


def _small_run(tmp_path, **overrides):
    config = build_config("paper", {**TINY, "train.steps": 100, "train.eval_every": 1000, "train.eval_questions": 10,
                                    **overrides})
    config.data.synthetic = SyntheticConfig(train_paragraphs=10, dev_paragraphs=5)
    prepared = prepare(config.data, tmp_path)
    return Trainer(config, prepared).run(), prepared


def test_a_run_stopped_by_its_time_budget_still_ends_with_the_whole_dev_set(tmp_path, monkeypatch):
    _one_second_per_look(monkeypatch)  # two looks per step: the 12 s budget is about 6 steps
    result, prepared = _small_run(tmp_path, **{"train.eval_every": 2, "train.minutes": 0.2})
    assert 2 < result.steps < 100
    assert [entry["total"] for entry in result.curve] == [10] * (result.steps // 2) + [len(prepared.dev)]
    assert result.curve[-1]["step"] == result.steps
    assert 12 <= result.train_seconds <= 16 and result.eval_seconds >= 3  # evaluation time is not training time


def test_evaluations_every_so_many_seconds_of_training(tmp_path, monkeypatch):
    _one_second_per_look(monkeypatch)
    result, prepared = _small_run(tmp_path, **{"train.steps": 30, "train.eval_every_seconds": 10.0})
    timed, last = result.curve[:-1], result.curve[-1]
    assert len(timed) >= 3 and last["step"] == 30 and last["total"] == len(prepared.dev)
    for number, entry in enumerate(timed, start=1):  # the first look past each multiple of 10 s
        assert 10 * number <= entry["train_seconds"] < 10 * number + 4, result.curve


def _counting_compile(monkeypatch) -> list:
    """torch.compile with a backend that records each graph and runs it as traced: Inductor takes
    minutes on 2 cores. `fullgraph` as the trainer asks: a graph break fails."""
    graphs = []

    def counting_backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, mode, dynamic, fullgraph: real_compile(
        model, backend=counting_backend, dynamic=dynamic, fullgraph=fullgraph))
    return graphs


def _compiled_trainer(thirty_two, tmp_path, **overrides) -> Trainer:
    config = _config(thirty_two, **{"train.compile": True, "train.pad_multiple": 16, "train.eval_every": 1000,
                                    "train.loss_check_every": 4, **overrides})
    config.data.context_len, config.data.question_len = 64, 20
    return Trainer(config, prepare(config.data, tmp_path))


def test_compiled_training_meets_only_the_shapes_compiled_before_the_clock_starts(thirty_two, tmp_path, monkeypatch):
    """Padding to a multiple of 16 tokens gives a few shapes; each is compiled once, in the warm-up, as
    one whole graph (no break for stochastic depth or dropout); the epoch's last, smaller batch runs eagerly."""
    graphs = _counting_compile(monkeypatch)
    trainer = _compiled_trainer(thirty_two, tmp_path, **{"train.steps": 12})
    shapes = trainer.batch_shapes()
    assert {c for c, _ in shapes} <= {16, 32, 48, 64} and {q for _, q in shapes} <= {16, 20} and len(shapes) <= 8
    compiled_in_warm_up = []
    real_warm_up = trainer.warm_up
    monkeypatch.setattr(trainer, "warm_up", lambda: (real_warm_up(), compiled_in_warm_up.append(len(graphs))))
    result = trainer.run()
    assert result.status == "ok" and result.compile_seconds > 0 and result.steps == 12
    assert compiled_in_warm_up == [len(shapes)] == [len(graphs)]  # nothing compiled while the clock ran


def test_warm_up_leaves_weights_optimiser_and_random_state_as_they_were(thirty_two, tmp_path, monkeypatch):
    _counting_compile(monkeypatch)
    trainer = _compiled_trainer(thirty_two, tmp_path)
    weights = _final_weights(trainer)
    random_state = torch.get_rng_state()
    gradients_seen = []
    real_loss = trainer.batch_loss

    def spying(batch, forward):
        gradients_seen.append(sum(p.grad is not None for p in trainer.model.parameters()))
        return real_loss(batch, forward)

    monkeypatch.setattr(trainer, "batch_loss", spying)
    trainer.warm_up()
    assert len(gradients_seen) == 3 * len(trainer.batch_shapes()) and set(gradients_seen) == {0}
    assert all(torch.equal(value, trainer.model.state_dict()[name]) for name, value in weights.items())
    assert torch.equal(torch.get_rng_state(), random_state)
    assert not trainer.optimizer.state and all(p.grad is None for p in trainer.model.parameters())
    assert trainer.scheduler.last_epoch == 0 and trainer.step == 0


def test_a_hook_ends_the_run_cleanly_with_stop_training(thirty_two, tmp_path):
    """The protocol an Optuna pruner or early stopping uses: begin, steps, evaluations, end; StopTraining
    from a hook ends the run at once with its status, no further evaluation, and a checkpoint to resume."""
    from qanet.train import StopTraining

    seen = []

    class PruneAtTheSecondEvaluation(Hooks):
        def on_begin(self, trainer):
            seen.append(("begin", trainer.step))

        def on_step(self, step, loss, learning_rate, examples_per_s):
            seen.append(("step", step, loss is None, learning_rate > 0, examples_per_s is None))

        def on_evaluation(self, step, entry):
            seen.append(("evaluation", step))
            if step == 4:
                raise StopTraining("pruned", "F1 below the median at step 4")

        def on_end(self, result):
            seen.append(("end", result.status))

    config = _config(thirty_two, **{"train.steps": 10, "train.eval_every": 2, "train.eval_questions": 8,
                                    "train.loss_check_every": 2})
    result = Trainer(config, prepare(config.data, tmp_path), tmp_path / "run", [PruneAtTheSecondEvaluation()]).run()
    assert result.status == "pruned" and result.error == "F1 below the median at step 4" and result.steps == 4
    assert [entry["total"] for entry in result.curve] == [8, 8]  # no final whole-dev evaluation
    assert seen == [("begin", 0), ("step", 1, True, True, True), ("step", 2, False, True, False), ("evaluation", 2),
                    ("step", 3, True, True, True), ("step", 4, False, True, False), ("evaluation", 4),
                    ("end", "pruned")]
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    with pytest.raises(ValueError, match="StopTraining status 'ok': expected 'pruned' or 'stopped'"):
        StopTraining("ok")


def test_stop_training_from_on_begin_ends_the_run_before_any_step(thirty_two, tmp_path):
    from qanet.train import StopTraining

    class NotThisOne(Hooks):
        def on_begin(self, trainer):
            raise StopTraining("stopped", "nothing to do")

    config = _config(thirty_two, **{"train.steps": 4})
    result = Trainer(config, prepare(config.data, tmp_path), hooks=[NotThisOne()]).run()
    assert result.status == "stopped" and result.steps == 0 and result.curve == []
