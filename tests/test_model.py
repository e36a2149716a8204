import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from qanet.config import ConfigError, ModelConfig, build_config
from qanet.evaluation import best_spans
from qanet.layers import Dropout, keep_mask, mask_logits, positional_encoding, survival_schedule
from qanet.model import QANet

WORDS, CHARS = 50, 20


def _model(**overrides) -> QANet:
    config = ModelConfig(char_dim=8, hidden=16, heads=4, model_blocks=1, embedding_convs=2, **overrides)
    config.validate()
    torch.manual_seed(0)
    return QANet(config, torch.randn(WORDS, 12), CHARS).eval()


def _inputs(batch=2, context=9, question=5, char_len=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(2, WORDS, (batch, context), generator=generator),
            torch.randint(1, CHARS, (batch, context, char_len), generator=generator),
            torch.randint(2, WORDS, (batch, question), generator=generator),
            torch.randint(1, CHARS, (batch, question, char_len), generator=generator))


@pytest.mark.parametrize("char_encoder,hidden_heads,blocks,output,pos_scale", list(itertools.product(
    ["conv2d", "depthwise1d"], [(16, 8), (20, 4)], [1, 2], ["logits", "softmax"], ["embedding", "all"])))
def test_shapes_for_every_axis(char_encoder, hidden_heads, blocks, output, pos_scale):
    hidden, heads = hidden_heads
    config = ModelConfig(char_encoder=char_encoder, char_dim=8, hidden=hidden, heads=heads, model_blocks=blocks,
                         embedding_convs=2, output=output, pos_scale=pos_scale)
    config.validate()
    model = QANet(config, torch.randn(WORDS, 12), CHARS)
    start, end = model(*_inputs(batch=3, context=11))
    assert start.shape == end.shape == (3, 11)
    loss = model.loss(start, end, torch.tensor([0, 3, 10]), torch.tensor([1, 4, 10]))
    loss.backward()
    assert math.isfinite(loss.item())


def test_batch_of_one():
    start, end = _model()(*_inputs(batch=1))
    assert start.shape == (1, 9)


def test_heads_must_divide_hidden():
    expected = r"model.heads = 8: must divide model.hidden = 100; choose one of \[1, 2, 4, 5"
    with pytest.raises(ConfigError, match=expected):
        build_config("paper", ["model.hidden=100"])
    assert build_config("seed_article").model.heads == 4


def test_padding_does_not_change_real_positions():
    model = _model()
    cw, cc, qw, qc = _inputs(batch=2, context=12, question=6)
    alone = model(cw[:1, :7], cc[:1, :7], qw[:1, :4], qc[:1, :4])
    cw, cc, qw, qc = cw.clone(), cc.clone(), qw.clone(), qc.clone()
    cw[0, 7:], cc[0, 7:], qw[0, 4:], qc[0, 4:] = 0, 0, 0, 0  # example 0 padded next to a longer example 1
    padded = model(cw, cc, qw, qc)
    for a, p in zip(alone, padded, strict=True):
        torch.testing.assert_close(p[0, :7], a[0], rtol=1e-5, atol=1e-5)
        assert (p[0, 7:] == torch.finfo(p.dtype).min).all()


def test_softmax_output_bug_feeds_probabilities_to_cross_entropy():
    start, end = torch.randn(4, 10), torch.randn(4, 10)
    y1, y2 = torch.tensor([1, 2, 3, 4]), torch.tensor([2, 3, 4, 5])
    right = F.cross_entropy(start, y1) + F.cross_entropy(end, y2)
    buggy = F.cross_entropy(start.softmax(1), y1) + F.cross_entropy(end.softmax(1), y2)
    torch.testing.assert_close(_model(output="logits").loss(start, end, y1, y2), right)
    torch.testing.assert_close(_model(output="softmax").loss(start, end, y1, y2), buggy)
    assert buggy > 2 * math.log(10) - 0.4  # near uniform whatever the logits: the loss cannot fall far


@pytest.mark.parametrize("pos_scale,factor", [("embedding", 1.0), ("all", 4.0)])
def test_positional_scaling_bug_scales_every_block_input(pos_scale, factor):
    model = _model(pos_scale=pos_scale)
    blocks = [*model.embedding_encoder.blocks, *model.model_encoder.blocks]
    x = torch.randn(2, 5, 16)
    for block in blocks:  # sqrt(hidden) = 4 in every block, or no scaling at all
        torch.testing.assert_close(block.add_position(x), x * factor + positional_encoding(5, 16, x.device, x.dtype))


def test_positional_encoding_uses_the_same_frequencies_for_sine_and_cosine():
    signal = positional_encoding(50, 16, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(signal[:, :8] ** 2 + signal[:, 8:] ** 2, torch.ones(50, 8))
    assert signal[0, :8].abs().max() == 0


def test_masked_logits_stay_finite_in_half_precision():
    logits = torch.randn(2, 6, dtype=torch.float16)
    mask = torch.tensor([[True] * 3 + [False] * 3] * 2)
    masked = mask_logits(logits, mask)
    assert torch.isfinite(masked).all()
    probabilities = masked.float().softmax(1)
    assert probabilities[:, 3:].max() == 0


def test_stochastic_depth_schedule():
    assert survival_schedule(4, 0.9) == pytest.approx([0.975, 0.95, 0.925, 0.9])


def _gated_sublayer(survival: float):
    """An encoder block's first sublayer in training mode, no dropout, gated with `survival`."""
    block = _model(dropout=0.0, char_dropout=0.0).embedding_encoder.blocks[0].train()
    block.survival = [survival] + block.survival[1:]
    block.input_rates = block.output_rates = [0.0] * len(block.survival)
    return block, (lambda y: 2 * y + 1)


def test_stochastic_depth_keeps_the_expectation_and_skips_whole_sublayers():
    block, f = _gated_sublayer(0.7)
    x = torch.randn(3, 4, 16)
    torch.manual_seed(0)
    outputs = torch.stack([block._sublayer(0, x, f) for _ in range(4000)])
    kept = (outputs - x).abs().amax(dim=(1, 2, 3)) > 0
    for output, whole in zip(outputs, kept, strict=True):  # a draw keeps or skips the sublayer for the batch
        torch.testing.assert_close(output, x + f(x) if whole else x)
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.025)
    torch.testing.assert_close(outputs.mean(0), x + 0.7 * f(x), atol=0.1, rtol=0)
    assert torch.equal(block.eval()._sublayer(0, x, f), x + f(x))  # evaluation: never skipped, not rescaled


def test_stochastic_depth_is_traced_as_one_static_graph():
    """No Python branch on a random number: one graph, whatever the gates draw."""
    block, f = _gated_sublayer(0.5)
    graphs = []

    def counting_backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    compiled = torch.compile(lambda x: block._sublayer(0, x, f), backend=counting_backend, fullgraph=True)
    x = torch.randn(2, 5, 16)
    outputs = {compiled(x).sub(x).abs().sum().item() > 0 for _ in range(20)}
    assert outputs == {True, False} and len(graphs) == 1


def test_decoding_respects_the_length_limit_and_finds_the_best_span():
    generator = torch.Generator().manual_seed(0)
    start, end = torch.randn(16, 25, generator=generator), torch.randn(16, 25, generator=generator)
    starts, ends = best_spans(start, end, max_len=4)
    log_start, log_end = start.log_softmax(1), end.log_softmax(1)
    for b in range(16):
        i, j = starts[b].item(), ends[b].item()
        assert 0 <= j - i < 4
        best = max(log_start[b, s] + log_end[b, e] for s in range(25) for e in range(s, min(s + 4, 25)))
        assert log_start[b, i] + log_end[b, j] == pytest.approx(best.item())


def test_dropout_masks_keep_each_element_with_probability_one_minus_p():
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([300_000]), 0.1, torch.device("cpu"))
    for piece in range(3):  # each 16-bit piece of a random word is unbiased
        assert mask[piece::3].float().mean().item() == pytest.approx(0.9, abs=0.004)
    assert keep_mask(torch.Size([1000]), 0.0, torch.device("cpu")).all()
    dropout = Dropout(0.25).train()
    x = torch.ones(100_000)
    y = dropout(x)
    assert y.unique().tolist() == pytest.approx([0.0, 4 / 3]) and y.mean().item() == pytest.approx(1.0, abs=0.02)
    assert torch.equal(dropout.eval()(x), x)
