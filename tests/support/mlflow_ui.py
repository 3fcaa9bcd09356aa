"""The MLflow UI of a test project, as a user opens it, driven in headless Chromium.

:class:`MlflowUi` runs ``python -m pixelflip.tracking.ui`` (what ``make ui`` runs) in a
project, on a free port, and reads the address it prints. The page helpers wait for the
single-page app to render what they look for, since the React app fetches everything after the
page has loaded. The routes come from :mod:`pixelflip.tracking.ui`:

- ``#/experiments/<id>/runs?workflowType=machine_learning``: the runs table;
- ``#/experiments/<id>/runs/<run id>/model-metrics``: a run's image grid (``mlflow.log_image``);
- ``#/experiments/<id>/runs/<run id>/artifacts/<path>``: one artifact, a table shown as one.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from pixelflip.tracking.ui import run_url
from support.browser import RENDER_TIMEOUT_S, wait_for
from support.mlflow_server import MlflowServer

#: The runs table's rows (ag-grid), one per run shown.
RUN_ROWS = "[role=row][row-id]"
#: The button in a parent run's name cell that shows or hides its child runs.
EXPAND_BUTTON = "button[data-component-id*='runnamecellrenderer']"
# Height that shows a pipeline's parent and all its children without scrolling the grid
# (ag-grid only renders rows near the visible ones).
_WINDOW_SIZE = (1400, 2400)


class MlflowUi(MlflowServer):
    """``python -m pixelflip.tracking.ui --port <free port>`` run in ``project``."""

    def __init__(self, project: Path, folder: Path):
        super().__init__(folder)
        self.cwd = Path(project)
        self.env = {key: value for key, value in os.environ.items()
                    if key != "MLFLOW_TRACKING_URI"}
        # One worker and no job runner (GenAI jobs): the UI is all the test needs.
        self.env.update(PYTHONPATH=str(self.cwd / "src"), MLFLOW_LOGGING_LEVEL="WARNING",
                        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pixelflip.tracking.ui", "--port", str(self.port),
                "--workers", "1"]

    def printed_url(self) -> str:
        """The runs table address the command printed."""
        match = re.search(r"http://\S+#/experiments/\S+", self.log())
        if match is None:
            raise AssertionError(f"no UI address in the output:\n{self.log()[-2000:]}")
        return match.group(0)


def open_page(driver, url: str) -> None:
    driver.set_window_size(*_WINDOW_SIZE)
    driver.get(url)


def listed_run_names(driver) -> set[str]:
    """The names of the runs the runs table shows, children of expanded parents included."""
    names = set()
    for row in driver.find_elements("css selector", RUN_ROWS):
        for link in row.find_elements("css selector", "a[href*='/runs/']"):
            if link.text.strip():
                names.add(link.text.strip())
    return names


def expand_parent_runs(driver) -> None:
    """Open every collapsed parent row of the runs table, so its child runs are listed."""
    rows = wait_for(driver, lambda page: page.find_elements("css selector", RUN_ROWS),
                    "the runs table shows no run")
    for button in driver.find_elements("css selector", EXPAND_BUTTON):
        button.click()
    wait_for(driver, lambda page: len(page.find_elements("css selector", RUN_ROWS)) > len(rows),
             "expanding the parent runs listed no child run")


def wait_for_runs(driver, names: set[str]) -> set[str]:
    """Wait until the runs table lists every run in ``names``; the names it lists."""
    wait_for(driver, lambda page: names <= listed_run_names(page),
             f"the runs table does not list all of {sorted(names)}")
    return listed_run_names(driver)


def rendered_images(driver, source_part: str) -> list[int]:
    """Natural widths of the loaded ``<img>`` whose address contains ``source_part``."""
    return driver.execute_script(
        "return Array.from(document.images)"
        ".filter(image => image.src.includes(arguments[0]) && image.complete)"
        ".map(image => image.naturalWidth).filter(width => width > 0);", source_part)


def wait_for_images(driver, source_part: str, timeout_s: float = RENDER_TIMEOUT_S) -> list[int]:
    """Wait until an image from an address containing ``source_part`` has rendered."""
    return wait_for(driver, lambda page: rendered_images(page, source_part),
                    f"no image from an address with {source_part!r} rendered",
                    timeout_s=timeout_s)


def open_run_tab(driver, base_url: str, experiment_id: str, run_id: str, tab: str) -> None:
    """Open a run's ``tab`` (``model-metrics``, ``artifacts/<path>``)."""
    open_page(driver, run_url(base_url, experiment_id, run_id, tab))
    # The route is the app's: a page that redirected elsewhere would show something else.
    wait_for(driver, lambda page: f"/runs/{run_id}/" in page.current_url,
             f"the UI left the run page {tab}")
