"""The README's result tables are the pipeline's files, written by docs/results_tables.py."""

import importlib.util

from support.project import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "docs/results_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_tables_match_the_committed_metrics():
    readme = (ROOT / "README.md").read_text()
    # Six of the digits default and the photo pipeline, and the region benchmark's.
    assert readme.count("<!-- results:") == 8
    assert load_script().render(readme) == readme, (
        "README.md's result tables are stale: run `python docs/results_tables.py`")


def test_a_table_is_rebuilt_from_the_files_not_kept():
    stale = "<!-- results:comparison -->\n| made up |\n<!-- /results -->"
    rendered = load_script().render(stale)
    assert "| made up |" not in rendered and "| base | none |" in rendered


def test_photo_tables_come_from_the_photo_pipeline_folder():
    script = load_script()
    digits = script.render("<!-- results:comparison -->\n<!-- /results -->")
    photos = script.render("<!-- results:photos-comparison -->\n<!-- /results -->")
    assert "| simple_cnn |" in digits and "separable_resnet" not in digits
    assert "| separable_resnet |" in photos and "simple_cnn" not in photos


def test_a_benchmark_table_is_the_markdown_its_script_wrote():
    written = (ROOT / "benchmarks/results/region_counterfactuals.md").read_text()
    rendered = load_script().render(
        "<!-- results:benchmark-region_counterfactuals -->\n| old |\n<!-- /results -->")
    assert "| old |" not in rendered and written.strip() in rendered
