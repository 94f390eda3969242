"""Pieces of page that several pages draw the same way."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.data import to_tensor
from core.evaluate import predict_logits
from dashboard import cache, figures, state

PAGE_SIZE = 100  # tiles per page: one mosaic of 10 x 10


def tile_captions(evaluation, indices: np.ndarray) -> tuple[list[str], np.ndarray, list[str]]:
    """Caption, wrongness and hover text for each tile of a digit grid."""
    labels = evaluation.labels[indices]
    preds = evaluation.preds[indices]
    conf = evaluation.confidence[indices]
    probs = evaluation.probs[indices]
    wrong = labels != preds
    captions = [
        f"{t}→{p} {c:.0%}" if w else f"{t} {c:.0%}" for t, p, c, w in zip(labels, preds, conf, wrong, strict=True)
    ]
    hover = []
    for i, t, p, row in zip(indices, labels, preds, probs, strict=True):
        top = np.argsort(-row)[:3]
        hover.append(f"#{i:,} · true {t} · predicted {p}<br>" + " · ".join(f"{k}: {row[k]:.1%}" for k in top))
    return captions, wrong, hover


def digit_grid(split: str, indices: np.ndarray, key: str) -> None:
    """A clickable grid of digits; a click makes the digit the selected sample."""
    evaluation = cache.evaluation(state.current_model().info.key, split)
    images = state.current_data().split(split).images[indices]
    captions, wrong, hover = tile_captions(evaluation, indices)
    sample = state.selected_sample()
    selected = None
    if sample.split == split:
        hits = np.flatnonzero(indices == sample.index)
        selected = int(hits[0]) if len(hits) else None

    def on_click() -> None:
        points = st.session_state[key].selection.points
        if points:
            state.select(split, int(points[0]["customdata"][0]))

    st.plotly_chart(
        figures.digit_grid(images, indices, captions, wrong, hover, selected=selected),
        key=key,
        on_select=on_click,
        selection_mode="points",
        config=figures.CHART_CONFIG,
        width="content",
    )


def sample_detail(sample: state.Sample | None = None) -> None:
    """The selected digit large, its probabilities, and links to look inside the network."""
    sample = sample or state.selected_sample()
    image = state.sample_image(sample)
    label = state.sample_label(sample)
    trained = state.current_model()
    if sample.split == state.DRAWN:
        probs = predict_logits(trained.model, to_tensor(image[None])).softmax(1)[0].numpy()
    else:
        probs = cache.evaluation(trained.info.key, sample.split).probs[sample.index]
    pred = int(np.argmax(probs))
    verdict = "" if label is None else (" ✓" if pred == label else f" ✗ (true {label})")
    st.markdown(f"#### {sample.title}: predicted **{pred}** at {probs[pred]:.1%}{verdict}")
    left, right = st.columns([2, 3])
    with left:
        st.plotly_chart(figures.digit(image, size=220), key=f"detail_image_{sample.split}", config=figures.CHART_CONFIG)
    with right:
        st.plotly_chart(
            figures.probabilities(probs, label, pred, state.current_data().classes),
            key=f"detail_probs_{sample.split}",
            config=figures.CHART_CONFIG,
        )
    links = st.columns(2)
    for column, page, title, icon in (
        (links[0], "app_pages/feature_maps.py", "Feature maps of this digit", ":material/layers:"),
        (links[1], "app_pages/attributions.py", "Why: attributions", ":material/insights:"),
    ):
        column.page_link(page, label=title, icon=icon)
