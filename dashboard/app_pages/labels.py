"""Suspicious labels: the training and test digits whose given label the model most doubts,
by confident learning (``core.label_issues``); click one to select it."""

import numpy as np
import streamlit as st
import torch

from core import label_issues
from core.train import flipped
from dashboard import cache, panels, state
from dashboard.view import LabelFilter, View

SPLITS = {"train": "Training digits", "test": "Test digits"}
PAGE = 40  # digits per page of the ranking
ANY = "any"


def _flipped_on_purpose(view: View, split: str) -> np.ndarray | None:
    """The training digits whose labels this model's recipe flipped on purpose, or None."""
    config = view.trained.info.config
    if split != "train" or not config.flip_labels:
        return None
    labels = torch.from_numpy(view.data.train.labels[: config.train_limit or len(view.data.train)])
    return flipped(config, labels)[0].numpy()


def _tiles(view: View, found: label_issues.LabelIssues, rows: np.ndarray, purpose: np.ndarray | None) -> tuple:
    names = view.data.classes
    marks = np.isin(rows, purpose) if purpose is not None else np.zeros(len(rows), dtype=bool)
    captions = [
        f"{names[found.labels[i]]}→{names[found.suggested[i]]} {found.quality[i]:.0%}{'*' if m else ''}"
        for i, m in zip(rows, marks, strict=True)
    ]
    hover = [
        f"#{i:,} · labelled {names[found.labels[i]]} · the model says {names[found.suggested[i]]}<br>"
        f"probability of the label {found.quality[i]:.1%}" + ("<br>flipped on purpose" if m else "")
        for i, m in zip(rows, marks, strict=True)
    ]
    return captions, np.ones(len(rows), dtype=bool), hover


def render(view: View) -> None:
    st.title("Suspicious labels")
    st.caption(
        f"The digits whose given label the network most doubts, found by {label_issues.REFERENCE}. It estimates, "
        "for each pair of classes, how many digits labelled one are really the other, from the network's "
        "probabilities and a confidence threshold per class, flags that many, and ranks them by the probability the "
        "network gives the label (lowest first). Each tile reads *label → what the network says*, then the "
        "probability the network gives the label; click one to select that digit on every page."
    )
    if view.trained is None:
        panels.training_status(view.job.key, "The ranking appears when the model is trained")
        return
    if cache.result("banks", view.ref) is None:
        panels.wait_for("banks", view)
        return
    names = view.data.classes
    chosen = view.label_filter  # from the link, or this session's last choice
    controls = st.columns([2, 1.2, 1.2, 2])
    split = (
        controls[0].segmented_control(
            "Digits", list(SPLITS), format_func=SPLITS.get, default=chosen.split, key="labels_split"
        )
        or chosen.split
    )
    choices = [ANY, *range(len(names))]
    show = {ANY: "any class"} | dict(enumerate(names))

    def pick(column, title: str, value: int | None, key: str) -> int | None:
        index = choices.index(ANY if value is None else value)
        picked = column.selectbox(title, choices, index=index, format_func=show.get, key=key)
        return None if picked == ANY else int(picked)

    given = pick(controls[1], "Labelled", chosen.given, "labels_given")
    suggested = pick(controls[2], "The network says", chosen.says, "labels_suggested")
    state.select_label_filter(LabelFilter(split, given, suggested))  # in the URL
    found = cache.suspicious_labels(view.ref, split)
    rows = found.rows(given, suggested)
    total = len(found.labels)
    if split == "train":
        where = "the model's own probabilities: it trained on these labels, so one it memorised hides"
    else:
        where = "probabilities of digits the model never trained on"
    st.markdown(
        f"**{len(found.flagged):,}** of {total:,} labels flagged ({len(found.flagged) / total:.1%}), from {where}. "
        f"After {view.epoch_name}."
    )
    purpose = _flipped_on_purpose(view, split)
    if purpose is not None:
        hits = int(np.isin(found.flagged, purpose).sum())
        st.info(
            f"This model's recipe flipped {len(purpose):,} training labels on purpose (marked *). {hits:,} of them are "
            f"flagged: precision {hits / max(len(found.flagged), 1):.2f}, recall {hits / len(purpose):.2f}.",
            icon=":material/science:",
        )
    if len(rows) == 0:
        st.info("No flagged label matches these filters.", icon=":material/filter_alt_off:")
        return
    pages = -(-len(rows) // PAGE)
    start = 0
    if pages > 1:
        page = controls[3].number_input(f"Page (of {pages})", 1, pages, 1, key="labels_page")
        start = (int(page) - 1) * PAGE
    shown = rows[start : start + PAGE]
    st.caption(f"Ranks {start + 1}–{start + len(shown)} of {len(rows):,} flagged.")
    panels.digit_grid(view, split, shown, "labels_grid", tiles=_tiles(view, found, shown, purpose))
    sample = view.sample
    if sample.split == split and sample.index < total:
        i = sample.index
        st.divider()
        st.markdown(
            f"**Selected: {sample.title}**, labelled {names[found.labels[i]]}; the network gives that label "
            f"{found.quality[i]:.1%} and says {names[found.suggested[i]]}."
            + (" Flagged." if i in set(found.flagged.tolist()) else " Not flagged.")
        )
        panels.sample_detail(view, sample, view.image(), map_link=True)


render(state.page_view())
