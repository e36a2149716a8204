"""Every configuration value is checked against its field's type when it is set or validated."""

import pytest

from bench.study import StudyError, load_study
from qanet.config import ConfigError, ModelConfig, RunConfig, TrainConfig, build_config
from tests.conftest import run_python


@pytest.mark.parametrize("key,value,expected", [
    ("train.seed", "1.5", "expected an integer"),
    ("train.threads", "1.5", "expected an integer or none"),
    ("data.train", "5", "expected a string"),
    ("train.device", '"tpu9"', "expected auto, cpu, cuda, cuda:N, mps or xpu"),
    ("train.recompute_every", "0.5", "expected an integer"),
    ("train.steps", "true", "expected an integer"),
    ("train.ema", "1", "expected true or false"),
    ("model.char_encoder", '"conv3d"', "expected one of 'conv2d', 'depthwise1d'"),
    ("model.conv_activation", '"gelu"', "expected one of 'relu', 'none'"),
    ("data.vocabulary", '"dev"', "expected one of 'train+dev', 'train'"),
    ("model.hidden", '"64"', "expected an integer"),  # a TOML string is not a number
])
def test_a_study_with_a_value_of_the_wrong_type_stops_with_file_key_and_value(tmp_path, key, value, expected):
    path = tmp_path / "typed.toml"
    path.write_text(f'preset = "paper"\n[set]\n"{key}" = {value}\n')
    with pytest.raises(StudyError) as caught:
        load_study(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: {key} = ") and message.endswith(expected)
    assert "\n" not in message


@pytest.mark.parametrize("text,expected", [
    ('seeds = [0, 1.5]', "seeds = [0, 1.5]: expected a non-empty list of integers"),
    ('seeds = [true]', "seeds = [True]: expected a non-empty list of integers"),
    ('preset = ["paper"]', "preset = ['paper']: expected a string"),
    ('budget = 5', "budget = 5: expected a table"),
    ('variants = 3', "variants = 3: expected a table"),
    ('[budget]\nsteps = -5', "train.steps = -5: must be an integer >= 1"),
])
def test_a_study_file_of_the_wrong_shape_stops_with_file_key_and_value(tmp_path, text, expected):
    path = tmp_path / "shape.toml"
    path.write_text(text + "\n")
    with pytest.raises(StudyError) as caught:
        load_study(str(path))
    assert str(caught.value) == f"{path}: {expected}"


def test_command_line_values_are_parsed_to_the_field_type():
    config = build_config("paper", ["train.seed=7", "train.lr=2e-3", "train.ema=off", "train.threads=none",
                                    "model.conv_activation=none", "data.vocabulary=train"])
    assert config.train.seed == 7 and config.train.lr == 0.002 and config.train.ema is False
    assert config.train.threads is None and config.model.conv_activation == "none"
    assert config.data.vocabulary == "train"


def test_an_integer_is_a_valid_float_and_is_stored_as_one():
    """0 and 0.0 are the same setting, so they must give the same record and run id."""
    from_int = build_config("paper", {"model.dropout": 0, "train.clip_norm": 10})
    from_float = build_config("paper", {"model.dropout": 0.0, "train.clip_norm": 10.0})
    assert from_int.to_dict() == from_float.to_dict()
    assert isinstance(from_int.model.dropout, float) and isinstance(from_int.train.clip_norm, float)


def test_configs_built_in_code_are_checked_by_validate():
    with pytest.raises(ConfigError, match=r"model.hidden = 128.0: expected an integer"):
        ModelConfig(hidden=128.0).validate()
    with pytest.raises(ConfigError, match=r"train.seed = 1.5: expected an integer"):
        RunConfig(train=TrainConfig(seed=1.5)).validate()


def test_bad_set_value_is_one_line_and_exit_status_2():
    result = run_python("-m", "bench", "train", "--set", "train.seed=1.5", check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: train.seed = '1.5': expected an integer"


def test_the_smoke_presets_old_name_builds_the_tiny_preset_and_says_its_new_name_once(capsys, monkeypatch):
    from qanet import config as config_module

    monkeypatch.setattr(config_module, "_noticed", set())
    assert build_config("smoke").to_dict() == build_config("tiny").to_dict() != build_config("paper").to_dict()
    build_config("smoke")
    assert capsys.readouterr().err.splitlines() == ["note: preset 'smoke' is now called 'tiny'"]
    with pytest.raises(ConfigError, match=r"preset 'smok': unknown; choose one of \['paper', 'seed_article', 'tiny'\]"):
        build_config("smok")
