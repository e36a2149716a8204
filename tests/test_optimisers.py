"""The optimiser table (qanet.optimisers): every place that needs an optimiser's facts reads them there, so a
new optimiser is one entry; an unknown name is refused, never trained as another."""

import pytest
import torch

from qanet.config import ConfigError, build_config
from qanet.optimisation import make_optimizer
from qanet.optimisers import OPTIMISERS, Optimiser


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))


def _rates(config, steps: int) -> list[float]:
    optimizer, schedule = make_optimizer(_model(), config)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def test_an_unknown_optimiser_is_refused_in_one_line_naming_the_table():
    with pytest.raises(ConfigError) as refused:
        build_config("tiny", {"train.optimizer": "sgd"})
    assert str(refused.value) == "train.optimizer = 'sgd': expected one of 'adam', 'adadelta' (qanet/optimisers.py)"


def test_adam_warms_up_from_its_default_rate_and_adadelta_does_not():
    adam = build_config("tiny", {"train.warmup_steps": 10})
    assert adam.train.learning_rate == 1e-3 and adam.train.warmup == 10
    rates = _rates(adam, 12)
    assert rates[0] == 0.0 and 0 < rates[5] < 1e-3 and rates[11] == pytest.approx(1e-3)
    adadelta = build_config("tiny", {"train.optimizer": "adadelta", "train.warmup_steps": 10})
    assert adadelta.train.learning_rate == 0.5 and adadelta.train.warmup == 0
    assert _rates(adadelta, 3) == [0.5, 0.5, 0.5]
    assert isinstance(make_optimizer(_model(), adadelta)[0], torch.optim.Adadelta)


def test_a_new_optimiser_is_one_entry_in_the_table(monkeypatch):
    """An entry is all it takes: the configuration accepts the name and its default rate, the trainer builds it
    without warm-up, and the run's warm-up (what the loss watch and a search's pruner wait for) is none."""
    monkeypatch.setitem(OPTIMISERS, "sgd", Optimiser(lambda groups, lr, on_gpu: torch.optim.SGD(groups, lr=lr),
                                                     default_lr=0.1, warms_up=False))
    config = build_config("tiny", {"train.optimizer": "sgd"})
    assert config.train.learning_rate == 0.1 and config.train.warmup == 0
    optimizer, _ = make_optimizer(_model(), config)
    assert isinstance(optimizer, torch.optim.SGD) and _rates(config, 2) == [0.1, 0.1]
