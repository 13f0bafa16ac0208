"""The extension's tests are node:test files (tests/extension/*.test.mjs); this runs them
under pytest, so that `make test` covers them too. Run them directly with

    node --test tests/extension/
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _node_test(*files: str, timeout: int) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; `make deps` sets up Node and the npm packages")
    if not (ROOT / "node_modules/playwright-core").exists():
        pytest.fail("node_modules is missing; run `npm ci` (or `make deps`)")
    r = subprocess.run([node, "--test", "--test-reporter=spec", *files], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"node --test {' '.join(files)} failed:\n{r.stdout[-12000:]}\n{r.stderr[-4000:]}"


def _need_browser_tools() -> None:
    for tool in ("Xvfb", "xdotool", "chromium"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; `make chromium` installs chromium, xvfb and xdotool")


def test_modules_and_build():
    units = sorted(str(p) for p in HERE.glob("*unit.test.mjs"))  # unit.test.mjs, faces.unit.test.mjs
    _node_test(*units, str(HERE / "build.test.mjs"), timeout=600)


@pytest.mark.browser
def test_in_chromium():
    _need_browser_tools()
    _node_test(str(HERE / "browser.test.mjs"), timeout=890)


@pytest.mark.browser
def test_video_checks_in_chromium():
    _need_browser_tools()
    _node_test(str(HERE / "video.browser.test.mjs"), timeout=890)


@pytest.mark.browser
def test_provenance_in_chromium():
    _need_browser_tools()
    _node_test(str(HERE / "provenance.browser.test.mjs"), timeout=890)


@pytest.mark.browser
def test_history_and_reports_in_chromium():
    _need_browser_tools()  # and unzip, which the export test reads the zip with
    if shutil.which("unzip") is None:
        pytest.fail("unzip is not installed; `make chromium` installs it")
    _node_test(str(HERE / "history.test.mjs"), timeout=890)
