"""Debian's headless Chromium through Playwright (never a downloaded browser), for page tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.services import unavailable

CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser, closed afterwards; a missing Chromium or Playwright is `unavailable`."""
    if not CHROMIUM.exists():
        unavailable("chromium", FileNotFoundError(f"{CHROMIUM}; `make system-deps` installs it"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable("playwright", exc)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()
