import dataclasses
import gc
import json
import math
import re

import numpy as np
import pytest
import torch

from qanet.config import ConfigError, DataConfig, RunConfig, apply_overrides, build_config, set_value
from qanet.data.batching import epoch_batches
from qanet.data.features import Sequences, Split
from qanet.data.prepare import Prepared, prepare
from qanet.data.synthetic import generate
from qanet.hooks import Hooks, JsonLinesLog
from qanet.optimisation import EMA, make_optimizer
from qanet.train import Trainer

_SYNTHETIC_10_5 = {"data.synthetic.train_paragraphs": 10, "data.synthetic.dev_paragraphs": 5}
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
    config = dataclasses.replace(build_config("paper", TINY), data=DataConfig(train=path, dev=path, context_len=400))
    return apply_overrides(config, list(overrides.items())).validate()


def test_overfits_32_examples(thirty_two, tmp_path):
    config = _config(thirty_two, **{"train.steps": 600, "train.eval_every": 200, "train.ema": False,
                                    "model.dropout": 0.0, "model.char_dropout": 0.0, "model.survival_last": 1.0})
    result = Trainer(config, prepare(config.data, tmp_path)).run()
    assert result.status == "ok" and result.warnings == []  # a loss falling to near zero is never called rising
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
        def on_step(self, report):
            if report.step == 10:  # two steps after the checkpoint at 8: their work is lost and redone
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


class _RaiseLearningRate(Hooks):
    """From the step after `step` on, the learning rate is `rate`."""

    def __init__(self, step: int, rate: float) -> None:
        self.step, self.rate = step, rate

    def on_begin(self, trainer):
        self.scheduler = trainer.scheduler

    def on_step(self, report):
        if report.step == self.step:
            self.scheduler.base_lrs = [self.rate] * len(self.scheduler.base_lrs)


def test_a_loss_that_rises_above_a_uniform_guess_stops_the_run_as_diverged(thirty_two, tmp_path):
    """The learning rate jumps from 1e-3 to 0.05 after step 120 (clipping off): the loss, down to about half
    a uniform guess's, leaps above it. The run stops at the read that sees it, as diverged, and keeps the
    checkpoint from before (step 120)."""
    from qanet.checkpoint import read_checkpoint

    config = _config(thirty_two, **{"train.steps": 200, "train.eval_every": 1000, "train.loss_check_every": 10,
                                    "train.checkpoint_every": 60, "train.clip_norm": 1e9})
    prepared = prepare(config.data, tmp_path / "data")
    log = JsonLinesLog(tmp_path / "log.jsonl")
    trainer = Trainer(config, prepared, tmp_path / "run", [log, _RaiseLearningRate(120, 0.05)])
    result = trainer.run()
    assert result.status == "diverged" and result.steps == 130
    found = re.fullmatch(r"mean training loss (\d+\.\d\d) over steps 121-130 is above (\d+\.\d\d), the loss of a "
                         r"uniform guess over those batches' contexts \(2 ln of their lengths\), after (\d+\.\d\d) "
                         r"over steps [\d,]+-[\d,]+: the model stopped predicting", result.error)
    assert found, result.error
    loss, uniform_guess, best = map(float, found.groups())
    trainer.step = 120  # the batches of steps 121-130, and their contexts' lengths up to the 400-token limit
    batches = [questions for _, (questions, _) in zip(range(10), trainer.batches(), strict=False)]
    lengths = np.minimum(prepared.train.context_lengths(), 400)
    assert uniform_guess == pytest.approx(np.mean([2 * np.log(lengths[batch]).mean() for batch in batches]), abs=0.005)
    assert loss > uniform_guess > 1.25 * best
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 120
    end = json.loads(log.path.read_text().splitlines()[-1])
    assert end["event"] == "end" and end["status"] == "diverged" and end["error"] == result.error


def test_a_rising_loss_is_named_in_the_result_and_the_log_and_survives_a_resume(thirty_two, tmp_path, monkeypatch):
    """From step 121 the loss reads 3 more than it is (its gradients, and so the training, are unchanged):
    above 1.25 x its best, below a uniform guess's, so the third such window (141-150) is named. A run
    stopped at step 147 and resumed from its checkpoint at 145 (mid-window, mid-rise) names it as the
    uninterrupted run does, once, and ends with the same curve, gradient norms included."""
    overrides = {"train.steps": 160, "train.eval_every": 80, "train.loss_check_every": 10,
                 "train.checkpoint_every": 145, "train.clip_norm": 1e9}
    prepared = prepare(_config(thirty_two).data, tmp_path / "data")

    def rising_trainer(folder: str, hooks=()) -> Trainer:
        trainer = Trainer(_config(thirty_two, **overrides), prepared, tmp_path / folder, hooks)
        real_loss = trainer.model.loss
        monkeypatch.setattr(trainer.model, "loss", lambda *args: real_loss(*args) + 3.0 * (trainer.step >= 120))
        return trainer

    class Crash(Hooks):
        def on_step(self, report):
            if report.step == 147:
                raise KeyboardInterrupt

    whole = rising_trainer("whole").run()
    log = JsonLinesLog(tmp_path / "split.log.jsonl")
    with pytest.raises(KeyboardInterrupt):
        rising_trainer("split", [log, Crash()]).run()
    resumed = rising_trainer("split", [log]).run()
    assert whole.status == resumed.status == "ok" and resumed.resumed_from == [145]
    [warning] = whole.warnings
    found = re.fullmatch(r"training loss rising since step 121: its mean stayed above (\d+\.\d\d) for 3 check "
                         r"windows in a row \(\d+\.\d\d over steps 141-150; its best: (\d+\.\d\d) "
                         r"over steps [\d,]+-[\d,]+\)", warning)
    assert found, warning
    threshold, best = map(float, found.groups())
    assert threshold == pytest.approx(1.25 * best, abs=0.01)
    assert resumed.warnings == [warning]
    assert _untimed(resumed.curve) == _untimed(whole.curve)
    events = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [(event["step"], event["message"]) for event in events if event["event"] == "warning"] == [(150, warning)]


def test_gradient_norms_before_clipping_are_logged_per_window_and_per_evaluation(thirty_two, tmp_path, monkeypatch):
    """Each logged read has the mean and largest gradient norm of its window's steps and the fraction of them
    clipped; each curve entry has the same of the steps since the previous evaluation."""
    norms = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm):
        norm = real_clip(parameters, max_norm)
        norms.append(float(norm))
        return norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    config = _config(thirty_two, **{"train.steps": 20, "train.eval_every": 10, "train.loss_check_every": 5,
                                    "train.clip_norm": 6.0})
    log = JsonLinesLog(tmp_path / "log.jsonl")
    result = Trainer(config, prepare(config.data, tmp_path), hooks=[log]).run()
    assert result.status == "ok" and result.warnings == [] and len(norms) == 20
    assert 0 < sum(norm > 6.0 for norm in norms) < 20  # some steps clipped, some not

    def statistics(chosen: list[float]) -> dict:
        return {"grad_norm_mean": pytest.approx(np.mean(chosen), rel=1e-9), "grad_norm_max": max(chosen),
                "clipped_fraction": sum(norm > 6.0 for norm in chosen) / len(chosen)}

    steps = [event for event in map(json.loads, log.path.read_text().splitlines()) if event["event"] == "step"]
    assert [event["step"] for event in steps] == [5, 10, 15, 20]
    for event in steps:
        assert {key: event[key] for key in statistics([1.0])} == statistics(norms[event["step"] - 5:event["step"]])
    assert [{key: entry[key] for key in statistics([1.0])} for entry in result.curve] == [
        statistics(norms[:10]), statistics(norms[10:])]


def test_evaluation_keeps_every_dev_question_even_past_the_context_limit(tmp_path):
    config = build_config("paper", {**TINY, "train.steps": 2, "train.eval_every": 2, "data.context_len": 20,
                                    **_SYNTHETIC_10_5})
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

    config = build_config("paper", {**TINY, "train.steps": 2, "train.eval_every": 2,
                                    "data.synthetic.train_paragraphs": 5, "data.synthetic.dev_paragraphs": 2})
    directory = prepare(config.data, tmp_path).directory
    script = f"""
from qanet.config import build_config
from qanet.data.prepare import load_prepared
from qanet.train import Trainer
# only the prepared directory travelled
config = build_config("paper", {TINY!r} | {{"train.steps": 2, "train.eval_every": 2,
                                            "data.train": "/data/stayed/behind.json",
                                            "data.dev": "/data/stayed/behind.json"}})
print(Trainer(config, load_prepared({str(directory)!r})).run().status)
"""
    assert run_with_only(only_torch_and_numpy, "-c", script).stdout.strip().endswith("ok")


def test_peak_memory_is_per_run_even_when_runs_share_a_process():
    from qanet.memory import peak_memory_mb, reset_peak_memory

    cpu = torch.device("cpu")
    reset_peak_memory(cpu)
    block = np.ones(200_000_000 // 8)  # 200 MB, then freed
    high = peak_memory_mb(cpu)
    del block
    reset_peak_memory(cpu)
    assert peak_memory_mb(cpu) < high - 150


def test_evaluations_during_training_score_a_fixed_sample_and_the_last_one_the_whole_dev_set(tmp_path):
    config = build_config("paper", {**TINY, "train.steps": 4, "train.eval_every": 2, "train.eval_questions": 10,
                                    **_SYNTHETIC_10_5})
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
                                    **_SYNTHETIC_10_5, **overrides})
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
                                    "train.loss_check_every": 4, "data.context_len": 64, "data.question_len": 20,
                                    **overrides})
    return Trainer(config, prepare(config.data, tmp_path))


def _split_of_lengths(context_lengths: np.ndarray, question_lengths: np.ndarray, paragraph: np.ndarray) -> Split:
    """A split whose sequences have these lengths (every token the same word) and whose answers are token 0."""
    def sequences(lengths: np.ndarray) -> Sequences:
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        return Sequences(np.ones(offsets[-1], np.int32), np.ones((offsets[-1], 1), np.int16), offsets)

    questions = len(question_lengths)
    first_token = np.zeros(questions, np.int32)
    return Split("1.1", sequences(context_lengths), np.zeros((context_lengths.sum(), 2), np.int32),
                 sequences(question_lengths), paragraph, first_token, first_token, [str(i) for i in range(questions)],
                 [""] * len(context_lengths), [["answer"]] * questions)


@pytest.fixture(scope="module")
def squad_lengths(thirty_two, tmp_path_factory) -> Prepared:
    """The 32-question data with a training split of SQuAD v1.1's lengths: 20,000 questions on 4,000
    paragraphs of mean ~140 tokens, p99 ~330, a few of 800 (past the 400-token limit); questions of mean
    ~11 tokens, a few of 1 and of 60 (past the 50-token limit)."""
    rng = np.random.default_rng(17)
    contexts = np.clip(rng.lognormal(np.log(130), 0.4, 4_000).round(), 20, None).astype(np.int64)
    contexts[:3] = 800
    questions = np.clip(rng.lognormal(np.log(10.5), 0.3, 20_000).round(), 1, None).astype(np.int64)
    questions[:6] = [1, 1, 2, 60, 60, 60]
    paragraph = rng.integers(0, len(contexts), len(questions)).astype(np.int32)
    prepared = prepare(_config(thirty_two).data, tmp_path_factory.mktemp("squad_lengths"))
    return dataclasses.replace(prepared, train=_split_of_lengths(contexts, questions, paragraph))


@pytest.mark.parametrize("pad_multiple", [16, 50, 64, 128, 400])
def test_batch_shapes_hold_every_shape_a_full_batch_meets(thirty_two, squad_lengths, pad_multiple):
    """Whatever the pad multiple, even one above the question limit: every (context, question) width of
    a full batch in the first two epochs is among the shapes that the warm-up compiles."""
    config = _config(thirty_two, **{"train.batch_size": 32, "train.pad_multiple": pad_multiple})
    trainer = Trainer(config, squad_lengths)
    shapes = trainer.batch_shapes()
    epochs = [epoch_batches(trainer.questions, trainer.lengths, 32, seed=config.train.seed, epoch=epoch)
              for epoch in (0, 1)]
    met = {trainer.train_data.widths(batch, 400, 50) for batches in epochs for batch in batches if len(batch) == 32}
    assert met <= set(shapes), sorted(met - set(shapes))
    assert len(set(shapes)) == len(shapes) and all(c <= 400 and q <= 50 for c, q in shapes)


@pytest.mark.parametrize("pad_multiple", [16, 64])  # 64: past the question limit, padded to the limit
def test_compiled_training_meets_only_the_shapes_compiled_before_the_clock_starts(thirty_two, tmp_path, monkeypatch,
                                                                                 pad_multiple):
    """Padding to a multiple of 16 or 64 tokens gives a few shapes; each is compiled once, in the warm-up, as
    one whole graph (no break for stochastic depth or dropout); the epoch's last, smaller batch runs eagerly."""
    graphs = _counting_compile(monkeypatch)
    trainer = _compiled_trainer(thirty_two, tmp_path, **{"train.steps": 12, "train.pad_multiple": pad_multiple})
    shapes = trainer.batch_shapes()
    assert shapes and {c for c, _ in shapes} <= {16, 32, 48, 64} and {q for _, q in shapes} <= {16, 20}
    compiled_in_warm_up = []
    real_warm_up = trainer.warm_up
    monkeypatch.setattr(trainer, "warm_up", lambda: (real_warm_up(), compiled_in_warm_up.append(len(graphs))))
    result = trainer.run()
    assert result.status == "ok" and result.compile_seconds > 0 and result.steps == 12
    assert compiled_in_warm_up == [len(shapes)] == [len(graphs)]  # nothing compiled while the clock ran
    assert [(entry["context_width"], entry["question_width"]) for entry in result.compile_shapes] == shapes
    assert 0 < sum(entry["seconds"] for entry in result.compile_shapes) <= result.compile_seconds


def test_blocks_compiled_in_place_compile_only_in_the_warm_up(thirty_two, tmp_path, monkeypatch):
    """train.compile_scope = "blocks": the encoder blocks are compiled, in the warm-up only; evaluation and the
    epoch's last, smaller batch run them eagerly (no compilation while the clock runs)."""
    graphs = []

    def counting_backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, mode=None, backend=None, **options: real_compile(
        model, backend=counting_backend, **options))
    torch._dynamo.reset()
    trainer = _compiled_trainer(thirty_two, tmp_path, **{"train.steps": 12, "train.eval_every": 6,
                                                         "train.compile_scope": "blocks"})
    assert trainer.forward is trainer.model  # compiled in place, not wrapped
    compiled_in_warm_up = []
    real_warm_up = trainer.warm_up
    monkeypatch.setattr(trainer, "warm_up", lambda: (real_warm_up(), compiled_in_warm_up.append(len(graphs))))
    result = trainer.run()
    assert result.status == "ok" and result.steps == 12 and len(result.curve) == 2
    assert compiled_in_warm_up == [len(graphs)] and graphs  # every graph before the clock started


def test_each_trainer_in_one_process_compiles_its_every_shape_within_dynamo_limits(thirty_two, tmp_path, monkeypatch):
    """A study runs its trials in one process: dynamo keeps the graphs of the earlier trials' models and counts
    them against its recompile limit even once those models are freed. Each warm-up makes room for its own."""
    graphs = _counting_compile(monkeypatch)
    torch._dynamo.reset()  # no graphs from other tests
    with torch._dynamo.config.patch(recompile_limit=1):
        for pad_multiple in (4, 16, 64):  # shapes (64, 8) and (64, 12), then (64, 16), then (64, 20): none shared
            trainer = _compiled_trainer(thirty_two, tmp_path, **{"train.pad_multiple": pad_multiple})
            compiled_before = len(graphs)
            trainer.warm_up()  # fullgraph: a compilation refused for the limit raises
            assert len(graphs) - compiled_before == len(trainer.batch_shapes()), pad_multiple
            del trainer
            gc.collect()


def test_warm_up_refuses_to_compile_when_no_batch_is_full(thirty_two, tmp_path):
    """Fewer trainable questions than a batch of 64: there is no shape to compile, and the warm-up says why."""
    trainer = _compiled_trainer(thirty_two, tmp_path, **{"train.batch_size": 64})
    assert trainer.batch_shapes() == [] and len(trainer.questions) < 64
    with pytest.raises(ConfigError, match=rf"{len(trainer.questions)} trainable questions with train.batch_size 64, "
                                          r"batches padded to multiples of 16, data.context_len 64, "
                                          r"data.question_len 20"):
        trainer.warm_up()


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
    from qanet.outcome import StopTraining

    seen = []

    class PruneAtTheSecondEvaluation(Hooks):
        def on_begin(self, trainer):
            seen.append(("begin", trainer.step))

        def on_step(self, report):
            seen.append(("step", report.step, report.loss is None, report.learning_rate > 0,
                         report.examples_per_s is None))

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
    from qanet.outcome import StopTraining

    class NotThisOne(Hooks):
        def on_begin(self, trainer):
            raise StopTraining("stopped", "nothing to do")

    config = _config(thirty_two, **{"train.steps": 4})
    result = Trainer(config, prepare(config.data, tmp_path), hooks=[NotThisOne()]).run()
    assert result.status == "stopped" and result.steps == 0 and result.curve == []


def test_a_checkpoint_written_before_the_loss_watch_resumes(thirty_two, tmp_path):
    """Checkpoints of earlier versions hold the loss sum only ({"total", "count"}) and no loss watch."""
    config = _config(thirty_two, **{"train.steps": 12, "train.eval_every": 100, "train.checkpoint_every": 100,
                                    "train.loss_check_every": 4})
    prepared = prepare(config.data, tmp_path)
    Trainer(config, prepared, tmp_path / "old").run()  # its last checkpoint: step 12, whole dev set scored
    path = tmp_path / "old" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    state["loss"] = {"total": 25.0, "count": 5}  # as if 5 steps since the last evaluation had summed 25
    del state["loss_watch"]
    torch.save(state, path)
    config = set_value(config, "train.steps", 20)
    trainer = Trainer(config, prepared, tmp_path / "old")
    assert trainer.step == 12 and trainer.losses.since_evaluation()["loss"] == 5.0
    result = trainer.run()
    assert result.status == "ok" and result.resumed_from == [12] and result.steps == 20, result.error
    assert result.curve[-1]["step"] == 20 and result.curve[-1]["grad_norm_mean"] > 0
