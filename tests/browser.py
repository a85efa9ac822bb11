"""A headless Chromium for the tests that look at pages as a reader would (the run report, the
documentation site); the tests skip with a message when none is installed."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')


def browser_or_skip() -> str:
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip(f'no headless browser installed (looked for {", ".join(BROWSERS)}); '
                    f'install chromium to run this check')
    return browser


def flags(profile: Path) -> list[str]:
    return ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
            f'--user-data-dir={profile}']


def screenshot(browser: str, url: str, shot: Path, size: tuple[int, int],
               profile: Path) -> None:
    """``url`` rendered at ``size`` (width, height) into the PNG ``shot``."""
    subprocess.run([browser, *flags(profile), f'--screenshot={shot}',
                    f'--window-size={size[0]},{size[1]}', url],
                   capture_output=True, timeout=120, check=True)


def dom(browser: str, url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran."""
    return subprocess.run([browser, *flags(profile), '--dump-dom', url], capture_output=True,
                          text=True, timeout=120, check=True).stdout
