"""Dashboard speed with a warm cache: server-side page runs and figure builds.

Each page is run headless with AppTest (the same script run the server does, without the
browser), once to warm the caches, then REPEATS times; the median is reported against the
issue's budget. Figure builders are timed alone the same way.

Then, in a real browser (Debian's Chromium, sharing the two cores with the server), the time from
a click on Attributions in the sidebar to its maps drawn and to their five trust badges drawn: for
digits this server has not explained (cold: the maps and the checks computed) and again for the
same digits (warm: from the cache), the median of CLICKS digits each.

    python bench/page_speed.py            # uses (or trains once) the default model
    python bench/page_speed.py --recipe reference
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from classroom import CHROMIUM, CHROMIUM_ARGS, start_server
from streamlit.testing.v1 import AppTest
from timing import median_ms, report

from core.activations import layer_outputs, strongest_channels
from core.attributions import attribute
from core.config import recipe
from core.data import load_mnist, to_tensor
from core.evaluate import evaluate
from core.model import CONV_LAYERS, TAPS
from core.train import load_or_train
from dashboard import figures

HOME = str(Path(__file__).resolve().parents[1] / "dashboard" / "Home.py")
REPEATS = 7
PAGE_BUDGET_MS = {
    "overview": 300,
    "browse": 300,
    "errors": 300,
    "feature_maps": 300,
    "attributions": 300,
    "your_digit": 300,
}
CLICKS = 5  # digits per measurement of the click to Attributions' maps
# From a click on Attributions to its maps and to their badges, in ms: cold (computed), warm (cached).
CLICK_BUDGET_MS = {"maps, cold": 3000, "badges, cold": 6000, "maps, warm": 1500, "badges, warm": 2000}


def page_runs(key: str, budgets: dict[str, float] = PAGE_BUDGET_MS) -> None:
    """Each page's warm run for model ``key``: the median of REPEATS AppTest runs, against its budget."""
    at = AppTest.from_file(HOME, default_timeout=600)
    at.query_params["model"] = key
    at.run()
    for page, budget in budgets.items():
        path = f"app_pages/{page}.py"
        if not (Path(HOME).parent / path).exists():
            continue
        at.switch_page(path)
        ms = median_ms(lambda: at.run(), REPEATS)
        if at.exception:
            raise SystemExit(f"{page} raised: {at.exception[0].value}")
        report(f"page run: {page}", ms, budget)


def figure_builds(trained) -> None:
    data = load_mnist(trained.info.data_source)
    ev = evaluate(trained.model, data.test)
    matrix = ev.confusion
    report(
        "figure: confusion matrix",
        median_ms(lambda: figures.confusion(matrix, False, False, data.classes), REPEATS),
        50,
    )
    idx = np.arange(100)
    captions = [f"{t} {c:.0%}" for t, c in zip(ev.labels[idx], ev.confidence[idx], strict=True)]
    hover = [f"#{i}" for i in idx]
    wrong = ev.labels[idx] != ev.preds[idx]
    report(
        "figure: a page of 100 digit tiles",
        median_ms(lambda: figures.digit_grid(data.test.images[idx], idx, captions, wrong, hover), REPEATS),
        50,
    )
    image = data.test.images[0]

    def all_feature_maps():
        acts = {k: v[0] for k, v in layer_outputs(trained.model, to_tensor(image[None])).items()}
        stages = []
        for layer in ("conv1", "conv2", "pool1", "conv3", "conv4", "pool2"):
            top = strongest_channels(acts[layer], 4)
            stages.append((layer, acts[layer][top], top))
        built = [figures.flow(image, stages)]
        for layer in TAPS:
            value = acts[layer]
            built.append(figures.feature_maps(value, layer, True) if value.ndim == 3 else figures.units(value, layer))
        built += [
            figures.kernels(getattr(trained.model, layer).weight.detach().numpy(), layer) for layer in CONV_LAYERS
        ]
        return built

    report("feature maps, all layers, computed + figures", median_ms(all_feature_maps, REPEATS), 100)

    x = to_tensor(image[None])
    target = int(ev.preds[0])

    def across_layers():
        maps = [attribute("Grad-CAM", trained.model, x, target, layer=layer, upsample=True)[0] for layer in CONV_LAYERS]
        fc1 = attribute("Layer Integrated Gradients", trained.model, x, target, layer="fc1")
        return figures.attribution_row(maps, list(CONV_LAYERS), image), figures.units(fc1[0], "fc1")

    report("across-layers comparison (Grad-CAM + fc1), computed + figures", median_ms(across_layers, REPEATS), 150)


def click_to_maps(key: str) -> None:
    """Median ms from a click on Attributions in the sidebar to the maps drawn (Plotly has laid
    out the row) and to the five badges, for CLICKS digits not explained yet, then the same again."""
    from playwright.sync_api import sync_playwright

    digits = [1000 + 997 * i for i in range(CLICKS)]  # test digits no earlier step explained
    times: dict[str, list[float]] = {name: [] for name in CLICK_BUDGET_MS}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(None, Path(tmp) / "server.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1500, "height": 1100})
                for warmth in ("cold", "warm"):
                    for index in digits:
                        page.goto(f"{url}/browse?model={key}&split=test&index={index}")
                        page.wait_for_selector('[data-testid="stMain"] h1', timeout=120_000)
                        page.wait_for_function(IDLE, timeout=120_000)
                        start = time.perf_counter()
                        page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Attributions").click()
                        page.wait_for_function(MAPS_DRAWN, timeout=120_000)
                        times[f"maps, {warmth}"].append((time.perf_counter() - start) * 1000)
                        page.wait_for_function(BADGES_DRAWN, timeout=120_000)
                        times[f"badges, {warmth}"].append((time.perf_counter() - start) * 1000)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    for name, budget in CLICK_BUDGET_MS.items():
        report(f"click Attributions → {name}", statistics.median(times[name]), budget)


IDLE = "() => document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state') === 'notRunning'"
MAPS_DRAWN = """() => location.pathname.endsWith('/attributions')
    && [...document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')].some(g => g._fullLayout)"""
BADGES_DRAWN = """() => location.pathname.endsWith('/attributions')
    && document.querySelectorAll('[data-testid=stMain] [data-testid=stPopover] button').length >= 5"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="default")
    args = parser.parse_args()
    trained = load_or_train(recipe(args.recipe))
    print(f"model {trained.info.label} ({trained.info.key}); median of {REPEATS} warm runs\n")
    figure_builds(trained)
    page_runs(trained.info.key)
    print(f"\nin Chromium, sharing the two cores with the server; median of {CLICKS} digits")
    click_to_maps(trained.info.key)


if __name__ == "__main__":
    main()
