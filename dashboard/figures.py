"""The dashboard's general Plotly figures (digits, grids, curves, the confusion matrix, maps)
and the parts every figure module builds on: :func:`figure`, :func:`tile` (the one way a mosaic
is laid out), :func:`labels_trace` and the colour scales. Figures of one subject live beside it
(``data_figures``, ``probe_figures``, ``unit_figures``). Pure functions from arrays to figures:
no Streamlit.

Grids of many small images are drawn as one mosaic heatmap (cheap to build and to send),
with a scatter of invisible square markers on top where clicks must select a tile:
Streamlit reports clicks on scatter points, not on heatmap cells.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.data import Naming

INK = "Greys"  # digits drawn dark on light, as on paper; 0 = white
DIVERGING = "RdBu_r"  # attributions: red for evidence for, blue against, white at zero
SEQUENTIAL = "Viridis"  # activations
RIGHT, WRONG = "#2B8A3E", "#C92A2A"
# Every chart's toolbar keeps Plotly's camera button: the figure as a PNG, drawn in the browser
# (offline), at twice the screen's resolution for slides and reports.
CAPTION_ROWS = 8  # image rows kept under each digit of a grid for its caption
CHART_CONFIG = {
    "displaylogo": False,
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
    "toImageButtonOptions": {"format": "png", "filename": "mnist-cnn-dashboard", "scale": 2},
}


IMAGE_X = dict(visible=False)
IMAGE_Y = dict(visible=False, autorange="reversed", scaleanchor="x")  # row 0 at the top, square pixels


def figure(
    traces: list, height: int, width: int | None = None, image: bool = False, top: int = 30, **layout
) -> go.Figure:
    """One figure from its traces and layout in a single constructor call.

    Plotly validates on every ``update_*``/``add_*`` call (about a millisecond each);
    building in one call makes a figure about 4x cheaper.
    """
    if image:
        layout = {"xaxis": IMAGE_X, "yaxis": IMAGE_Y, **layout}
    return go.Figure(
        data=traces,
        layout=dict(
            height=height,
            width=width,
            margin=dict(l=10, r=10, t=top, b=10),
            plot_bgcolor="white",
            dragmode=False,
            **layout,
        ),
    )


# ---- digits ----------------------------------------------------------------------------


def digit(image: np.ndarray, title: str = "", size: int = 280) -> go.Figure:
    """One 28x28 uint8 digit, large, with pixel values on hover."""
    heatmap = go.Heatmap(
        z=image,
        colorscale=INK,
        zmin=0,
        zmax=255,
        showscale=False,
        hovertemplate="row %{y}, col %{x}: %{z}<extra></extra>",
    )
    return figure([heatmap], size + 40, size, image=True, title=dict(text=title, x=0.5, font=dict(size=14)))


def digit_grid(
    images: np.ndarray,
    indices: np.ndarray,
    captions: list[str],
    wrong: np.ndarray,
    hover: list[str],
    columns: int = 10,
    selected: int | None = None,
) -> go.Figure:
    """Tiles of uint8 (n, 28, 28) digits with a caption each; clicking a tile selects it.

    ``indices`` go into each marker's customdata, ``wrong`` (bool, n) colours captions red.
    """
    n = len(images)
    rows = max(1, -(-n // columns))
    cell_w, cell_h = 30, 38  # 28 px of digit, 2 px gap; 8 rows of caption under each digit
    mosaic, corners = tile(images.astype(np.float32), columns, gap=2, below=CAPTION_ROWS)
    cx = corners[:, 1] + 13.5
    cy = corners[:, 0] + 13.5
    traces = [
        go.Heatmap(z=mosaic, colorscale=INK, zmin=0, zmax=255, showscale=False, hoverinfo="skip"),
        go.Scatter(
            x=cx,
            y=cy + 20.5,
            mode="text",
            text=captions,
            hoverinfo="skip",
            textfont=dict(size=11, color=np.where(wrong, WRONG, "#1F2430").tolist()),
        ),
        go.Scatter(
            x=cx,
            y=cy,
            mode="markers",
            name="tiles",
            marker=dict(symbol="square", size=44, color="rgba(0,0,0,0)", line=dict(width=0)),
            customdata=np.asarray(indices).reshape(-1, 1),
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
        ),
    ]
    shapes = []
    if selected is not None and 0 <= selected < n:
        r, c = divmod(selected, columns)
        shapes.append(
            dict(
                type="rect",
                x0=c * cell_w - 1,
                x1=c * cell_w + 28,
                y0=r * cell_h - 1,
                y1=r * cell_h + 28,
                line=dict(color="#4C6EF5", width=3),
            )
        )
    scale = 1.6  # screen pixels per image pixel
    return figure(
        traces,
        int(rows * cell_h * scale) + 15,
        int(columns * cell_w * scale) + 20,
        image=True,
        top=5,
        shapes=shapes,
        showlegend=False,
        hovermode="closest",
    )


def probabilities(probs: np.ndarray, label: int | None, pred: int, classes: tuple[str, ...]) -> go.Figure:
    """The probability of each class as bars; the predicted class and true class marked."""
    colors = ["#ADB5BD"] * len(probs)
    colors[pred] = RIGHT if label is None or pred == label else WRONG
    if label is not None and label != pred:
        colors[label] = "#4C6EF5"
    bars = go.Bar(
        x=list(classes),
        y=probs,
        marker_color=colors,
        cliponaxis=False,
        text=[f"{p:.0%}" if p >= 0.01 else "" for p in probs],
        textposition="outside",
        hovertemplate="class %{x}: %{y:.2%}<extra></extra>",
    )
    return figure(
        [bars],
        260,
        yaxis=dict(range=[0, 1.12], tickformat=".0%", title="probability"),
        xaxis=dict(type="category", title="class"),
    )


def class_balance(counts: dict[str, np.ndarray], classes: tuple[str, ...]) -> go.Figure:
    """Images per class, one group of bars per split."""
    bars = [
        go.Bar(name=split, x=list(classes), y=c, hovertemplate=f"{split} · class %{{x}}: %{{y:,}}<extra></extra>")
        for split, c in counts.items()
    ]
    return figure(
        bars,
        240,
        barmode="group",
        legend=dict(orientation="h", y=1.15),
        xaxis=dict(type="category", title="class"),
        yaxis=dict(title="images"),
    )


# ---- the model -------------------------------------------------------------------------


def training_curves(history: list[dict], selected: int | None = None) -> go.Figure:
    """Loss (train and test) on the left, test accuracy on the right, per epoch; a dotted
    line marks the ``selected`` saved point (1-based), whose weights are in use."""
    epochs = [r["epoch"] for r in history]
    accuracy = [r["test_accuracy"] for r in history]
    line = dict(mode="lines+markers")
    traces = [
        go.Scatter(x=epochs, y=[r["train_loss"] for r in history], name="train loss", **line),
        go.Scatter(x=epochs, y=[r["test_loss"] for r in history], name="test loss", **line),
        go.Scatter(x=epochs, y=accuracy, name="test accuracy", xaxis="x2", yaxis="y2", **line),
    ]
    epoch_axis = dict(title="epoch", dtick=1)
    shapes = [
        dict(
            type="line",
            xref=x,
            yref="paper",
            x0=epochs[selected - 1],
            x1=epochs[selected - 1],
            y0=0,
            y1=1,
            line=dict(color="#868E96", dash="dot", width=1.5),
        )
        for x in ("x", "x2")
        if selected is not None and len(epochs) > 1
    ]
    return figure(
        traces,
        300,
        shapes=shapes,
        xaxis=dict(domain=[0, 0.44], **epoch_axis),
        xaxis2=dict(domain=[0.56, 1], anchor="y2", **epoch_axis),
        yaxis=dict(title="loss", rangemode="tozero"),
        yaxis2=dict(
            title="test accuracy",
            anchor="x2",
            tickformat=".1%",
            range=[min(accuracy) - 0.005, min(1.0, max(accuracy) + 0.005)],
        ),
        legend=dict(orientation="h", y=-0.25),
    )


def per_class_accuracy(accuracy: np.ndarray, classes: tuple[str, ...]) -> go.Figure:
    bars = go.Bar(
        x=list(classes),
        y=accuracy,
        text=[f"{a:.1%}" for a in accuracy],
        textposition="outside",
        marker_color="#4C6EF5",
        cliponaxis=False,
        hovertemplate="class %{x}: %{y:.2%}<extra></extra>",
    )
    low = max(0.0, float(accuracy.min()) - 0.03)
    return figure(
        [bars],
        260,
        yaxis=dict(range=[low, 1.005], tickformat=".0%", title="test accuracy"),
        xaxis=dict(type="category", title="class"),
    )


def confusion(
    matrix: np.ndarray,
    show_diagonal: bool,
    normalise: bool,
    classes: tuple[str, ...],
    selected: tuple[int, int] | None = None,
    words: Naming | None = None,
) -> go.Figure:
    """The confusion matrix (rows true, columns predicted) as a heatmap with counts; the
    ``selected`` (true, predicted) cell is outlined. The hover text counts images as ``words``
    calls them (by default as ``Naming.of(classes)``: digits, or images).

    An invisible marker sits on every cell so a click selects it; its customdata is
    (true, predicted, count, share of the true class).
    """
    k = len(classes)
    noun = (words or Naming.of(tuple(classes), "")).plural
    counts = matrix.astype(float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    values = (rates if normalise else counts).copy()
    text = np.char.mod("%.1f%%", rates * 100) if normalise else counts.astype(int).astype(str)
    if not show_diagonal:
        values[np.arange(k), np.arange(k)] = np.nan
        text[np.arange(k), np.arange(k)] = ""
    true, pred = np.divmod(np.arange(k * k), k)
    traces = [
        go.Heatmap(
            z=values,
            x=list(range(k)),
            y=list(range(k)),
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            showscale=True,
            hoverinfo="skip",
            colorbar=dict(title="share" if normalise else "count", thickness=12),
        ),
        go.Scatter(
            x=pred,
            y=true,
            mode="markers",
            name="cells",
            marker=dict(symbol="square", size=30, color="rgba(0,0,0,0)"),
            customdata=np.stack([true, pred, counts.reshape(-1), rates.reshape(-1)], axis=1),
            hovertext=[
                f"true {classes[t]} → predicted {classes[p]}<br>{int(n):,} {noun}, {r:.1%} of class {classes[t]}"
                for t, p, n, r in zip(true, pred, counts.reshape(-1), rates.reshape(-1), strict=True)
            ],
            hovertemplate="%{hovertext}<extra></extra>",
        ),
    ]
    axis = dict(tickmode="array", tickvals=list(range(k)), ticktext=list(classes), showgrid=False, zeroline=False)
    return figure(
        traces,
        520,
        shapes=[
            dict(
                type="rect",
                x0=selected[1] - 0.5,
                x1=selected[1] + 0.5,
                y0=selected[0] - 0.5,
                y1=selected[0] + 0.5,
                line=dict(color="#F08C00", width=3),
            )
        ]
        if selected is not None
        else [],
        showlegend=False,
        hovermode="closest",
        xaxis=dict(title="predicted", side="top", constrain="domain", **axis),
        yaxis=dict(title="true", autorange="reversed", scaleanchor="x", constrain="domain", **axis),
    )


# ---- inside the network ----------------------------------------------------------------


def tile(
    maps: np.ndarray, columns: int, gap: int = 1, cell: tuple[int, int] | None = None, below: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Lay (N, h, w) maps out in a grid with NaN gaps: the one way every mosaic is built. Returns
    the mosaic and each map's top-left corner (N, 2) as (row, col). Maps smaller than ``cell``
    are centred in it; ``below`` keeps that many empty rows under each for a caption."""
    n, h, w = maps.shape
    ch, cw = cell or (h, w)
    ch += below
    rows = max(1, -(-n // columns))
    mosaic = np.full((rows * (ch + gap) - gap, columns * (cw + gap) - gap), np.nan, dtype=np.float32)
    corners = np.zeros((n, 2), dtype=int)
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = r * (ch + gap) + (ch - below - h) // 2, c * (cw + gap) + (cw - w) // 2
        mosaic[top : top + h, left : left + w] = maps[i]
        corners[i] = top, left
    return mosaic, corners


def labels_trace(corners: np.ndarray, labels: list[str], size: tuple[int, int]) -> go.Scatter:
    """Labels above each tile, as one text trace (far cheaper than one annotation each)."""
    return go.Scatter(
        x=corners[:, 1] + size[1] / 2 - 0.5,
        y=corners[:, 0] - 1.2,
        mode="text",
        text=labels,
        textfont=dict(size=10, color="#495057"),
        hoverinfo="skip",
        showlegend=False,
    )


def feature_maps(maps: np.ndarray, layer: str, shared_scale: bool, columns: int | None = None) -> go.Figure:
    """Every channel of one layer for one image: float32 (C, h, w) as one mosaic heatmap.

    With ``shared_scale`` all channels share one colour scale (compare strengths); without
    it each channel is scaled to its own maximum (see every channel's pattern).
    """
    c, h, w = maps.shape
    columns = columns or min(c, 8)
    top = float(maps.max()) or 1.0
    shown = maps / top if shared_scale else maps / np.maximum(maps.reshape(c, -1).max(axis=1), 1e-8)[:, None, None]
    z, corners = tile(shown, columns, gap=max(1, h // 8))
    raw, _ = tile(maps, columns, gap=max(1, h // 8))
    channel, _ = tile(
        np.broadcast_to(np.arange(c, dtype=np.float32)[:, None, None], maps.shape), columns, gap=max(1, h // 8)
    )
    heatmap = go.Heatmap(
        z=z,
        customdata=np.dstack([raw, channel]),
        colorscale=SEQUENTIAL,
        zmin=0,
        zmax=1,
        colorbar=dict(title="shared" if shared_scale else "per channel", thickness=10, tickformat=".0%"),
        hovertemplate=f"{layer} channel %{{customdata[1]}}<br>value %{{customdata[0]:.3f}}<extra></extra>",
    )
    labels = labels_trace(corners, [f"{layer}·{i}" for i in range(c)], (h, w))
    rows = -(-c // columns)
    pixel = max(4, min(14, 560 // (columns * w)))
    return figure(
        [heatmap, labels, _tile_markers(corners, (h, w), pixel, np.arange(c), f"{layer} channel")],
        int(rows * (h + 3) * pixel) + 50,
        image=True,
        showlegend=False,
        hovermode="closest",
    )


def _tile_markers(corners: np.ndarray, size: tuple[int, int], pixel: int, ids: np.ndarray, name: str) -> go.Scatter:
    """Invisible square markers over each tile, carrying its id: Streamlit reports clicks on
    scatter points, not on heatmap cells. Hover stays with the heatmap underneath."""
    return go.Scatter(
        x=corners[:, 1] + size[1] / 2 - 0.5,
        y=corners[:, 0] + size[0] / 2 - 0.5,
        mode="markers",
        name="tiles",
        marker=dict(symbol="square", size=max(size) * pixel, color="rgba(0,0,0,0)"),
        customdata=ids.reshape(-1, 1),
        hovertemplate=f"{name} %{{customdata[0]}}: click for its unit card<extra></extra>",
    )


def units(values: np.ndarray, layer: str, classes: tuple[str, ...] | None = None) -> go.Figure:
    """A fully connected layer's outputs for one image, float32 (units,), as bars."""
    many = classes is None and len(values) > MANY_UNITS  # a wide layer: numbered, not named, ticks
    names = list(classes) if classes is not None else [f"{layer}·{i}" for i in range(len(values))]
    colors = np.where(values >= 0, "#4C6EF5", "#C92A2A").tolist()
    bars = go.Bar(
        x=np.arange(len(values)) if many else names,
        y=values,
        marker_color=colors,
        customdata=np.arange(len(values)).reshape(-1, 1),
        hovertemplate=(f"{layer}·%{{x}}" if many else "%{x}")
        + ": %{y:.3f}"
        + ("" if classes is not None else "<br>click for its unit card")
        + "<extra></extra>",
    )
    return figure(
        [bars],
        240,
        xaxis=dict(
            type="linear" if many else "category", title="class (logit)" if classes is not None else f"{layer} unit"
        ),
        yaxis=dict(title="logit" if classes is not None else "activation", zeroline=True),
    )


MANY_UNITS = 40  # more bars than this are numbered along the axis rather than named


def kernels(weights: np.ndarray, layer: str) -> go.Figure:
    """A conv layer's kernels (out, in, kh, kw): one row per output channel, one column per input."""
    out, inp, kh, kw = weights.shape
    z, _ = tile(weights.reshape(out * inp, kh, kw), inp, gap=1)
    limit = float(np.abs(weights).max()) or 1.0
    pair, _ = tile(
        np.broadcast_to(np.arange(out * inp, dtype=np.float32)[:, None, None], (out * inp, kh, kw)), inp, gap=1
    )
    heatmap = go.Heatmap(
        z=z,
        customdata=np.dstack([pair // inp, pair % inp]),
        colorscale=DIVERGING,
        zmin=-limit,
        zmax=limit,
        colorbar=dict(title="weight", thickness=10),
        hovertemplate=f"{layer} out %{{customdata[0]}} ← in %{{customdata[1]}}: %{{z:.3f}}<extra></extra>",
    )
    pixel = max(1, min(16, 520 // (inp * (kw + 1))))
    title = dict(text=f"rows: {out} output channels · columns: {inp} input channels", font=dict(size=12))
    return figure([heatmap], max(160, int(out * (kh + 1) * pixel) + 60), image=True, title=title)


def flow(image: np.ndarray, stages: list[tuple[str, np.ndarray, np.ndarray]]) -> go.Figure:
    """The input, then per layer its strongest channels, in one row of columns.

    ``stages``: (layer, maps (k, h, w), channel ids (k,)) each; maps are scaled per layer.
    """
    k = max(len(maps) for _, maps, _ in stages)
    cell = 28
    columns = 1 + len(stages)
    z = np.full((k * (cell + 4), columns * (cell + 6)), np.nan, dtype=np.float32)
    labels_x, labels_y, labels = [], [], []
    tiles_x, tiles_y, tiles = [], [], []  # each channel's tile centre and (stage, channel), for clicks
    z[:cell, :cell] = image / 255.0
    labels_x.append(cell / 2), labels_y.append(-2), labels.append("input")
    for s, (layer, maps, ids) in enumerate(stages, start=1):
        top = float(maps.max()) or 1.0
        for j, (m, ch) in enumerate(zip(maps, ids, strict=True)):
            scale = cell // m.shape[0]
            big = np.kron(m / top, np.ones((scale, scale)))  # nearest-neighbour upsampling for display
            r0 = j * (cell + 4) + (cell - big.shape[0]) // 2
            c0 = s * (cell + 6) + (cell - big.shape[1]) // 2
            z[r0 : r0 + big.shape[0], c0 : c0 + big.shape[1]] = big
            labels_x.append(s * (cell + 6) + cell / 2), labels_y.append(j * (cell + 4) + cell + 1.5)
            labels.append(f"#{ch}")
            tiles_x.append(s * (cell + 6) + cell / 2 - 0.5), tiles_y.append(j * (cell + 4) + cell / 2 - 0.5)
            tiles.append((s - 1, int(ch)))
        labels_x.append(s * (cell + 6) + cell / 2), labels_y.append(-2), labels.append(layer)
    traces = [
        go.Heatmap(z=z, colorscale=SEQUENTIAL, zmin=0, zmax=1, showscale=False, hoverinfo="skip"),
        go.Scatter(x=labels_x, y=labels_y, mode="text", text=labels, textfont=dict(size=10), hoverinfo="skip"),
        go.Scatter(
            x=tiles_x,
            y=tiles_y,
            mode="markers",
            name="tiles",
            marker=dict(symbol="square", size=60, color="rgba(0,0,0,0)"),
            customdata=np.array(tiles),
            text=[f"{stages[i][0]} channel {ch}" for i, ch in tiles],
            hovertemplate="%{text}: click for its unit card<extra></extra>",
        ),
    ]
    return figure(traces, int(k * 32 * 2.2) + 60, image=True, showlegend=False, hovermode="closest")


def attribution_row(maps: list[np.ndarray], titles: list[str], image: np.ndarray) -> go.Figure:
    """Attribution maps side by side, each (28, 28) on its own scale centred on zero, with
    the digit's outline drawn faintly over each so the evidence can be placed."""
    n = len(maps)
    stack = np.stack([m / (np.abs(m).max() or 1.0) for m in maps])
    z, corners = tile(stack, n, gap=3)
    raw, _ = tile(np.stack(maps), n, gap=3)
    outline, _ = tile(np.repeat(image[None].astype(np.float32), n, axis=0), n, gap=3)
    traces = [
        go.Heatmap(
            z=z,
            customdata=raw,
            colorscale=DIVERGING,
            zmin=-1,
            zmax=1,
            colorbar=dict(thickness=10, tickvals=[-1, 0, 1], ticktext=["against", "0", "for"]),
            hovertemplate="value %{customdata:.4f}<extra></extra>",
        ),
        go.Contour(
            z=np.nan_to_num(outline),
            contours=dict(start=96, end=96, size=1, coloring="none"),
            line=dict(color="rgba(30,30,30,0.45)", width=1),
            showscale=False,
            hoverinfo="skip",
        ),
        labels_trace(corners, titles, (28, 28)),
    ]
    return figure(traces, 300, image=True, showlegend=False)


def layer_maps(maps: list[np.ndarray], titles: list[str]) -> go.Figure:
    """Layer maps side by side, each at its own resolution on its own axes (a 26×26 conv1
    map and an 8×8 conv4 map both fill their panel), each on its own scale centred on zero.

    Every value drawn is finite: a map with no evidence is drawn white, not as NaN padding.
    """
    n = len(maps)
    gap = 0.04
    width = (1 - gap * (n - 1)) / n
    traces, layout, labels = [], {}, []
    for i, (m, title) in enumerate(zip(maps, titles, strict=True)):
        m = np.nan_to_num(np.asarray(m, dtype=np.float32))
        suffix = "" if i == 0 else str(i + 1)
        traces.append(
            go.Heatmap(
                z=m / (float(np.abs(m).max()) or 1.0),
                customdata=m,
                xaxis=f"x{suffix}",
                yaxis=f"y{suffix}",
                colorscale=DIVERGING,
                zmin=-1,
                zmax=1,
                showscale=i == n - 1,
                colorbar=dict(thickness=10, tickvals=[-1, 0, 1], ticktext=["against", "0", "for"]),
                hovertemplate=f"{title}<br>row %{{y}}, col %{{x}}: %{{customdata:.4f}}<extra></extra>",
            )
        )
        left = i * (width + gap)
        layout[f"xaxis{suffix}"] = dict(visible=False, domain=[left, left + width], constrain="domain")
        layout[f"yaxis{suffix}"] = dict(visible=False, autorange="reversed", scaleanchor=f"x{suffix}")
        labels.append(
            dict(text=title, x=left + width / 2, y=1.0, xref="paper", yref="paper", showarrow=False, yanchor="bottom")
        )
    return figure(traces, 300, annotations=labels, top=40, **layout)


CURVE_COLORS = {
    "this map": "#C92A2A",
    "random order": "#868E96",
    "brightest first": "#F08C00",
    "random network's map": "#4C6EF5",
}


def faithfulness_curves(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, float]]]) -> go.Figure:
    """Deletion (left) and insertion (right) curves: the class probability as the digit's ink
    is removed or added, in the map's order and in the baselines' orders (area in the legend)."""
    traces = []
    for column, (kind, by_order) in enumerate(curves.items()):
        axis = "" if column == 0 else "2"
        for name, (x, y, area) in by_order.items():
            traces.append(
                go.Scatter(
                    x=x,
                    y=y,
                    xaxis=f"x{axis}",
                    yaxis=f"y{axis}",
                    mode="lines+markers",
                    name=f"{kind}: {name} (area {area:.2f})",
                    line=dict(color=CURVE_COLORS.get(name), width=3 if name == "this map" else 1.5),
                    hovertemplate=f"{name}<br>%{{x:.0%}} of the ink {'removed' if column == 0 else 'added'}: "
                    "%{y:.1%}<extra></extra>",
                )
            )
    ink = dict(tickformat=".0%", range=[0, 1])
    return figure(
        traces,
        340,
        xaxis=dict(domain=[0, 0.45], title="ink removed (deletion: lower area is better)", **ink),
        xaxis2=dict(domain=[0.55, 1], anchor="y2", title="ink added to black (insertion: higher is better)", **ink),
        yaxis=dict(title="class probability", range=[0, 1.02], tickformat=".0%"),
        yaxis2=dict(anchor="x2", range=[0, 1.02], tickformat=".0%"),
        legend=dict(orientation="h", y=-0.35, font=dict(size=10)),
    )
