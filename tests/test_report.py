"""The HTML reports: every number they show equals one computed here another way, class names come
from the data set, the file needs no network (checked in Chromium with the network blocked), and
the command line writes the file or fails with one sentence and exit code 2."""

from __future__ import annotations

import base64
import copy
import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from plotly.offline import get_plotlyjs
from safetensors.torch import load_file

from core import checkpoints, explanation_checks, scorecard
from core.attributions import AttributionRequest, explainer
from core.data import load_mnist, to_tensor
from core.evaluate import predict_logits
from core.model import MNIST_MEAN, MNIST_STD, MnistCNN
from core.train import load_cached, load_or_train
from dashboard.report import digit_report, main, model_report
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
MODEL_SECTIONS = ["Architecture", "Recipe", "Training", "Accuracy per class", "Top confusions", "Trust scorecard"]
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT = 8  # a test digit the reference model reads right
PLOTLY_JS = get_plotlyjs()


@pytest.fixture(scope="module")
def data():
    return load_mnist()


@pytest.fixture(scope="module")
def test_logits(reference_model, data) -> np.ndarray:
    """float64 (10000, 10): the reference model's logits on the test digits."""
    return predict_logits(reference_model.model, to_tensor(data.test.images)).double().numpy()


@pytest.fixture(scope="module")
def confusion(test_logits, data) -> np.ndarray:
    """int (10, 10) counted here: rows true, columns predicted."""
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (data.test.labels, test_logits.argmax(1)), 1)
    return matrix


@pytest.fixture(scope="module")
def report(reference_model, data) -> str:
    return model_report(reference_model, data)


@pytest.fixture(scope="module")
def digit_page(reference_model, data) -> str:
    image = data.test.images[DIGIT]
    return digit_report(reference_model, data, image, f"test #{DIGIT}", int(data.test.labels[DIGIT]))


# ---- reading a report back -------------------------------------------------------------------


def outside_library(page: str) -> str:
    """The page without its one inlined copy of plotly.js."""
    assert page.count(PLOTLY_JS) == 1
    return page.replace(PLOTLY_JS, "")


def plots(text: str) -> list[dict]:
    """Each figure's data, layout and config as a page (or part of one) passes them to Plotly.newPlot, in order."""
    text, decoder, found = text.replace(PLOTLY_JS, ""), json.JSONDecoder(), []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', text):
        position, parts = match.end(), []
        for _ in range(3):
            value, position = decoder.raw_decode(text, position)
            parts.append(value)
            position = re.compile(r"\s*,?\s*").match(text, position).end()
        found.append(dict(zip(("data", "layout", "config"), parts, strict=True)))
    return found


def array(value) -> np.ndarray:
    """A Plotly array: a list, or a numpy array as plotly.py writes it (base64 bytes, dtype, shape)."""
    if not isinstance(value, dict):
        return np.asarray(value)
    flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return flat.reshape([int(s) for s in value["shape"].split(",")]) if "shape" in value else flat


def sections(page: str) -> dict[str, str]:
    """Each <h2> section's HTML by its heading, in page order."""
    parts = re.findall(r"<section><h2>(.*?)</h2>(.*?)</section>", outside_library(page), re.S)
    return {html.unescape(title): body for title, body in parts}


def table_rows(fragment: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", fragment, re.S)
    return [[html.unescape(c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", r, re.S)] for r in rows]


def by_axis_title(found: list[dict], axis: str, title: str) -> list[dict]:
    return [p for p in found if p["layout"].get(axis, {}).get("title", {}).get("text") == title]


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top_cells(matrix: np.ndarray) -> list[tuple[int, int, int]]:
    """The three largest off-diagonal counts as (true, predicted, count); ties in reading order."""
    cells = [(int(matrix[t, p]), t, p) for t in range(10) for p in range(10) if t != p and matrix[t, p]]
    return [(t, p, c) for c, t, p in sorted(cells, key=lambda c: (-c[0], c[1], c[2]))[:3]]


def integrated_gradients(model: MnistCNN, images: torch.Tensor, target: int) -> np.ndarray:
    """Captum's IG straight from a black baseline, 32 steps (the registry's defaults), (B, 28, 28)."""
    ig = IntegratedGradients(copy.deepcopy(model))
    return ig.attribute(images, torch.zeros_like(images), target=target, n_steps=32)[:, 0].detach().numpy()


# ---- the model report ------------------------------------------------------------------------


def test_model_report_has_its_sections_in_order(report, reference_model):
    assert list(sections(report)) == [f"Model {reference_model.info.key}", *MODEL_SECTIONS]


def test_header_numbers(report, reference_model, test_logits, data):
    info = reference_model.info
    rows = dict(table_rows(sections(report)[f"Model {info.key}"]))
    wrong = int((test_logits.argmax(1) != data.test.labels).sum())
    assert rows["model key"] == info.key
    assert rows["recipe"] == "reference"
    assert rows["data set"] == "bundled (60,000 train / 10,000 test digits)"
    assert rows["test accuracy"] == f"{1 - wrong / 10_000:.2%}"
    assert rows["mistakes"] == f"{wrong:,} of 10,000"
    assert rows["weights"] == "after epoch 1 of 1 (saved point 1 of 1)"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", rows["generated"])


def test_architecture_table_counts_every_parameter(report):
    rows = table_rows(sections(report)["Architecture"])
    conv = [(1, 4), (4, 8), (8, 16), (16, 32)]  # (in, out) channels, 3x3 kernels with a bias each
    counts = [o * (i * 9 + 1) for i, o in conv] + [20 * (32 * 4 * 4 + 1), 10 * (20 + 1)]
    assert rows == [
        ["layer", "type", "output shape", "parameters"],
        ["conv1", "Conv2d", "4 × 26 × 26", f"{counts[0]:,}"],
        ["conv2", "Conv2d", "8 × 24 × 24", f"{counts[1]:,}"],
        ["pool1", "MaxPool2d", "8 × 12 × 12", "0"],
        ["conv3", "Conv2d", "16 × 10 × 10", f"{counts[2]:,}"],
        ["conv4", "Conv2d", "32 × 8 × 8", f"{counts[3]:,}"],
        ["pool2", "MaxPool2d", "32 × 4 × 4", "0"],
        ["fc1", "Linear", "20", f"{counts[4]:,}"],
        ["fc2", "Linear", "10", f"{counts[5]:,}"],
        ["total", "", "", f"{sum(counts):,}"],
    ]


def test_recipe_lists_every_field_as_meta_json_records_it(report, reference_model):
    recorded = json.loads((reference_model.info.folder / checkpoints.META).read_text())["config"]
    assert table_rows(sections(report)["Recipe"]) == [["setting", "value"]] + [[k, str(v)] for k, v in recorded.items()]


def test_training_curves_are_the_saved_history(report, reference_model):
    history = json.loads((reference_model.info.folder / checkpoints.HISTORY).read_text())
    (curves,) = plots(sections(report)["Training"])
    by_name = {t["name"]: array(t["y"]) for t in curves["data"]}
    for name, key in (("train loss", "train_loss"), ("test loss", "test_loss"), ("test accuracy", "test_accuracy")):
        np.testing.assert_allclose(by_name[name], [r[key] for r in history])


def test_confusion_matrix_and_accuracy_per_class_match_numpy(report, confusion, data):
    found = plots(report)
    (matrix_plot,) = by_axis_title(found, "xaxis", "predicted")
    heatmap, cells = matrix_plot["data"]
    z = array(heatmap["z"])
    off = ~np.eye(10, dtype=bool)
    np.testing.assert_array_equal(z[off], confusion[off])
    assert np.isnan(np.diag(z)).all()  # the diagonal hidden, as the Errors page opens
    np.testing.assert_array_equal(array(cells["customdata"])[:, 2].reshape(10, 10), confusion)  # hover counts
    (bars,) = by_axis_title(found, "yaxis", "test accuracy")[0]["data"]
    np.testing.assert_allclose(array(bars["y"]), np.diag(confusion) / confusion.sum(axis=1))
    assert bars["x"] == list(data.classes)


def test_top_confusions_are_the_largest_off_diagonal_cells(report, confusion, test_logits, data, reference_model):
    """The three largest off-diagonal counts, each with its four most confident digits and each
    digit's Integrated Gradients map of the answer, as Captum computes it."""
    part = sections(report)["Top confusions"]
    headings = re.findall(r"<h3>True (.+?) read as (.+?): ([\d,]+) test digits</h3>", part)
    expected = top_cells(confusion)
    assert headings == [(data.classes[t], data.classes[p], f"{c:,}") for t, p, c in expected]
    found = plots(part)
    grids = [p for p in found if any(t.get("name") == "tiles" for t in p["data"])]
    maps = [p for p in found if any(t["type"] == "contour" for t in p["data"])]
    assert len(grids) == 3 and len(maps) == 3 * 4
    confidence = softmax(test_logits).max(axis=1)
    for (t, p, _), grid in zip(expected, grids, strict=True):
        shown = array(grid["data"][2]["customdata"]).ravel().astype(int)
        cell = np.flatnonzero((data.test.labels == t) & (test_logits.argmax(1) == p))
        assert len(shown) == min(4, len(cell)) and set(shown) <= set(cell)
        rest = np.setdiff1d(cell, shown)
        assert len(rest) == 0 or confidence[shown].min() >= confidence[rest].max() - 1e-6  # the most confident
        assert np.all(np.diff(confidence[shown]) <= 1e-6)  # most confident first
        assert grid["data"][1]["text"] == [f"{c:.0%}" for c in confidence[shown]]
        ig = integrated_gradients(reference_model.model, to_tensor(data.test.images[shown]), p)
        for k in range(len(shown)):
            drawn = array(maps.pop(0)["data"][0]["customdata"])
            np.testing.assert_allclose(drawn, ig[k], atol=1e-3 * np.abs(ig[k]).max())


def test_a_missing_scorecard_says_how_to_compute_it(report, reference_model):
    text = sections(report)["Trust scorecard"]
    assert "Not computed" in text
    assert f"<code>python -m core.scorecard --model {reference_model.info.key}@1</code>" in text


def test_a_cached_scorecard_is_shown_as_a_table(reference_model, data, tmp_path):
    """A scorecard written beside a copy of the model: every cell's mean and interval, the best of
    each column starred, and the card's summary; looked up in the cache the model came from."""
    key = reference_model.info.key
    shutil.copytree(reference_model.info.folder, tmp_path / "models" / key)
    methods = ("Saliency", "Integrated Gradients")
    rows = {
        m: {
            k: scorecard.Cell(0.1 * j + 0.5 * i, 0.1 * j, 0.1 * j + i + 0.25, 500)
            for j, (k, *_) in enumerate(scorecard.COLUMNS)
        }
        for i, m in enumerate(methods)
    }
    card = scorecard.Scorecard(f"{key}@1", 500, 42, 1.0, rows, "no shuffled-label network")
    folder = tmp_path / "models" / key
    name = scorecard.scorecard_run(folder, 1, reference_model.info.data_fingerprint).name
    checkpoints.write_json(folder / name, card.to_json())
    page = model_report(load_cached(key, root=tmp_path), data, examples=1)
    part = sections(page)["Trust scorecard"]
    table = table_rows(part)
    assert table[0] == ["method"] + [f"{title} ({better} is better)" for _, title, better, _ in scorecard.COLUMNS]
    assert [r[0] for r in table[1:]] == card.ranking()
    for row in table[1:]:
        i = methods.index(row[0])
        for j, (text, (_, _, better, _)) in enumerate(zip(row[1:], scorecard.COLUMNS, strict=True)):
            best = (better == "higher") == (i == 1)  # the second method's means are all higher
            assert text == f"{0.1 * j + 0.5 * i:.2f} [{0.1 * j:.2f}, {0.1 * j + i + 0.25:.2f}]" + (" ★" if best else "")
    assert html.escape(card.summary()) in part
    assert "Over 500 test digits (42 misread)" in part


def test_class_names_come_from_the_data_set(reference_model, data, confusion):
    """Renamed classes name the matrix's axes, the bars and the confusions, escaped in the text."""
    t, p, _ = top_cells(confusion)[0]
    names = list(WORDS)
    names[t] = f"{WORDS[t]} <&>"
    page = model_report(reference_model, dataclasses.replace(data, classes=tuple(names)), examples=1)
    found = plots(page)
    (matrix_plot,) = by_axis_title(found, "xaxis", "predicted")
    assert matrix_plot["layout"]["xaxis"]["ticktext"] == names == matrix_plot["layout"]["yaxis"]["ticktext"]
    assert by_axis_title(found, "yaxis", "test accuracy")[0]["data"][0]["x"] == names
    text = outside_library(page)
    assert f"<h3>True {WORDS[t]} &lt;&amp;&gt; read as {names[p]}:" in text
    assert "<&>" not in text  # escaped everywhere, in the figures' JSON too


def test_an_earlier_saved_point(data, tmp_path):
    """``epoch`` shows that point's weights (read here straight from its file): its confusion
    matrix, its place on the training curves, its name."""
    trained = load_or_train(tiny_config(saves_per_epoch=2), root=tmp_path)
    page = model_report(trained, data, epoch=1, examples=1)
    assert dict(table_rows(sections(page)[f"Model {trained.info.key}"]))["weights"] == (
        "after epoch 0.5 of 1 (saved point 1 of 2)"
    )
    weights = MnistCNN()
    weights.load_state_dict(load_file(trained.info.folder / "epoch_01.safetensors"))
    preds = predict_logits(weights, to_tensor(data.test.images)).argmax(1).numpy()
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (data.test.labels, preds), 1)
    (matrix_plot,) = by_axis_title(plots(page), "xaxis", "predicted")
    np.testing.assert_array_equal(array(matrix_plot["data"][1]["customdata"])[:, 2].reshape(10, 10), matrix)
    (curves,) = by_axis_title(plots(page), "yaxis", "loss")
    assert {s["x0"] for s in curves["layout"]["shapes"]} == {0.5}
    assert f"--model {trained.info.key}@1</code>" in sections(page)["Trust scorecard"]


def test_the_page_needs_no_network(report, digit_page):
    for page in (report, digit_page):
        assert page.startswith("<!doctype html>") and '<meta charset="utf-8">' in page
        text = outside_library(page)  # plotly.js itself holds map-attribution links it never fetches here
        for outward in ('src="http', "src='http", 'href="http', "href='http", "<link", "<script src", "@import"):
            assert outward not in text
        assert "mathjax" not in text.lower()
        figures = plots(page)
        assert text.count("<script") == len(figures) + 1  # the library's (emptied here), then one per figure
        assert all(f["config"]["toImageButtonOptions"]["format"] == "png" for f in figures)


# ---- the digit report ------------------------------------------------------------------------


def test_digit_report_probabilities_are_the_models_softmax(digit_page, reference_model, data):
    x = to_tensor(data.test.images[DIGIT : DIGIT + 1])
    with torch.no_grad():
        probs = torch.softmax(reference_model.model(x).double(), dim=1)[0].numpy()
    pred = int(probs.argmax())
    assert list(sections(digit_page)) == ["Prediction", "Feature maps", "Attributions"]
    (bars,) = by_axis_title(plots(digit_page), "yaxis", "probability")[0]["data"]
    np.testing.assert_allclose(array(bars["y"]), probs, atol=1e-6)
    assert bars["x"] == list(data.classes)
    assert pred == data.test.labels[DIGIT]
    assert f"test #{DIGIT}: the network reads {data.classes[pred]} ({probs[pred]:.1%}) — correct" in digit_page


def test_digit_report_feature_maps_are_each_conv_layers_output(digit_page, reference_model, data):
    """Each conv layer's values, computed here module by module (not from the model's taps)."""
    m = reference_model.model
    with torch.no_grad():
        x = (to_tensor(data.test.images[DIGIT : DIGIT + 1]) - MNIST_MEAN) / MNIST_STD
        conv1 = torch.relu(m.conv1(x))
        conv2 = torch.relu(m.conv2(conv1))
        conv3 = torch.relu(m.conv3(torch.max_pool2d(conv2, 2)))
        conv4 = torch.relu(m.conv4(conv3))
    maps = plots(sections(digit_page)["Feature maps"])
    assert len(maps) == 4
    for drawn, expected in zip(maps, (conv1, conv2, conv3, conv4), strict=True):
        raw = array(drawn["data"][0]["customdata"])[..., 0]
        np.testing.assert_allclose(np.sort(raw[~np.isnan(raw)]), np.sort(expected.numpy().ravel()), atol=1e-5)


def test_digit_report_maps_and_badges(digit_page, reference_model, data):
    """Saliency is |d logit / d pixel| (autograd here), IG Captum's; each badge says what
    ``explanation_checks.verdicts`` says, called as the app's cache calls it."""
    model = reference_model.model
    pred = int(data.test.labels[DIGIT])
    # In channels_last, as core.attributions runs: on the flat background many 2x2 pool blocks tie,
    # and which of the tied inputs gets the gradient depends on the memory layout (ink pixels do not).
    x = to_tensor(data.test.images[DIGIT : DIGIT + 1]).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    copy.deepcopy(model).to(memory_format=torch.channels_last)(x)[0, pred].backward()
    saliency = x.grad[0, 0].abs().numpy()
    ig = integrated_gradients(model, x.detach(), pred)[0]  # x times the gradient: 0 on the background
    part = sections(digit_page)["Attributions"]
    (row,) = plots(part)
    drawn = array(row["data"][0]["customdata"])  # the two maps side by side, 3 columns apart
    np.testing.assert_allclose(drawn[:, :28], saliency, atol=1e-6 * saliency.max())
    np.testing.assert_allclose(drawn[:, 31:], ig, atol=1e-3 * np.abs(ig).max())
    badges = re.findall(r"<details><summary><strong>(.*?)</strong>: (.*?)</summary>(.*?)</details>", part, re.S)
    assert [b[0] for b in badges] == ["Saliency", "Integrated Gradients"]
    for method, summary, detail in badges:
        request = AttributionRequest.of(method, {}, target="predicted", upsample=True)
        images = x.detach()
        seed = explanation_checks.digit_seed(images[0])
        verdict = explanation_checks.verdicts(explainer(request), model, images, torch.tensor([pred]), seed)[0]
        marks = " ".join({True: "✔", False: "✖", None: "–"}[m] for m in verdict.marks)
        assert re.sub(r"<.*?>", "", summary) == f"{verdict.word} {marks}"
        assert f"<p><strong>{verdict.word.capitalize()}: {html.escape(verdict.text)}.</strong></p>" in detail
        assert f"{verdict.similarity_top:.2f}" in detail and f"{verdict.deletion:.2f}" in detail


def test_digit_report_of_a_drawn_digit_and_a_wrong_method(reference_model, data):
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 13:16] = 255  # a stroke: a 1, or near enough
    page = digit_report(
        reference_model, dataclasses.replace(data, classes=WORDS), image, "your digit", None, None, ("Saliency",)
    )
    assert re.search(r"your digit: the network reads (\w+) \(\d+\.\d%\)</p>", page)  # no label: no verdict on it
    assert len(plots(page)) == 2 + 4 + 1
    with pytest.raises(ValueError, match="Grad-CAM"):
        digit_report(reference_model, data, image, "your digit", methods=("Grad-CAM",))


def test_digit_report_draws_the_maps_a_page_asked_for(reference_model, data, test_logits):
    """The Attributions page passes its own requests: on a misread digit, the evidence for the label
    (with its badge, checked at the label) and the contrast of answer and label (no badge: the
    checks cover one class)."""
    index = int(np.flatnonzero(test_logits.argmax(1) != data.test.labels)[0])
    image, label = data.test.images[index], int(data.test.labels[index])
    pred = int(test_logits[index].argmax())
    requests = [
        AttributionRequest.of("Integrated Gradients", {}, target="true", upsample=True),
        AttributionRequest.of("Saliency", {}, target="predicted − true", upsample=True),
    ]
    page = digit_report(reference_model, data, image, f"test #{index}", label, requests=requests)
    part = sections(page)["Attributions"]
    assert f"The evidence for {label} (the label) and {pred} minus the evidence for {label}." in html.unescape(part)
    x = to_tensor(image[None])
    (row,) = plots(part)
    drawn = array(row["data"][0]["customdata"])
    ig = integrated_gradients(reference_model.model, x, label)[0]
    np.testing.assert_allclose(drawn[:, :28], ig, atol=1e-3 * np.abs(ig).max())
    badges = re.findall(r"<details><summary><strong>(.*?)</strong>", part)
    assert badges == ["Integrated Gradients"]
    seed = explanation_checks.digit_seed(x[0])
    verdict = explanation_checks.verdicts(explainer(requests[0]), reference_model.model, x, torch.tensor([label]), seed)
    assert f"{verdict[0].word.capitalize()}: {html.escape(verdict[0].text)}." in part


# ---- the command line ------------------------------------------------------------------------


def test_cli_writes_the_model_report(reference_model, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["--model", reference_model.info.key, "--out", str(out)]) == 0  # the session's cache: conftest
    page = out.read_text(encoding="utf-8")
    assert f"<title>Model report: {reference_model.info.key}</title>" in page
    assert list(sections(page))[1:] == MODEL_SECTIONS
    assert f"wrote {out}" in capsys.readouterr().out


def test_cli_writes_a_digit_report(reference_model, data, tmp_path):
    out = tmp_path / "digit.html"
    assert main(["--model", f"{reference_model.info.key}@1", "--digit", "train:7", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    label = int(data.train.labels[7])
    assert "<title>Digit report: train #7</title>" in page
    assert re.search(rf"train #7: the network reads .*? \(.*?\) — (correct|wrong: labelled {label})</p>", page)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "0123456789abcdef"], "no model 0123456789abcdef in the cache"),
        (["--model", "nothex"], "is not a model key"),
        (["--model", "{key}@2"], "saved points 1..1, not 2"),
        (["--model", "{key}@1", "--epoch", "2"], "names saved point 1 but --epoch says 2"),
        (["--model", "{key}", "--epoch", "0"], "epoch 0 is not a positive whole number"),
        (["--model", "{key}", "--digit", "test:10000"], "the test split has 10,000 digits: 10000 is past its end"),
        (["--model", "{key}", "--digit", "valid:3"], "--digit must be SPLIT:INDEX"),
        (["--model", "{key}", "--out", "{tmp}/no/such/folder/r.html"], "no such folder"),
        (["--model", "{key}", "--out", "{tmp}"], "it is a folder"),
    ],
)
def test_cli_errors_are_one_sentence_and_exit_2(reference_model, tmp_path, capsys, args, message):
    args = [a.format(key=reference_model.info.key, tmp=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "r.html")]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err.splitlines()[-1] and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_runs_as_a_module_from_the_repository_root_without_streamlit(tmp_path):
    """``python -m dashboard.report`` runs from the root and imports no Streamlit (``-X importtime`` lists
    every import): an unknown key is one sentence and exit code 2."""
    env = {**os.environ, "MNIST_CNN_CACHE": str(tmp_path)}
    command = [sys.executable, "-X", "importtime", "-m", "dashboard.report", "--model", "0" * 16, "--out", "r.html"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "dashboard.figures" in imported and not [m for m in imported if m.split(".")[0] == "streamlit"]
    said = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert said[-1].startswith(f"python -m dashboard.report: error: no model {'0' * 16} in the cache")


# ---- in a browser, offline -------------------------------------------------------------------


def _need_browser():  # as tests/test_browser.py
    if CHROMIUM.exists():
        return
    if os.environ.get("REQUIRE_BROWSER"):
        pytest.fail("REQUIRE_BROWSER is set but /usr/bin/chromium is missing: apt-get install chromium")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


@pytest.mark.browser
@pytest.mark.slow
def test_every_figure_draws_in_chromium_with_the_network_blocked(reference_model, data, tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    pages = {
        "model.html": model_report(reference_model, data, examples=1),
        "digit.html": digit_report(reference_model, data, data.test.images[DIGIT], f"test #{DIGIT}"),
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        for name, text in pages.items():
            (tmp_path / name).write_text(text, encoding="utf-8")
            page = browser.new_page()
            outward, errors = [], []
            page.on("request", lambda r, outward=outward: None if r.url.startswith("file:") else outward.append(r.url))
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.route(
                "**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_()
            )
            page.goto((tmp_path / name).as_uri())
            # Plotly draws three .main-svg layers per figure: count the figures holding one.
            drawn = "n => [...document.querySelectorAll('.js-plotly-plot')].filter(g => g.querySelector('.main-svg'))"
            page.wait_for_function(f"{drawn}.length === n", arg=len(plots(text)), timeout=60_000)
            assert page.evaluate("document.querySelectorAll('.plotly-graph-div').length") == len(plots(text))
            assert not outward and not errors, (outward, errors)
            page.close()
        browser.close()
