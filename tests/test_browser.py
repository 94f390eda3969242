"""The real app in a real browser: every page opens in headless Chromium with no
Streamlit exception and no console error, a confusion cell is clicked, and a screenshot
of each page is saved to screenshots/ for people to look at."""

from __future__ import annotations

import os
import re
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
PAGES = [
    *("", "browse", "errors", "data_map", "labels", "influence"),
    *("feature_maps", "units", "attributions", "trust", "your_digit", "probe"),
]
# They wait for a drawing, for a click to compute, or (labels, influence) for the training digits'
# bank, computed in the background on a first visit.
NO_CHARTS = ("your_digit", "trust", "labels", "influence")

# Their first run draws their charts: seen as soon as the script is idle, no second run needed.
DRAWN_AT_FIRST_IDLE = ("attributions", "feature_maps", "errors", "browse")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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


def start_server(cache: Path, log: Path, app_args: tuple[str, ...] = ()):
    """``streamlit run dashboard/Home.py [-- APP_ARGS]`` on a free port with ``cache`` as its
    model cache; returns the process and its URL once it answers."""
    _need_browser()
    port = _free_port()
    env = {**os.environ, "MNIST_CNN_CACHE": str(cache)}
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
            *(("--", *app_args) if app_args else ()),
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
    return proc, url


@pytest.fixture(scope="module")
def app_url(reference_model, model_cache, tmp_path_factory):
    log = tmp_path_factory.mktemp("streamlit") / "server.log"  # a file, not a pipe nobody reads
    proc, url = start_server(model_cache, log)
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
    wait_for_idle(page)
    if charts:
        page.wait_for_function(
            "() => { const g = document.querySelector('.js-plotly-plot'); return g && g._fullLayout; }",
            timeout=90_000,
        )
    page.wait_for_timeout(1500)


SCRIPT_STATE = "() => document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state')"


def wait_for_idle(page, timeout_ms: int = 90_000) -> None:
    """Until the script has finished its run. The app's own flag, not the running-man widget,
    which Streamlit shows only after a delay (a page seen without it may still be running)."""
    page.wait_for_function(f"() => ({SCRIPT_STATE})() === 'notRunning'", timeout=timeout_ms)


def open_page(browser, url: str, path: str):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors = watch_errors(page, url)
    page.goto(f"{url}/{path}")
    if path.split("?")[0] in DRAWN_AT_FIRST_IDLE:
        page.wait_for_selector('[data-testid="stMain"] h1', timeout=90_000)
        wait_for_idle(page)
        _charts_without_another_run(page, path)
    wait_for_app(page, charts=path not in NO_CHARTS)
    return page, errors


def _charts_without_another_run(page, path: str, grace_s: float = 10) -> None:
    """The run just finished drew charts: the browser lays them out (Plotly's code loads
    lazily, about a second on a first page) while the script stays idle."""
    deadline = time.monotonic() + grace_s
    while not page.locator('[data-testid="stMain"] [data-testid="stPlotlyChart"]').count():
        assert page.evaluate(SCRIPT_STATE) == "notRunning", f"{path}: its charts needed a second run"
        assert time.monotonic() < deadline, f"{path}: no chart {grace_s} s after its first run"
        time.sleep(0.05)


def _expected_probe(url: str, base: str) -> bool:
    """Opened at a page's own URL, Streamlit's frontend first probes
    ``<page>/_stcore/health`` and ``<page>/_stcore/host-config``, gets 404 and falls back to
    the root. Those two requests, and only they, are expected to fail."""
    path = url.removeprefix(base).split("?")[0]
    parts = path.strip("/").split("/")
    return len(parts) == 3 and parts[0] in PAGES and parts[1] == "_stcore" and parts[2] in ("health", "host-config")


def watch_errors(page, base: str) -> list[str]:
    """Every console error, page error and failed request, except the expected probes."""
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(f"{m.text} ({m.location.get('url', '')})")
            if m.type == "error" and not _expected_probe(m.location.get("url", ""), base)
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}") if r.status >= 400 and not _expected_probe(r.url, base) else None
        ),
    )
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    return errors


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
    if path not in NO_CHARTS:
        assert page.locator(".js-plotly-plot").count() > 0
    page.close()


def test_trust_badges_are_one_compact_line_each(browser, app_url):
    """Under the five compared maps, five badges of the same width, each one line (a word and
    three marks); a screenshot of the maps with their badges for the README."""
    page, errors = open_page(browser, app_url, "attributions")
    badges = page.locator('[data-testid="stMain"] [data-testid="stPopover"] button:visible')
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=stMain] [data-testid=stPopover] button').length >= 5",
        timeout=60_000,
    )
    boxes = [badges.nth(i).bounding_box() for i in range(5)]
    words = [badges.nth(i).inner_text() for i in range(5)]
    # Each: a material icon (its name is its text), the word, then the marks.
    assert all(sum(word in w for word in ("trust", "doubt", "blank")) == 1 for w in words), words
    assert all(len([c for c in w if c in "✔✖–"]) == 3 for w in words), words
    assert max(b["width"] for b in boxes) - min(b["width"] for b in boxes) < 2
    assert max(b["height"] for b in boxes) < 48  # one line: a wrapped label would be twice as tall
    SHOTS.mkdir(exist_ok=True)
    top = boxes[0]["y"] - 330  # the row of maps above the badges
    page.screenshot(
        path=str(SHOTS / "trust_badges.png"),
        clip={
            "x": boxes[0]["x"] - 10,
            "y": top,
            "width": boxes[4]["x"] + boxes[4]["width"] - boxes[0]["x"] + 20,
            "height": boxes[0]["y"] + boxes[0]["height"] - top + 75,
        },
    )
    assert_clean(page, errors)
    page.close()


def test_attributions_opened_from_the_sidebar_draw_on_their_first_run(browser, app_url):
    """A digit this server has not explained, then Attributions from the sidebar on a busy
    machine: the maps come within a moment or a spinner says they are coming, the same for their
    badges, and at the run's end (its first idle) the maps and their five badges are drawn."""
    page, errors = open_page(browser, app_url, "browse?split=test&index=4321")
    # A busy machine, as a classroom's server is: processes that only spin, one more than the cores.
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Attributions").click()
        page.wait_for_url("**/attributions**")
        seen = _watch_first_run(page)
    finally:
        for proc in busy:
            proc.kill()
    maps = next(t for t, (_, maps, _, _) in seen if maps)
    badges = next(t for t, (_, _, _, badges) in seen if badges)
    spinning = [t for t, (_, _, spinner, _) in seen if spinner]
    assert maps < 1.5 or any(t < maps for t in spinning), f"maps at {maps:.1f} s, no spinner before: {seen}"
    assert badges - maps < 1.5 or any(maps <= t < badges for t in spinning), f"badges late, no spinner: {seen}"
    assert seen[-1][1][0] == "notRunning"
    assert page.locator('[data-testid="stMain"] .js-plotly-plot').count() >= 1
    assert page.locator('[data-testid="stMain"] [data-testid="stPopover"]').count() == 5
    assert "#4,321" in page.inner_text('[data-testid="stMain"]')
    assert_clean(page, errors)
    page.close()


def _watch_first_run(page) -> list[tuple[float, tuple]]:
    """From now to the end of the script's run, every change of (script state, charts, spinners,
    badges) on the page, with the seconds it came at."""
    started = time.monotonic()
    main = '[data-testid="stMain"] '
    seen: list[tuple[float, tuple]] = []
    while True:
        now = (
            page.evaluate(SCRIPT_STATE),
            page.locator(main + '[data-testid="stPlotlyChart"]').count(),
            page.locator(main + '[data-testid="stSpinner"]').count(),
            page.locator(main + '[data-testid="stPopover"]').count(),
        )
        waited = time.monotonic() - started
        if not seen or seen[-1][1] != now:
            seen.append((round(waited, 2), now))
        if now[0] == "notRunning" and page.locator(main + "h1").count():
            return seen
        assert waited < 120, f"the page never finished its run: {seen}"
        time.sleep(0.05)


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
    assert "cell=4%2C9" in page.url or "cell=4,9" in page.url
    page.screenshot(path=str(SHOTS / "errors_cell.png"), full_page=True)
    # The cell as a whole: the unit index, then the comparison, computed on opening the expander.
    page.get_by_text("Why are these 4s read as 9?").click()
    _wait_for_text(page, "Channels whose mean activation differs most")
    _wait_for_text(page, "The training digits nearest to each of the cell")
    wait_for_app(page)
    page.screenshot(path=str(SHOTS / "errors_cell_why.png"), full_page=True)
    assert_clean(page, errors)
    page.close()


def test_from_a_feature_map_to_a_unit_card_to_a_digit_and_back(browser, app_url):
    """Feature maps → a unit card (button) → one of its top digits (a click on the tile
    selects it: the URL names it) → the digit's strongest channels → back to its feature maps."""
    page, errors = open_page(browser, app_url, "feature_maps?index=0")
    page.get_by_role("button", name="Open the unit card").first.click()
    page.wait_for_url("**/units?*", timeout=60_000)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stMain]').innerText.includes('excite it most')", timeout=90_000
    )
    wait_for_app(page)
    assert "layer=" in page.url and "unit=" in page.url
    # The first top digit's tile: its marker's data coordinates, then a click there.
    target = page.evaluate(
        """() => {
            const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
                g => g.data.some(t => t.mode === 'markers' && t.hovertemplate.includes('click to select')));
            const t = gd._fullData.find(t => t.mode === 'markers');  // typed arrays decoded
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
            return {x: r.left + xa._offset + xa.d2p(t.x[0]), y: r.top + ya._offset + ya.d2p(t.y[0]),
                    index: Number(t.customdata[0][0] ?? t.customdata[0]["0"])};
        }"""
    )
    page.mouse.click(target["x"], target["y"])
    page.wait_for_url(f"**index={target['index']}*", timeout=60_000)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stMain]').innerText.includes('carry the evidence')",
        timeout=90_000,
    )
    wait_for_app(page)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "units_digit.png"), full_page=True)
    page.get_by_role("link", name="Its feature maps").first.click()
    page.wait_for_url(f"**/feature_maps?*index={target['index']}*", timeout=60_000)  # the same digit
    wait_for_app(page)
    assert_clean(page, errors)
    page.close()


def test_clicking_a_point_on_the_data_map_selects_that_digit(browser, app_url):
    """A point of the 10,000 (WebGL) → that digit everywhere: the URL names it, it is shown
    beside the map and ringed; its feature maps open the same digit."""
    page, errors = open_page(browser, app_url, "data_map?index=3")
    target = page.evaluate(
        """() => {
            const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g => g._fullData[0].type === 'scattergl');
            const t = gd._fullData[0], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const r = gd.getBoundingClientRect();
            // The digit farthest from the centre: no other point lies on top of it.
            let best = 0, far = -1;
            for (let i = 0; i < t.x.length; i++) {
                const d = t.x[i] * t.x[i] + t.y[i] * t.y[i];
                if (d > far) { far = d; best = i; }
            }
            const row = t.customdata[best];  // (digit, true, predicted)
            return {x: r.left + xa._offset + xa.d2p(t.x[best]), y: r.top + ya._offset + ya.d2p(t.y[best]),
                    index: Number(row[0] ?? row["0"])};
        }"""
    )
    page.mouse.click(target["x"], target["y"])
    page.wait_for_url(f"**index={target['index']}*", timeout=60_000)
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=stMain]').innerText.includes('test #{target['index']:,}')",
        timeout=60_000,
    )
    wait_for_app(page)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "data_map_clicked.png"), full_page=True)
    assert_clean(page, errors)
    page.close()


def _tile(page, grid: int = 0, tile: int = 0) -> dict:
    """Where the ``tile``-th tile of the page's ``grid``-th digit grid is, and its digit's index."""
    return page.evaluate(
        """([grid, tile]) => {
            const gd = [...document.querySelectorAll('.js-plotly-plot')].filter(
                g => g._fullData.some(t => t.name === 'tiles'))[grid];
            const t = gd._fullData.find(t => t.name === 'tiles');  // typed arrays decoded
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
            return {x: r.left + xa._offset + xa.d2p(t.x[tile]), y: r.top + ya._offset + ya.d2p(t.y[tile]),
                    index: Number(t.customdata[tile][0] ?? t.customdata[tile]["0"])};
        }""",
        [grid, tile],
    )


def _wait_for_text(page, text: str, timeout_ms: int = 120_000) -> None:
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=stMain]').innerText.includes({text!r})", timeout=timeout_ms
    )


def test_from_a_suspicious_label_to_the_training_digits_behind_its_answer(browser, app_url):
    """Suspicious labels (the bank computed in the background on a first visit) → a flagged
    training digit (the URL names it) → the training digits behind its answer → one of those."""
    page, errors = open_page(browser, app_url, "labels")
    _wait_for_text(page, "labels flagged")
    wait_for_app(page)
    first = _tile(page)
    page.mouse.click(first["x"], first["y"])
    flagged = first["index"]
    page.wait_for_url(f"**split=train*index={flagged}*", timeout=60_000)
    _wait_for_text(page, f"Selected: train #{flagged:,}")
    wait_for_app(page)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "labels_clicked.png"), full_page=True)
    page.get_by_role("link", name="The training digits behind its answer").first.click()
    page.wait_for_url(f"**/influence?*index={flagged}*", timeout=60_000)
    _wait_for_text(page, "Raised its probability")
    wait_for_app(page)
    page.screenshot(path=str(SHOTS / "influence.png"), full_page=True)
    tile = _tile(page)
    if tile["index"] == flagged:  # a training digit is often its own strongest proponent
        tile = _tile(page, tile=1)
    page.mouse.click(tile["x"], tile["y"])
    page.wait_for_url(f"**split=train*index={tile['index']}*", timeout=60_000)
    _wait_for_text(page, f"train #{tile['index']:,}")
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


def test_editing_a_digit_changes_it_in_place_and_bending_it_sweeps(browser, app_url):
    """Probe: a stroke over test #4 on the canvas → the change is drawn (red where ink was
    added) and the answer recomputed; then Bend it draws the sweep."""
    page, errors = open_page(browser, app_url, "probe?index=4")
    page.wait_for_selector("canvas", timeout=30_000)
    _wait_for_text(page, "The network still reads")
    canvas = page.locator("canvas").last
    box = canvas.bounding_box()
    assert box and box["width"] >= 200
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.25 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.25 * box["height"], steps=10)
    page.mouse.up()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.js-plotly-plot')].some(gd => {
            const t = gd._fullData && gd._fullData[1];
            if (!t || t.type !== 'heatmap' || !t.z) return false;
            return [...t.z].some(row => [...row].some(v => v !== null && !Number.isNaN(v) && v > 0));
        })""",
        timeout=60_000,
    )  # the change's heatmap has red: ink added where the stroke went
    wait_for_app(page)
    assert "probe=edit" in page.url and "index=4" in page.url
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "probe_edit.png"), full_page=True)
    page.get_by_role("radio", name="Bend it").click()
    _wait_for_text(page, "versions of test #4")
    wait_for_app(page)
    assert "probe=bend" in page.url
    page.screenshot(path=str(SHOTS / "probe_bend.png"), full_page=True)
    assert_clean(page, errors)
    page.close()


def test_the_smallest_change_and_training_tools_draw(browser, app_url):
    """Probe: a search toward 9 for test #4, reported from the network re-run on the result (the
    URL names the class); then Through training, which for a one-epoch model says so."""
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors = watch_errors(page, app_url)
    page.goto(f"{app_url}/probe?index=4&probe=change&toward=9")
    wait_for_app(page, charts=False)  # nothing is searched before the button
    page.get_by_role("button", name="Search").click()
    page.wait_for_function(
        "() => /Read as|Within its budget/.test(document.querySelector('[data-testid=stMain]').innerText)",
        timeout=60_000,
    )
    wait_for_app(page)
    assert "toward=9" in page.url
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "probe_change.png"), full_page=True)
    page.get_by_role("radio", name="Through training").click()
    _wait_for_text(page, "saved its weights once")
    page.wait_for_url("**probe=training*", timeout=30_000)
    assert_clean(page, errors)
    page.close()


def test_a_report_saved_from_the_app_opens_offline_and_a_chart_saves_as_png(browser, app_url, tmp_path):
    """Overview's "Save a report of this model" gives one HTML file that draws every figure in
    a browser with the network blocked; any chart's camera button gives a PNG."""
    page, errors = open_page(browser, app_url, "")
    chart = page.locator(".js-plotly-plot").first
    chart.hover()
    with page.expect_download(timeout=60_000) as png:
        chart.locator('.modebar-btn[data-title^="Download plot" i]').first.click()
    assert png.value.suggested_filename == "mnist-cnn-dashboard.png"
    assert Path(png.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download(timeout=120_000) as saved:
        page.get_by_role("button", name="Save a report of this model").click()
    report = tmp_path / saved.value.suggested_filename
    saved.value.save_as(report)
    assert report.suffix == ".html"
    assert_clean(page, errors)
    page.close()

    offline = browser.new_page()
    outward: list[str] = []
    offline.on("request", lambda r: None if r.url.startswith("file:") else outward.append(r.url))
    offline.route(
        "**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_()
    )
    offline.goto(report.as_uri())
    figures = report.read_text().count('class="plotly-graph-div"')
    drawn = "n => [...document.querySelectorAll('.js-plotly-plot')].filter(g => g.querySelector('.main-svg'))"
    offline.wait_for_function(f"{drawn}.length === n", arg=figures, timeout=60_000)
    assert figures >= 5 and not outward, outward
    assert "Top confusions" in offline.inner_text("body")
    offline.close()


def test_several_sessions_at_once_each_see_their_own_digit(browser, app_url):
    """Four sessions (separate browser contexts: separate cookies) open Feature maps for four
    different digits at the same moment; each shows its own digit's prediction and the
    link of each keeps its own index."""
    indices = [3, 8, 13, 21]
    contexts = [browser.new_context(viewport={"width": 1300, "height": 900}) for _ in indices]
    try:
        pages = [ctx.new_page() for ctx in contexts]
        errors = [watch_errors(p, app_url) for p in pages]
        for page, index in zip(pages, indices, strict=True):  # all requests in flight together
            page.goto(f"{app_url}/feature_maps?split=test&index={index}", wait_until="commit")
        for page, index, errs in zip(pages, indices, errors, strict=True):
            wait_for_app(page)
            page.wait_for_selector(f"text=test #{index}: the network reads", timeout=60_000)
            assert f"index={index}" in page.url
            assert_clean(page, errs)
    finally:
        for ctx in contexts:
            ctx.close()


def test_a_server_opened_on_another_data_set_names_its_classes(browser, tmp_path, named_folder):
    """``streamlit run dashboard/Home.py -- --data FOLDER`` on an empty cache: the default recipe
    trains on that folder, and the pages name its classes (from its classes.txt)."""
    from tests.conftest import FASHION

    log = tmp_path / "server.log"
    proc, url = start_server(tmp_path / "cache", log, ("--data", str(named_folder)))
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = watch_errors(page, url)
        page.goto(f"{url}/errors?cell=4,9")
        page.wait_for_selector("text=Most frequent confusions", timeout=240_000)
        wait_for_app(page)
        body = page.inner_text('[data-testid="stMain"]')
        assert f"true {FASHION[4]}, predicted {FASHION[9]}" in body, body[:500]
        assert "test images are misread" in body and "digit" not in body.lower(), body[:500]
        ticks = page.eval_on_selector_all(".js-plotly-plot .xtick text", "els => els.map(e => e.textContent)")
        assert set(FASHION) <= set(ticks), ticks
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "other_data_errors.png"), full_page=True)
        page.get_by_role("link", name="Your own image").click()  # the navigation says the data set's noun
        _wait_for_text(page, "not digits")
        assert_clean(page, errors)
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_navigating_during_a_first_start_trains_once(browser, tmp_path):
    """An empty cache: training starts with the server; the first page shows the architecture
    and a progress bar at once; switching pages while the default model trains neither
    restarts nor cancels it."""
    log = tmp_path / "server.log"
    cache = tmp_path / "cache"
    proc, url = start_server(cache, log)
    try:
        # Training starts with the server, before any browser connects (dashboard.server_start).
        deadline = time.monotonic() + 60
        while not [f for f in (cache / "models").glob("*") if f.is_dir()]:
            assert time.monotonic() < deadline, f"no training started without a browser: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        errors = watch_errors(page, url)
        page.goto(url)
        page.wait_for_selector("text=Architecture", timeout=30_000)
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=30_000)  # real content, not only a bar
        page.wait_for_selector('[data-testid="stProgress"]', timeout=30_000)
        page.wait_for_timeout(1000)
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "first_start.png"), full_page=True)
        first_epoch, notices = None, []

        def look() -> None:  # every provisional notice the page shows, in order
            text = page.inner_text('[data-testid="stMain"]')
            if "Provisional weights" in text:
                notice = text[text.index("Provisional weights") :][:60]
                if not notices or notices[-1] != notice:
                    notices.append(notice)

        for path in ("errors", "browse", ""):
            page.get_by_role("link", name={"errors": "Errors", "browse": "Browse digits", "": "Overview"}[path]).click()
            for _ in range(12):
                page.wait_for_timeout(200)
                look()
            saved = list((cache / "models").glob("*/epoch_01.safetensors"))
            if saved and first_epoch is None:
                first_epoch = (saved[0], saved[0].stat().st_ino)
        # After half an epoch (the default recipe saves twice an epoch), every page uses the first
        # saved weights and says they are provisional: the first notice names epoch 0.5 ...
        deadline = time.monotonic() + 240
        while not notices and time.monotonic() < deadline:
            page.wait_for_timeout(200)
            look()
        assert notices and "epoch 0.5 of 3" in notices[0], notices
        page.wait_for_selector('[data-testid="stMetric"]', timeout=60_000)  # the model card, drawn with them
        page.wait_for_url(re.compile(r".*model=[0-9a-f]{16}(@|%40)[12].*"), timeout=30_000)  # names the epoch shown
        page.screenshot(path=str(SHOTS / "first_start_provisional.png"), full_page=True)
        # ... then the final model replaces them in the same page, without a reload.
        try:
            page.wait_for_selector("text=Provisional weights", state="detached", timeout=240_000)
            page.wait_for_selector('[data-testid="stMetric"]', timeout=240_000)  # the model card: trained
        except Exception as err:  # say what the page showed and what the server logged
            page.screenshot(path=str(SHOTS / "first_start_stuck.png"), full_page=True)
            body = page.inner_text("body")[-3000:]
            raise AssertionError(f"{err}\n--- page:\n{body}\n--- server log:\n{log.read_text()[-4000:]}") from err
        page.wait_for_url(re.compile(r".*model=[0-9a-f]{16}(&.*)?$"), timeout=30_000)  # the final model: no epoch
        folders = [f for f in (cache / "models").iterdir() if f.is_dir()]
        assert len(folders) == 1
        if first_epoch is not None:  # the first point's file seen mid-training was never rewritten
            assert first_epoch[0].stat().st_ino == first_epoch[1]
        assert page.locator('[data-testid="stProgress"]').count() == 0  # the progress bar is gone
        assert_clean(page, errors)
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_host_opens_its_own_network_from_the_command_line(browser, tmp_path):
    """``streamlit run dashboard/Home.py -- --net FILE.py:CLASS --weights FILE``: the app opens
    on that network (pytorch/examples' Net, normalised, log-probabilities out), its layers from
    its graph, and its feature maps and attribution maps draw."""
    import torch
    from safetensors.torch import save_file

    from core.network_files import import_class

    net = ROOT / "tests" / "nets" / "examples_net.py"
    torch.manual_seed(0)
    module = import_class(f"{net}:Net")[0]()
    weights = tmp_path / "mnist_cnn.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, weights)
    log = tmp_path / "server.log"
    args = ("--no-training", "--net", f"{net}:Net", "--weights", str(weights), "--mean", "0.1307", "--std", "0.3081")
    proc, url = start_server(tmp_path / "cache", log, args)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = watch_errors(page, url)
        page.goto(url)
        _wait_for_text(page, "a network the host of this server opened from examples_net.py")
        wait_for_app(page)
        body = page.inner_text('[data-testid="stMain"]')
        assert "1,199,882" in body and "log-probabilities" in body, body[:1500]
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "host_network_overview.png"), full_page=True)
        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Feature maps").click()
        _wait_for_text(page, "The path at a glance")
        wait_for_app(page)
        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Attributions").click()
        _wait_for_text(page, "Integrated Gradients")
        wait_for_app(page)
        page.screenshot(path=str(SHOTS / "host_network_attributions.png"), full_page=True)
        badges = page.locator(".js-plotly-plot").count()
        assert badges >= 1 and "Saliency" in page.inner_text('[data-testid="stMain"]')
        # Its own units: fc1's card, its index and its ablation computed in the background.
        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Units").click()
        _wait_for_text(page, "How one value is computed", timeout_ms=240_000)
        _wait_for_text(page, "Without it:", timeout_ms=240_000)
        wait_for_app(page)
        body = page.inner_text('[data-testid="stMain"]')
        assert "conv1 · channel 0" in body and "That is " in body, body[:1500]
        page.screenshot(path=str(SHOTS / "host_network_units.png"), full_page=True)
        assert_clean(page, errors)
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
