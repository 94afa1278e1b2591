"""The computational-graph picture: values forward, cotangents back, on every edge.

``f`` is recorded at ``args`` (see ``interpreter.record``) and drawn as the lesson draws it:
inputs, one node per operation, the output; each edge carries the value that flows forward
along it and the cotangent that flows back along it. A value used twice has two edges, and
the gradient written on its node is the sum of their cotangents (``xbar = sum_k xbar^(k)``).
Each edge's cotangent is what its consumer's VJP rule hands back for that one use.

Nested calls: a function a JAX user calls by name stays one node named after it (``relu``,
``log_softmax``, ``take_along_axis``, a user's jitted ``layer``); ``custom_jvp`` and
``custom_vjp`` functions are always one node, their derivative being defined as a whole.
Private or anonymous ``jit`` helpers (``jnp.where``'s ``_where``, a jitted lambda), ``remat``,
``closed_call``, and a call that is the whole graph are drawn inline; ``expand_calls=True``
draws every ``jit`` inline. Values that depend on no input are constants: a scalar is written
into its consumer's label (``mul(·, 2)``), an array is a grey node.

Example (``a`` is used twice; its gradient ``2a + b = 10`` is the ``7 + 3`` of its uses):
    >>> dot = to_dot(lambda a, b: a * (a + b), 3.0, 4.0)
    >>> "value 3 | grad 7" in dot and "value 3 | grad 3" in dot
    True
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import ClosedJaxpr, Literal, Var

from fungrad.graph import interpreter, registry

if TYPE_CHECKING:  # matplotlib is imported when a picture is drawn: it takes a second
    from matplotlib.figure import Figure
    from matplotlib.path import Path as Curve

__all__ = ["draw", "to_dot"]

_SUFFIXES = (".svg", ".png", ".pdf")
_VALUE_COLOUR, _GRAD_COLOUR = "#1d4e89", "#c0392b"
_FILL = {"input": "#dbe9f6", "const": "#eeeeee", "op": "#ffffff", "output": "#d5f0d5"}
_NAMES = {"reduce_sum": "sum", "broadcast_in_dim": "broadcast", "select_n": "select"}
_NAMES |= {"logistic": "sigmoid"}
_INLINE = {"closed_call": "call_jaxpr", "remat2": "jaxpr", "checkpoint": "jaxpr"}
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


@dataclasses.dataclass
class _Node:
    kind: str  # "input", "const", "op" or "output"
    label: str
    grad: str | None = None


@dataclasses.dataclass(frozen=True)
class _Edge:
    src: int
    dst: int
    value: str
    grad: str | None


@dataclasses.dataclass(frozen=True)
class _Const:
    value: Any
    key: int


@dataclasses.dataclass
class _Graph:
    nodes: list = dataclasses.field(default_factory=list)
    edges: list = dataclasses.field(default_factory=list)
    const_nodes: dict = dataclasses.field(default_factory=dict)

    def add(self, node: _Node) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1


def _text(x: Any) -> str:
    """A scalar as a number to 4 significant digits; an array as its dtype and shape."""
    x = np.asarray(x)
    if x.shape:
        return jax.core.ShapedArray(x.shape, x.dtype).str_short(short_dtypes=True)
    if x.dtype == bool or jnp.issubdtype(x.dtype, jnp.integer):
        return str(x.item())
    return f"{float(x):.4g}"


def _grad_text(ct: Any) -> str:
    """A cotangent as ``_text`` does, marking an array through which nothing flows back."""
    text = _text(ct)
    return f"zeros {text}" if np.shape(ct) and not np.any(np.asarray(ct)) else text


def _read(values: dict, atom: Any) -> Any:
    return atom.val if isinstance(atom, Literal) else values[atom]


def _call_name(eqn: Any) -> str | None:
    """The name of a call a user made by name (``None`` for a call to draw inline)."""
    name = eqn.primitive.name
    if name in ("custom_jvp_call", "custom_vjp_call"):
        info = eqn.params["call_jaxpr"].jaxpr.debug_info
        return getattr(info, "func_name", None) or name
    if name in ("jit", "pjit") and str(eqn.params["name"]).isidentifier():
        return None if eqn.params["name"].startswith("_") else eqn.params["name"]
    return None


def _inner_jaxpr(eqn: Any, expand_calls: bool) -> ClosedJaxpr | None:
    """The jaxpr to draw inline in place of ``eqn``, or ``None`` to draw it as one node."""
    name = eqn.primitive.name
    if name in ("jit", "pjit") and (expand_calls or _call_name(eqn) is None):
        return eqn.params["jaxpr"]
    if name in _INLINE:
        inner = eqn.params[_INLINE[name]]
        return inner if isinstance(inner, ClosedJaxpr) else ClosedJaxpr(inner, ())
    return None


def _op_name(eqn: Any) -> str:
    """The readable name of an operation: ``mul``, ``(·)³``, ``matmul``, ``sum(axis=1)``."""
    name, params = eqn.primitive.name, eqn.params
    if _call_name(eqn) is not None:
        return _call_name(eqn)
    if name == "integer_pow":
        return "(·)" + str(params["y"]).translate(_SUPERSCRIPT)
    if name == "square":
        return "(·)²"
    if name == "dot_general":
        (lhs_contract, rhs_contract), _ = params["dimension_numbers"]
        rank = len(eqn.invars[0].aval.shape)
        if tuple(lhs_contract) == (rank - 1,) and tuple(rhs_contract) in ((0,), (rank - 1,)):
            return "dot" if rank == 1 and len(eqn.invars[1].aval.shape) == 1 else "matmul"
    if "axes" in params and name.startswith(("reduce_", "arg")):
        axes, rank = tuple(params["axes"]), len(eqn.invars[0].aval.shape)
        if axes != tuple(range(rank)):
            return f"{_NAMES.get(name, name)}(axis={axes[0] if len(axes) == 1 else axes})"
    if name == "convert_element_type":
        return f"astype({_text(np.zeros((1,), params['new_dtype'])).split('[')[0]})"
    if name == "transpose":
        return f"transpose{tuple(params['permutation'])}"
    return _NAMES.get(name, name)


def _contributions(eqn: Any, values: dict, cotangents: dict) -> list | None:
    """What ``eqn``'s VJP rule hands back to each input (``None``: nothing flows back)."""
    if not any(v in cotangents for v in eqn.outvars):
        return None
    g = [cotangents[v] if v in cotangents else interpreter.zeros(v.aval) for v in eqn.outvars]
    ans = [values[v] for v in eqn.outvars]
    ins = [_read(values, atom) for atom in eqn.invars]
    rule = registry.rule_for(eqn.primitive, eqn.source_info)
    if eqn.primitive.multiple_results:
        return list(rule(g, ans, *ins, **eqn.params))
    return list(rule(g[0], ans[0], *ins, **eqn.params))


def _live(jaxpr: Any) -> list:
    """The equations an output depends on, in order."""
    needed = {v for v in jaxpr.outvars if isinstance(v, Var)}
    live = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in needed for v in eqn.outvars):
            live.append(eqn)
            needed.update(v for v in eqn.invars if isinstance(v, Var))
    return live[::-1]


def _origin(sources: dict, atom: Any) -> Any:
    """Where ``atom`` comes from: a node id, or a ``_Const``."""
    return _Const(atom.val, id(atom)) if isinstance(atom, Literal) else sources[atom]


def _source(graph: _Graph, src: Any) -> Any:
    """A node id, or a ``_Const`` for a scalar constant; array constants get a grey node."""
    if not (isinstance(src, _Const) and np.shape(src.value)):
        return src
    if src.key not in graph.const_nodes:
        value = np.asarray(src.value)
        if value.size <= 4:
            label = "const\n[" + ", ".join(_text(v) for v in value.ravel()) + "]"
        elif np.all(value == value.ravel()[0]):
            label = f"const {_text(value.ravel()[0])}"
        else:
            label = "const"
        graph.const_nodes[src.key] = graph.add(_Node("const", label))
    return graph.const_nodes[src.key]


def _walk(graph, jaxpr, values, cotangents, sources, expand: bool, whole: bool = False) -> None:
    """Add the nodes and edges of ``jaxpr``'s live equations; ``sources`` maps Var -> node.

    ``whole``: ``jaxpr`` is the whole graph, so a call that is its only equation is inlined.
    """
    live = _live(jaxpr)
    whole = whole and len(live) == 1
    for eqn in live:
        inner = _inner_jaxpr(eqn, expand or whole)
        origins = [_origin(sources, atom) for atom in eqn.invars]
        if all(isinstance(s, _Const) for s in origins):
            sources.update((v, _Const(values[v], id(v))) for v in eqn.outvars)
        elif inner is not None:
            _walk_call(graph, eqn, inner, (values, cotangents, sources), expand, whole)
        else:
            _add_op(graph, eqn, [_source(graph, s) for s in origins], values, cotangents, sources)


def _walk_call(graph, eqn, inner, outer: tuple, expand: bool, whole: bool) -> None:
    """Draw a call inline: run its body forward and back, and walk it."""
    values, cotangents, sources = outer
    args = [_read(values, atom) for atom in eqn.invars]
    active = [isinstance(atom, Var) and atom in cotangents for atom in eqn.invars]
    trace = interpreter.forward(inner.jaxpr, inner.consts, args, active)
    _, inner_cts = interpreter.backward(
        inner.jaxpr, trace, [cotangents.get(v) for v in eqn.outvars]
    )
    inner_sources = {
        v: _Const(c, id(v)) for v, c in zip(inner.jaxpr.constvars, inner.consts, strict=True)
    }
    inner_sources.update(
        (v, _origin(sources, atom)) for v, atom in zip(inner.jaxpr.invars, eqn.invars, strict=True)
    )
    _walk(graph, inner.jaxpr, trace.values, inner_cts, inner_sources, expand, whole)
    sources.update(
        (v, _origin(inner_sources, out))
        for v, out in zip(eqn.outvars, inner.jaxpr.outvars, strict=True)
    )


def _add_op(graph, eqn, srcs, values, cotangents, sources) -> None:
    """One node for ``eqn``, an edge per non-constant input, scalar constants in the label."""
    label = _op_name(eqn)
    if any(isinstance(s, _Const) for s in srcs):
        args = [_text(s.value) if isinstance(s, _Const) else "·" for s in srcs]
        label = f"{label}({', '.join(args)})"
    node = graph.add(_Node("op", label))
    contributions = _contributions(eqn, values, cotangents)
    for i, (atom, src) in enumerate(zip(eqn.invars, srcs, strict=True)):
        if isinstance(src, _Const):
            continue
        value = _read(values, atom)
        grad = None
        if isinstance(atom, Var) and atom in cotangents:
            ct = contributions[i] if contributions is not None else None
            grad = _grad_text(jnp.zeros_like(value) if ct is None else ct)
        graph.edges.append(_Edge(src, node, _text(value), grad))
    sources.update((v, node) for v in eqn.outvars)


def _argument_names(f: Callable, count: int) -> list[str]:
    """The names of ``f``'s first ``count`` positional parameters (``args[i]`` if unknown)."""
    try:
        parameters = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names: list[str] = []
    for p in parameters:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            names += [f"{p.name}[{i}]" for i in range(count - len(names))]
    return names[:count] + [f"args[{i}]" for i in range(len(names), count)]


def _input_names(f: Callable, args: tuple) -> list[str]:
    """One name per flattened input: ``x``, ``params[0]["w"]``."""
    names = _argument_names(f, len(args))
    result = []
    for path, _ in jax.tree_util.tree_flatten_with_path(args)[0]:
        text = names[path[0].idx]
        for key in path[1:]:
            if isinstance(key, jax.tree_util.DictKey):
                text += f"[{json.dumps(key.key) if isinstance(key.key, str) else repr(key.key)}]"
            elif isinstance(key, jax.tree_util.GetAttrKey):
                text += f".{key.name}"
            else:
                text += f"[{getattr(key, 'idx', getattr(key, 'key', key))}]"
        result.append(text)
    return result


def _check_output(recording: interpreter.Recording) -> None:
    """The checks of ``graph.grad``: the picture's cotangents are a scalar's gradient."""
    outvars = recording.jaxpr.jaxpr.outvars
    if recording.out_tree.num_leaves != 1 or recording.out_tree.num_nodes != 1:
        raise TypeError(
            "Gradient only defined for scalar-output functions. "
            f"Output was a pytree {recording.out_tree}; return a scalar float."
        )
    aval = outvars[0].aval
    if aval.shape != ():
        raise TypeError(
            f"Gradient only defined for scalar-output functions. Output had shape: {aval.shape}."
        )
    if not jnp.issubdtype(aval.dtype, jnp.floating):
        raise TypeError(
            "grad requires real-valued outputs (output dtype that is a sub-dtype of "
            f"np.floating), but got {aval.dtype}."
        )


def _build(f: Callable, args: tuple, expand_calls: bool) -> _Graph:
    recording = interpreter.record(f, *args)
    _check_output(recording)
    jaxpr, values, cotangents = recording.jaxpr.jaxpr, recording.values, recording.cotangents
    graph, sources = _Graph(), {}
    for v, name in zip(jaxpr.invars, _input_names(f, args), strict=True):
        scalar = v.aval.shape == ()
        label = f"{name} = {_text(values[v])}" if scalar else f"{name}\n{_text(values[v])}"
        grad = v in cotangents or interpreter.is_float(v.aval)
        total = cotangents.get(v, jnp.zeros_like(values[v]))
        sources[v] = graph.add(_Node("input", label, _text(total) if grad and scalar else None))
    sources.update(
        (v, _Const(c, id(v))) for v, c in zip(jaxpr.constvars, recording.jaxpr.consts, strict=True)
    )
    _walk(graph, jaxpr, values, cotangents, sources, expand_calls, whole=True)
    name = getattr(f, "__name__", "out")
    out = jaxpr.outvars[0]
    label = f"{name if name.isidentifier() else 'out'} = {_text(_read(values, out))}"
    seed = _text(cotangents.get(out, 1.0))  # absent when the output depends on no float input
    node = graph.add(_Node("output", label, seed))
    src = _source(graph, _origin(sources, out))
    if not isinstance(src, _Const):
        graph.edges.append(_Edge(src, node, _text(_read(values, out)), seed))
    return graph


def _quote(text: str) -> str:
    """A DOT string literal: backslashes and quotes escaped, newlines as ``\\n``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot(graph: _Graph, title: str | None) -> str:
    shapes = {"input": "ellipse", "const": "note", "op": "box", "output": "ellipse"}
    caption = f", label={_quote(title)}, labelloc=t" if title else ""
    lines = [
        "digraph computational_graph {",
        f"  graph [rankdir=LR{caption}];",
        '  node [fontname="Helvetica", fontsize=11, style=filled];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for i, node in enumerate(graph.nodes):
        text = node.label + ("" if node.grad is None else f"\ngrad {node.grad}")
        colour = _FILL[node.kind]
        lines.append(
            f'  n{i} [label={_quote(text)}, shape={shapes[node.kind]}, fillcolor="{colour}"];'
        )
    for edge in graph.edges:
        text = f"value {edge.value}" + ("" if edge.grad is None else f" | grad {edge.grad}")
        lines.append(f"  n{edge.src} -> n{edge.dst} [label={_quote(text)}];")
    return "\n".join([*lines, "}"]) + "\n"


def to_dot(f: Callable, *args: Any, expand_calls: bool = False, title: str | None = None) -> str:
    """Graphviz DOT text of the computational graph of ``f`` at ``args``.

    Input nodes are named after ``f``'s parameters and the paths into pytree arguments
    (``params[0]["w"]``); a scalar input shows its value and its gradient ``d out / d x``.
    Each edge is labelled ``value v | grad g``: the forward value along it and the
    cotangent its consumer hands back for that use (numbers for scalars, to 4 significant
    digits; dtype and shape such as ``f32[32,10]`` for arrays). Render it with
    ``dot -Tsvg graph.dot -o graph.svg``, or use ``draw`` (matplotlib only). A function
    called by name (``jax.nn.relu``, ``log_softmax``) is one node, ``jnp``'s private helpers
    are drawn inline (see the module docstring).

    Args:
        f: a function of pytrees of arrays returning a scalar float.
        *args: the point to record the graph at.
        expand_calls: draw every nested ``jit`` call inline instead of as one node.
        title: a caption for the graph.

    Returns:
        The DOT text of a ``digraph``.

    Raises:
        TypeError: for a non-scalar or non-float output, as ``graph.grad`` does.

    Example:
        >>> dot = to_dot(lambda a, b: a * (a + b), 3.0, 4.0)
        >>> print("\\n".join(line for line in dot.splitlines() if "->" in line))
          n0 -> n2 [label="value 3 | grad 3"];
          n1 -> n2 [label="value 4 | grad 3"];
          n0 -> n3 [label="value 3 | grad 7"];
          n2 -> n3 [label="value 7 | grad 3"];
          n3 -> n4 [label="value 21 | grad 1"];
    """
    return _dot(_build(f, args, expand_calls), title)


# The picture: each node's column is its depth from the inputs (an input sits just left of
# its first use); an edge spanning several columns runs through a point in each, so rows
# can be ordered by their neighbours' rows and nothing is drawn across a node. Sizes are in
# inches: the axes span the figure, one data unit per inch, so the figure grows with the graph.
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


def draw(
    f: Callable,
    *args: Any,
    path: str | os.PathLike = "graph.svg",
    expand_calls: bool = False,
    title: str | None = None,
) -> Path:
    """Draw the computational graph of ``f`` at ``args`` to an SVG, PNG or PDF file.

    The graph of ``to_dot``, laid out left to right with matplotlib alone: a node's column
    is its depth from the inputs; each arrow carries two numbers, the value computed forward
    (above) and the cotangent passed back (below, in red), ``d out / d value`` for that use.
    Where a value branches, its node's gradient is the sum of its arrows' cotangents. The
    figure grows with the graph; the global matplotlib backend is left alone. It reads best
    for graphs of up to a few dozen operations (a lesson's graph, a small model's loss);
    Graphviz lays out larger ones from ``to_dot``'s text.

    Args:
        f: a function of pytrees of arrays returning a scalar float.
        *args: the point to record the graph at.
        path: the file to write; its suffix (``.svg``, ``.png``, ``.pdf``) picks the format.
        expand_calls: draw every nested ``jit`` call inline instead of as one node.
        title: a caption above the graph.

    Returns:
        ``path``, as a ``Path``.

    Raises:
        ValueError: if ``path`` does not end in ``.svg``, ``.png`` or ``.pdf``.
        TypeError: for a non-scalar or non-float output, as ``graph.grad`` does.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> draw(lambda a, b: a * (a + b), 3.0, 4.0, path=f"{folder}/y.png").stat().st_size > 0
        True
    """
    path = Path(path)
    if path.suffix.lower() not in _SUFFIXES:
        raise ValueError(
            f"path: expected a file name ending in {', '.join(_SUFFIXES)}, got {str(path)!r}"
        )
    import matplotlib

    graph = _build(f, args, expand_calls)
    figure = _render(graph, _layout(graph), title)
    width, height = figure.get_size_inches()
    # a large graph gets fewer dots per inch: at most 30000 pixels a side, 40 million in all
    dpi = min(150, 30000 / max(width, height), (4e7 / (width * height)) ** 0.5)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "fungrad"}):
        figure.savefig(path, format=path.suffix.lower()[1:], dpi=dpi)
    return path
