import json

from tests.conftest import run_python


def test_prepare_prints_counts_coverage_time_and_memory(tmp_path):
    cache = str(tmp_path / "cache")
    first = run_python("-m", "bench", "data", "prepare", "--cache-dir", cache)
    assert "building features" in first.stdout
    rows = {line.split()[0]: line.split()[1:] for line in first.stdout.splitlines() if line.strip()}
    assert rows["questions"] == ["9000", "1200"]
    assert rows["answers_repaired"] == ["0", "0"]
    assert "vocabulary:" in first.stdout and "peak RSS" in first.stdout
    second = run_python("-m", "bench", "data", "prepare", "--cache-dir", cache, "--json")
    summary = json.loads(second.stdout[second.stdout.index("{"):])
    assert summary["train"]["questions"] == 9000 and summary["peak_rss_mb"] > 0
    assert "loading cached" in second.stdout


def test_malformed_input_is_one_line_and_exit_status_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "", "qas": []}]}]}')
    result = run_python("-m", "bench", "data", "prepare", "--train", str(bad), "--dev", str(bad),
                        "--cache-dir", str(tmp_path), check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {bad}: article 'T', question -: empty context"


def test_help_explains_the_commands():
    result = run_python("-m", "bench", "data", "prepare", "--help")
    assert "synthetic" in result.stdout and "--vectors" in result.stdout
