"""Figures of the Probe page: a digit before and after a change, and a sweep of a bend.
Pure functions from arrays to figures: no Streamlit."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dashboard.figures import DIVERGING, INK, figure, tile

CLASS_COLOURS = (  # ten distinguishable colours (Plotly's D3 palette), one per class
    "#1F77B4",
    "#FF7F0E",
    "#2CA02C",
    "#D62728",
    "#9467BD",
    "#8C564B",
    "#E377C2",
    "#7F7F7F",
    "#BCBD22",
    "#17BECF",
)


def before_after(before: np.ndarray, after: np.ndarray, titles: tuple[str, str, str]) -> go.Figure:
    """Two uint8 (28, 28) digits and their difference (red: ink added, blue: ink removed)."""
    digits, _ = tile(np.stack([before, after]).astype(np.float32), 2, gap=3)
    difference = (after.astype(np.float32) - before.astype(np.float32)) / 255.0
    width = digits.shape[1]
    pad = np.full((28, 3), np.nan, dtype=np.float32)
    z_diff = np.concatenate([np.full((28, width), np.nan, dtype=np.float32), pad, difference], axis=1)
    z_ink = np.concatenate([digits, pad, np.full((28, 28), np.nan, dtype=np.float32)], axis=1)
    traces = [
        go.Heatmap(z=z_ink, colorscale=INK, zmin=0, zmax=255, showscale=False, hoverinfo="skip"),
        go.Heatmap(
            z=z_diff,
            colorscale=DIVERGING,
            zmin=-1,
            zmax=1,
            showscale=False,
            hovertemplate="row %{y}, col %{x}: %{z:+.2f}<extra>change of ink</extra>",
        ),
    ]
    x = [14, 14 + 31, 14 + 62]
    notes = [dict(x=xi, y=-2.5, text=t, showarrow=False, font=dict(size=12)) for xi, t in zip(x, titles, strict=True)]
    return figure(traces, 230, 600, image=True, annotations=notes, top=34)


def compare_probabilities(
    before: np.ndarray, after: np.ndarray, classes: tuple[str, ...], names: tuple[str, str] = ("before", "after")
) -> go.Figure:
    """Each class's probability before and after, as grouped bars."""
    bars = [
        go.Bar(
            name=name,
            x=list(classes),
            y=p,
            marker_color=colour,
            hovertemplate=f"{name} · class %{{x}}: %{{y:.2%}}<extra></extra>",
        )
        for name, p, colour in zip(names, (before, after), ("#ADB5BD", "#4C6EF5"), strict=True)
    ]
    return figure(
        bars,
        250,
        barmode="group",
        yaxis=dict(range=[0, 1.05], tickformat=".0%", title="probability"),
        xaxis=dict(type="category", title="class"),
        legend=dict(orientation="h", y=1.12, x=0),
    )


def sweep_probabilities(
    values: np.ndarray,
    probs: np.ndarray,
    classes: tuple[str, ...],
    unit: str,
    flips: tuple[float | None, float | None],
    identity: float,
) -> go.Figure:
    """Every class's probability across a bend's values; dashed lines where the answer flips."""
    lines = [
        go.Scatter(
            x=values,
            y=probs[:, k],
            mode="lines",
            name=classes[k],
            line=dict(color=CLASS_COLOURS[k % len(CLASS_COLOURS)], width=2),
            hovertemplate=f"class {classes[k]} at %{{x:.3g}} {unit}: %{{y:.1%}}<extra></extra>",
        )
        for k in range(probs.shape[1])
        if probs[:, k].max() >= 0.02  # classes that never reach 2% would only clutter the plot
    ]
    shapes = [dict(type="line", x0=identity, x1=identity, y0=0, y1=1, line=dict(color="#495057", width=1))]
    notes = [dict(x=identity, y=1.06, text="as drawn", showarrow=False, font=dict(size=11))]
    for flip in flips:
        if flip is not None:
            shapes.append(dict(type="line", x0=flip, x1=flip, y0=0, y1=1, line=dict(color="#C92A2A", dash="dash")))
            notes.append(dict(x=flip, y=-0.12, text=f"flips at {flip:.3g}", showarrow=False, font=dict(size=11)))
    return figure(
        lines,
        300,
        shapes=shapes,
        annotations=notes,
        yaxis=dict(range=[0, 1.1], tickformat=".0%", title="probability"),
        xaxis=dict(title=unit),
        legend=dict(title="class"),
    )


def sweep_similarity(values: np.ndarray, similarity: dict[str, np.ndarray], unit: str) -> go.Figure:
    """Per layer, how alike the bent digit's feature maps stay to the original's (correlation)."""
    lines = [
        go.Scatter(
            x=values,
            y=s,
            mode="lines",
            name=layer,
            hovertemplate=f"{layer} at %{{x:.3g}} {unit}: r = %{{y:.2f}}<extra></extra>",
        )
        for layer, s in similarity.items()
    ]
    return figure(
        lines,
        260,
        yaxis=dict(range=[-0.2, 1.05], title="correlation with the original"),
        xaxis=dict(title=unit),
        legend=dict(title="layer"),
    )


def flip_shares(
    rotation: np.ndarray, shift: np.ndarray, classes: tuple[str, ...], angle: int, pixels: int
) -> go.Figure:
    """Per class, the share of test digits whose answer flips within ±angle or ±pixels."""
    bars = [
        go.Bar(name=name, x=list(classes), y=share, hovertemplate=f"{name} · class %{{x}}: %{{y:.1%}}<extra></extra>")
        for name, share in ((f"rotated within ±{angle}°", rotation), (f"shifted within ±{pixels} px", shift))
    ]
    return figure(
        bars,
        260,
        barmode="group",
        yaxis=dict(tickformat=".0%", title="share that flips"),
        xaxis=dict(type="category", title="true class"),
        legend=dict(orientation="h", y=1.12, x=0),
    )


STRIP = 8  # saved points drawn on the strip at most (a map and a feature map each)


def strip_points(saved: int, current: int, most: int = STRIP) -> list[int]:
    """Which of ``saved`` points (1-based) the strip draws: all of them when they fit, else
    ``most`` spread evenly from the first to the last, with ``current`` among them."""
    if saved <= most:
        return list(range(1, saved + 1))
    spread = {round(1 + i * (saved - 1) / (most - 1)) for i in range(most)}
    if current not in spread:
        spread.remove(min(spread - {1, saved}, key=lambda p: abs(p - current)))
        spread.add(current)
    return sorted(spread)
