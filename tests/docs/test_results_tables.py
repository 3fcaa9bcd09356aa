"""The result tables of README.md and docs/ are the pipeline's files, written by
docs/results_tables.py; the README stays a short front page that links every docs page."""

import importlib.util
import re
import subprocess

import pytest
from support.project import ROOT

README_MAX_LINES = 200


def load_script():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "docs/results_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed(script):
    """The files as the checkout's HEAD has them, or None outside a git checkout."""
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT,
                            capture_output=True, text=True)
    return script.Files(ROOT, revision="HEAD") if inside.returncode == 0 else None


def stable(script):
    """HEAD's files where HEAD has the pipeline's results, else the working tree's: a
    `dvc exp run` in the workspace (or one that failed half way) must not fail these tests."""
    files = committed(script)
    return files if files is not None and files.exists("summary/data.json") else script.Files()


def test_every_page_matches_the_results_it_was_written_from():
    # The working tree's results, or the committed ones: a `dvc exp run` in the workspace
    # rewrites metrics/ and summary/ but leaves the committed pages true of the committed run.
    script = load_script()
    sources = [script.Files(ROOT), committed(script)]
    for page in [*script.PAGES, script.RESULTS_PAGE]:
        text = (ROOT / page).read_text()
        matches = []
        for files in filter(None, sources):
            try:
                matches.append(script.rendered_pages(files)[page] == text)
            except FileNotFoundError:  # a file the committed revision does not have yet
                matches.append(False)
        assert any(matches), f"{page} is stale: run `python docs/results_tables.py`"


def test_the_pages_mark_the_tables_of_both_pipelines_and_the_benchmarks():
    script = load_script()
    names = [name for page in script.PAGES
             for name in script.MARKED.findall((ROOT / page).read_text())]
    assert {"summary", "benchmark-quick_start", "photos-comparison", "photos-counterfactuals",
            "photos-attributions", "benchmark-alibi_comparison",
            "benchmark-region_counterfactuals"} <= set(names)


def test_a_table_is_rebuilt_from_the_files_not_kept():
    script = load_script()
    stale = "<!-- results:comparison -->\n| made up |\n<!-- /results -->"
    rendered = script.render(stale, stable(script))
    assert "| made up |" not in rendered and "| base | none |" in rendered


def test_an_unknown_table_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known: summary, comparison"):
        load_script().render("<!-- results:nonsense -->\n<!-- /results -->")


def test_photo_tables_come_from_the_photo_pipeline_folder():
    script = load_script()
    files = stable(script)
    digits = script.render("<!-- results:comparison -->\n<!-- /results -->", files)
    photos = script.render("<!-- results:photos-comparison -->\n<!-- /results -->", files)
    assert "| simple_cnn |" in digits and "separable_resnet" not in digits
    assert "| separable_resnet |" in photos and "simple_cnn" not in photos


def test_a_benchmark_table_is_the_markdown_its_script_wrote():
    written = (ROOT / "benchmarks/results/region_counterfactuals.md").read_text()
    rendered = load_script().render(
        "<!-- results:benchmark-region_counterfactuals -->\n| old |\n<!-- /results -->")
    assert "| old |" not in rendered and written.strip() in rendered


class ChangedDataCounts:
    """The files of ``files`` with the data stage's file count replaced."""

    def __init__(self, files, num_files: int):
        self.files, self.num_files = files, num_files

    def __getattr__(self, name):
        return getattr(self.files, name)

    def json(self, path):
        value = self.files.json(path)
        return {**value, "num_files": self.num_files} if str(path).endswith("data.json") and (
            "num_files" in value) else value


def test_the_results_page_follows_a_changed_metrics_file():
    script = load_script()
    files = stable(script)
    page = script.results_page(ChangedDataCounts(files, 123456))
    assert "123,456 files" in page
    assert page != script.results_page(files)


def test_the_readme_is_a_short_front_page_with_the_two_command_quick_start():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^make \w+", quick_start.split("```bash", 1)[1].split("```", 1)[0],
                          flags=re.M)
    assert commands == ["make repro", "make test"]
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_every_docs_page_is_linked_from_the_readme_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text()
    pages = sorted(path.name for path in (ROOT / "docs").glob("*.md"))
    for name in pages:
        assert f"](docs/{name})" in readme, f"README.md does not link docs/{name}"
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links a missing {target}"


def test_no_page_sends_the_reader_to_an_issue_they_have_never_seen():
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        assert not re.search(r"\bissue \d+", page.read_text()), page.name
