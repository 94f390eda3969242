"""Pieces of page that several pages draw the same way."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.evaluate import softmax
from dashboard import cache, figures, state

PAGE_SIZE = 100  # tiles per page: one mosaic of 10 x 10


def clicked(chart_key: str) -> list | None:
    """The customdata of the point clicked in a chart, as a list, or None.

    The browser sends a point's customdata as an object keyed "0", "1", …, not a list.
    """
    points = st.session_state[chart_key].selection.points
    if not points:
        return None
    data = points[0].get("customdata")
    if isinstance(data, dict):
        return [data[k] for k in sorted(data, key=int)]
    return list(data) if isinstance(data, (list, tuple)) else [data]


def tile_captions(evaluation, indices: np.ndarray, short: bool = False) -> tuple[list[str], np.ndarray, list[str]]:
    """Caption, wrongness and hover text for each tile of a digit grid (``short``: confidence only)."""
    labels = evaluation.labels[indices]
    preds = evaluation.preds[indices]
    conf = evaluation.confidence[indices]
    probs = evaluation.probs[indices]
    wrong = labels != preds
    captions = [
        f"{c:.0%}" if short else f"{t}→{p} {c:.0%}" if w else f"{t} {c:.0%}"
        for t, p, c, w in zip(labels, preds, conf, wrong, strict=True)
    ]
    hover = []
    for i, t, p, row in zip(indices, labels, preds, probs, strict=True):
        top = np.argsort(-row)[:3]
        hover.append(f"#{i:,} · true {t} · predicted {p}<br>" + " · ".join(f"{k}: {row[k]:.1%}" for k in top))
    return captions, wrong, hover


def digit_grid(split: str, indices: np.ndarray, key: str, columns: int = 10, short: bool = False) -> None:
    """A clickable grid of digits; a click makes the digit the selected sample."""
    evaluation = cache.evaluation(state.model_ref(), split)
    images = state.current_data().split(split).images[indices]
    captions, wrong, hover = tile_captions(evaluation, indices, short)
    sample = state.selected_sample()
    selected = None
    if sample.split == split:
        hits = np.flatnonzero(indices == sample.index)
        selected = int(hits[0]) if len(hits) else None

    def on_click() -> None:
        data = clicked(key)
        if data:
            state.select(split, int(data[0]))

    st.plotly_chart(
        figures.digit_grid(images, indices, captions, wrong, hover, columns=columns, selected=selected),
        key=key,
        on_select=on_click,
        selection_mode="points",
        config=figures.CHART_CONFIG,
        width="content",
    )


def sample_probs(sample: state.Sample) -> np.ndarray:
    """The model's class probabilities for a sample, float32 (10,)."""
    key = state.model_ref()
    if sample.split == state.DRAWN:
        return softmax(cache.activations(key, state.sample_image(sample).tobytes())["fc2"])
    return cache.evaluation(key, sample.split).probs[sample.index]


def sample_detail(sample: state.Sample | None = None, image_title: str = "") -> None:
    """A digit large, its probabilities, and links to look inside the network."""
    sample = sample or state.selected_sample()
    image = state.sample_image(sample)
    label = state.sample_label(sample)
    probs = sample_probs(sample)
    pred = int(np.argmax(probs))
    st.markdown("#### " + prediction_text(sample, probs))
    left, right = st.columns([2, 3])
    with left:
        st.plotly_chart(
            figures.digit(image, image_title, size=200), key=f"detail_image_{sample.split}", config=figures.CHART_CONFIG
        )
    with right:
        st.plotly_chart(
            figures.probabilities(probs, label, pred, state.current_data().classes),
            key=f"detail_probs_{sample.split}",
            config=figures.CHART_CONFIG,
        )
    links = st.columns(2)
    links[0].page_link("app_pages/feature_maps.py", label="Its feature maps", icon=":material/layers:")
    links[1].page_link("app_pages/attributions.py", label="Why: its attributions", icon=":material/insights:")


def sample_picker(prefix: str) -> state.Sample:
    """Pick the sample here (split and index, random, or a misclassified one), or keep the
    one chosen on another page; returns the selected sample and shows its prediction."""
    sample = state.selected_sample()
    data = state.current_data()
    key = state.model_ref()
    splits = list(state.DATA_SPLITS) + ([state.DRAWN] if state.has_drawn() else [])
    # The shared selection is the truth: put it into this page's widgets before they draw.
    st.session_state[f"{prefix}_split"] = sample.split
    st.session_state[f"{prefix}_index"] = sample.index

    def on_split() -> None:
        split = st.session_state[f"{prefix}_split"]
        state.select(split, 0 if split != sample.split else sample.index)

    def on_index() -> None:
        state.select(st.session_state[f"{prefix}_split"], st.session_state[f"{prefix}_index"])

    def on_random() -> None:
        split = sample.split if sample.split in state.DATA_SPLITS else "test"
        state.select(split, int(np.random.default_rng().integers(len(data.split(split)))))

    def on_mistake() -> None:
        picked = st.session_state[f"{prefix}_mistake"]
        if picked is not None:
            state.select("test", picked)
        st.session_state[f"{prefix}_mistake"] = None

    evaluation = cache.evaluation(key, "test")
    wrong = evaluation.misclassified
    cols = st.columns([1, 1, 0.6, 2.2])
    cols[0].selectbox(
        "Split",
        splits,
        key=f"{prefix}_split",
        on_change=on_split,
        format_func=lambda s: "your digit" if s == state.DRAWN else s,
    )
    if sample.split == state.DRAWN:
        cols[1].text_input("Index", "—", disabled=True, key=f"{prefix}_index_drawn")
    else:
        cols[1].number_input("Index", 0, len(data.split(sample.split)) - 1, key=f"{prefix}_index", on_change=on_index)
    cols[2].button("Random", key=f"{prefix}_random", on_click=on_random, icon=":material/casino:")
    cols[3].selectbox(
        f"Or one of the {len(wrong):,} misclassified test digits (most confident first)",
        wrong.tolist(),
        index=None,
        key=f"{prefix}_mistake",
        on_change=on_mistake,
        placeholder="Pick a mistake…",
        format_func=lambda i: (
            f"#{i}: a {evaluation.labels[i]} read as {evaluation.preds[i]} ({evaluation.confidence[i]:.0%})"
        ),
    )
    return state.selected_sample()


def prediction_text(sample: state.Sample, probs: np.ndarray) -> str:
    """'**test #8**: the network reads **5** (99.2%) — correct', as Markdown."""
    label = state.sample_label(sample)
    pred = int(np.argmax(probs))
    verdict = "" if label is None else (" — correct" if pred == label else f" — **wrong**, it is a {label}")
    return f"**{sample.title}**: the network reads **{pred}** ({probs[pred]:.1%}){verdict}"


def prediction_line(sample: state.Sample, probs: np.ndarray) -> None:
    st.markdown(prediction_text(sample, probs))
