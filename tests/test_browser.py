"""The real app in a real browser: every page opens in headless Chromium with no
Streamlit exception and no console error, a confusion cell is clicked, and a screenshot
of each page is saved to screenshots/ for people to look at."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "screenshots"
# Flags for a closed network: no background connections, no first-run, no updates.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = ["", "browse", "errors", "feature_maps", "attributions", "your_digit"]

pytestmark = pytest.mark.browser


def _need_browser():
    if CHROMIUM.exists():
        return
    if os.environ.get("REQUIRE_BROWSER"):
        pytest.fail("REQUIRE_BROWSER is set but /usr/bin/chromium is missing: apt-get install chromium")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(reference_model, model_cache, tmp_path_factory):
    _need_browser()
    port = _free_port()
    env = {**os.environ, "MNIST_CNN_CACHE": str(model_cache)}
    log = tmp_path_factory.mktemp("streamlit") / "server.log"  # a file, not a pipe nobody reads
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/Home.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start: {log.read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def wait_for_app(page, charts: bool = True) -> None:
    """Until the page's title is drawn, the script has finished running and (``charts``) a
    Plotly chart is laid out; then a moment for the rest to settle."""
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=90_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=90_000)
    if charts:
        page.wait_for_function(
            "() => { const g = document.querySelector('.js-plotly-plot'); return g && g._fullLayout; }",
            timeout=90_000,
        )
    page.wait_for_timeout(1500)


def open_page(browser, url: str, path: str):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors: list[str] = []
    # Opened at a page's own URL, Streamlit's frontend first probes <page>/_stcore/health
    # and host-config, gets 404 and falls back to the root: expected, so not counted.
    # Every other failed response or console error is.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error"
            and not m.text.startswith("Failed to load resource: the server responded with a status of 404")
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "/_stcore/" not in r.url else None,
    )
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(f"{url}/{path}")
    wait_for_app(page, charts=path != "your_digit")
    return page, errors


def assert_clean(page, errors: list[str]) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()
    assert not errors, errors


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_cleanly(browser, app_url, path):
    page, errors = open_page(browser, app_url, path)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{path or 'overview'}.png"), full_page=True)
    assert_clean(page, errors)
    if path != "your_digit":  # that page waits for a drawing
        assert page.locator(".js-plotly-plot").count() > 0
    page.close()


def test_clicking_a_confusion_cell_shows_its_digits(browser, app_url):
    page, errors = open_page(browser, app_url, "errors")
    matrix = page.locator(".js-plotly-plot").first
    # The cell true 4 -> predicted 9: find its marker by its data coordinates.
    box = page.evaluate(
        """() => {
            const gd = document.querySelector('.js-plotly-plot');
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const r = gd.getBoundingClientRect();
            return {x: r.left + xa._offset + xa.d2p(9), y: r.top + ya._offset + ya.d2p(4)};
        }"""
    )
    assert matrix.is_visible()
    page.mouse.click(box["x"], box["y"])
    try:
        page.wait_for_function(
            "() => document.querySelector('[data-testid=stMain]').innerText.includes('true 4, predicted 9')",
            timeout=60_000,
        )
    finally:
        body = page.locator('[data-testid="stMain"]').inner_text()
    assert "true 4, predicted 9" in body, body[:2000]
    wait_for_app(page)
    page.screenshot(path=str(SHOTS / "errors_cell.png"), full_page=True)
    assert_clean(page, errors)
    page.close()


def test_drawing_a_digit_gets_a_live_prediction(browser, app_url):
    page, errors = open_page(browser, app_url, "your_digit")
    page.wait_for_selector("canvas", timeout=30_000)
    canvas = page.locator("canvas").last
    box = canvas.bounding_box()
    assert box and box["width"] >= 200

    def stroke(points):
        page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
        page.mouse.up()

    stroke([(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)])  # a seven: the bar, then the diagonal
    page.wait_for_selector("text=the network reads", timeout=60_000)
    wait_for_app(page)
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "your digit: the network reads" in body
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "your_digit_drawn.png"), full_page=True)
    assert_clean(page, errors)
    page.close()
