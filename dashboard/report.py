"""Self-contained HTML reports: a model's card, or how it reads one digit. Each is one file that
opens with the network off: plotly.js inlined once, nothing fetched. No Streamlit: the app and
the command line both use it.

    python -m dashboard.report --model KEY[@N] [--epoch N] [--digit test:INDEX] --out report.html
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.offline import get_plotlyjs

from core import checkpoints, confusion, explanation_checks, scorecard
from core.activations import layer_outputs
from core.attributions import INPUT_METHODS, METHODS, AttributionRequest, explain, explainer, target_class
from core.checkpoints import CheckpointError, CheckpointInfo, ModelRef
from core.data import Mnist, load_mnist, to_tensor
from core.evaluate import Evaluation, evaluate, load_or_evaluate, softmax
from core.model import CONV_LAYERS, MnistCNN, layer_table
from core.network import Network, network_of
from core.runs import Point
from core.train import TrainedModel, load_cached, load_provisional
from dashboard import figures, words

TOP_CONFUSIONS = 3  # off-diagonal cells the model report opens
EXAMPLES = 4  # digits shown, each with its map, per confusion
IG = AttributionRequest.of("Integrated Gradients", {}, target="predicted", upsample=True)
PLOT_CONFIG = figures.CHART_CONFIG  # the app's chart settings, the toolbar's PNG download included
MARKS = {True: "✔", False: "✖", None: "–"}  # a badge's mark per check, as dashboard/panels.py draws them
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1f2430; max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h2 { border-bottom: 1px solid #dee2e6; margin-top: 2em; }
table { border-collapse: collapse; } th, td { border: 1px solid #dee2e6; padding: .2em .6em; text-align: left; }
.row { display: flex; flex-wrap: wrap; }
.note { color: #495057; font-size: 90%; } summary { cursor: pointer; }
.trust { color: #1c5bbf; } .doubt { color: #c25e00; } .blank { color: #868e96; }
"""


# ---- the page: every text escaped, every figure drawn by the one inlined plotly.js -----------


def page(title: str, body: list[str]) -> str:
    """One UTF-8 HTML document titled ``title`` (text) holding ``body`` (HTML parts)."""
    head = f'<meta charset="utf-8"><title>{escape(title)}</title><style>{STYLE}</style>'
    return (
        f'<!doctype html>\n<html lang="en"><head>{head}\n<script>{get_plotlyjs()}</script></head>\n'
        f"<body><h1>{escape(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def figure(fig: go.Figure) -> str:
    """A figure's <div> and the script that draws it with the page's plotly.js (no MathJax)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False, config=PLOT_CONFIG)


def section(title: str, *parts: str) -> str:
    """An <h2> section of HTML parts."""
    return f"<section><h2>{escape(title)}</h2>\n" + "\n".join(parts) + "</section>"


def paragraph(text: str, note: bool = False) -> str:
    """A <p> of text (``note``: in small grey type)."""
    return f"<p{' class=note' if note else ''}>{escape(text)}</p>"


def table(header: list[str] | None, rows: list[list[object]]) -> str:
    """A <table> of ``rows``, each value shown as its text, under ``header`` if given."""
    head = "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def row(parts: list[str], width: int) -> str:
    """HTML parts side by side, each ``width`` percent of the page wide: set before a figure draws,
    as Plotly sizes a figure to its box once (and again only when the window is resized)."""
    return '<div class="row">' + "".join(f'<div style="width:{width}%">{part}</div>' for part in parts) + "</div>"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---- the model report ------------------------------------------------------------------------


def model_report(
    trained: TrainedModel, data: Mnist, epoch: int | None = None, root: Path | None = None, examples: int = EXAMPLES
) -> str:
    """A model's report as one HTML document: header, architecture, recipe, training curves, accuracy
    per class and the confusion matrix, the top confusions (``examples`` digits each, with their
    Integrated Gradients maps) and the trust scorecard if one is cached under ``root`` (default: the
    cache the model came from). ``epoch``: the saved point shown (None: ``trained.model``, the last)."""
    model, point = _weights(trained, epoch)
    evaluation = _evaluation(model, data, trained.info, point)
    config = dataclasses.asdict(trained.info.config)
    confusion_note = (
        f"The test {words.possessive(data.words.plural)} confusion matrix: rows the true class, columns the answer "
        "(diagonal hidden)."
    )
    return page(
        f"Model report: {trained.info.folder.name}",
        [
            _header(trained.info, data, evaluation, point),
            _architecture(model, data),
            _recipe(trained.info, config),
            _training(trained.history, point),
            section(
                "Accuracy per class",
                figure(figures.per_class_accuracy(evaluation.per_class_accuracy(), data.classes)),
                paragraph(confusion_note, note=True),
                figure(figures.confusion(evaluation.confusion, False, False, data.classes, words=data.words)),
            ),
            _top_confusions(model, data, evaluation, examples),
            _scorecard(trained.info, point, root, data),
        ],
    )


def _weights(trained: TrainedModel, epoch: int | None) -> tuple[MnistCNN, int]:
    """The weights to show and their saved point (1-based); raises CheckpointError for an unsaved one."""
    info = trained.info
    if epoch in (None, info.epochs_done):  # the weights in hand (a model still training may end meanwhile)
        return trained.model, info.epochs_done
    finished = (info.folder / checkpoints.META).is_file()
    load = checkpoints.load_checkpoint if finished else checkpoints.load_provisional_checkpoint
    return load(info.folder, epoch), epoch


def _evaluation(model: MnistCNN, data: Mnist, info: CheckpointInfo, point: int) -> Evaluation:
    """The test split's evaluation, cached beside the checkpoint as the app caches it."""
    try:
        return load_or_evaluate(model, data.test, Point(info.folder, point, "test", data.fingerprint))
    except OSError:  # a read-only or deleted cache folder: evaluate without keeping it
        return evaluate(model, data.test)


def _header(info: CheckpointInfo, data: Mnist, evaluation: Evaluation, point: int) -> str:
    shown = f"after {info.config.point_name(point)} of {info.config.epochs} (saved point {point} of {info.epochs_done})"
    rows = [
        ["model key", info.folder.name],
        ["model", info.label],
        ["recipe", info.config.recipe],
        ["data set", f"{info.data_source} ({len(data.train):,} train / {len(data.test):,} test {data.words.plural})"],
        ["test accuracy", f"{evaluation.accuracy:.2%}"],
        ["mistakes", f"{len(evaluation.misclassified):,} of {len(evaluation.labels):,}"],
        ["weights", shown],
        ["generated", _now()],
    ]
    return section(f"Model {info.folder.name}", table(None, rows))


def _network(model: torch.nn.Module, data: Mnist) -> Network:
    """A host's network (core.network.scored) through the contract, for its layers."""
    return network_of(model, len(data.classes), to_tensor(data.test.images[:16]), "the network")


def _recipe(info: CheckpointInfo, config: dict) -> str:
    if info.network is None:
        return section("Recipe", table(["setting", "value"], [[k, v] for k, v in config.items()]))
    record = info.network
    rows = [
        ["class", record.net],
        ["weights", record.weights],
        ["normalisation", f"mean {record.mean}, std {record.std}"],
        ["returns", record.output],
    ]
    return section("Where it came from", table(["setting", "value"], rows), paragraph("Trained elsewhere."))


def _architecture(model: MnistCNN, data: Mnist) -> str:
    if hasattr(model, "source"):  # a host's network: its layers from its graph
        network = _network(model, data)
        cells = [[r.name, r.kind, " × ".join(map(str, r.shape)), f"{r.parameters:,}"] for r in network.layers]
        cells.append(["total", "", "", f"{sum(r.parameters for r in network.layers):,}"])
        caption = f"Found from the network's graph (torch.fx); it returns {network.output}."
        return section("Architecture", table(["step", "kind", "output shape", "parameters"], cells), paragraph(caption))
    rows = layer_table(model)
    cells = [[r.name, r.kind, " × ".join(str(d) for d in r.output_shape), f"{r.parameters:,}"] for r in rows]
    cells.append(["total", "", "", f"{sum(r.parameters for r in rows):,}"])
    caption = "Each conv layer is followed by a ReLU; fc2 outputs raw logits (softmax gives the probabilities)."
    return section("Architecture", table(["layer", "type", "output shape", "parameters"], cells), paragraph(caption))


def _training(history: list[dict], point: int) -> str:
    if any(record["train_loss"] is None for record in history):  # a host's network, trained elsewhere
        return section("Training", paragraph("Trained elsewhere: no curves."))
    if any(record["test_accuracy"] is None for record in history):  # a shuffled-label network's
        return section("Training", paragraph("This network was tested after its last epoch only: no curves."))
    return section("Training", figure(figures.training_curves(history, point)))


def _top_confusions(model: MnistCNN, data: Mnist, evaluation: Evaluation, examples: int) -> str:
    """Per top cell: its most confident mistakes, then each one's Integrated Gradients map of the answer."""
    cells = confusion.top_confusions(evaluation.confusion, TOP_CONFUSIONS)
    plural = data.words.plural
    names, parts = data.classes, [] if cells else [paragraph(f"The network misreads no test {data.words.noun}.")]
    for a, b, count in cells:
        indices = evaluation.cell(a, b)[:examples]  # most confident first
        images = data.test.images[indices]
        n = len(indices)
        maps = explain(IG, model, to_tensor(images), torch.full((n,), b), torch.full((n,), a))  # (n, 28, 28)
        ig = [figure(figures.attribution_row([maps[k]], [f"test #{i:,}"], images[k])) for k, i in enumerate(indices)]
        hover = [f"test #{i:,}: true {names[a]}, read as {names[b]}" for i in indices]
        captions = [f"{evaluation.confidence[i]:.0%}" for i in indices]
        grid = figures.digit_grid(images, indices, captions, np.ones(n, bool), hover, columns=examples)
        heading = f"True {names[a]} read as {names[b]}: {count:,} test {plural}"
        parts += [f"<h3>{escape(heading)}</h3>", figure(grid), row(ig, 100 // EXAMPLES)]
    note = (
        f"The {TOP_CONFUSIONS} most frequent mistakes, their most confident {plural} first with the network's "
        "confidence in its answer, and the Integrated Gradients map of that answer (red: for it, blue: against)."
    )
    return section("Top confusions", paragraph(note, note=True), *parts)


def _scorecard(info: CheckpointInfo, point: int, root: Path | None, data: Mnist) -> str:
    ref = ModelRef(info.folder.name, point)
    card = scorecard.cached(ref, root=root or info.folder.parent.parent)
    if card is None:
        command = f"python -m core.scorecard --model {ref}"
        how = f"Not computed for these weights: run <code>{escape(command)}</code> (about a minute), then this report."
        return section("Trust scorecard", f"<p>{how}</p>")
    header = ["method"] + [f"{title} ({better} is better)" for _, title, better, _ in scorecard.COLUMNS]
    rows = [
        [method]
        + [
            f"{c.mean:.2f} [{c.low:.2f}, {c.high:.2f}]" + (" ★" if card.best(key) == method else "")
            for key, c in ((key, card.rows[method][key]) for key, *_ in scorecard.COLUMNS)
        ]
        for method in card.ranking()
    ]
    plural = data.words.plural
    note = f"Over {card.digits} test {plural} ({card.mistakes} misread): mean [95% interval]; ★ the best of a column."
    summary = paragraph(card.summary(data.words))
    return section("Trust scorecard", paragraph(note, note=True), table(header, rows), summary)


# ---- the digit report ------------------------------------------------------------------------


def digit_report(
    trained: TrainedModel,
    data: Mnist,
    image: np.ndarray,
    title: str,
    label: int | None = None,
    epoch: int | None = None,
    methods: tuple[str, ...] = ("Saliency", "Integrated Gradients"),
    requests: list[AttributionRequest] | None = None,
) -> str:
    """How the model reads one uint8 (28, 28) digit, as one HTML document: the digit, its class
    probabilities, each conv layer's feature maps, and the attribution maps of the predicted class
    by ``methods`` (input methods; ValueError for others), each with its trust badge. ``requests``,
    when given, replaces ``methods``: the maps exactly as a page asked for them (its target class
    and options)."""
    requests = requests or [AttributionRequest.of(m, {}, target="predicted", upsample=True) for m in methods]
    unknown = [r.method for r in requests if r.method not in INPUT_METHODS]
    if unknown:
        raise ValueError(f"not an input attribution method: {', '.join(unknown)} (choose {', '.join(INPUT_METHODS)})")
    model, point = _weights(trained, epoch)
    x = to_tensor(image[None])
    if hasattr(model, "source"):  # a host's network: its shown layers with positions
        with torch.inference_mode():
            outputs = _network(model, data).outputs(x)
        acts = {name: value[0].float().numpy() for name, value in outputs.items()}
        spatial = [name for name, value in acts.items() if value.ndim == 3]
    else:
        acts = {name: value[0] for name, value in layer_outputs(model, x).items()}
        spatial = list(CONV_LAYERS)
    with torch.inference_mode():
        probs = softmax(model(x)[0].float().numpy())  # (classes,)
    pred, names, info = int(np.argmax(probs)), data.classes, trained.info
    reads = f"{title}: the network reads {names[pred]} ({probs[pred]:.1%})"
    if label is not None:
        reads += " — correct" if pred == label else f" — wrong: labelled {names[label]}"
    made = (
        f"Model {info.folder.name} after {info.config.point_name(point)}, data {info.data_source}; generated {_now()}."
    )
    digit = figures.digit(image, title, size=240)
    return page(
        f"{words.capital(data.words.noun)} report: {title}",
        [
            paragraph(made, note=True),
            section(
                "Prediction",
                paragraph(reads),
                row([figure(digit), figure(figures.probabilities(probs, label, pred, names))], 50),
            ),
            section(
                "Feature maps",
                paragraph("Each layer's channels after its activation, on one colour scale per layer.", note=True),
                *(figure(figures.feature_maps(acts[layer], layer, True)) for layer in spatial),
            ),
            _attributions(model, image, pred, label, requests, names),
        ],
    )


def _attributions(
    model: MnistCNN, image: np.ndarray, pred: int, label: int | None, requests: list, names: tuple[str, ...]
) -> str:
    """The maps side by side, then each one's trust badge (none for a contrast of two classes),
    worded as in the app."""
    images = to_tensor(image[None])  # (1, 1, 28, 28)
    true = None if label is None else torch.tensor([label])
    maps = [explain(r, model, images, torch.tensor([pred]), true)[0] for r in requests]
    badges = [_badge(r.method, _verdict(model, images, pred, label, r)) for r in requests]
    checks = " · ".join(f"{n}. {name.split(':')[0]}" for n, name in enumerate(explanation_checks.CHECK_NAMES, 1))
    legend = (
        f"Under each map: one word for the whole, then a mark per check: {checks} (✔ passes, ✖ fails, – not checked)."
    )
    targets = list(dict.fromkeys(_target_name(r, pred, label, names) for r in requests))
    methods = list(dict.fromkeys(r.method for r in requests))
    return section(
        "Attributions",
        paragraph(f"The evidence for {' and '.join(targets)}.", note=True),
        figure(figures.attribution_row(maps, [r.method for r in requests], image)),
        *(badge for badge in badges if badge),
        paragraph(legend + " Open a badge for the numbers.", note=True),
        *(paragraph(f"{m}: {METHODS[m].description}", note=True) for m in methods),
    )


def _target_name(request: AttributionRequest, pred: int, label: int | None, names: tuple[str, ...]) -> str:
    target = target_class(request, pred, label)
    if target is None:  # the contrast of the answer with the label
        return f"{names[pred]} minus the evidence for {names[label]}"
    return f"{names[target]} ({'the answer' if target == pred else 'the label' if target == label else 'chosen'})"


def _verdict(model: MnistCNN, images: torch.Tensor, pred: int, label: int | None, request: AttributionRequest):
    """The trust badge's checks of one map, run exactly as dashboard/cache.py ``verdict`` runs them
    (None for a contrast of two classes, which the checks do not cover)."""
    target = target_class(request, pred, label)
    if target is None:
        return None
    target = torch.tensor([target])
    seed = explanation_checks.digit_seed(images[0])
    return explanation_checks.verdicts(explainer(request), model, images, target, seed)[0]


def _badge(method: str, verdict: explanation_checks.Verdict | None) -> str:
    """The badge: the word and the marks, opening to the text the app shows on hover ("" for none)."""
    if verdict is None:
        return ""
    marks = " ".join(MARKS[m] for m in verdict.marks)
    word = f"<span class={verdict.word}><strong>{verdict.word}</strong> {marks}</span>"
    detail = words.verdict_html(verdict)  # the text panels.trust_badges shows on hover
    return f"<details><summary><strong>{escape(method)}</strong>: {word}</summary>{detail}</details>"


# ---- the command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a cached model's KEY, or KEY@N for its N-th saved point")
    parser.add_argument("--epoch", type=int, help="the saved point to show (default: the last; same as KEY@N)")
    parser.add_argument("--digit", help="SPLIT:INDEX, e.g. test:42: the report of that digit instead of the model's")
    parser.add_argument("--out", required=True, type=Path, help="the HTML file to write")
    args = parser.parse_args(argv)
    try:
        ref, trained, data = _load(args.model, args.epoch)
        digit = None if args.digit is None else _parse_digit(args.digit, data)
        if args.out.is_dir() or not args.out.parent.is_dir():
            raise ValueError(f"cannot write {args.out}: {'it is a folder' if args.out.is_dir() else 'no such folder'}")
    except (ValueError, CheckpointError) as err:  # a DataError is a ValueError
        parser.error(str(err))
    if digit is None:
        text = model_report(trained, data, ref.epoch)
    else:
        split, index = digit
        image, label = data.split(split).images[index], int(data.split(split).labels[index])
        text = digit_report(trained, data, image, f"{split} #{index:,}", label, ref.epoch)
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as err:
        parser.error(f"cannot write {args.out}: {err.strerror or err}")
    print(f"wrote {args.out} ({len(text.encode()) / 1e6:.1f} MB)")
    return 0


def _load(model: str, epoch: int | None) -> tuple[ModelRef, TrainedModel, Mnist]:
    """The reference that ``--model KEY[@N]`` and ``--epoch`` make, the cached model (one still
    training: the weights saved so far) and its data; raises ValueError saying what is wrong."""
    ref = ModelRef.parse(model)
    if epoch is not None and ref.epoch not in (None, epoch):
        raise ValueError(f"{model} names saved point {ref.epoch} but --epoch says {epoch}")
    ref = ModelRef(ref.key, ref.epoch if epoch is None else epoch)
    folder = checkpoints.models_root() / ref.key
    if (folder / checkpoints.META).is_file():
        trained = load_cached(ref.key)
    elif (trained := load_provisional(ref.key)) is None:
        cached = ", ".join(info.key for info in checkpoints.list_checkpoints()) or "none"
        raise ValueError(
            f"no model {ref.key} in the cache {folder.parent} (it holds: {cached}); see python -m core.train"
        )
    if ref.epoch is not None and ref.epoch > trained.info.epochs_done:
        raise ValueError(f"model {ref.key} saved points 1..{trained.info.epochs_done}, not {ref.epoch}")
    return ref, trained, load_mnist(trained.info.data_source)


def _parse_digit(text: str, data: Mnist) -> tuple[str, int]:
    """SPLIT:INDEX as (split, index); raises ValueError when malformed or out of range."""
    split, colon, index = text.partition(":")
    if not colon or split not in ("train", "test") or not index.isdigit():
        raise ValueError(f"--digit must be SPLIT:INDEX with SPLIT train or test (e.g. test:42), not {text!r}")
    if int(index) >= len(data.split(split)):
        raise ValueError(f"the {split} split has {data.words.count(len(data.split(split)))}: {index} is past its end")
    return split, int(index)


if __name__ == "__main__":
    sys.exit(main())
