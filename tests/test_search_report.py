"""The committed example of a search's report (docs/examples/lr_adam/) is what `bench report` writes from the
committed smoke search (results/reference/lr_adam-smoke/: its records and its Optuna database), and writing it
leaves that database as it was; CITATION.cff is valid CFF and names the package's version."""

import hashlib
import tomllib

import yaml  # PyYAML: a requirement of Optuna's, installed wherever the searches run

from bench.environment import ROOT
from tests.conftest import run_python

REFERENCE = ROOT / "results" / "reference" / "lr_adam-smoke"
EXAMPLE = ROOT / "docs" / "examples" / "lr_adam"
TEXT_SUFFIXES = (".md", ".csv")  # the plots' bytes depend on matplotlib's version: compared by name only


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_committed_search_report_is_what_bench_report_writes_from_the_committed_search(tmp_path):
    database = REFERENCE / "lr_adam.db"
    stored = _sha256(database)
    run_python("-m", "bench", "report", "lr_adam", "--scale", "smoke", "--records", str(REFERENCE.relative_to(ROOT)),
               "--storage", f"sqlite:///{database.relative_to(ROOT)}", "--out", str(tmp_path))
    written = tmp_path / "lr_adam"
    names = sorted(path.name for path in EXAMPLE.iterdir())
    assert sorted(path.name for path in written.iterdir()) == names
    assert {"report.md", "best.md", "trials.csv"} <= set(names)
    for name in names:
        if name.endswith(TEXT_SUFFIXES):
            assert (written / name).read_bytes() == (EXAMPLE / name).read_bytes(), name
    assert _sha256(database) == stored  # read only: no byte changed, and no journal left beside it
    assert not [path.name for path in REFERENCE.iterdir() if path.name.startswith("lr_adam.db-")]


def test_the_citation_file_is_cff_with_the_packages_version():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert {"cff-version", "message", "title", "authors"} <= set(citation)
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["title"] == project["name"] and citation["version"] == project["version"]
    assert citation["license"] == project["license"]
    cited = {reference["title"].split(":")[0]: reference for reference in citation["references"]}
    assert set(cited) == {"QANet", "SQuAD", "GloVe"}
    assert all({"type", "title", "authors", "year"} <= set(reference) for reference in cited.values())
