"""Headless Chromium (Debian's ``chromium`` and ``chromedriver``) driven through Selenium.

``.ci/run`` installs both where they are missing, so under CI a missing browser is a failure;
elsewhere the browser tests skip and say how to get one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Seconds a test waits for a page's scripts to render what it asserts on.
RENDER_TIMEOUT_S = 60.0
# The flags of a closed network: without the background-networking ones Chromium keeps
# calling Google's hosts, and each refused connection slows start-up.
_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--window-size=1400,1000")


def require_browser() -> None:
    """Skip (or, under CI, fail) when Chromium or its ChromeDriver is not installed."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        message = (f"{', '.join(missing)} not found: install Debian's packages with "
                   "`apt-get install chromium chromium-driver` (.ci/run does)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def headless_chromium() -> Iterator:
    """A Selenium ``webdriver.Chrome`` on a fresh profile; quits on exit."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in _FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="pixelflip-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        # The console log tells a test which asset failed to load.
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(RENDER_TIMEOUT_S)
        try:
            yield driver
        finally:
            driver.quit()


def wait_for(driver, condition, message: str, timeout_s: float = RENDER_TIMEOUT_S):
    """``condition(driver)`` once it is truthy; fails with ``message`` and the console log."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s).until(condition)
    except TimeoutException:
        console = "\n".join(entry["message"] for entry in driver.get_log("browser"))
        pytest.fail(f"{message} (after {timeout_s:.0f} s); browser console:\n{console}")
