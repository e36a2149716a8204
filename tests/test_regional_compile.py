"""qanet.device.compiled's scopes: the whole model, or each encoder block (regional compilation)."""

import pytest
import torch

from qanet.config import ConfigError, ModelConfig
from qanet.device import compiled
from qanet.layers import EncoderBlock
from qanet.model import QANet

WORDS, CHARS = 50, 20


def _model(recompute_every: int = 0, **overrides) -> QANet:
    config = ModelConfig(char_dim=8, hidden=16, heads=2, model_blocks=2, embedding_convs=1, **overrides)
    config.validate()
    torch.manual_seed(0)
    return QANet(config, torch.randn(WORDS, 12), CHARS, recompute_every=recompute_every).train()


def _batch(context: int, question: int, batch: int = 3) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    return (torch.randint(2, WORDS, (batch, context), generator=generator),
            torch.randint(1, CHARS, (batch, context, 6), generator=generator),
            torch.randint(2, WORDS, (batch, question), generator=generator),
            torch.randint(1, CHARS, (batch, question, 6), generator=generator),
            torch.tensor([0, 2, context - 1]), torch.tensor([1, 2, context - 1]))


def _loss(model: QANet, forward, batch) -> torch.Tensor:
    *inputs, start, end = batch
    return model.loss(*forward(*inputs), start, end)


def _blocks(model: QANet) -> list[EncoderBlock]:
    return [*model.embedding_encoder.blocks, *model.model_encoder.blocks]


def _is_compiled(block: torch.nn.Module) -> bool:
    return block._compiled_call_impl is not None  # what nn.Module.compile sets


def test_unknown_scope_is_refused_and_nothing_is_compiled():
    model = _model()
    with pytest.raises(ConfigError, match=r"train.compile_scope = 'layers': expected 'model' or 'blocks'"):
        compiled(model, "default", "layers")
    assert not any(_is_compiled(block) for block in _blocks(model))


def test_scope_model_wraps_the_whole_model_and_leaves_the_blocks_alone():
    model = _model()
    whole = compiled(model, "default", "model")
    assert whole is not model and whole._orig_mod is model
    assert not any(_is_compiled(block) for block in _blocks(model))


def test_scope_blocks_compiles_each_block_once_a_width_and_nothing_else(monkeypatch):
    """The model stays itself, each block is compiled in place; a step traces one graph per block and width it
    meets, of that block's inputs and weights alone, and the model encoder's three passes, the next step too,
    reuse them. The two model blocks do not share a graph: their stochastic-depth rates differ. The 4 graphs
    live on one code object, but each block's count against dynamo's recompile limit (here 2) is its own."""
    graphs = []

    def counting_backend(graph, example_inputs):
        graphs.append(len(example_inputs))
        return graph.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, mode, **options: real_compile(
        model, backend=counting_backend, **options))
    model = _model()
    assert compiled(model, "default", "blocks") is model
    assert all(_is_compiled(block) for block in _blocks(model))
    assert [module for module in model.modules() if _is_compiled(module)] == _blocks(model)
    with torch._dynamo.config.patch(recompile_limit=2):  # fullgraph: a compilation past the limit raises
        for _ in range(2):
            _loss(model, model, _batch(context=11, question=5)).backward()
    inputs = {id(block): 2 + len(list(block.parameters())) for block in _blocks(model)}  # x, mask, weights
    embedding, *model_blocks = _blocks(model)
    assert sorted(graphs) == sorted([inputs[id(embedding)]] * 2 + [inputs[id(block)] for block in model_blocks])


def test_scope_blocks_gives_eager_losses_and_gradients_with_recomputed_blocks():
    """Inductor's block graphs, the model encoder's blocks recomputed in backward (activation checkpointing of a
    compiled block), against eager: the same loss and gradients, dropout and stochastic depth off (eager and
    compiled code draw their masks differently)."""
    deterministic = {"dropout": 0.0, "char_dropout": 0.0, "survival_last": 1.0}
    eager, blocks = _model(recompute_every=1, **deterministic), _model(recompute_every=1, **deterministic)
    forward = compiled(blocks, "default", "blocks")
    batch = _batch(context=8, question=8)  # one width: the embedding block compiles once
    for _ in range(2):  # again: a gradient buffer a graph left unwritten would hold the last pass's values
        losses = []
        for model, run in ((eager, eager), (blocks, forward)):
            model.zero_grad(set_to_none=True)
            loss = _loss(model, run, batch)
            loss.backward()
            losses.append(loss)
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
        for (name, expected), actual in zip(eager.named_parameters(), blocks.parameters(), strict=True):
            torch.testing.assert_close(actual.grad, expected.grad, rtol=1e-4, atol=1e-6,
                                       msg=lambda message, name=name: f"{name}: {message}")
