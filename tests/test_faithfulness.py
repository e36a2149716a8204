"""The fixes of the model-faithfulness review (issue 7): NLPLearn/QANet's behaviour, and the switches
that keep the earlier behaviour where a study measures it. The tests of each fix failed before it."""

import json

import pytest
import torch
import torch.nn.functional as F

from qanet import layers
from qanet.config import DataConfig, ModelConfig
from qanet.data.prepare import prepare
from qanet.data.vocab import OOV
from qanet.model import QANet

WORDS, CHARS = 50, 20


def _model(**overrides) -> QANet:
    config = ModelConfig(**{"char_dim": 8, "hidden": 16, "heads": 4, "model_blocks": 2, "embedding_convs": 4,
                            **overrides})
    config.validate()
    torch.manual_seed(0)
    return QANet(config, torch.randn(WORDS, 12), CHARS)


def _inputs(batch=2, context=9, question=5, char_len=6):
    generator = torch.Generator().manual_seed(0)
    return (torch.randint(2, WORDS, (batch, context), generator=generator),
            torch.randint(1, CHARS, (batch, context, char_len), generator=generator),
            torch.randint(2, WORDS, (batch, question), generator=generator),
            torch.randint(1, CHARS, (batch, question, char_len), generator=generator))


# 1. ReLU after every encoder convolution


@pytest.mark.parametrize("activation", ["relu", "none"])
def test_encoder_convolutions_apply_a_relu_unless_told_not_to(activation):
    model = _model(conv_activation=activation).eval()
    keep = torch.ones(3, 7, 1)
    x = torch.randn(3, 7, 16)
    for block in [*model.embedding_encoder.blocks, *model.model_encoder.blocks]:
        for index in range(len(block.convs)):
            y = block._convolve(index, keep, x)
            expected = block.convs[index](F.layer_norm(x, (16,), block.conv_norms[index].weight,
                                                       block.conv_norms[index].bias).transpose(1, 2)).transpose(1, 2)
            torch.testing.assert_close(y, expected.relu() if activation == "relu" else expected)
            assert (y.min() >= 0) == (activation == "relu")


# 2. Dropout placement


@pytest.mark.parametrize("placement", ["nlplearn", "outputs"])
def test_encoder_block_drops_inputs_and_outputs_where_nlplearn_does(placement, monkeypatch):
    model = _model(dropout_placement=placement, dropout=0.1, char_dropout=0.0, survival_last=0.9)
    block = model.embedding_encoder.blocks[0]  # 4 convolutions, attention, feed-forward: 6 sublayers
    block.survival = [1.0] * 6  # no sublayer skipped, so every mask is drawn
    x = torch.randn(2, 5, 16)
    drawn = []
    real = layers.keep_mask

    def recording(shape, p, device):
        drawn.append(round(p, 6))
        return real(shape, p, device)

    monkeypatch.setattr(layers, "keep_mask", recording)
    block.train()(x, torch.ones(2, 5, dtype=torch.bool))
    stochastic = [round(1 - s, 6) for s in layers.survival_schedule(6, 0.9)]  # 1/60 ... 1/10
    if placement == "nlplearn":  # (input, output) per sublayer; convolutions 1 and 3 keep their input
        assert drawn == [0.1, stochastic[0], stochastic[1], 0.1, stochastic[2], stochastic[3],
                         0.1, stochastic[4], 0.1, stochastic[5]]
    else:
        assert drawn == [0.1] * 6


def _trace_model_encoder(model: QANet) -> dict[str, list[torch.Tensor]]:
    seen = {"inputs": [], "outputs": [], "pointer": []}

    def encoder_pass(module, args, output) -> None:
        seen["inputs"].append(args[0])
        seen["outputs"].append(output)

    def pointer(module, args, output) -> None:
        seen["pointer"].extend(args[:3])

    model.model_encoder.register_forward_hook(encoder_pass)
    model.pointer.register_forward_hook(pointer)
    return seen


def test_model_encoder_drops_the_inputs_of_passes_0_and_2_and_points_from_the_dropped_m1():
    model = _model(dropout_placement="nlplearn", dropout=0.3)
    seen = _trace_model_encoder(model)
    model.resize.register_forward_hook(lambda module, args, output: seen.update(resized=output))
    model.train()(*_inputs())
    m0, m1, m2 = seen["outputs"]
    assert not torch.equal(seen["inputs"][0], seen["resized"])  # pass 0 reads a dropped-out input
    assert torch.equal(seen["inputs"][1], m0)  # pass 1 reads M0 as it is
    assert not torch.equal(seen["inputs"][2], m1)  # pass 2 reads a dropped-out M1 ...
    assert torch.equal(seen["pointer"][1], seen["inputs"][2])  # ... and so does the start pointer
    assert torch.equal(seen["pointer"][0], m0) and torch.equal(seen["pointer"][2], m2)


def test_earlier_placement_drops_every_pass_input_and_points_from_the_kept_outputs():
    model = _model(dropout_placement="outputs", dropout=0.3)
    seen = _trace_model_encoder(model)
    model.train()(*_inputs())
    assert not torch.equal(seen["inputs"][1], seen["outputs"][0])
    assert all(torch.equal(p, o) for p, o in zip(seen["pointer"], seen["outputs"], strict=True))


@pytest.mark.parametrize("placement", ["nlplearn", "outputs"])
def test_context_query_attention_drops_c_and_q_only_inside_the_similarity(placement):
    """With every row of c alike and every row of q alike, any attention weights give a = q_0 and
    b = c_0, so [c; a; c*a; c*b] is known exactly unless c or q themselves were dropped out."""
    config = ModelConfig(hidden=16, heads=4, dropout=0.5, dropout_placement=placement)
    attention = layers.ContextQueryAttention(config).train()
    c_row, q_row = torch.randn(16), torch.randn(16)
    c, q = c_row.expand(2, 7, 16).clone(), q_row.expand(2, 4, 16).clone()
    masks = torch.ones(2, 7, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)
    output = attention(c, q, *masks)
    expected = torch.cat([c, q_row.expand(2, 7, 16), c * q_row, c * c_row], dim=2)
    if placement == "nlplearn":
        torch.testing.assert_close(output, expected)
    else:
        assert not torch.allclose(output, expected)
    c, q = torch.randn(2, 7, 16), torch.randn(2, 4, 16)
    first, second = attention(c, q, *masks), attention(c, q, *masks)
    assert not torch.equal(first[..., 16:], second[..., 16:])  # the similarity does see dropout


def test_evaluation_draws_no_dropout_or_stochastic_depth(monkeypatch):
    model = _model(dropout=0.3)
    monkeypatch.setattr(layers, "keep_mask", lambda *args: pytest.fail("a dropout mask was drawn in eval mode"))
    first = model.eval()(*_inputs())
    torch.testing.assert_close(first, model(*_inputs()))


# 3. Word vectors for every word of train and dev


def _squad(path, context: str, answer: str, prefix: str) -> str:
    data = {"version": "1.1", "data": [{"title": prefix, "paragraphs": [{"context": context, "qas": [
        {"id": f"{prefix}-1", "question": "Which one?", "answers": [
            {"text": answer, "answer_start": context.index(answer)}]}]}]}]}
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("vocabulary", ["train+dev", "train"])
def test_dev_words_keep_their_pretrained_vectors_with_the_train_dev_vocabulary(tmp_path, vocabulary):
    glove = tmp_path / "vectors.txt"
    glove.write_text("alpha 1 0\nbeta 0 1\ngamma 1 1\ndelta 2 3\n")
    train = _squad(tmp_path / "train.json", "Alpha met beta near gamma.", "beta", "train")
    dev = _squad(tmp_path / "dev.json", "Delta met beta and epsilon.", "Delta", "dev")
    config = DataConfig(train=train, dev=dev, vectors=str(glove), vocabulary=vocabulary)
    prepared = prepare(config, tmp_path / "cache")
    words = dict(zip(prepared.words, range(len(prepared.words)), strict=True))
    delta = prepared.dev.contexts.words[0]  # "Delta": only in dev
    if vocabulary == "train+dev":
        assert delta == words["Delta"] and prepared.word_vectors[delta].tolist() == [2.0, 3.0]
        assert prepared.summary(config)["dev"]["answers_with_an_oov_word"] == 0.0
    else:
        assert delta == OOV and "Delta" not in words
        assert prepared.summary(config)["dev"]["answers_with_an_oov_word"] == 1.0
    assert "epsilon" not in words  # no vector, so out of the vocabulary either way
    assert "D" not in prepared.chars  # characters are learned, so they come from train only


def test_the_vocabulary_setting_is_part_of_the_cache_key(tmp_path):
    fingerprints = {prepare(DataConfig(vocabulary=v), tmp_path).fingerprint for v in ("train+dev", "train")}
    assert len(fingerprints) == 2


# 4. Pointer, loss and decoding in fp32 under autocast


def test_logits_and_loss_are_fp32_under_bf16_autocast():
    model = _model().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        start, end = model(*_inputs())
        loss = model.loss(start, end, torch.tensor([0, 1]), torch.tensor([2, 3]))
    assert start.dtype == end.dtype == loss.dtype == torch.float32
    plain_start, _ = model(*_inputs())
    assert not torch.equal(start, plain_start)  # the body did run in bf16: only the pointer is fp32
    torch.testing.assert_close(start, plain_start, atol=0.1, rtol=0.05)


# 5. The paper's loss: the sum of the two cross-entropies


def test_loss_is_the_sum_of_start_and_end_cross_entropies():
    start, end = torch.randn(4, 10), torch.randn(4, 10)
    y1, y2 = torch.tensor([1, 2, 3, 4]), torch.tensor([2, 3, 4, 5])
    expected = F.cross_entropy(start, y1) + F.cross_entropy(end, y2)
    torch.testing.assert_close(_model().loss(start, end, y1, y2), expected)
