"""Pieces of page that several pages draw the same way."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.data import to_tensor
from core.evaluate import predict_logits
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
    evaluation = cache.evaluation(state.current_model().info.key, split)
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


def sample_picker(prefix: str) -> state.Sample:
    """Pick the sample here (split and index, random, or a misclassified one), or keep the
    one chosen on another page; returns the selected sample and shows its prediction."""
    sample = state.selected_sample()
    data = state.current_data()
    key = state.current_model().info.key
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


def prediction_line(sample: state.Sample, probs: np.ndarray) -> None:
    label = state.sample_label(sample)
    pred = int(np.argmax(probs))
    verdict = "" if label is None else (" — correct" if pred == label else f" — **wrong**, it is a {label}")
    st.markdown(f"**{sample.title}**: the network reads **{pred}** ({probs[pred]:.1%}){verdict}")
