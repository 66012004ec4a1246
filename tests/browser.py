"""Headless Debian Chromium driven by Selenium: tests that look at a page as a person would.

The browser and its driver are the system's (Debian packages `chromium` and
`chromium-driver`, installed by `make tools`); nothing is downloaded — the driver's path is
given, so Selenium Manager never runs. `require_browser()` skips when they are missing,
and fails instead under CI=true, like the other real components.

Screenshots for the docs: `UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/test_dashboard.py`
writes them to docs/img/; otherwise they go to the test's scratch folder (still taken, so
the path stays tested, but a test run leaves the working tree as it found it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.prometheus_server import require

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "img"


def unavailable() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (run `make tools`: Debian package {package})"
    return None


def require_browser() -> None:
    require("Chromium", unavailable())


def new_driver(width: int = 1280, height: int = 900) -> WebDriver:
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root (containers), where the sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def save_screenshot(driver: WebDriver, name: str, scratch: Path, width: int = 1280) -> Path:
    """The whole page (the window grown to its height, up to 2,600 px) as PNG `name`."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else scratch
    folder.mkdir(parents=True, exist_ok=True)
    before = driver.get_window_size()
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(max(height + 20, 600), 2600))
    driver.save_screenshot(str(folder / name))
    driver.set_window_size(before["width"], before["height"])
    return folder / name


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """A fresh headless Chromium for one test (its own profile: no shared storage)."""
    require_browser()
    driver = new_driver()
    try:
        yield driver
    finally:
        driver.quit()
