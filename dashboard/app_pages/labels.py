"""Suspicious labels: the training and test digits whose given label the model most doubts,
by confident learning (``core.label_issues``); click one to select it."""

import numpy as np
import streamlit as st
import torch

from core import label_issues
from core.data import Naming
from core.train import flipped
from dashboard import cache, panels, state
from dashboard.view import LabelFilter, View
from dashboard.words import capital

SPLITS = ("train", "test")  # the splits ranked, as the URL names them
PAGE = 40  # digits per page of the ranking
PAGE_KEY = "labels_page"
ANY = "any"


def _flipped_on_purpose(view: View, split: str) -> np.ndarray | None:
    """The training digits whose labels this model's recipe flipped on purpose, or None."""
    config = view.trained.info.config
    if split != "train" or not config.flip_labels:
        return None
    labels = torch.from_numpy(view.data.train.labels[: config.train_limit or len(view.data.train)])
    return flipped(config, labels)[0].numpy()


def _tiles(view: View, found: label_issues.LabelIssues, rows: np.ndarray, purpose: np.ndarray | None) -> tuple:
    """Each tile's caption (label → what the network says, the probability of the label, * when
    flipped on purpose), whether it is drawn as a doubt (the network says another class), and its hover."""
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
    return captions, found.suggested[rows] != found.labels[rows], hover


def not_flagged(words: Naming) -> str:
    """The heading and paragraph above the part of the ranking confident learning left out."""
    return (
        "**Not flagged: the rest of the ranking, by the probability the network gives the label (lowest first).** "
        f"Confident learning flags {words.a} only when the network's probability for another class passes that "
        f"class's threshold (its average confidence on {words.plural} labelled so), and only as many for each pair "
        f"of classes as it estimates are mislabelled. The {words.plural} below were left out by one rule or the "
        "other, yet the network still doubts their label: a wrong label the network half learnt, "
        f"{words.a} between two classes, or one the estimated count had no room for. Wrong labels are often found "
        "here too, so a person may still look."
    )


def render(view: View) -> None:
    st.title("Suspicious labels")
    noun, plural = view.words.noun, view.words.plural
    st.caption(
        f"The {plural} whose given label the network most doubts, found by {label_issues.REFERENCE}. It estimates, "
        f"for each pair of classes, how many {plural} labelled one are really the other, from the network's "
        "probabilities and a confidence threshold per class, flags that many, and ranks them by the probability the "
        "network gives the label (lowest first). Each tile reads *label → what the network says*, then the "
        f"probability the network gives the label; click one to select that {noun} on every page."
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
    splits = {"train": f"Training {plural}", "test": f"Test {plural}"}
    split = (
        controls[0].segmented_control(
            capital(plural), list(SPLITS), format_func=splits.get, default=chosen.split, key="labels_split"
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
    found = cache.suspicious_labels(view.ref, split)
    rows, flagged = found.rows(given, suggested)
    total = len(found.labels)
    if split == "train":
        where = "the model's own probabilities: it trained on these labels, so one it memorised hides"
    else:
        where = f"probabilities of {plural} the model never trained on"
    st.markdown(
        f"**{len(found.flagged):,}** of {total:,} labels flagged ({len(found.flagged) / total:.1%}), from {where}. "
        f"After {view.epoch_name}. Below them the ranking goes on through all the rest."
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
        st.info("No label matches these filters.", icon=":material/filter_alt_off:")
        state.select_label_filter(LabelFilter(split, given, suggested))
        return
    page = _page(controls[3], chosen, LabelFilter(split, given, suggested), -(-len(rows) // PAGE))
    state.select_label_filter(LabelFilter(split, given, suggested, page))  # in the URL
    start = (page - 1) * PAGE
    shown = rows[start : start + PAGE]
    head, tail = shown[: max(flagged - start, 0)], shown[max(flagged - start, 0) :]
    if len(head):
        st.caption(f"Ranks {start + 1:,}–{start + len(head):,} of {flagged:,} flagged.")
        panels.digit_grid(view, split, head, "labels_grid", tiles=_tiles(view, found, head, purpose))
    if len(tail):
        first = start + len(head)
        st.divider()
        text = not_flagged(view.words)
        st.markdown(text if first == flagged else text.split("**")[1])
        st.caption(
            f"Ranks {first + 1:,}–{first + len(tail):,} of {len(rows):,}"
            + (f" (none of these filters' {plural} is flagged)." if not flagged else f" ({flagged:,} flagged above).")
        )
        panels.digit_grid(view, split, tail, "labels_grid_rest", tiles=_tiles(view, found, tail, purpose))
    sample = view.sample
    if sample.split == split and sample.index < total:
        i = sample.index
        st.divider()
        st.markdown(
            f"**Selected: {view.title(sample)}**, labelled {names[found.labels[i]]}; the network gives that label "
            f"{found.quality[i]:.1%} and says {names[found.suggested[i]]}."
            + (
                f" Flagged: rank {found.rank(i) + 1:,} of {len(found.flagged):,}."
                if found.rank(i) < len(found.flagged)
                else f" Not flagged: rank {found.rank(i) + 1:,} of {total:,} in the whole ranking."
            )
        )
        panels.sample_detail(view, sample, view.image(), map_link=True)


def _page(column, chosen: LabelFilter, now: LabelFilter, pages: int) -> int:
    """The page of the ranking to show (1-based): the link's or the last one shown, back to 1 when
    the split or a class changed, and the last page, with a notice, for a link past the end."""
    if pages <= 1:
        return 1
    same = (now.split, now.given, now.says) == (chosen.split, chosen.given, chosen.says)
    wanted = chosen.page if same else 1
    if wanted > pages and PAGE_KEY not in st.session_state:  # a link's page past the end (else: an epoch's fewer)
        st.warning(
            f"The link asks for page {wanted:,} of the ranking; these filters give {pages:,} pages. Showing the last.",
            icon=":material/link_off:",
        )
    wanted = min(wanted, pages)
    if not same or PAGE_KEY not in st.session_state or st.session_state[PAGE_KEY] > pages:
        st.session_state[PAGE_KEY] = wanted
    return int(column.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, step=1, key=PAGE_KEY))


render(state.page_view())
