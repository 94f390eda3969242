"""Overview: the model card and its training curves. The architecture and the data need
no trained model, so they show at once on a first start while the model trains."""

import dataclasses
from pathlib import Path

import numpy as np
import streamlit as st

from core.model import layer_table
from dashboard import cache, figures, panels, report, state
from dashboard.view import View


def render(view: View) -> None:
    st.title("What this network is")
    noun, plural = view.words.noun, view.words.plural
    if view.host and view.trained.info.network is not None:
        record = view.trained.info.network
        st.markdown(
            f"**{record.name}**, a network the host of this server opened from `{Path(record.net).name}` with the "
            f"weights `{Path(record.weights).name}`, reads a 28×28 image and outputs {len(view.data.classes)} "
            f"scores, one per class. Its layers below are found from its graph. Open **Browse {plural}** to see its "
            "predictions, **Errors** to see where it fails."
        )
    elif view.host:
        file, _, name = view.trained.info.config.arch.rpartition(":")
        st.markdown(
            f"**{name}**, the host's network from `{Path(file).name}`, trained here with the "
            f"{view.trained.info.config.recipe} recipe: it reads a 28×28 image (normalised as the reference's) and "
            f"outputs {len(view.data.classes)} scores, one per class. Its layers below are found from its graph."
        )
    else:
        read, per = (f"handwritten {noun}", noun) if view.data.digits else (noun, "class")
        st.markdown(
            f"A small convolutional network reads a 28×28 {read} and outputs ten scores, one per {per}. "
            "Four 3×3 convolutions find strokes and then shapes, two max-pools shrink the picture, and two "
            f"fully connected layers turn what was found into a decision. Open **Browse {plural}** to see its "
            "predictions, **Errors** to see where it fails."
        )
    if not view.data.digits:
        st.info(
            f"This network reads **{view.data.name}**, whose ten classes are {', '.join(view.data.classes)}: every "
            "page calls a class by its name.",
            icon=":material/category:",
        )
    if view.trained is None:
        panels.training_status(view.job.key, "Training the default model (once; later starts load it)")
        rows = layer_table()
        _architecture(rows)
        data = view.data
        st.subheader("The data")
        st.markdown(f"{len(data.train):,} training and {len(data.test):,} test {plural} ({data.source}).")
        counts = {name: np.bincount(data.split(name).labels, minlength=10) for name in ("train", "test")}
        st.plotly_chart(
            figures.class_balance(counts, data.classes), key="overview_balance", config=figures.CHART_CONFIG
        )
        return

    trained, info, data = view.trained, view.trained.info, view.data
    evaluation = cache.evaluation(view.ref, "test")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(
        "Test accuracy",
        f"{evaluation.accuracy:.2%}",
        help=f"On the {len(evaluation.labels):,} test images the model never saw",
    )
    c2.metric("Mistakes", f"{len(evaluation.misclassified):,} of {len(evaluation.labels):,}")
    c3.metric("Parameters", f"{sum(p.numel() for p in trained.model.parameters()):,}")
    epochs = info.config.epochs
    plural = "" if epochs == 1 else "s"
    # Short enough for a quarter of the page ("epoch 1 of 3, 4.1 s" was cut to "epoch 1 of …", and
    # "0.5 of 3 epochs" to "0.5 of 3 ep…": the label says epochs).
    if info.provisional:
        point = info.config.point_epoch(info.epochs_done)
        c4.metric(
            "Training, epochs",
            f"{point:.4g} of {epochs}",
            help=f"Still training: these weights were saved after {info.train_seconds:.1f} s.",
        )
    elif info.network is not None:
        c4.metric("Trained", "elsewhere", help="The host opened these weights; they were not trained here.")
    else:
        seconds = info.train_seconds
        c4.metric("Training", f"{epochs} epoch{plural}, {seconds:.0f} s", help=f"Trained in {seconds:.1f} s.")
    if view.epoch < info.epochs_done:
        st.info(f"Showing the weights after {view.epoch_name} of {epochs} (chosen in the sidebar).")
    panels.report_button(
        lambda: report.model_report(trained, data, view.ref.epoch),
        "Save a report of this model",
        f"model-{view.ref.key}-{view.epoch_name.replace(' ', '')}.html",
        "One HTML file that opens offline: the architecture, recipe, training curves, accuracy per class, the "
        f"confusion matrix, the top confusions with their {plural} and maps, and the trust scorecard if computed.",
    )

    if info.network is not None:  # opened by the host: no recipe, no curves
        _host_network(view)
        return
    left, right = st.columns([1, 1], gap="large")
    with left:
        if view.host:  # a host's class trained here: its layers from its graph
            st.subheader("Architecture")
            _graph(cache.network(view.ref))
        else:
            _architecture(layer_table(trained.model))
            with st.expander("Every step of its graph"):
                _graph(cache.network(view.ref))
    with right:
        st.subheader("Recipe")
        config = dataclasses.asdict(info.config)
        st.dataframe(
            [{"setting": k, "value": str(v)} for k, v in config.items()]
            + [
                {"setting": "device", "value": info.device},
                {
                    "setting": "data",
                    "value": f"{info.data_source} ({len(data.train):,} train / {len(data.test):,} test)",
                },
                {"setting": "cache key", "value": info.key},
            ],
            hide_index=True,
            width="stretch",
            height="content",
        )

    left, right = st.columns([1, 1], gap="large")
    with left:
        st.subheader("Training curves")
        st.plotly_chart(
            figures.training_curves(trained.history, view.epoch), key="overview_curves", config=figures.CHART_CONFIG
        )
    with right:
        st.subheader("Accuracy per class")
        st.plotly_chart(
            figures.per_class_accuracy(evaluation.per_class_accuracy(), data.classes),
            key="overview_per_class",
            config=figures.CHART_CONFIG,
        )


def _host_network(view: View) -> None:
    """A host's network: its layers from the graph, where it came from, its accuracy per class."""
    info, data = view.trained.info, view.data
    record, network = info.network, cache.network(view.ref)
    left, right = st.columns([1, 1], gap="large")
    with left:
        st.subheader("Architecture")
        _graph(network)
    with right:
        st.subheader("Where it came from")
        normalised = "none" if (record.mean, record.std) == (0.0, 1.0) else f"mean {record.mean}, std {record.std}"
        st.dataframe(
            [
                {"setting": "class", "value": record.net},
                {"setting": "weights", "value": record.weights},
                {"setting": "normalisation", "value": normalised},
                {"setting": "returns", "value": record.output},
                {"setting": "data", "value": f"{info.data_source} ({len(data.test):,} test images)"},
                {"setting": "cache key", "value": info.key},
            ],
            hide_index=True,
            width="stretch",
            height="content",
        )
        st.caption(
            "Trained elsewhere, so there are no training curves or saved epochs to step through. Its key changes when "
            "its class file, its weights or the data change; the host restarts the server to open a new version."
        )
        st.subheader("Accuracy per class")
        evaluation = cache.evaluation(view.ref, "test")
        st.plotly_chart(
            figures.per_class_accuracy(evaluation.per_class_accuracy(), data.classes),
            key="overview_per_class",
            config=figures.CHART_CONFIG,
        )


def _graph(network) -> None:
    """Every node of the network's torch.fx graph: what the contract every page reads it through sees."""
    names = {layer.node: layer.name for layer in network.layers}
    read = {node: name for name, node in network.shown.items()}
    st.dataframe(
        [
            {
                "step": layer.name,
                "kind": layer.kind,
                "output shape": " × ".join(str(d) for d in layer.shape),
                "parameters": layer.parameters,
                "pages show": read.get(layer.node, ""),
            }
            for layer in network.layers
        ],
        hide_index=True,
        width="stretch",
        height="content",  # every step at once: a host's graph has a few dozen
        column_config={"parameters": st.column_config.NumberColumn(format="localized")},
    )
    after = [f"{name} after {names[node]}" for name, node in network.shown.items() if names[node] != name]
    st.caption(
        f"Found from the network's graph (torch.fx), {len(network.layers)} steps; it returns {network.output}. "
        f"Where the pages name a layer they read it after its activation: {', '.join(after)}."
    )


def _architecture(rows) -> None:
    total = sum(r.parameters for r in rows)
    st.subheader("Architecture")
    st.dataframe(
        [
            {
                "layer": r.name,
                "type": r.kind,
                "output shape": " × ".join(str(d) for d in r.output_shape),
                "parameters": r.parameters,
            }
            for r in rows
        ]
        + [{"layer": "total", "type": "", "output shape": "", "parameters": total}],
        hide_index=True,
        width="stretch",
        height="content",  # every step at once: a host's graph has a few dozen
        column_config={"parameters": st.column_config.NumberColumn(format="localized")},
    )
    st.caption("Each conv layer is followed by a ReLU; fc2 outputs raw logits (softmax gives the probabilities).")


render(state.page_view())
