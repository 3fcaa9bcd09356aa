"""Open a report page from disk with the network shut, and list what went wrong.

Chromium is told to block every http(s) and websocket address, so a page that still reaches for
a CDN fails the same way whether or not the machine is online. A blocked fetch leaves no console
message, but it does leave a resource timing entry (file:// loads leave none), so
:func:`remote_requests` lists what the page tried to fetch from the network, style sheets' fonts
and images included.
"""

from __future__ import annotations

from pathlib import Path

_BLOCKED = ["http://*", "https://*", "ws://*", "wss://*"]
_REMOTE_REQUESTS_JS = """
return performance.getEntriesByType('resource').map(entry => entry.name)
  .filter(address => !address.startsWith('file:') && !address.startsWith('data:'));
"""


def open_offline(driver, page: Path) -> None:
    """Load ``page`` from file:// with every remote address blocked."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": _BLOCKED})
    driver.get(Path(page).resolve().as_uri())


def remote_requests(driver) -> list[str]:
    """The addresses the current page tried to fetch from another host."""
    return driver.execute_script(_REMOTE_REQUESTS_JS)


def page_errors(driver, tolerated: tuple[str, ...] = ()) -> list[str]:
    """The console's errors (scripts that threw, local files that failed to load), minus those
    naming one of ``tolerated``. Reading the log empties it."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"
            and not any(name in entry["message"] for name in tolerated)]
