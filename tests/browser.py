"""Headless Debian Chromium for tests that look at a page as a person would.

Chromium and its driver are Debian's packages `chromium` and `chromium-driver` (`make
browser`, which `make test` runs): no browser is downloaded. Selenium drives them at their
fixed paths; Selenium Manager never runs, since the driver's path is given.

    require_browser()                        # skip locally, FAIL under CI=true, when missing
    with chromium(offline=True) as browser:  # no request can leave the machine
        browser.get(page.as_uri())
        assert console_errors(browser) == []
        assert external_requests(browser) == []

`offline=True` takes the network away twice: Chrome DevTools' Network.emulateNetworkConditions
(offline) and a proxy on a closed local port for anything that would still try; the
performance log then lists every request the page made, so a test can also show none went out.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.prometheus_server import require

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CLOSED_PORT_PROXY = "127.0.0.1:9"  # discard port: nothing listens, every proxied request fails
_LOCAL = ("file:", "data:", "about:", "blob:")


def unavailable() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            return f"{path} is missing (run `make browser`: Debian package {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (make install)"
    return None


def require_browser() -> None:
    require("Chromium", unavailable())


@contextmanager
def chromium(*, width: int = 1280, height: int = 900, offline: bool = False) -> Iterator[Any]:
    """A headless Chromium (Selenium WebDriver) that logs console messages and requests."""
    driver = new_driver(width, height, offline=offline)
    try:
        yield driver
    finally:
        driver.quit()


def new_driver(width: int = 1280, height: int = 900, *, offline: bool = False) -> Any:
    """A headless Chromium the caller quits; quitting also removes its throwaway profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tidegate-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    if offline:
        options.add_argument(f"--proxy-server={CLOSED_PORT_PROXY}")
        options.add_argument("--proxy-bypass-list=<-loopback>")  # loopback too goes to the closed proxy
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    quit_driver = driver.quit

    def quit_and_clean() -> None:
        try:
            quit_driver()
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quit_and_clean  # type: ignore[method-assign]
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        if offline:
            conditions = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
            driver.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)
    except BaseException:
        driver.quit()
        raise
    return driver


def console_errors(driver: Any) -> list[str]:
    """Console errors and uncaught exceptions since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (from the DevTools performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def external_requests(driver: Any) -> list[str]:
    return [url for url in requested_urls(driver) if not url.startswith(_LOCAL)]


def phone(driver: Any, width: int = 390, height: int = 844) -> None:
    """Lay the page out as a phone does: a narrow viewport, mobile meta viewport honoured."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def screenshot(driver: Any, path: Path, width: int, height: int) -> None:
    """The top `height` CSS pixels of the page at `width`, below the fold included, as PNG."""
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


# --- for the dashboard tests: one driver per test, screenshots for the docs on request -------

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "img"


def save_screenshot(driver: Any, name: str, scratch: Path, width: int = 1280) -> Path:
    """The whole page (the window grown to its height, up to 2,600 px) as PNG `name`: into
    docs/img/ with UPDATE_SCREENSHOTS=1, else the test's scratch folder (a test run leaves
    the working tree as it found it)."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else scratch
    folder.mkdir(parents=True, exist_ok=True)
    before = driver.get_window_size()
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(max(height + 20, 600), 2600))
    driver.save_screenshot(str(folder / name))
    driver.set_window_size(before["width"], before["height"])
    return folder / name
