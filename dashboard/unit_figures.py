"""The unit card's figures: the digits that excite a unit (with what the unit sees boxed), its
incoming weights, its mean activation per class, what zeroing it costs, the image optimised
for it, and one of its values taken apart. Pure functions from arrays to figures, in the
house style of ``dashboard.figures`` (one mosaic heatmap per grid, one colour scale per meaning).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.data import MNIST_WORDS, Naming
from dashboard.figures import DIVERGING, INK, SEQUENTIAL, figure, labels_trace, tile

COLUMN_WIDTH = 440  # pixels of a half-width column on a wide page: the figures drawn there are sized to it
BOX = "#F08C00"  # the receptive field's outline: orange reads on both ink and paper


def top_digits(
    images: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    boxes: list[tuple[int, int, int, int] | None],
    columns: int = 8,
) -> go.Figure:
    """uint8 (n, 28, 28) digits with the unit's value under each and the receptive field of
    its strongest position boxed ((top, left, h, w) or None: the whole image); clicking a
    digit selects it (``indices`` go into each marker's customdata)."""
    n = len(images)
    z, corners = tile(images.astype(np.float32), columns, gap=6)
    shapes = [
        dict(
            type="rect",
            x0=c + left - 0.5,
            x1=c + left + w - 0.5,
            y0=r + top - 0.5,
            y1=r + top + h - 0.5,
            line=dict(color=BOX, width=2),
        )
        for (r, c), box in zip(corners, boxes, strict=True)
        if box is not None
        for top, left, h, w in [box]
    ]
    captions = [f"#{i:,} · {v:.2f}" for i, v in zip(indices, values, strict=True)]
    traces = [
        go.Heatmap(z=z, colorscale=INK, zmin=0, zmax=255, showscale=False, hoverinfo="skip"),
        go.Scatter(
            x=corners[:, 1] + 13.5,
            y=corners[:, 0] + 30.5,
            mode="text",
            text=captions,
            textfont=dict(size=10, color="#1F2430"),
            hoverinfo="skip",
        ),
        go.Scatter(
            x=corners[:, 1] + 13.5,
            y=corners[:, 0] + 13.5,
            mode="markers",
            marker=dict(symbol="square", size=40, color="rgba(0,0,0,0)"),
            customdata=np.asarray(indices).reshape(-1, 1),
            hovertext=[
                f"test #{i:,}: the unit's strongest value {v:.3f}" for i, v in zip(indices, values, strict=True)
            ],
            hovertemplate="%{hovertext}<br>click to select it<extra></extra>",
        ),
    ]
    rows = max(1, -(-n // columns))
    return figure(traces, rows * 34 * 2 + 30, columns * 34 * 2, image=True, top=5, shapes=shapes, showlegend=False)


def incoming_weights(weights: np.ndarray, title: str) -> go.Figure:
    """A unit's incoming weights as maps, float32 (n, h, w): a conv channel's 3x3 kernel per
    input channel, or an fc1 unit's 512 weights as 32 maps of 4x4 (one per conv4 channel)."""
    n, h, w = weights.shape
    columns = min(n, 8)
    z, corners = tile(weights, columns, gap=1)
    limit = float(np.abs(weights).max()) or 1.0
    ids, _ = tile(np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], weights.shape), columns, gap=1)
    heatmap = go.Heatmap(
        z=z,
        customdata=ids,
        colorscale=DIVERGING,
        zmin=-limit,
        zmax=limit,
        colorbar=dict(title="weight", thickness=10),
        hovertemplate="from channel %{customdata}: %{z:.3f}<extra></extra>",
    )
    labels = labels_trace(corners, [str(i) for i in range(n)], (h, w))
    rows = -(-n // columns)
    pixel = min(24.0, COLUMN_WIDTH / (columns * (w + 1)))  # the maps fill half the page's width, no taller
    return figure(
        [heatmap, labels],
        int(rows * (h + 2) * pixel) + 60,
        image=True,
        showlegend=False,
        title=dict(text=title, font=dict(size=12)),
    )


def weight_bars(strength: np.ndarray, source: str, per_channel: bool) -> go.Figure:
    """A unit's weights as bars when they are too many to draw as maps: each input channel's
    L2 norm of weights (``per_channel``), or each input's weight for a source without a grid."""
    what = "L2 norm of its weights on each channel" if per_channel else "its weight on each value"
    bar = go.Bar(
        x=np.arange(len(strength)),
        y=strength,
        marker_color=np.where(strength >= 0, "#C92A2A", "#1C7ED6"),
        hovertemplate=f"{source} %{{x}}: %{{y:.3f}}<extra></extra>",
    )
    title = dict(text=f"{what} of {source} ({len(strength)})", font=dict(size=12))
    return figure([bar], 260, title=title, xaxis=dict(title=source), yaxis=dict(title="weight"))


def class_means(means: np.ndarray, classes: tuple[str, ...], words: Naming = MNIST_WORDS) -> go.Figure:
    """The unit's mean activation per true class, float (10,), as bars (``words``: what one image
    is called; by default a digit)."""
    noun = words.noun
    bars = go.Bar(
        x=list(classes), y=means, marker_color="#4C6EF5", hovertemplate="class %{x}: mean %{y:.3f}<extra></extra>"
    )
    return figure(
        [bars],
        240,
        xaxis=dict(type="category", title="true class"),
        yaxis=dict(title=f"mean value (per {noun}, over its grid)", rangemode="tozero"),
    )


def ablation(before: np.ndarray, after: np.ndarray, classes: tuple[str, ...]) -> go.Figure:
    """Each class's test accuracy with the unit and with it zeroed, float (10,) twice."""
    traces = [
        go.Bar(x=list(classes), y=before, name="as trained", marker_color="#ADB5BD"),
        go.Bar(
            x=list(classes),
            y=after,
            name="unit zeroed",
            marker_color="#F08C00",
            customdata=(after - before) * 100,
            hovertemplate="class %{x}: %{y:.2%} (%{customdata:+.2f} points)<extra>unit zeroed</extra>",
        ),
    ]
    low = float(np.nanmin(np.concatenate([before, after])))
    return figure(
        traces,
        260,
        barmode="group",
        xaxis=dict(type="category", title="true class"),
        yaxis=dict(title="test accuracy", tickformat=".0%", range=[max(0.0, low - 0.02), 1.0]),
        legend=dict(orientation="h", y=1.15),
    )


def step_maps(patch: np.ndarray, kernel: np.ndarray, products: np.ndarray, source: str) -> go.Figure:
    """One conv value's window of every input channel, the kernel and their products,
    float32 (C_in, k, k) each: three rows of small maps, numbers on hover and in the cells."""
    c, k, width = patch.shape
    rows = [
        ("window of " + source, patch, SEQUENTIAL),
        ("kernel", kernel, DIVERGING),
        ("products", products, DIVERGING),
    ]
    traces, annotations_x, annotations_y, texts = [], [], [], []
    for r, (name, maps, scale) in enumerate(rows):
        z, _ = tile(maps, c, gap=1)
        limit = float(np.abs(maps).max()) or 1.0
        traces.append(
            go.Heatmap(
                z=z,
                x0=0,
                y0=r * (k + 2),
                colorscale=scale,
                zmin=-limit if scale == DIVERGING else float(maps.min()),
                zmax=limit if scale == DIVERGING else float(maps.max()) or 1.0,
                showscale=False,
                hovertemplate=f"{name}: %{{z:.3f}}<extra></extra>",
                xaxis="x",
                yaxis="y",
            )
        )
        annotations_x.append(-0.7)
        annotations_y.append(r * (k + 2) + (k - 1) / 2)
        texts.append(name)
    labels = go.Scatter(
        x=annotations_x, y=annotations_y, mode="text", text=texts, textposition="middle left", hoverinfo="skip"
    )
    span = c * (width + 1) + 9  # the maps, and the row names on the left
    pixel = min(26.0, 1000 / span)  # the width decides the scale: no empty band above the maps
    return figure(
        [*traces, labels],
        int(3 * (k + 2) * pixel) + 40,
        image=True,
        showlegend=False,
        xaxis=dict(visible=False, range=[-9, c * (width + 1)]),
    )


def channel_heatmaps(
    heatmaps: np.ndarray, channels: np.ndarray, relevance: np.ndarray, share: np.ndarray, layer: str
) -> go.Figure:
    """The strongest channels' conditional relevance on the digit, float32 (k, 28, 28), on
    one colour scale centred on zero (red for the class, blue against), each titled with its
    relevance and share; clicking one selects that channel's unit card."""
    k = len(heatmaps)
    limit = float(np.abs(heatmaps).max()) or 1.0
    z, corners = tile(heatmaps, k, gap=3)
    heatmap = go.Heatmap(
        z=z,
        colorscale=DIVERGING,
        zmin=-limit,
        zmax=limit,
        colorbar=dict(title="relevance", thickness=10),
        hovertemplate="relevance %{z:.4f}<extra></extra>",
    )
    name = "unit" if layer == "fc1" else "channel"
    titles = [f"{name} {c} · {r:+.2f} ({s:.0%})" for c, r, s in zip(channels, relevance, share, strict=True)]
    labels = labels_trace(corners, titles, (28, 28))
    markers = go.Scatter(
        x=corners[:, 1] + 13.5,
        y=corners[:, 0] + 13.5,
        mode="markers",
        marker=dict(symbol="square", size=80, color="rgba(0,0,0,0)"),
        customdata=np.asarray(channels).reshape(-1, 1),
        hovertemplate=f"{layer} {name} %{{customdata[0]}}: click for its unit card<extra></extra>",
    )
    return figure([heatmap, labels, markers], 210, image=True, top=20, showlegend=False, hovermode="closest")
