"""The picture's layout and rendering with matplotlib alone (no Graphviz).

Each node's column is its depth from the inputs (an input sits just left of its first use);
an edge spanning several columns runs through a point in each, so rows can be ordered by
their neighbours' rows and nothing is drawn across a node. Sizes are in inches: the axes
span the figure, one data unit per inch, so the figure grows with the graph.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # matplotlib is imported when a picture is drawn: it takes a second
    from matplotlib.figure import Figure
    from matplotlib.path import Path as Curve

from fungrad.graph.scene import _FILL, _GRAD_COLOUR, _VALUE_COLOUR, _Edge, _Graph, _Node

_LINE, _MARGIN, _ROW_GAP, _LABEL_PAD, _LABEL_HEIGHT, _MIN_LANE = 0.19, 0.3, 0.42, 0.4, 0.42, 0.3
_CENTRED = {"ha": "center", "va": "center", "parse_math": False, "zorder": 4}
_LEFT = {"ha": "left", "va": "center", "parse_math": False}
_ARROW = {"color": "#666666", "linewidth": 1.0, "zorder": 1}
_BOX = {
    kind: {"facecolor": fill, "edgecolor": "#333333", "zorder": 2} for kind, fill in _FILL.items()
}
_LEGEND = (
    (_VALUE_COLOUR, "above an arrow: the value it carries forward"),
    (_GRAD_COLOUR, "below: the gradient d out / d value it carries back"),
    ("#444444", "a node's gradient is the sum over its outgoing arrows"),
)


@functools.lru_cache(maxsize=4096)
def _width(text: str, size: float) -> float:
    """The width of ``text`` at ``size`` points, in inches (the font's advance widths)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    width, _, _ = text_to_path.get_text_width_height_descent(text, FontProperties(size=size), False)
    return width / 72


def _node_lines(node: _Node) -> list[tuple[str, str, float]]:
    lines = [(line, "black", 10.0) for line in node.label.split("\n")]
    return lines + ([] if node.grad is None else [(f"grad {node.grad}", _GRAD_COLOUR, 9.0)])


def _edge_lines(edge: _Edge) -> list[tuple[str, str, float]]:
    lines = [(edge.value, _VALUE_COLOUR, 8.5)]
    return lines + ([] if edge.grad is None else [(edge.grad, _GRAD_COLOUR, 8.5)])


def _box(lines: list, pad: float) -> tuple[float, float]:
    width = max(_width(text, size) for text, _, size in lines) + 2 * pad
    return width, len(lines) * _LINE + pad


def _columns(graph: _Graph) -> list[int]:
    col = [0] * len(graph.nodes)
    for edge in sorted(graph.edges, key=lambda e: e.dst):
        col[edge.dst] = max(col[edge.dst], col[edge.src] + 1)
    uses: list[list[int]] = [[] for _ in graph.nodes]
    for edge in graph.edges:
        uses[edge.src].append(edge.dst)
    for i in reversed(range(len(graph.nodes))):  # then each node just before its first use
        if uses[i]:
            col[i] = min(col[j] for j in uses[i]) - 1
    return col


def _fit(desired: list, gaps: list) -> np.ndarray:
    """Positions nearest ``desired`` (top first) with ``y[i] - y[i + 1] >= gaps[i]``.

    With ``z = y + cumsum(gaps)`` the constraint is ``z`` non-increasing: an isotonic
    regression, solved by pooling adjacent violators.
    """
    offsets = np.concatenate([[0.0], np.cumsum(gaps)])
    blocks: list[list[float]] = []
    for z in np.asarray(desired, dtype=float) + offsets:
        blocks.append([z, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    return np.concatenate([[total / count] * int(count) for total, count in blocks]) - offsets


@dataclasses.dataclass
class _Layout:
    chains: list  # per edge: the items it passes, from source to target
    column: dict  # item -> column
    size: dict  # item -> (width, height); an item is ("n", node) or ("d", edge, column)
    y: dict  # item -> centre height
    left: list  # per column: left edge
    width: list  # per column: width
    gap: list  # per column: the gap to its right


def _mean(numbers: list, default: float) -> float:
    return sum(numbers) / len(numbers) if numbers else default


def _rows(columns: list, chains: list, size: dict) -> dict:
    """Order each column by its neighbours' rows, then place rows near their neighbours."""
    neighbours: dict = {item: ([], []) for column in columns for item in column}
    for chain in chains:
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            neighbours[b][0].append(a)
            neighbours[a][1].append(b)
    pos = {item: i for column in columns for i, item in enumerate(column)}
    for sweep in range(8):
        side = sweep % 2
        for column in columns[1:] if side == 0 else columns[-2::-1]:
            rank = {it: _mean([pos[n] for n in neighbours[it][side]], pos[it]) for it in column}
            column.sort(key=rank.__getitem__)
            pos.update((item, i) for i, item in enumerate(column))

    def gaps(column: list) -> list:
        pairs = zip(column[:-1], column[1:], strict=True)
        return [
            (size[a][1] + size[b][1]) / 2 + (_ROW_GAP if a[0] == b[0] == "n" else 0.25)
            for a, b in pairs
        ]

    y = {}
    for column in columns:
        y.update(zip(column, -np.concatenate([[0.0], np.cumsum(gaps(column))]), strict=True))
    for sweep in range(16):
        for column in columns if sweep % 2 == 0 else columns[::-1]:
            desired = [_mean([y[n] for n in sum(neighbours[it], [])], y[it]) for it in column]
            y.update(zip(column, _fit(desired, gaps(column)), strict=True))
    return y


def _layout(graph: _Graph) -> _Layout:
    col = _columns(graph)
    chains = [
        [("n", e.src), *(("d", k, c) for c in range(col[e.src] + 1, col[e.dst])), ("n", e.dst)]
        for k, e in enumerate(graph.edges)
    ]
    size = {("n", i): _box(_node_lines(node), 0.12) for i, node in enumerate(graph.nodes)}
    size.update((item, (0.0, 0.0)) for chain in chains for item in chain[1:-1])
    columns: list = [[] for _ in range(max(col) + 1)]
    for item in size:
        columns[col[item[1]] if item[0] == "n" else item[2]].append(item)
    width = [max([size[item][0] for item in column] + [0.0]) + 0.16 for column in columns]
    gap = [0.4] * len(columns)
    for edge in graph.edges:
        label = _box(_edge_lines(edge), 0.05)[0]
        gap[col[edge.src]] = max(gap[col[edge.src]], max(label, _MIN_LANE) + 2 * _LABEL_PAD)
    left = list(np.cumsum([_MARGIN] + [w + g for w, g in zip(width, gap, strict=True)])[:-1])
    column = {item: c for c, items in enumerate(columns) for item in items}
    return _Layout(chains, column, size, _rows(columns, chains, size), left, width, gap)


def _ports(layout: _Layout) -> tuple[dict, dict]:
    """The heights where each edge leaves its source and enters its target, spread along
    the box's side in the order of the rows at the other end, so edges do not cross there."""
    ends: dict = {}
    for k, chain in enumerate(layout.chains):
        ends.setdefault((chain[0], 0), []).append(k)
        ends.setdefault((chain[-1], 1), []).append(k)
    ports: tuple[dict, dict] = ({}, {})
    for (item, side), edges in ends.items():
        other = 1 if side == 0 else -2
        edges.sort(key=lambda k: -layout.y[layout.chains[k][other]])
        spread = min(0.1, (layout.size[item][1] - 0.1) / len(edges))
        for j, k in enumerate(edges):
            ports[side][k] = layout.y[item] + ((len(edges) - 1) / 2 - j) * spread
    return ports


def _curve(start: tuple, end: tuple) -> list:
    """The control points of a horizontal S-curve from ``start`` to ``end``."""
    half = (end[0] - start[0]) / 2
    return [start, (start[0] + half, start[1]), (end[0] - half, end[1]), end]


def _lanes(graph: _Graph, layout: _Layout, ports: tuple) -> dict:
    """Where each edge's label goes: a level stretch in the gap after its source, the value
    above the line and the gradient below, the stretches of one gap stacked without overlap.

    Returns:
        edge -> ``(x_left, x_right, y)`` of the stretch.
    """
    by_gap: dict = {}
    for k, chain in enumerate(layout.chains):
        after = chain[1]
        end = ports[1][k] if after == chain[-1] else layout.y[after]
        by_gap.setdefault(layout.column[chain[0]], []).append(((ports[0][k] + end) / 2, k))
    lanes = {}
    for c, items in by_gap.items():
        items.sort(key=lambda item: (-item[0], item[1]))
        ys = _fit([desired for desired, _ in items], [_LABEL_HEIGHT] * (len(items) - 1))
        centre = layout.left[c] + layout.width[c] + layout.gap[c] / 2
        for (_, k), y in zip(items, ys, strict=True):
            half = max(_box(_edge_lines(graph.edges[k]), 0.03)[0], _MIN_LANE) / 2
            lanes[k] = (centre - half, centre + half, y)
    return lanes


def _edge_path(layout: _Layout, k: int, ports: tuple, lane: tuple) -> Curve:
    """The path of edge ``k``: out of its source, along its label's stretch, through its
    chain's points, into its target."""
    from matplotlib.path import Path as Curve

    chain = layout.chains[k]
    src, dst = chain[0], chain[-1]
    c = layout.column[src]
    right = layout.left[c] + layout.width[c]
    y = ports[0][k]
    verts = [(right - (layout.width[c] - layout.size[src][0]) / 2, y), (right, y)]
    verts += _curve((right, y), (lane[0], lane[2]))[1:] + [(lane[1], lane[2])]
    codes = [Curve.MOVETO, Curve.LINETO] + [Curve.CURVE4] * 3 + [Curve.LINETO]
    for item in chain[1:]:
        c = layout.column[item]
        end = (layout.left[c], ports[1][k] if item == dst else layout.y[item])
        verts += _curve(verts[-1], end)[1:]
        inset = (layout.width[c] - layout.size[dst][0]) / 2 if item == dst else layout.width[c]
        verts.append((layout.left[c] + inset, end[1]))
        codes += [Curve.CURVE4] * 3 + [Curve.LINETO]
    return Curve(verts, codes)


def _text_lines(ax: Any, x: float, y: float, lines: list, spacing: float = _LINE) -> None:
    """Lines of text centred on ``(x, y)``, each in its own colour and size."""
    for j, (text, colour, size) in enumerate(lines):
        dy = ((len(lines) - 1) / 2 - j) * spacing
        ax.text(x, y + dy, text, color=colour, fontsize=size, **_CENTRED)


def _canvas(layout: _Layout, boxes: list, lanes: dict, title: str | None) -> tuple:
    """A figure one inch per data unit, holding the graph, the title and the legend."""
    from matplotlib.figure import Figure

    tops = [y + h / 2 for _, y, _, h in boxes] + [y + _LABEL_HEIGHT / 2 for *_, y in lanes.values()]
    lows = [y - h / 2 for _, y, _, h in boxes] + [y - _LABEL_HEIGHT / 2 for *_, y in lanes.values()]
    top = max(tops) + _MARGIN + (0.45 if title else 0.0)
    bottom = min(lows) - _MARGIN - 0.7
    legend = max(_width(text, 9.0) for _, text in _LEGEND) + 2 * _MARGIN
    width = max(layout.left[-1] + layout.width[-1] + _MARGIN, legend)
    figure = Figure(figsize=(width, top - bottom))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    if title:
        ax.text(width / 2, top - 0.3, title, fontsize=12, **_CENTRED)
    for j, (colour, text) in enumerate(_LEGEND):
        ax.text(_MARGIN, bottom + 0.55 - j * 0.2, text, color=colour, fontsize=9, **_LEFT)
    return figure, ax


def _render(graph: _Graph, layout: _Layout, title: str | None) -> Figure:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    ports = _ports(layout)
    lanes = _lanes(graph, layout, ports)
    boxes = []
    for i in range(len(graph.nodes)):
        item = ("n", i)
        c = layout.column[item]
        boxes.append((layout.left[c] + layout.width[c] / 2, layout.y[item], *layout.size[item]))
    figure, ax = _canvas(layout, boxes, lanes, title)
    for k in range(len(graph.edges)):
        path = _edge_path(layout, k, ports, lanes[k])
        ax.add_artist(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=10, **_ARROW))
    for node, (x, y, w, h) in zip(graph.nodes, boxes, strict=True):
        rounding = 0.15 if node.kind in ("input", "output") else 0.04
        style = f"round,pad=0,rounding_size={rounding}"
        ax.add_artist(
            FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=style, **_BOX[node.kind])
        )
        _text_lines(ax, x, y, _node_lines(node))
    for k, edge in enumerate(graph.edges):
        x0, x1, y = lanes[k]
        lines = (_edge_lines(edge) + [("", "white", 8.5)])[:2]  # the value above the arrow
        _text_lines(ax, (x0 + x1) / 2, y, lines, spacing=0.2)
    return figure
