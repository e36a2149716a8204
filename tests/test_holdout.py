"""Training questions held out (data.holdout_questions): whole paragraphs chosen by a fixed seeded shuffle,
never trained on, scored at every evaluation beside the dev set."""

import numpy as np
import pytest

from qanet.config import ConfigError, build_config
from qanet.data.batching import holdout_questions, trainable_questions
from qanet.data.prepare import prepare
from qanet.train import Trainer
from tests.test_train import TINY


def test_the_held_out_questions_are_whole_paragraphs_the_fewest_that_reach_the_count():
    rng = np.random.default_rng(3)
    paragraph = np.repeat(np.arange(40), rng.integers(1, 7, size=40))  # 1 to 6 questions a paragraph
    held_out = holdout_questions(paragraph, 25)
    taken = np.unique(paragraph[held_out])
    assert np.array_equal(held_out, np.flatnonzero(np.isin(paragraph, taken)))  # whole paragraphs
    assert len(held_out) >= 25
    assert np.array_equal(held_out, holdout_questions(paragraph, 25))  # the same slice every time
    smaller = [holdout_questions(paragraph, count) for count in range(1, len(held_out) + 1)]
    assert all(set(slice_) <= set(held_out) for slice_ in smaller)  # one shuffled order, taken from its start
    assert max(len(slice_) for slice_ in smaller if len(slice_) < len(held_out)) < 25  # the last paragraph was needed
    assert len(holdout_questions(paragraph, 0)) == 0
    assert np.array_equal(holdout_questions(paragraph, len(paragraph) + 5), np.arange(len(paragraph)))
    assert not np.array_equal(taken, np.arange(len(taken)))  # shuffled, not the file's first paragraphs


def _config(**overrides):
    synthetic = {"data.synthetic.train_paragraphs": 10, "data.synthetic.dev_paragraphs": 5}
    return build_config("paper", {**TINY, "train.steps": 8, "train.eval_every": 4, **synthetic, **overrides})


def test_a_held_out_run_never_trains_on_them_and_scores_them_at_every_evaluation(tmp_path):
    config = _config(**{"data.holdout_questions": 15})
    prepared = prepare(config.data, tmp_path)
    trainer = Trainer(config, prepared)
    trained = []
    step = trainer.train_step
    trainer.train_step = lambda questions, on_device: (trained.extend(questions.tolist()), step(questions, on_device))
    result = trainer.run()
    held_out = holdout_questions(prepared.train.paragraph, 15)
    assert len(held_out) == 18  # three whole paragraphs of 6 questions
    # more than an epoch: every trainable question but the held-out ones
    assert set(trained) == set(trainable_questions(prepared.train, config.data.context_len)) - set(held_out)
    assert not set(prepared.train.paragraph[trained]) & set(prepared.train.paragraph[held_out])  # nor their contexts
    assert result.train_questions + result.train_questions_left_out + len(held_out) == len(prepared.train)
    assert [entry["step"] for entry in result.curve] == [4, 8]
    for entry in result.curve:
        assert entry["holdout_total"] == 18 and entry["total"] == len(prepared.dev)  # dev scored as before
        assert {"holdout_exact", "holdout_f1"} <= entry.keys()
    last = result.curve[-1]
    assert result.holdout_metrics == {"exact": last["holdout_exact"], "f1": last["holdout_f1"], "total": 18}
    assert result.metrics == {"exact": last["exact"], "f1": last["f1"], "total": last["total"]}


def test_without_a_holdout_every_trainable_question_is_trained_and_nothing_else_is_scored(tmp_path):
    config = _config()
    result = Trainer(config, prepare(config.data, tmp_path)).run()
    assert result.holdout_metrics == {} and not any(key.startswith("holdout") for key in result.curve[-1])
    assert result.train_questions + result.train_questions_left_out == 60


@pytest.mark.parametrize("count, message", [
    (60, "data.holdout_questions = 60: leaves no question of the 60 of the training set to train on"),
    (-1, "data.holdout_questions = -1: must be >= 0"),
])
def test_a_holdout_that_leaves_nothing_to_train_on_is_one_line(tmp_path, count, message):
    with pytest.raises(ConfigError) as error:
        config = _config(**{"data.holdout_questions": count})
        Trainer(config, prepare(config.data, tmp_path))
    assert str(error.value) == message
