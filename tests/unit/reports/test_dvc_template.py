"""`dvc plots show` renders offline with the project's HTML template, from the project root and
from a pipeline folder."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.browser import headless_chromium, wait_for
from support.offline_pages import open_offline, page_errors, remote_requests
from support.project import ROOT

from pixelflip.reports.assets import read_manifest
from pixelflip.reports.dvc_template import TEMPLATE_PATH, template_text

DVC = str(Path(sys.executable).with_name("dvc"))
PIPELINE_FOLDER = "pipelines/example"
PLOTS_YAML = """\
plots:
  - Loss:
      template: linear
      x: epoch
      y:
        history.csv: loss
"""
# Per plot div (DVC writes them straight into <body>; vega-embed replaces each one's script
# with the chart): how many of its canvas's pixels are saturated colour. Axes, grid and text
# are grey, so only drawn marks (the line, the legend's symbol) count.
_COLOURED_PIXELS_JS = """
return [...document.querySelectorAll('body > div[id]')].map(div => {
    const canvas = div.querySelector('canvas');
    if (!canvas || !canvas.width) return 0;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let coloured = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      const [red, green, blue, alpha] = pixels.slice(i, i + 4);
      if (alpha > 200 && Math.max(red, green, blue) - Math.min(red, green, blue) > 60) coloured++;
    }
    return coloured;
  });
"""


def test_committed_template_is_the_one_the_vendored_files_make():
    # Rebuilt by `python -m pixelflip.reports.vendor`; a stale copy would ship other scripts.
    assert TEMPLATE_PATH.read_text(encoding="utf-8") == template_text()


def test_template_inlines_the_vendored_vega_and_leaves_dvc_no_place_for_cdn_scripts():
    from dvc_render.html import HTML

    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert "{" + HTML.PLOTS_PLACEHOLDER + "}" in text
    assert "{" + HTML.SCRIPTS_PLACEHOLDER + "}" not in text
    for name in ("vega", "vega-lite", "vega-embed"):
        (package,) = [package for package in read_manifest().packages if package.npm == name]
        (script,) = [file for file in package.files if file.path.endswith(".min.js")]
        assert script.local_path.read_text(encoding="utf-8") in text


def test_a_dvc_render_script_the_manifest_lacks_raises_naming_it():
    manifest = read_manifest()
    without_vega = dataclasses.replace(manifest, packages=tuple(
        package for package in manifest.packages if package.npm != "vega"))

    with pytest.raises(ValueError, match=r"https://cdn\.jsdelivr\.net/npm/vega@5\.20\.2"):
        template_text(without_vega)


def test_project_config_points_dvc_at_the_template():
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        configured = repo.config["plots"]["html_template"]
        # DVC reads a relative plots.html_template from the .dvc folder.
        assert Path(os.path.join(repo.dvc_dir, configured)).resolve() == TEMPLATE_PATH


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def plots_repo(tmp_path_factory) -> Path:
    """A git + DVC repository with the project's .dvc/config and template, one CSV plot at the
    root and one in a pipeline folder."""
    repo = tmp_path_factory.mktemp("plots") / "repo"
    repo.mkdir()
    _run(["git", "init", "-q"], repo)
    _run([DVC, "init", "-q"], repo)
    # The same layout as the project, so the config's relative path resolves as it does there.
    shutil.copy2(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    template = repo / TEMPLATE_PATH.relative_to(ROOT)
    template.parent.mkdir(parents=True)
    shutil.copy2(TEMPLATE_PATH, template)
    for folder in (repo, repo / PIPELINE_FOLDER):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "history.csv").write_text("epoch,loss\n1,0.9\n2,0.5\n3,0.3\n")
        (folder / "dvc.yaml").write_text(PLOTS_YAML)
    return repo


@pytest.mark.parametrize("folder", ["", PIPELINE_FOLDER], ids=["root", "pipeline-folder"])
def test_dvc_plots_show_renders_vega_offline_from_disk(plots_repo, folder):
    cwd = plots_repo / folder
    shown = _run([DVC, "plots", "show"], cwd)
    page = cwd / "dvc_plots" / "index.html"
    assert page.as_uri() in shown.stdout
    plots = page.read_text(encoding="utf-8").count("vegaEmbed('#")
    assert plots >= 1

    with headless_chromium() as driver:
        open_offline(driver, page)
        coloured = wait_for(
            driver,
            lambda driver: (counts := driver.execute_script(_COLOURED_PIXELS_JS))
            and all(counts) and counts,
            "vega drew no marks in the plot divs")
        assert len(coloured) == plots
        assert page_errors(driver) == [] and remote_requests(driver) == []
